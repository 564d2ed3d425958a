package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/snapvlm/snapvlm/internal/hub"
)

func cmdModels(ctx context.Context, args []string) error {
	return runModels(ctx, args, os.Stdout, os.Stderr, hub.OptionsFromEnv())
}

// runModels is `snapvlm models` with its streams and hub options injected.
func runModels(ctx context.Context, args []string, stdout, stderr io.Writer, opt hub.Options) error {
	fs := flag.NewFlagSet("models", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the list as JSON")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: snapvlm models [--json]\n\n"+
			"Lists the SmolVLM models in the Hugging Face cache (%s):\n"+
			"one line per cached revision with its ONNX variants and size.\n\n", opt.CacheDir)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected arguments %q", pos)
	}
	models, err := hub.List(opt)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if models == nil {
			models = []hub.CachedModel{}
		}
		return enc.Encode(models)
	}
	if len(models) == 0 {
		fmt.Fprintf(stdout, "no SmolVLM models in %s (get one with: snapvlm pull HuggingFaceTB/SmolVLM-256M-Instruct)\n", opt.CacheDir)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPO\tREVISION\tVARIANTS\tSIZE\tPATH")
	for _, m := range models {
		for _, r := range m.Revisions {
			rev := r.Commit[:min(12, len(r.Commit))]
			if len(r.Refs) > 0 {
				rev = strings.Join(r.Refs, ",") + " (" + rev + ")"
			}
			variants := strings.Join(r.Variants, ",")
			if variants == "" {
				variants = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Repo, rev, variants, hub.FormatBytes(r.Size), r.Dir)
		}
	}
	return tw.Flush()
}
