package snapvlm

import (
	"context"
	"strings"
	"testing"
)

// TestBenchVariantsEmbed measures only the embedder variants of the tiny
// model: the test model's embedding table is exact in every variant made
// from it in 4 bits or float16 (q4 keeps a float table), so every row must
// equal fp32; the fp32 vision encoder still runs (its features feed the
// decoders) and no decoder is measured.
func TestBenchVariantsEmbed(t *testing.T) {
	dir := modelDir(t, "tiny512")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	req := Request{Messages: []Message{UserMessage("What is this?", pngImage(t, 300, 200, 1, false))}, GenerateOptions: GenerateOptions{NoSplit: true}}
	var progress []string
	rep, err := BenchVariants(context.Background(), dir, req, VariantBenchOptions{Graphs: []string{GraphEmbed}, Runs: 1, Steps: 4,
		Progress: func(g, v string) { progress = append(progress, g+"/"+v) }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Tiles != 1 || rep.PromptTokens == 0 || rep.Steps != 4 {
		t.Errorf("report %+v", rep)
	}
	graphs := map[string]int{}
	for _, r := range rep.Rows {
		graphs[r.Graph]++
		if r.Error != "" {
			t.Errorf("%s %s: %s", r.Graph, r.Variant, r.Error)
		}
		if r.Graph == GraphEmbed && r.Variant != "fp16" && r.Variant != "q4f16" && (r.MaxAbs != 0 || !r.Pass) {
			t.Errorf("embed %s: max |Δ| %g, pass %v", r.Variant, r.MaxAbs, r.Pass)
		}
	}
	if graphs[GraphVision] != 1 || graphs[GraphEmbed] < 2 || graphs[GraphDecoder] != 0 {
		t.Errorf("rows per graph %v, want fp32 vision only, every embed variant, no decoder", graphs)
	}
	if len(progress) != len(rep.Rows) || !strings.HasPrefix(progress[0], GraphVision+"/fp32") {
		t.Errorf("progress %v for %d rows", progress, len(rep.Rows))
	}
}
