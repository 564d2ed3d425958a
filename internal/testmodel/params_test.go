package testmodel

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/snapvlm/snapvlm/internal/testtok"
)

func TestRealParamCounts(t *testing.T) {
	// S9 (spec §1.1): SmolVLM-256M's model.safetensors has 256,484,928
	// parameters; the 500M model is about 507M.
	tests := []struct {
		preset   string
		min, max int64
	}{
		{"real256m", 256484928, 256484928},
		{"real500m", 480e6, 520e6},
	}
	for _, tc := range tests {
		counts, err := paramCounts(tc.preset, 49280)
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		for _, c := range counts {
			total += c
		}
		t.Logf("%s: %d parameters %v", tc.preset, total, counts)
		if total < tc.min || total > tc.max {
			t.Errorf("%s: %d parameters, want in [%d, %d]", tc.preset, total, tc.min, tc.max)
		}
	}
}

// TestRealPresetRuns writes real256m (q4 only, ~270 MB) and runs the vision
// encoder on one frame and a 3-step greedy decode. Opt-in, slow:
// SNAPVLM_TESTMODEL_REAL=1 go test -run RealPresetRuns ./internal/testmodel/
func TestRealPresetRuns(t *testing.T) {
	if testing.Short() || os.Getenv("SNAPVLM_TESTMODEL_REAL") != "1" {
		t.Skip("set SNAPVLM_TESTMODEL_REAL=1 to write and run real256m")
	}
	dir := t.TempDir()
	start := time.Now()
	// The real tokenizer gives the real vocabulary, hence the real size.
	opt := Options{Seed: 1, Variants: []string{Q4}, TokenizerPath: testtok.Path(t)}
	if err := Generate(context.Background(), "real256m", dir, opt); err != nil {
		t.Fatal(err)
	}
	t.Logf("generated q4 in %s", time.Since(start))
	tok, err := loadTokenizer(opt)
	if err != nil {
		t.Fatal(err)
	}
	m := &testModel{dir: dir, p: presets["real256m"], tok: tok}
	M := m.p.tile
	feat, k := m.runVision(t, m.session(t, "vision_encoder", Q4), testImage(M, M, 1).frames(M)[:3*M*M])
	if k != 1 {
		t.Fatalf("%d frames", k)
	}
	ids := []int64{tok.ids[tokIMStart], tok.plainID(0), tok.plainID(1), tok.ids[tokFake], tok.ids[tokGlobal]}
	for i := 0; i < m.p.imageSeqLen(); i++ {
		ids = append(ids, tok.ids[tokImage])
	}
	ids = append(ids, tok.ids[tokFake], tok.plainID(2), tok.plainID(3))
	start = time.Now()
	r := m.greedy(t, Q4, ids, feat, 0, 3)
	t.Logf("tokens %v gaps %v (%s)", r.tokens, r.gaps, time.Since(start))
}
