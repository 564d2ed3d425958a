package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/snapvlm/snapvlm"
)

func cmdRun(ctx context.Context, args []string) error {
	return runRun(ctx, args, os.Stdout, os.Stderr)
}

// runRun is `snapvlm run` reading a "-" question from os.Stdin.
func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runRunIO(ctx, args, os.Stdin, stdout, stderr)
}

func runRunIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f engineFlags
	f.register(fs)
	asJSON := fs.Bool("json", false, "print one JSON object with the answer, token ids and timings instead of streaming")
	qfile := fs.String("question-file", "", "read the question from this file (- for stdin)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: snapvlm run --model DIR|REPO [--image IMG]... [flags] QUESTION|-")
		fs.PrintDefaults()
	}
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	question, err := questionText(rest, *qfile, stdin)
	if err != nil {
		return err
	}
	if question == "" {
		return fmt.Errorf("no question given (usage: snapvlm run --model DIR --image IMG QUESTION, or - / --question-file FILE)")
	}
	if err := f.validate(); err != nil {
		return err
	}
	images, err := f.readImages()
	if err != nil {
		return err
	}
	m, err := f.load(ctx, len(images) == 0)
	if err != nil {
		return err
	}
	defer m.Close()
	req := f.request()
	req.Messages = append(f.systemMessages(), snapvlm.UserMessage(question, images...))
	// On a terminal, a line shows the vision encoder's progress on long
	// encodes; it is cleared before the answer.
	prog := &progressLine{w: stderr}
	if isTerminal(stderr) {
		req.OnProgress = prog.show
	}
	var onText func(string) error
	if !*asJSON {
		onText = func(s string) error {
			prog.clear()
			_, err := io.WriteString(stdout, s)
			return err
		}
	}
	res, err := m.Generate(ctx, req, onText)
	prog.clear()
	if errors.Is(err, snapvlm.ErrPromptTooLong) {
		return fmt.Errorf("%w\n(fewer --image files, --no-split or a smaller --image-size make it shorter)", err)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		out := resultJSON(res)
		out.Files = map[string]graphFileJSON{}
		for g, p := range m.Files() {
			out.Files[g] = graphFileJSON{File: p, Why: m.FileReasons()[g]}
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout)
	}
	if f.verbose {
		printStats(stderr, res)
	}
	if res.FinishReason == snapvlm.FinishCancelled {
		return errStopped
	}
	return nil
}

// runJSON is the --json output.
type runJSON struct {
	Text         string              `json:"text"`
	Tokens       []int64             `json:"tokens"`
	PromptTokens []int64             `json:"prompt_tokens"`
	ImageTokens  int                 `json:"image_tokens"`
	Tiles        int                 `json:"tiles"`
	Images       []snapvlm.ImageInfo `json:"images"`
	FinishReason string              `json:"finish_reason"`
	Timings      map[string]float64  `json:"timings"`
	// Files are the graph files run, by graph, and why each was chosen.
	Files map[string]graphFileJSON `json:"files,omitempty"`
}

type graphFileJSON struct {
	File string `json:"file"`
	Why  string `json:"why"`
}

func resultJSON(r *snapvlm.Result) runJSON {
	ms := func(d interface{ Seconds() float64 }) float64 { return float64(int64(d.Seconds()*1e6)) / 1e3 }
	t := r.Timings
	tokens := r.Tokens
	if tokens == nil {
		tokens = []int64{}
	}
	return runJSON{
		Text: r.Text, Tokens: tokens, PromptTokens: r.PromptTokens, ImageTokens: r.ImageTokens, Tiles: r.Tiles,
		Images: r.Images, FinishReason: r.FinishReason,
		Timings: map[string]float64{
			"load_ms": ms(t.Load), "preprocess_ms": ms(t.Preprocess), "vision_ms": ms(t.Vision),
			"prefill_ms": ms(t.Prefill), "ttft_ms": ms(t.FirstToken), "decode_ms": ms(t.Decode),
			"decode_tokens_per_sec": t.DecodeTokensPerSec,
		},
	}
}

// progressLine redraws one status line on a terminal.
type progressLine struct {
	w     io.Writer
	width int // of the line shown, 0 when none
}

func (p *progressLine) show(pr snapvlm.Progress) {
	line := fmt.Sprintf("encoding image %d/%d: tile %d/%d", pr.Image, pr.Images, pr.Done, pr.Tiles)
	fmt.Fprintf(p.w, "\r%-*s", p.width, line)
	p.width = max(p.width, len(line))
}

func (p *progressLine) clear() {
	if p.width > 0 {
		fmt.Fprintf(p.w, "\r%*s\r", p.width, "")
		p.width = 0
	}
}
