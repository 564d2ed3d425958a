package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/snapvlm/snapvlm"
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
	maxPixels := fs.Int64("max-pixels", defaultMaxPixels, "refuse images with more pixels than this")
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
	// The prompt is rendered too (its image tokens are counted): a model
	// without a chat template gets the built-in one.
	proc, err := snapvlm.OpenProcessor(*model, snapvlm.ProcessorOptions{DefaultTemplate: true})
	if err != nil {
		return err
	}
	if err := intRange("image-size", *imageSize, 0, proc.MaxImageSize(), "0: the model's size; at most its size.longest_edge"); err != nil {
		return err
	}
	if *maxPixels < 1 {
		return fmt.Errorf("--max-pixels %d: want 1 or more", *maxPixels)
	}
	imgs, videos, err := openMedia(images, vf.paths)
	if err != nil {
		return err
	}
	req := snapvlm.Request{
		Messages:        []snapvlm.Message{userMessage("", videos, imgs)},
		GenerateOptions: snapvlm.GenerateOptions{NoSplit: *noSplit, ImageSize: *imageSize, MaxFrames: vf.maxFrames, VideoFPS: vf.fps},
	}
	pr, err := proc.Process(ctx, req, snapvlm.ProcessOptions{PixelValues: true, MaxPixels: *maxPixels})
	if err != nil && !errors.Is(err, snapvlm.ErrPromptTooLong) {
		return err
	}
	res := preprocessResult{Frames: int(pr.Shape[1]), ImageTokens: pr.ImageTokens, Shape: pr.Shape}
	for _, info := range pr.Images {
		res.Images = append(res.Images, preprocessImage{Rows: info.Rows, Cols: info.Cols, Frames: info.Frames})
	}
	for i, v := range pr.Videos {
		res.Videos = append(res.Videos, newVideoInfo(vf.paths[i], v, proc.ImageSeqLen()))
	}
	if *npy != "" {
		if err := writeNPY(*npy, pr); err != nil {
			return err
		}
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// openMedia reads the image files and refers to the video files.
func openMedia(images, videos []string) ([]*snapvlm.Image, []*snapvlm.Video, error) {
	var imgs []*snapvlm.Image
	for _, p := range images {
		img, err := snapvlm.ImageFile(p)
		if err != nil {
			return nil, nil, err
		}
		imgs = append(imgs, img)
	}
	var vids []*snapvlm.Video
	for _, p := range videos {
		v, err := snapvlm.VideoFile(p)
		if err != nil {
			return nil, nil, err
		}
		vids = append(vids, v)
	}
	return imgs, vids, nil
}

// defaultMaxPixels is the library's limit on an image's pixels.
const defaultMaxPixels = snapvlm.DefaultMaxImagePixels

func writeNPY(path string, pr *snapvlm.Processed) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pr.WriteNPY(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
