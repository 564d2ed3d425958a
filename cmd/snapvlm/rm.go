package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/snapvlm/snapvlm/internal/hub"
	"github.com/snapvlm/snapvlm/internal/ort"
)

func cmdRm(ctx context.Context, args []string) error {
	return runRm(ctx, args, os.Stdout, os.Stderr, hub.OptionsFromEnv())
}

// runRm is `snapvlm rm` with its streams and hub options injected.
func runRm(ctx context.Context, args []string, stdout, stderr io.Writer, opt hub.Options) error {
	fs := flag.NewFlagSet("rm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: snapvlm rm REPO[@REVISION]...\n\n"+
			"Removes models from the Hugging Face cache (%s). REPO removes every\n"+
			"revision; REPO@REVISION removes one snapshot and the files only it uses.\n"+
			"Decoders rewritten from removed files are removed too.\n", opt.CacheDir)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fs.Usage()
		return fmt.Errorf("want a repo id, e.g. snapvlm rm HuggingFaceTB/SmolVLM-256M-Instruct")
	}
	for _, spec := range pos {
		before := cachedBytes(opt, spec)
		if err := hub.Remove(opt, spec); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %s (%s freed)\n", spec, hub.FormatBytes(before-cachedBytes(opt, spec)))
	}
	// Decoders rewritten from files that are now gone.
	removed, err := ort.RemoveRewritten(func(f ort.RewrittenCopy) bool { return !f.Stale })
	if len(removed) > 0 {
		reportRewrittenRemoved(stdout, removed)
	}
	return err
}

// cachedBytes is the size of the repo spec names in the cache (0 if absent).
func cachedBytes(opt hub.Options, spec string) int64 {
	repo, _, err := hub.ParseSpec(spec)
	if err != nil {
		return 0
	}
	models, err := hub.List(opt)
	if err != nil {
		return 0
	}
	for _, m := range models {
		if m.Repo == repo {
			return m.Size
		}
	}
	return 0
}
