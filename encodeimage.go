package snapvlm

import (
	"context"
	"errors"
)

// EncodeImage preprocesses img and runs the vision encoder exactly as
// Generate would for a request with opt's NoSplit and ImageSize, and keeps the features in the model's feature cache: a
// later Generate with the same image and settings skips the encoder while
// the features stay cached (Options.FeatureCacheSize images, least recently
// used first out). It returns how the image was tiled and what it cost
// (Preprocess and Vision; zero when the features were cached already).
func (m *Model) EncodeImage(ctx context.Context, img *Image, opt ImageOptions) (ImageInfo, Timings, error) {
	if img == nil {
		return ImageInfo{}, Timings{}, errors.New("encode image: nil image")
	}
	done, err := m.life.enter()
	if err != nil {
		return ImageInfo{}, Timings{}, err
	}
	defer done()
	res := &Result{}
	if _, _, _, err := m.imageFeatures(ctx, []*Image{img}, Request{GenerateOptions: GenerateOptions{NoSplit: opt.NoSplit, ImageSize: opt.ImageSize}}, res); err != nil {
		return ImageInfo{}, Timings{}, err
	}
	return res.Images[0], res.Timings, nil
}
