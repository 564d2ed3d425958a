package snapvlm

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/snapvlm/snapvlm/internal/embed"
	"github.com/snapvlm/snapvlm/internal/imageproc"
	"github.com/snapvlm/snapvlm/internal/modelconfig"
	"github.com/snapvlm/snapvlm/internal/prompt"
)

// prepared is a prompt ready for the decoder.
type prepared struct {
	ids       []int64
	embeds    []float32
	imageKeys [][32]byte // feature-cache keys of the images, in order
}

// prepare renders the conversation, encodes its images and embeds the prompt.
func (m *Model) prepare(ctx context.Context, req Request, res *Result) (*prepared, error) {
	var msgs []prompt.Message
	var images []*Image
	for _, msg := range req.Messages {
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
	if len(msgs) == 0 {
		return nil, errors.New("generate: no messages")
	}
	text, err := m.tmpl.Render(msgs, true)
	if err != nil {
		return nil, err
	}
	feats, grids, keys, err := m.imageFeatures(ctx, images, req, res)
	if err != nil {
		return nil, err
	}
	text, err = prompt.Expander{ImageSeqLen: m.seqLen}.Expand(text, grids, nil)
	if err != nil {
		return nil, err
	}
	ids := m.tok.Encode(text)
	res.PromptTokens = ids
	embeds, err := m.emb.Embed(ctx, ids)
	if err != nil {
		return nil, err
	}
	if len(images) > 0 {
		if err := embed.Merge(embeds, ids, m.cfg.Config.ImageTokenID, feats, m.emb.Hidden()); err != nil {
			return nil, err
		}
	}
	res.ImageTokens = len(feats) / max(m.emb.Hidden(), 1)
	return &prepared{ids: ids, embeds: embeds, imageKeys: keys}, nil
}

// imageFeatures preprocesses and encodes every image (or takes its features
// from the cache) and returns the features in prompt order with the grids.
func (m *Model) imageFeatures(ctx context.Context, images []*Image, req Request, res *Result) ([]float32, []prompt.ImageGrid, [][32]byte, error) {
	if len(images) == 0 {
		return nil, nil, nil, nil
	}
	if m.vis == nil {
		return nil, nil, nil, errors.New("generate: the model was loaded text-only (Options.TextOnly) but the request has images")
	}
	opt, err := m.imageOptions(req.GenerateOptions)
	if err != nil {
		return nil, nil, nil, err
	}
	var all []float32
	grids := make([]prompt.ImageGrid, 0, len(images))
	keys := make([][32]byte, 0, len(images))
	for i, img := range images {
		var progress func(done, tiles int)
		if req.OnProgress != nil {
			progress = func(done, tiles int) {
				req.OnProgress(Progress{Image: i + 1, Images: len(images), Done: done, Tiles: tiles})
			}
		}
		ent, key, cached, err := m.imageFeature(ctx, img, opt, res, progress)
		if err != nil {
			return nil, nil, nil, err
		}
		keys = append(keys, key)
		all = append(all, ent.features...)
		grids = append(grids, ent.grid)
		res.Tiles += ent.frames
		res.Images = append(res.Images, ImageInfo{Rows: ent.grid.Rows, Cols: ent.grid.Cols, Frames: ent.frames, Cached: cached})
	}
	return all, grids, keys, nil
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
	opt := m.imgOpts
	if o.NoSplit {
		opt.Split = false
	}
	switch limit := m.MaxImageSize(); {
	case o.ImageSize < 0:
		return opt, fmt.Errorf("ImageSize %d: must be positive (0 keeps the model's %d)", o.ImageSize, limit)
	case o.ImageSize > limit:
		return opt, fmt.Errorf("ImageSize %d: more than the model's maximum of %d (%s size.longest_edge)", o.ImageSize, limit, modelconfig.PreprocessorFile)
	case o.ImageSize > 0:
		opt.LongestEdge = o.ImageSize
	}
	return opt, nil
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
