package snapvlm

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/snapvlm/snapvlm/internal/embed"
	"github.com/snapvlm/snapvlm/internal/imageproc"
	"github.com/snapvlm/snapvlm/internal/processor"
	"github.com/snapvlm/snapvlm/internal/prompt"
)

// prepared is a prompt ready for the decoder.
type prepared struct {
	ids       []int64
	embeds    []float32
	imageKeys [][32]byte // feature-cache keys of the images, in order
}

// prepare renders the conversation, plans its images' tiles, checks the
// prompt's length, encodes the images (or takes their features from the
// cache) and embeds the prompt. The length check comes before any image is
// resized or encoded, so an over-long request fails at once.
func (m *Model) prepare(ctx context.Context, req Request, res *Result) (*prepared, error) {
	msgs, images := promptMessages(req.Messages)
	if len(msgs) == 0 {
		return nil, errors.New("generate: no messages")
	}
	plans, err := m.planImages(images, req.GenerateOptions)
	if err != nil {
		return nil, err
	}
	in := processor.Input{Messages: msgs}
	for _, pl := range plans {
		in.Grids = append(in.Grids, pl.grid)
	}
	pr, err := m.proc.Prompt(in)
	var long *processor.TooLongError
	if errors.As(err, &long) {
		return nil, &PromptTooLongError{Tokens: long.Tokens, ImageTokens: long.ImageTokens, Limit: long.Limit}
	}
	if err != nil {
		return nil, err
	}
	res.PromptTokens = pr.IDs
	feats, keys, err := m.encodeImages(ctx, plans, req.OnProgress, res)
	if err != nil {
		return nil, err
	}
	embeds, err := m.emb.Embed(ctx, pr.IDs)
	if err != nil {
		return nil, err
	}
	if len(images) > 0 {
		if err := embed.Merge(embeds, pr.IDs, m.cfg.Config.ImageTokenID, feats, m.emb.Hidden()); err != nil {
			return nil, err
		}
	}
	res.ImageTokens = pr.ImageTokens
	return &prepared{ids: pr.IDs, embeds: embeds, imageKeys: keys}, nil
}

// promptMessages turns the messages into the template's, with a
// placeholder per image, and lists the images in order.
func promptMessages(in []Message) ([]prompt.Message, []*Image) {
	var msgs []prompt.Message
	var images []*Image
	for _, msg := range in {
		pm := prompt.Message{Role: prompt.Role(msg.Role)}
		for _, part := range msg.Content {
			if part.Image != nil {
				pm.Content = append(pm.Content, prompt.Part{Type: prompt.PartImage})
				images = append(images, part.Image)
			} else {
				pm.Content = append(pm.Content, prompt.Part{Type: prompt.PartText, Text: part.Text})
			}
		}
		msgs = append(msgs, pm)
	}
	return msgs, images
}

// imagePlan is one image of a request before encoding: its tile grid,
// known from the cache or from the image's size alone.
type imagePlan struct {
	img  *Image
	opt  imageproc.Options
	rgb  *imageproc.RGB // the pixels of an image.Image (nil for files)
	key  [32]byte
	grid prompt.ImageGrid
}

// planImages finds each image's grid without resizing or encoding it.
func (m *Model) planImages(images []*Image, o GenerateOptions) ([]imagePlan, error) {
	if len(images) == 0 {
		return nil, nil
	}
	if m.vis == nil {
		return nil, errors.New("generate: the model was loaded text-only (Options.TextOnly) but the request has images")
	}
	opt, err := m.imageOptions(o)
	if err != nil {
		return nil, err
	}
	plans := make([]imagePlan, len(images))
	for i, img := range images {
		pl := imagePlan{img: img, opt: opt}
		var w, h int
		if img.img != nil {
			if pl.rgb, err = img.rgb(opt.MaxPixels); err != nil {
				return nil, err
			}
			w, h = pl.rgb.W, pl.rgb.H
		}
		pl.key = featureKey(img, pl.rgb, opt)
		if ent, ok := m.features.get(pl.key); ok {
			pl.grid = ent.grid
		} else {
			if pl.rgb == nil {
				if w, h, err = imageproc.Dimensions(img.Data, img.Name, opt.MaxPixels); err != nil {
					return nil, imageErr(img.Name, err)
				}
			}
			pl.grid = processor.Grid(w, h, opt)
		}
		plans[i] = pl
	}
	return plans, nil
}

// encodeImages returns the features of the planned images in prompt order
// (from the cache, or from the vision encoder) and their cache keys.
func (m *Model) encodeImages(ctx context.Context, plans []imagePlan, onProgress func(Progress), res *Result) ([]float32, [][32]byte, error) {
	var all []float32
	keys := make([][32]byte, 0, len(plans))
	for i, pl := range plans {
		var progress func(done, tiles int)
		if onProgress != nil {
			progress = func(done, tiles int) {
				onProgress(Progress{Image: i + 1, Images: len(plans), Done: done, Tiles: tiles})
			}
		}
		ent, cached, err := m.imageFeature(ctx, pl.img, pl.rgb, pl.key, pl.opt, res, progress)
		if err != nil {
			return nil, nil, err
		}
		if ent.grid != pl.grid {
			return nil, nil, fmt.Errorf("image %s: tiled %dx%d, planned %dx%d", pl.img.Name, ent.grid.Rows, ent.grid.Cols, pl.grid.Rows, pl.grid.Cols)
		}
		keys = append(keys, pl.key)
		all = append(all, ent.features...)
		res.Tiles += ent.frames
		res.Images = append(res.Images, ImageInfo{Rows: ent.grid.Rows, Cols: ent.grid.Cols, Frames: ent.frames, Cached: cached})
	}
	return all, keys, nil
}

// imageFeatures plans and encodes images outside a prompt (for
// tests): their features in order, with the grids and cache keys.
func (m *Model) imageFeatures(ctx context.Context, images []*Image, req Request, res *Result) ([]float32, []prompt.ImageGrid, [][32]byte, error) {
	plans, err := m.planImages(images, req.GenerateOptions)
	if err != nil {
		return nil, nil, nil, err
	}
	feats, keys, err := m.encodeImages(ctx, plans, req.OnProgress, res)
	if err != nil {
		return nil, nil, nil, err
	}
	grids := make([]prompt.ImageGrid, len(plans))
	for i, pl := range plans {
		grids[i] = pl.grid
	}
	return feats, grids, keys, nil
}

// PixelValues preprocesses the images of req's messages, in order, exactly
// as Generate does, into the vision encoder's pixel_values: float32 laid
// out as shape [1, frames, 3, M, M]. Useful to compare with other
// implementations fed the same pixels.
func (m *Model) PixelValues(ctx context.Context, req Request) ([]float32, []int64, error) {
	done, err := m.life.enter()
	if err != nil {
		return nil, nil, err
	}
	defer done()
	opt, err := m.imageOptions(req.GenerateOptions)
	if err != nil {
		return nil, nil, err
	}
	var rgbs []*imageproc.RGB
	for _, msg := range req.Messages {
		for _, part := range msg.Content {
			if part.Image == nil {
				continue
			}
			rgb, err := part.Image.rgb(opt.MaxPixels)
			if err != nil {
				return nil, nil, err
			}
			rgbs = append(rgbs, rgb)
		}
	}
	if len(rgbs) == 0 {
		return nil, nil, errors.New("pixel values: the request has no images")
	}
	b, err := imageproc.Process(ctx, rgbs, opt)
	if err != nil {
		return nil, nil, err
	}
	return b.Pixels, b.Shape(), nil
}

// imageOptions are the model's preprocessing options with the request's
// overrides.
func (m *Model) imageOptions(o GenerateOptions) (imageproc.Options, error) {
	return m.proc.ImageOptions(o.NoSplit, o.ImageSize)
}

// rgb decodes the image (or converts the image.Image it wraps).
func (img *Image) rgb(maxPixels int64) (*imageproc.RGB, error) {
	var rgb *imageproc.RGB
	var err error
	if img.img != nil {
		rgb, err = imageproc.FromImage(img.img, maxPixels)
	} else {
		rgb, err = imageproc.DecodeBytes(img.Data, img.Name, maxPixels)
	}
	if err != nil {
		return nil, imageErr(img.Name, err)
	}
	return rgb, nil
}

// featureKey identifies an image's features: its file bytes (or pixels,
// for a decoded image) and the preprocessing options.
func featureKey(img *Image, rgb *imageproc.RGB, opt imageproc.Options) [32]byte {
	h := sha256.New()
	if img.img != nil && rgb != nil {
		fmt.Fprintf(h, "rgb %dx%d|", rgb.W, rgb.H)
		h.Write(rgb.Pix)
	} else {
		h.Write(img.Data)
	}
	fmt.Fprintf(h, "|%d|%d|%t|%v|%v|%v", opt.LongestEdge, opt.TileSize, opt.Split, opt.Mean, opt.Std, opt.RescaleFactor)
	var k [32]byte
	h.Sum(k[:0])
	return k
}
