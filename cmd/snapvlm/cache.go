package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/snapvlm/snapvlm/internal/hub"
	"github.com/snapvlm/snapvlm/internal/ort"
)

func cmdCache(ctx context.Context, args []string) error {
	return runCache(ctx, args, os.Stdout, os.Stderr)
}

// runCache is `snapvlm cache` with its streams injected.
func runCache(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cache", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stale := fs.Bool("stale", false, "clear: remove only copies whose model is gone or changed")
	dir, _ := ort.RewrittenDir()
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: snapvlm cache [list | clear [--stale]]\n\n"+
			"Lists or removes the rewritten decoders (the attention rewrite, --decoder-int8) and the graphs\n"+
			"ONNX Runtime optimised (loaded next time without optimising again), kept in %s.\n"+
			"A removed copy is written again the next time it is needed.\n"+
			"(Models are listed by 'snapvlm models' and removed by 'snapvlm rm'.)\n\nFlags:\n", dir)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	action := "list"
	if len(pos) > 0 {
		action = pos[0]
	}
	if len(pos) > 1 || action != "list" && action != "clear" {
		fs.Usage()
		return fmt.Errorf("unexpected arguments %q: want list or clear", pos)
	}
	if action == "list" {
		files, err := ort.ListRewritten()
		if err != nil {
			return err
		}
		if len(files) == 0 {
			fmt.Fprintf(stdout, "no rewritten decoders in %s\n", dir)
			return nil
		}
		var total int64
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SIZE\tSTATE\tSOURCE\tPATH")
		for _, f := range files {
			state, src := "in use", f.Source
			if f.Stale {
				state = "stale"
			}
			if src == "" {
				src = "-"
			}
			total += f.Size
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", hub.FormatBytes(f.Size), state, src, f.Path)
		}
		fmt.Fprintf(tw, "%s\ttotal\t\t\n", hub.FormatBytes(total))
		return tw.Flush()
	}
	var keep func(ort.RewrittenCopy) bool
	if *stale {
		keep = func(f ort.RewrittenCopy) bool { return !f.Stale }
	}
	removed, err := ort.RemoveRewritten(keep)
	reportRewrittenRemoved(stdout, removed)
	return err
}

// reportRewrittenRemoved says how many rewritten decoders were removed.
func reportRewrittenRemoved(w io.Writer, removed []ort.RewrittenCopy) {
	var freed int64
	for _, f := range removed {
		freed += f.Size
	}
	fmt.Fprintf(w, "removed %d rewritten decoder(s) (%s freed)\n", len(removed), hub.FormatBytes(freed))
}
