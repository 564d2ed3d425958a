// Command snapvlm-testmodel writes random-weight SmolVLM-format models:
// the real config files and graph structure (any of the export variants),
// a generated or given tokenizer, and weights from a seed. The tests and
// `make demo`'s offline fallback use it; it is a development tool, kept out
// of the snapvlm binary.
//
//	snapvlm-testmodel --preset tiny512 --out DIR [--variants fp32,q4] [--seed N]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/snapvlm/snapvlm/internal/testmodel"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "snapvlm-testmodel: %v\n", err)
		os.Exit(1)
	}
}

// run writes a random-weight SmolVLM-format model directory.
func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("snapvlm-testmodel", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: snapvlm-testmodel --preset NAME --out DIR [--variants fp32,q4,fp16] [--seed N]\n\n"+
			"Writes a SmolVLM-format model (configs, tokenizer, onnx/*.onnx) with random weights.\nPresets: %s\n\n",
			strings.Join(testmodel.Presets(), ", "))
		fs.PrintDefaults()
	}
	preset := fs.String("preset", "", "model preset: "+strings.Join(testmodel.Presets(), ", "))
	out := fs.String("out", "", "output directory (created)")
	variants := fs.String("variants", strings.Join(testmodel.Variants(), ","), "comma-separated variants to write (also: q4f16, float16 at every graph boundary; int8, uint8, quantized, bnb4)")
	seed := fs.Int64("seed", 1, "random seed of the weights")
	tokenizer := fs.String("tokenizer", "", "tokenizer.json to ship, e.g. the real SmolVLM one (default: a small generated BPE tokenizer)")
	genTok := fs.Bool("generate-tokenizer", false, "ship the generated tokenizer even if --tokenizer is given")
	quiet := fs.Bool("quiet", false, "do not print progress")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *preset == "" || *out == "" {
		fs.Usage()
		return fmt.Errorf("--preset and --out are required")
	}
	var vs []string
	for _, v := range strings.Split(*variants, ",") {
		if v = strings.TrimSpace(v); v != "" {
			vs = append(vs, v)
		}
	}
	start := time.Now()
	opt := testmodel.Options{Variants: vs, Seed: *seed, TokenizerPath: *tokenizer, GenerateTokenizer: *genTok}
	if !*quiet {
		opt.Progress = func(file string) {
			fmt.Fprintf(os.Stderr, "writing %s\n", file)
		}
	}
	if err := testmodel.Generate(ctx, *preset, *out, opt); err != nil {
		return err
	}
	if !*quiet {
		var total int64
		filepath.Walk(*out, func(_ string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				total += info.Size()
			}
			return nil
		})
		fmt.Fprintf(os.Stderr, "wrote %s (%s, %.1f MB) in %s\n", *out, *preset, float64(total)/1e6, time.Since(start).Round(time.Millisecond))
	}
	return nil
}
