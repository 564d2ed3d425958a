package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/snapvlm/snapvlm/internal/imageproc"
	"github.com/snapvlm/snapvlm/internal/modelconfig"
)

// preprocessResult is the JSON printed by `snapvlm preprocess`.
type preprocessResult struct {
	Images      []preprocessImage `json:"images"`
	Frames      int               `json:"frames"`
	ImageTokens int               `json:"image_tokens"`
	Shape       []int64           `json:"shape"`
}

type preprocessImage struct {
	Rows   int `json:"rows"`
	Cols   int `json:"cols"`
	Frames int `json:"frames"`
}

// cmdPreprocess turns images into pixel_values like the Python processor,
// prints the grid of each image and optionally writes the tensor as .npy.
func cmdPreprocess(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("preprocess", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: snapvlm preprocess --model DIR [--no-split] [--image-size L] [--npy OUT.npy] IMAGE...\n\n"+
			"Prints {\"images\": [{\"rows\", \"cols\", \"frames\"}], \"frames\", \"image_tokens\", \"shape\"} as JSON.\n\n")
		fs.PrintDefaults()
	}
	model := fs.String("model", "", "model directory (with preprocessor_config.json)")
	noSplit := fs.Bool("no-split", false, "do not split images into tiles (one M×M frame per image)")
	imageSize := fs.Int("image-size", 0, "override size.longest_edge (resize #1 target)")
	npy := fs.String("npy", "", "write pixel_values [1, frames, 3, M, M] float32 to this .npy file")
	maxPixels := fs.Int64("max-pixels", imageproc.DefaultMaxPixels, "refuse images with more pixels than this")
	images, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if *model == "" {
		return errors.New("--model DIR is required")
	}
	if len(images) == 0 {
		return errors.New("no image given")
	}
	m, err := modelconfig.Load(*model)
	if err != nil {
		return err
	}
	opt, err := imageproc.OptionsFromConfig(m.Preprocessor)
	if err != nil {
		return err
	}
	if *noSplit {
		opt.Split = false
	}
	if err := intRange("image-size", *imageSize, 0, opt.LongestEdge, "0: the model's size; at most its size.longest_edge"); err != nil {
		return err
	}
	if *maxPixels < 1 {
		return fmt.Errorf("--max-pixels %d: want 1 or more", *maxPixels)
	}
	if *imageSize > 0 {
		opt.LongestEdge = *imageSize
	}
	opt.MaxPixels = *maxPixels
	seqLen := m.ImageSeqLen()
	if seqLen <= 0 {
		return fmt.Errorf("model %s: image_seq_len is missing from %s and cannot be computed from %s",
			*model, modelconfig.ProcessorFile, modelconfig.ConfigFile)
	}
	var imgs []*imageproc.RGB
	for _, p := range images {
		if err := ctx.Err(); err != nil {
			return err
		}
		img, err := imageproc.Decode(p, opt.MaxPixels)
		if err != nil {
			return err
		}
		imgs = append(imgs, img)
	}
	b, err := imageproc.Process(ctx, imgs, opt)
	if err != nil {
		return err
	}
	res := preprocessResult{Frames: b.Frames, ImageTokens: b.Frames * seqLen, Shape: b.Shape()}
	for _, info := range b.Images {
		res.Images = append(res.Images, preprocessImage{Rows: info.Rows, Cols: info.Cols, Frames: info.Frames})
	}
	if *npy != "" {
		f, err := os.Create(*npy)
		if err != nil {
			return err
		}
		if err := b.WriteNPY(f); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", *npy, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("%s: %w", *npy, err)
		}
	}
	enc := json.NewEncoder(os.Stdout)
	return enc.Encode(res)
}
