package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/snapvlm/snapvlm/internal/hub"
)

func cmdPull(ctx context.Context, args []string) error {
	return runPull(ctx, args, os.Stdout, os.Stderr, hub.OptionsFromEnv())
}

// hubDtypeFlag collects --dtype values, repeated or comma-separated.
type hubDtypeFlag []string

func (d *hubDtypeFlag) String() string { return strings.Join(*d, ",") }

func (d *hubDtypeFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*d = append(*d, v)
		}
	}
	return nil
}

// runPull is `snapvlm pull` with its streams and hub options injected.
func runPull(ctx context.Context, args []string, stdout, stderr io.Writer, opt hub.Options) error {
	fs := flag.NewFlagSet("pull", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var dtypes hubDtypeFlag
	fs.Var(&dtypes, "dtype", fmt.Sprintf("ONNX variant to fetch, repeatable or comma-separated: %s (default %s)", strings.Join(hub.Dtypes(), ", "), hub.DefaultDtype))
	revision := fs.String("revision", "", "branch, tag or commit to fetch (default main, or REPO@REVISION)")
	quiet := fs.Bool("quiet", false, "print only the snapshot directory, no progress")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: snapvlm pull REPO[@REVISION] [--dtype D]... [--revision R] [--quiet]\n\n"+
			"Downloads the configs and the chosen ONNX variant of a SmolVLM repo from the\n"+
			"Hugging Face Hub into the Hugging Face cache (%s)\nand prints the snapshot directory.\n\n", opt.CacheDir)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("want exactly one repo id, e.g. snapvlm pull HuggingFaceTB/SmolVLM2-500M-Video-Instruct")
	}
	repo, rev, err := hub.ParseSpec(pos[0])
	if err != nil {
		return err
	}
	if *revision != "" {
		if strings.Contains(pos[0], "@") && rev != *revision {
			return fmt.Errorf("revision given twice: %s and --revision %s", pos[0], *revision)
		}
		rev = *revision
	}
	opt.Dtypes = dtypes
	if !*quiet {
		opt.Progress = stderr
	}
	dir, err := hub.Pull(ctx, repo, rev, opt)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, dir)
	return nil
}
