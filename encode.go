package snapvlm

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/snapvlm/snapvlm/internal/imageproc"
	"github.com/snapvlm/snapvlm/internal/prompt"
)

// ImageOptions are the per-request preprocessing choices that change an
// image's features (and so its feature-cache entry).
type ImageOptions struct {
	// NoSplit encodes the image as one tile (see Request.NoSplit).
	NoSplit bool
	// ImageSize overrides the longest edge before tiling (see Request.ImageSize).
	ImageSize int
}

// Encoded describes an image whose features are in the model's cache.
type Encoded struct {
	// ID identifies the image and its preprocessing (hex SHA-256 of the
	// bytes and options): the same photo with the same options has the
	// same ID in every process.
	ID string `json:"id"`
	ImageInfo
	// Tokens is the number of <image> tokens the image adds to a prompt.
	Tokens int `json:"tokens"`
	// Preprocess and Vision are the time this call spent decoding and
	// tiling, and in the vision encoder (zero when the features were cached
	// or another call was already encoding the same image).
	Preprocess time.Duration `json:"-"`
	Vision     time.Duration `json:"-"` // see Preprocess
}

// Encode computes the features of img with the preprocessing of opt and
// keeps them in the model's feature cache, so a later Generate (or Chat
// turn) with the same image and options skips the vision encoder. A server
// can call it when a photo is uploaded, while the user types the question.
// Concurrent calls (and Generate calls) for the same image run the encoder
// once; the others wait for it.
func (m *Model) Encode(ctx context.Context, img *Image, opt ImageOptions) (*Encoded, error) {
	if m.vis == nil {
		return nil, errors.New("encode: the model was loaded text-only (Options.TextOnly)")
	}
	if img == nil || (len(img.Data) == 0 && img.img == nil) {
		return nil, errors.New("encode: no image data")
	}
	done, err := m.life.enter()
	if err != nil {
		return nil, err
	}
	defer done()
	plans, err := m.planImages([]*Image{img}, GenerateOptions{NoSplit: opt.NoSplit, ImageSize: opt.ImageSize})
	if err != nil {
		return nil, err
	}
	pl := plans[0]
	var res Result
	ent, cached, err := m.imageFeature(ctx, img, pl.rgb, pl.key, pl.opt, &res, nil)
	key := pl.key
	if err != nil {
		return nil, err
	}
	return &Encoded{
		ID:         hex.EncodeToString(key[:]),
		ImageInfo:  ImageInfo{Rows: ent.grid.Rows, Cols: ent.grid.Cols, Frames: ent.frames, Cached: cached},
		Tokens:     ent.frames * m.seqLen,
		Preprocess: res.Timings.Preprocess,
		Vision:     res.Timings.Vision,
	}, nil
}

// ImageID is the ID Encode reports for img with opt, computed without
// encoding (a hash of the bytes and the preprocessing).
// Options Encode would refuse give the ID of the model's own preprocessing.
func (m *Model) ImageID(img *Image, opt ImageOptions) string {
	po, err := m.imageOptions(GenerateOptions{NoSplit: opt.NoSplit, ImageSize: opt.ImageSize})
	if err != nil {
		po = m.imgOpts
	}
	var rgb *imageproc.RGB
	if img.img != nil {
		rgb, _ = img.rgb(po.MaxPixels)
	}
	key := featureKey(img, rgb, po)
	return hex.EncodeToString(key[:])
}

// imageFeature returns the features of one image from the cache, from an
// encoding of it already running, or by preprocessing and encoding it (the
// time it spends is added to res.Timings). rgb holds the pixels of an
// image.Image (nil for an encoded file); key is featureKey's. cached is
// false only when this call ran the vision encoder.
func (m *Model) imageFeature(ctx context.Context, img *Image, rgb *imageproc.RGB, key [32]byte, opt imageproc.Options, res *Result, progress func(done, tiles int)) (ent *featureEntry, cached bool, err error) {
	ent, computed, err := m.features.do(ctx, key, func() (*featureEntry, error) {
		t := time.Now()
		if rgb == nil {
			var err error
			if rgb, err = img.rgb(opt.MaxPixels); err != nil {
				return nil, err
			}
		}
		batch, err := imageproc.Process(ctx, []*imageproc.RGB{rgb}, opt)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, imageErr(img.Name, err)
		}
		res.Timings.Preprocess += time.Since(t)
		t = time.Now()
		var onRun func(int)
		if progress != nil {
			progress(0, batch.Frames)
			onRun = func(done int) { progress(done, batch.Frames) }
		}
		feats, err := m.vis.EncodeProgress(ctx, batch.Pixels, batch.Frames, onRun)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Name, err)
		}
		res.Timings.Vision += time.Since(t)
		info := batch.Images[0]
		return &featureEntry{features: feats, grid: prompt.ImageGrid{Rows: info.Rows, Cols: info.Cols}, frames: batch.Frames}, nil
	})
	return ent, !computed, err
}
