package testmodel

import "testing"

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
