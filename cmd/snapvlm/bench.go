package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/snapvlm/snapvlm"
)

func cmdBench(ctx context.Context, args []string) error {
	return runBench(ctx, args, os.Stdout, os.Stderr)
}

// benchReport is what `snapvlm bench --json` prints; times in milliseconds,
// medians over the runs.
type benchReport struct {
	Model        string            `json:"model"`
	Files        map[string]string `json:"files"`
	FileReasons  map[string]string `json:"file_reasons"`
	ORT          string            `json:"onnxruntime"`
	Runs         int               `json:"runs"`
	PromptTokens int               `json:"prompt_tokens"`
	ImageTokens  int               `json:"image_tokens"`
	Tiles        int               `json:"tiles"`
	NewTokens    int               `json:"new_tokens"`
	LoadMS       float64           `json:"load_ms"`
	PreprocessMS float64           `json:"preprocess_ms"`
	VisionMS     float64           `json:"vision_ms"`
	VisionTileMS float64           `json:"vision_ms_per_tile"`
	PrefillMS    float64           `json:"prefill_ms"`
	PrefillTPS   float64           `json:"prefill_tokens_per_sec"`
	TTFTMS       float64           `json:"ttft_ms"`
	DecodeTPS    float64           `json:"decode_tokens_per_sec"`
	TotalMS      float64           `json:"total_ms"`
	PeakRSSMB    float64           `json:"peak_rss_mb"`
	// Streams (--streams) are the answers generated at once: 1, 2, 4, ...
	Streams []streamsReport `json:"streams,omitempty"`
	// Batched says whether those answers decoded in one batch.
	Batched bool `json:"batched,omitempty"`
}

// streamsReport is one --streams measurement: n answers started at once.
type streamsReport struct {
	Streams int `json:"streams"`
	// TokensPerSec is the tokens of all answers per second of wall time,
	// from the start to the last answer's end (prefill included).
	TokensPerSec float64 `json:"tokens_per_sec"`
	// DecodeTPS is the mean of the answers' decode rates.
	DecodeTPS float64 `json:"decode_tokens_per_sec"`
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f engineFlags
	f.register(fs)
	runs := fs.Int("runs", 3, "generations to time (medians are reported)")
	question := fs.String("question", "Can you describe this image?", "the question asked")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	variants := fs.Bool("variants", false, "time every variant of every graph (and the int8 rewrites) and measure each against fp32 on the same inputs")
	steps := fs.Int("steps", 512, "with --variants: forced decoder steps compared with fp32")
	graphs := fs.String("graphs", "", "with --variants: comma-separated graphs to measure (default all)")
	streams := fs.Int("streams", 0, "also time 1, 2, 4, ... up to N answers generated at once, decoded in one batch as serve --parallel N does (total tokens/s; medians of --runs rounds)")
	streamsAlone := fs.Bool("streams-alone", false, "with --streams: every answer decodes on its own instead (no batch)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: snapvlm bench --model DIR|REPO [--image IMG]... [flags]\n\nTimes load, preprocessing, vision encoder, prefill, first token and decoding (image features are not cached between runs).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *runs < 1 {
		return fmt.Errorf("--runs must be at least 1, got %d", *runs)
	}
	if *streams < 0 {
		return fmt.Errorf("--streams must be 0 or more, got %d", *streams)
	}
	if err := f.validate(); err != nil {
		return err
	}
	images, err := f.readImages()
	if err != nil {
		return err
	}
	dir, err := resolveModel(ctx, f.model, f.yes, f.dtype, f.graphDtypes())
	if err != nil {
		return err
	}
	if *variants {
		var gs []string
		if *graphs != "" {
			gs = strings.Split(*graphs, ",")
			for _, g := range gs {
				if !slices.Contains([]string{snapvlm.GraphVision, snapvlm.GraphEmbed, snapvlm.GraphDecoder}, g) {
					return fmt.Errorf("--graphs: unknown graph %q", g)
				}
			}
		}
		return benchVariants(ctx, &f, dir, images, *question, gs, *runs, *steps, *asJSON, stdout, stderr)
	}
	opts := f.options(len(images) == 0)
	opts.FeatureCacheSize = -1 // every run encodes its images
	if *streams > 1 && !*streamsAlone {
		opts.Parallel = *streams
	}
	m, err := snapvlm.Load(ctx, dir, opts)
	if err != nil {
		return withFlagHints(err)
	}
	defer m.Close()
	if err := f.validateFor(m); err != nil {
		return err
	}
	req := snapvlm.Request{
		Messages:        append(f.systemMessages(), snapvlm.UserMessage(*question, images...)),
		GenerateOptions: f.generateOptions(),
	}
	rep := benchReport{Model: dir, Files: m.Files(), FileReasons: m.FileReasons(), ORT: m.ORTVersion(), Runs: *runs, LoadMS: msOf(m.LoadTime())}
	var pre, vis, prefill, ttft, tps, total []float64
	var last *snapvlm.Result
	for i := 0; i < *runs; i++ {
		start := time.Now()
		res, err := m.Generate(ctx, req, nil)
		if err != nil {
			return withFlagHints(err)
		}
		t := res.Timings
		total = append(total, msOf(time.Since(start)))
		pre, vis, prefill = append(pre, msOf(t.Preprocess)), append(vis, msOf(t.Vision)), append(prefill, msOf(t.Prefill))
		ttft, tps = append(ttft, msOf(t.FirstToken)), append(tps, t.DecodeTokensPerSec)
		last = res
		fmt.Fprintf(stderr, "run %d: ttft %.0f ms, decode %.1f tokens/s\n", i+1, msOf(t.FirstToken), t.DecodeTokensPerSec)
	}
	rep.PromptTokens, rep.ImageTokens, rep.Tiles, rep.NewTokens = len(last.PromptTokens), last.ImageTokens, last.Tiles, len(last.Tokens)
	rep.PreprocessMS, rep.VisionMS, rep.PrefillMS = median(pre), median(vis), median(prefill)
	rep.TTFTMS, rep.DecodeTPS, rep.TotalMS = median(ttft), median(tps), median(total)
	if rep.Tiles > 0 {
		rep.VisionTileMS = rep.VisionMS / float64(rep.Tiles)
	}
	if rep.PrefillMS > 0 {
		rep.PrefillTPS = float64(rep.PromptTokens) / rep.PrefillMS * 1e3
	}
	if *streams > 0 {
		rep.Batched = opts.Parallel > 1
		var counts []int
		for n := 1; ; n = min(2*n, *streams) {
			counts = append(counts, n)
			if n == *streams {
				break
			}
		}
		// Each round times every count once, so that the counts compared
		// alternate on a machine whose speed drifts; medians of the rounds.
		total := make([][]float64, len(counts))
		decode := make([][]float64, len(counts))
		for round := range *runs {
			for i, n := range counts {
				r, err := benchStreams(ctx, m, req, n)
				if err != nil {
					return withFlagHints(err)
				}
				total[i], decode[i] = append(total[i], r.TokensPerSec), append(decode[i], r.DecodeTPS)
				fmt.Fprintf(stderr, "round %d, %d streams: %.1f tokens/s in total\n", round+1, n, r.TokensPerSec)
			}
		}
		for i, n := range counts {
			rep.Streams = append(rep.Streams, streamsReport{Streams: n, TokensPerSec: median(total[i]), DecodeTPS: median(decode[i])})
		}
	}
	rep.PeakRSSMB = peakRSSMB()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printBench(stdout, &rep)
	return nil
}

// benchStreams generates n answers to req at once.
func benchStreams(ctx context.Context, m *snapvlm.Model, req snapvlm.Request, n int) (streamsReport, error) {
	res := make([]*snapvlm.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() { res[i], errs[i] = m.Generate(ctx, req, nil) })
	}
	wg.Wait()
	took := time.Since(start)
	r := streamsReport{Streams: n}
	tokens := 0
	for i := range n {
		if errs[i] != nil {
			return r, errs[i]
		}
		tokens += len(res[i].Tokens)
		r.DecodeTPS += res[i].Timings.DecodeTokensPerSec / float64(n)
	}
	r.TokensPerSec = float64(tokens) / took.Seconds()
	return r, nil
}

func printBench(w io.Writer, r *benchReport) {
	fmt.Fprintf(w, "model        %s (ONNX Runtime %s)\n", r.Model, r.ORT)
	for _, g := range []string{snapvlm.GraphVision, snapvlm.GraphEmbed, snapvlm.GraphDecoder} {
		if p, ok := r.Files[g]; ok {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	fmt.Fprintf(w, "prompt       %d tokens (%d image tokens, %d tiles), %d new tokens, median of %d runs\n", r.PromptTokens, r.ImageTokens, r.Tiles, r.NewTokens, r.Runs)
	fmt.Fprintf(w, "load         %8.0f ms\n", r.LoadMS)
	if r.Tiles > 0 {
		fmt.Fprintf(w, "preprocess   %8.0f ms\n", r.PreprocessMS)
		fmt.Fprintf(w, "vision       %8.0f ms  (%.0f ms per tile)\n", r.VisionMS, r.VisionTileMS)
	}
	fmt.Fprintf(w, "prefill      %8.0f ms  (%.0f tokens/s)\n", r.PrefillMS, r.PrefillTPS)
	fmt.Fprintf(w, "first token  %8.0f ms\n", r.TTFTMS)
	fmt.Fprintf(w, "decode       %8.1f tokens/s\n", r.DecodeTPS)
	fmt.Fprintf(w, "total        %8.0f ms per answer\n", r.TotalMS)
	for _, st := range r.Streams {
		how := "each alone"
		if r.Batched {
			how = "in one batch"
		}
		fmt.Fprintf(w, "%2d at once   %8.1f tokens/s in total (%.1f per answer decoding, %s)\n", st.Streams, st.TokensPerSec, st.DecodeTPS, how)
	}
	fmt.Fprintf(w, "peak RSS     %8.0f MB\n", r.PeakRSSMB)
}

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := slices.Clone(x)
	slices.Sort(s)
	return s[len(s)/2]
}

// peakRSSMB is this process's peak resident memory.
func peakRSSMB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return float64(ru.Maxrss) / (1 << 20) // bytes on macOS
	}
	return float64(ru.Maxrss) / 1024 // kilobytes on Linux
}
