package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm"
)

// TestBenchVariants runs bench --variants on the tiny model (fp32 and q4):
// fp32 is the reference; q4 holds the same function (the test model's
// weights are exact in 4 bits), so it must agree to float rounding; the
// int8 rewrites must be close but not exact; one variant per graph is the
// fastest passing.
func TestBenchVariants(t *testing.T) {
	dir := tinyModel(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	var out, errOut bytes.Buffer
	args := []string{"--variants", "--model", dir, "--image", sampleImage, "--no-split", "--steps", "16", "--runs", "1", "--json"}
	if err := runBench(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var r snapvlm.VariantReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Steps != 16 || r.Tiles != 1 || r.PromptTokens == 0 {
		t.Errorf("report %+v", r)
	}
	rows := map[string]snapvlm.VariantRow{}
	fastest := map[string]int{}
	for _, x := range r.Rows {
		if x.Error != "" {
			t.Errorf("%s %s: %s", x.Graph, x.Variant, x.Error)
		}
		rows[x.Graph+"/"+x.Variant] = x
		if x.Fastest {
			fastest[x.Graph]++
		}
	}
	check := func(key string, ok func(x snapvlm.VariantRow) bool) {
		t.Helper()
		x, found := rows[key]
		if !found {
			t.Errorf("no row %s (have %v)", key, r.Rows)
			return
		}
		if !ok(x) {
			t.Errorf("%s: %+v", key, x)
		}
		if x.MS <= 0 {
			t.Errorf("%s: not timed", key)
		}
	}
	check("vision_encoder/fp32", func(x snapvlm.VariantRow) bool { return x.Cosine > 0.999999 && x.MaxAbs == 0 && x.Pass })
	check("vision_encoder/q4", func(x snapvlm.VariantRow) bool { return x.Cosine > 0.99999 && x.MaxAbs < 1e-3 && x.Pass })
	check("vision_encoder/int8 rewrite of fp32", func(x snapvlm.VariantRow) bool { return x.Cosine > 0.995 && x.Cosine < 1 && x.MaxAbs > 0 })
	check("embed_tokens/fp32", func(x snapvlm.VariantRow) bool { return x.MaxAbs == 0 && x.Pass })
	check("embed_tokens/q4", func(x snapvlm.VariantRow) bool { return x.MaxAbs == 0 && x.Pass })
	check("decoder_model_merged/fp32", func(x snapvlm.VariantRow) bool { return x.Top1 == 1 && x.MaxLogit == 0 && x.TokensSec > 0 })
	check("decoder_model_merged/q4", func(x snapvlm.VariantRow) bool { return x.Top1 == 1 && x.MaxLogit < 1e-2 && x.Pass })
	check("decoder_model_merged/q4 + int8 activations (--decoder-int8)", func(x snapvlm.VariantRow) bool { return x.MaxLogit > 0 })
	check("decoder_model_merged/q4 + int8 activations + float16 cache (--kv-cache f16)", func(x snapvlm.VariantRow) bool { return x.MaxLogit > 0 && x.TokensSec > 0 })
	for _, g := range []string{"vision_encoder", "embed_tokens", "decoder_model_merged"} {
		if fastest[g] != 1 {
			t.Errorf("%s: %d fastest passing variants", g, fastest[g])
		}
	}
	if err := runBench(context.Background(), []string{"--variants", "--model", dir}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "needs --image") {
		t.Errorf("without an image: %v", err)
	}
}
