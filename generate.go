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
	held   // the prompt's ids and images
	embeds []float32
}

// prepare renders the conversation, plans its images' tiles and its
// videos' frames, checks the prompt's length, encodes the images and video
// frames (or takes their features from the cache) and embeds the prompt.
// The length check comes before any image is resized or encoded and any
// video frame decoded, so an over-long request fails at once.
func (m *Model) prepare(ctx context.Context, req Request, res *Result) (*prepared, error) {
	msgs, media, err := promptMessages(req.Messages)
	if err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, errors.New("generate: no messages")
	}
	var images []*Image
	var videos []*Video
	for _, part := range media {
		if part.Video != nil {
			videos = append(videos, part.Video)
		} else {
			images = append(images, part.Image)
		}
	}
	plans, err := m.planImages(images, req.GenerateOptions)
	if err != nil {
		return nil, err
	}
	vplans, err := m.planVideos(ctx, videos, req.GenerateOptions)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, pl := range vplans {
			pl.cleanup()
		}
	}()
	infos := make([]VideoInfo, len(vplans))
	for i, pl := range vplans {
		infos[i] = pl.info
	}
	in := processor.Input{Messages: msgs, Videos: promptVideos(infos)}
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
	feats, keys, rows, err := m.encodeMedia(ctx, media, plans, vplans, req.OnProgress, res)
	if err != nil {
		return nil, err
	}
	embeds, err := m.emb.Embed(ctx, pr.IDs)
	if err != nil {
		return nil, err
	}
	if len(media) > 0 {
		if err := embed.Merge(embeds, pr.IDs, m.cfg.Config.ImageTokenID, feats, m.emb.Hidden()); err != nil {
			return nil, err
		}
	}
	res.ImageTokens = pr.ImageTokens
	return &prepared{held: held{ids: pr.IDs, imageKeys: keys, imageRows: rows}, embeds: embeds}, nil
}

// promptMessages turns the messages into the template's, with a
// placeholder per image and per video, and lists the images and videos in
// order (the template renders content items in order).
func promptMessages(in []Message) ([]prompt.Message, []Part, error) {
	var msgs []prompt.Message
	var media []Part
	for _, msg := range in {
		pm := prompt.Message{Role: prompt.Role(msg.Role)}
		for _, part := range msg.Content {
			switch {
			case part.Image != nil && part.Video != nil:
				return nil, nil, errors.New("generate: a Part has both an Image and a Video; use one Part each")
			case part.Image != nil:
				pm.Content = append(pm.Content, prompt.Part{Type: prompt.PartImage})
				media = append(media, part)
			case part.Video != nil:
				pm.Content = append(pm.Content, prompt.Part{Type: prompt.PartVideo})
				media = append(media, part)
			default:
				pm.Content = append(pm.Content, prompt.Part{Type: prompt.PartText, Text: part.Text})
			}
		}
		msgs = append(msgs, pm)
	}
	return msgs, media, nil
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
				if w, h, err = img.dimensions(opt.MaxPixels); err != nil {
					return nil, err
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
	media := make([]Part, len(plans))
	for i, pl := range plans {
		media[i] = Part{Image: pl.img}
	}
	feats, keys, _, err := m.encodeMedia(ctx, media, plans, nil, onProgress, res)
	return feats, keys, err
}

// encodeMedia returns the features of the planned images and videos in
// the order of media (from the cache, or from the vision encoder), their
// cache keys and the number of image tokens each fills.
func (m *Model) encodeMedia(ctx context.Context, media []Part, plans []imagePlan, vplans []videoPlan, onProgress func(Progress), res *Result) ([]float32, [][32]byte, []int, error) {
	var all []float32
	keys := make([][32]byte, 0, len(media))
	rows := make([]int, 0, len(media))
	ii, vi := 0, 0
	for i, part := range media {
		var progress func(done, tiles int)
		if onProgress != nil {
			progress = func(done, tiles int) {
				onProgress(Progress{Image: i + 1, Images: len(media), Done: done, Tiles: tiles})
			}
		}
		if part.Video != nil {
			pl := vplans[vi]
			vi++
			ent, cached, err := m.videoFeature(ctx, pl, res, progress)
			if err != nil {
				return nil, nil, nil, err
			}
			keys = append(keys, pl.key)
			rows = append(rows, len(ent.features)/m.emb.Hidden())
			all = append(all, ent.features...)
			res.Tiles += ent.frames
			info := ent.video.info
			info.Cached = cached
			res.Videos = append(res.Videos, info)
			continue
		}
		pl := plans[ii]
		ii++
		ent, cached, err := m.imageFeature(ctx, pl.img, pl.rgb, pl.key, pl.opt, res, progress)
		if err != nil {
			return nil, nil, nil, err
		}
		if ent.grid != pl.grid {
			return nil, nil, nil, fmt.Errorf("image %s: tiled %dx%d, planned %dx%d", pl.img.Name, ent.grid.Rows, ent.grid.Cols, pl.grid.Rows, pl.grid.Cols)
		}
		keys = append(keys, pl.key)
		rows = append(rows, len(ent.features)/m.emb.Hidden())
		all = append(all, ent.features...)
		res.Tiles += ent.frames
		res.Images = append(res.Images, ImageInfo{Rows: ent.grid.Rows, Cols: ent.grid.Cols, Frames: ent.frames, Cached: cached})
	}
	return all, keys, rows, nil
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

// PixelValues preprocesses the images and videos of req's messages, in
// order, exactly as Generate does, into the vision encoder's pixel_values:
// float32 laid out as shape [1, frames, 3, M, M]. Useful to compare with
// other implementations fed the same pixels. (Processor.Process with
// ProcessOptions.PixelValues gives them with the prompt.)
func (m *Model) PixelValues(ctx context.Context, req Request) ([]float32, []int64, error) {
	done, err := m.life.enter()
	if err != nil {
		return nil, nil, err
	}
	defer done()
	pr, err := m.processor.Process(ctx, req, ProcessOptions{PixelValues: true})
	if err != nil && !errors.Is(err, ErrPromptTooLong) {
		return nil, nil, err
	}
	return pr.PixelValues, pr.Shape, nil
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

// dimensions reads the image's size without decoding its pixels (an
// image.Image is converted, as it is for encoding).
func (img *Image) dimensions(maxPixels int64) (w, h int, err error) {
	if img.img != nil {
		rgb, err := img.rgb(maxPixels)
		if err != nil {
			return 0, 0, err
		}
		return rgb.W, rgb.H, nil
	}
	if w, h, err = imageproc.Dimensions(img.Data, img.Name, maxPixels); err != nil {
		return 0, 0, imageErr(img.Name, err)
	}
	return w, h, nil
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
