package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/snapvlm/snapvlm/internal/imageproc"
	"github.com/snapvlm/snapvlm/internal/modelconfig"
	"github.com/snapvlm/snapvlm/internal/processor"
	"github.com/snapvlm/snapvlm/internal/prompt"
	"github.com/snapvlm/snapvlm/internal/tokenizer"
)

// preprocessResult is the JSON printed by `snapvlm preprocess`.
type preprocessResult struct {
	Images      []preprocessImage `json:"images,omitempty"`
	Videos      []videoInfo       `json:"videos,omitempty"`
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
		fmt.Fprintf(fs.Output(), "Usage: snapvlm preprocess --model DIR [--no-split] [--image-size L] [--npy OUT.npy] IMAGE...\n"+
			"       snapvlm preprocess --model DIR --video CLIP [--max-frames N] [--fps F] [--npy OUT.npy]\n\n"+
			"Prints {\"images\": [{\"rows\", \"cols\", \"frames\"}], \"frames\", \"image_tokens\", \"shape\"} as JSON;\n"+
			"for videos {\"videos\": [{\"indices\", \"timestamps\", \"frames\", \"image_tokens\", \"tokens\", ...}], ...}.\n\n")
		fs.PrintDefaults()
	}
	model := fs.String("model", "", "model directory (with preprocessor_config.json)")
	noSplit := fs.Bool("no-split", false, "do not split images into tiles (one M×M frame per image)")
	imageSize := fs.Int("image-size", 0, "override size.longest_edge (resize #1 target)")
	npy := fs.String("npy", "", "write pixel_values [1, frames, 3, M, M] float32 to this .npy file")
	maxPixels := fs.Int64("max-pixels", imageproc.DefaultMaxPixels, "refuse images with more pixels than this")
	var vf videoFlags
	vf.register(fs)
	images, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if *model == "" {
		return errors.New("--model DIR is required")
	}
	if err := vf.validate(); err != nil {
		return err
	}
	if len(vf.paths) > 0 && len(images) > 0 {
		return errors.New("give images or --video, not both (SmolVLM2's processor takes one or the other)")
	}
	if len(images) == 0 && len(vf.paths) == 0 {
		return errors.New("no image or --video given")
	}
	m, err := modelconfig.Load(*model)
	if err != nil {
		return err
	}
	if len(vf.paths) > 0 {
		return preprocessVideos(ctx, m, &vf, *npy)
	}
	opt, err := imageproc.OptionsFromConfig(m.Preprocessor)
	if err != nil {
		return err
	}
	if err := intRange("image-size", *imageSize, 0, opt.LongestEdge, "0: the model's size; at most its size.longest_edge"); err != nil {
		return err
	}
	if *maxPixels < 1 {
		return fmt.Errorf("--max-pixels %d: want 1 or more", *maxPixels)
	}
	if opt, err = processor.Override(opt, *noSplit, *imageSize); err != nil {
		return err
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

// preprocessVideos samples, decodes and resizes the videos as generation
// would and prints what each became.
func preprocessVideos(ctx context.Context, m *modelconfig.Model, vf *videoFlags, npy string) error {
	opt, err := vf.options(m)
	if err != nil {
		return err
	}
	seqLen := m.ImageSeqLen()
	if seqLen <= 0 {
		return fmt.Errorf("model %s: image_seq_len is missing from %s and cannot be computed from %s",
			m.Dir, modelconfig.ProcessorFile, modelconfig.ConfigFile)
	}
	tok, err := tokenizer.Load(filepath.Join(m.Dir, modelconfig.TokenizerFile))
	if err != nil {
		return err
	}
	vs, err := sampleVideos(ctx, vf.paths, opt, true)
	if err != nil {
		return err
	}
	texts := promptVideos(vs)
	b := &imageproc.Batch{Size: opt.FrameSize}
	res := preprocessResult{}
	for i, v := range vs {
		text, err := prompt.Expander{ImageSeqLen: seqLen}.Expand(prompt.VideoToken, nil, texts[i:i+1])
		if err != nil {
			return err
		}
		res.Videos = append(res.Videos, newVideoInfo(v, seqLen, len(tok.Encode(text))))
		b.Pixels = append(b.Pixels, v.Pixels(opt)...)
		b.Frames += len(v.Frames)
	}
	res.Frames, res.ImageTokens, res.Shape = b.Frames, b.Frames*seqLen, b.Shape()
	if npy != "" {
		if err := writeNPY(npy, b); err != nil {
			return err
		}
	}
	enc := json.NewEncoder(os.Stdout)
	return enc.Encode(res)
}

func writeNPY(path string, b *imageproc.Batch) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := b.WriteNPY(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
