// Package orttest gives tests the ONNX Runtime environment: it skips a test
// when the library is missing, or fails it when the run requires ONNX
// Runtime (SNAPVLM_REQUIRE_ORT=1, as `make test` sets), so CI cannot pass by
// skipping.
package orttest

import (
	"os"
	"testing"

	"github.com/snapvlm/snapvlm/internal/ort"
)

// Env opens ONNX Runtime for t.
func Env(t testing.TB) *ort.Env {
	t.Helper()
	env, err := ort.Open(ort.Options{})
	if err != nil {
		if os.Getenv("SNAPVLM_REQUIRE_ORT") == "1" {
			t.Fatalf("ONNX Runtime required (SNAPVLM_REQUIRE_ORT=1): %v", err)
		}
		t.Skipf("ONNX Runtime not available (run 'snapvlm setup'): %v", err)
	}
	return env
}
