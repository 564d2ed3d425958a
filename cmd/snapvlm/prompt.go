package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/snapvlm/snapvlm"
)

func cmdPrompt(ctx context.Context, args []string) error {
	return runPrompt(ctx, args, os.Stdout, os.Stderr)
}

// promptGridList is a repeatable RxC flag.
type promptGridList []snapvlm.TileGrid

func (l *promptGridList) String() string {
	s := make([]string, len(*l))
	for i, g := range *l {
		s[i] = fmt.Sprintf("%dx%d", g.Rows, g.Cols)
	}
	return strings.Join(s, ",")
}

func (l *promptGridList) Set(s string) error {
	r, c, ok := strings.Cut(strings.ToLower(s), "x")
	rows, err1 := strconv.Atoi(r)
	cols, err2 := strconv.Atoi(c)
	if !ok || err1 != nil || err2 != nil || rows < 0 || cols < 0 {
		return fmt.Errorf("grid %q: want ROWSxCOLS such as 4x4 (0x0 = single form)", s)
	}
	*l = append(*l, snapvlm.TileGrid{Rows: rows, Cols: cols})
	return nil
}

// promptJSON is the --json output.
type promptJSON struct {
	Prompt      string  `json:"prompt"`
	IDs         []int64 `json:"ids"`
	ImageTokens int     `json:"image_tokens"`
}

func runPrompt(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("prompt", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		modelDir    = fs.String("model", "", "model directory (Hugging Face layout: config.json, tokenizer.json, ...)")
		noSplit     = fs.Bool("no-split", false, "use the single (unsplit) form for every image")
		asJSON      = fs.Bool("json", false, `print {"prompt", "ids", "image_tokens"} as JSON`)
		defTemplate = fs.Bool("default-template", false, "use the built-in SmolVLM chat template if the model ships none")
		images      multiFlag
		grids       promptGridList
	)
	imageSize := fs.Int("image-size", 0, "longest edge images are resized to before tiling (default from the model)")
	qfile := fs.String("question-file", "", "read the question from this file (- for stdin)")
	fs.Var(&images, "image", "image file (repeatable); its tile grid is computed as the image processor does")
	fs.Var(&grids, "grid", "tile grid ROWSxCOLS of the next image, e.g. 4x4; 0x0 = single form (repeatable)")
	var vf videoFlags
	vf.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: snapvlm prompt --model DIR [--image IMG]... [--grid RxC]... [--no-split] [--json] QUESTION|-\n"+
			"       snapvlm prompt --model DIR --video CLIP [--max-frames N] [--fps F] [--json] QUESTION|-\n\n"+
			"Renders the chat template for one user turn (images or videos first, then QUESTION),\n"+
			"expands the image and video placeholders and tokenizes the result, without running a\n"+
			"model (videos are probed and their frames picked, not decoded).\n"+
			"Without --image, each --grid (or a lone --no-split) stands for one image.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if *modelDir == "" {
		return errors.New("--model DIR is required")
	}
	if len(rest) == 0 && *qfile == "" {
		return errors.New("missing QUESTION (or - / --question-file FILE)")
	}
	question, err := questionText(rest, *qfile, os.Stdin)
	if err != nil {
		return err
	}
	if err := vf.validate(); err != nil {
		return err
	}
	if len(vf.paths) > 0 && (len(images) > 0 || len(grids) > 0 || *noSplit) {
		return errors.New("give images (--image, --grid, --no-split) or --video, not both (SmolVLM2's processor takes one or the other)")
	}

	for _, img := range images {
		// Given grids make the pixels unnecessary, but a wrong path should not pass.
		if _, err := os.Stat(img); err != nil {
			return fmt.Errorf("--image: %w", err)
		}
	}
	layout, err := imageGrids(len(images), grids, *noSplit)
	if err != nil {
		return err
	}
	// The image settings are needed only to plan the grids of image files.
	fromFiles := layout == nil && len(images) > 0
	proc, err := snapvlm.OpenProcessor(*modelDir, snapvlm.ProcessorOptions{DefaultTemplate: *defTemplate, TextOnly: !fromFiles})
	if err != nil {
		if errors.Is(err, snapvlm.ErrNoTemplate) {
			return fmt.Errorf("%w (pass --default-template to use the built-in SmolVLM one)", err)
		}
		return err
	}
	if err := intRange("image-size", *imageSize, 0, proc.MaxImageSize(), "0: the model's size; at most its size.longest_edge"); err != nil {
		return err
	}
	var files []string
	if fromFiles {
		files = images
	}
	imgs, videos, err := openMedia(files, vf.paths)
	if err != nil {
		return err
	}
	if !fromFiles {
		// Given grids stand for the images: their files are not read.
		for i := range layout {
			imgs = append(imgs, &snapvlm.Image{Name: fmt.Sprintf("image %d", i+1)})
		}
	}
	req := snapvlm.Request{
		Messages:        []snapvlm.Message{userMessage(question, videos, imgs)},
		GenerateOptions: snapvlm.GenerateOptions{NoSplit: *noSplit, ImageSize: *imageSize, MaxFrames: vf.maxFrames, VideoFPS: vf.fps},
	}
	pr, err := proc.Process(ctx, req, snapvlm.ProcessOptions{Grids: layout})
	if err != nil && !errors.Is(err, snapvlm.ErrPromptTooLong) { // a prompt too long to answer is still shown
		return err
	}
	text, ids, nImage := pr.Text, pr.IDs, pr.ImageTokens

	if *asJSON {
		enc := json.NewEncoder(stdout)
		// Keep <image> readable instead of \u003cimage\u003e.
		enc.SetEscapeHTML(false)
		return enc.Encode(promptJSON{Prompt: text, IDs: ids, ImageTokens: nImage})
	}
	_, err = fmt.Fprintf(stdout, "%s\n--\n%d tokens, %d of them <image>\n", text, len(ids), nImage)
	return err
}

// imageGrids decides the tile grid of every image from the flags.
func imageGrids(nImages int, grids promptGridList, noSplit bool) ([]snapvlm.TileGrid, error) {
	switch {
	case noSplit && len(grids) > 0:
		return nil, errors.New("--no-split and --grid exclude each other")
	case nImages == 0 && noSplit:
		return []snapvlm.TileGrid{{}}, nil
	case nImages == 0:
		return grids, nil
	case noSplit:
		return make([]snapvlm.TileGrid, nImages), nil
	case len(grids) == 0:
		return nil, nil // computed from the images
	case len(grids) != nImages:
		return nil, fmt.Errorf("%d --image flags but %d --grid flags: give one grid per image", nImages, len(grids))
	}
	return grids, nil
}
