package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/snapvlm/snapvlm"
)

// benchVariants runs snapvlm.BenchVariants on a photo prompt and prints its
// report (README, "Choosing a variant").
func benchVariants(ctx context.Context, f *engineFlags, dir string, images []*snapvlm.Image, question string, graphs []string, runs, steps int, asJSON bool, stdout, stderr io.Writer) error {
	if len(images) == 0 {
		return errors.New("bench --variants needs --image (a photo prompt)")
	}
	req := snapvlm.Request{Messages: []snapvlm.Message{snapvlm.UserMessage(question, images...)}, GenerateOptions: f.generateOptions()}
	rep, err := snapvlm.BenchVariants(ctx, dir, req, snapvlm.VariantBenchOptions{
		ORTLib: f.ortLib, Threads: f.threads, Provider: f.provider, Graphs: graphs, Runs: runs, Steps: steps,
		Progress: func(g, v string) { fmt.Fprintf(stderr, "measuring %s %s\n", g, v) },
	})
	if err != nil {
		return withFlagHints(err)
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(stderr, n)
	}
	// The variants the engine names by option are named by flag here.
	for i := range rep.Rows {
		rep.Rows[i].Variant = strings.ReplaceAll(rep.Rows[i].Variant, "Options.DecoderInt8", "--decoder-int8")
		rep.Rows[i].Variant = strings.ReplaceAll(rep.Rows[i].Variant, "Options.KVCache", "--kv-cache f16")
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printVariants(stdout, rep)
	return nil
}

func printVariants(w io.Writer, r *snapvlm.VariantReport) {
	fmt.Fprintf(w, "model %s (ONNX Runtime %s): %d prompt tokens, %d tiles, %d forced decoder steps, medians of %d runs\n",
		r.Model, r.ORT, r.PromptTokens, r.Tiles, r.Steps, r.Runs)
	fmt.Fprintf(w, "pass: vision feature cosine ≥ %g, decoder top-1 agreement ≥ %g, embeddings exact; * = fastest passing\n", snapvlm.VariantMinVisionCosine, snapvlm.VariantMinTop1)
	graph := ""
	for _, x := range r.Rows {
		if x.Graph != graph {
			graph = x.Graph
			fmt.Fprintf(w, "\n%s\n", graph)
		}
		mark := " "
		if x.Fastest {
			mark = "*"
		}
		if x.Error != "" {
			fmt.Fprintf(w, " %s %-40s error: %s\n", mark, x.Variant, x.Error)
			continue
		}
		switch x.Graph {
		case snapvlm.GraphVision:
			fmt.Fprintf(w, " %s %-40s %8.1f ms/tile   cosine %.6f  max|Δ| %-9.4g pass %v\n", mark, x.Variant, x.MS, x.Cosine, x.MaxAbs, x.Pass)
		case snapvlm.GraphEmbed:
			fmt.Fprintf(w, " %s %-40s %8.1f ms         max|Δ| %-9.4g pass %v\n", mark, x.Variant, x.MS, x.MaxAbs, x.Pass)
		default:
			fmt.Fprintf(w, " %s %-40s %8.1f tok/s  prefill %7.0f ms  top-1 %.4f  max|Δlogit| %-8.4g pass %v\n", mark, x.Variant, x.TokensSec, x.PrefillMS, x.Top1, x.MaxLogit, x.Pass)
		}
	}
}
