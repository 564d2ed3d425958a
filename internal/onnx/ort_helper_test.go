package onnx_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	ort "github.com/yalue/onnxruntime_go"
)

var (
	ortOnce sync.Once
	ortErr  error
)

// ortLibPath is where `snapvlm setup` installs ONNX Runtime 1.30;
// SNAPVLM_ORT_LIB overrides it.
func ortLibPath() string {
	if p := os.Getenv("SNAPVLM_ORT_LIB"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "snapvlm", "onnxruntime", "1.30.0", "linux-x64", "libonnxruntime.so.1")
}

// needORT initialises ONNX Runtime once, or skips the test when the
// library is absent (fails instead when SNAPVLM_REQUIRE_ORT=1).
func needORT(t testing.TB) {
	t.Helper()
	lib := ortLibPath()
	if _, err := os.Stat(lib); err != nil {
		if os.Getenv("SNAPVLM_REQUIRE_ORT") == "1" {
			t.Fatalf("ONNX Runtime library required but missing: %v", err)
		}
		t.Skipf("ONNX Runtime library not found at %s (run snapvlm setup or set SNAPVLM_ORT_LIB)", lib)
	}
	ortOnce.Do(func() {
		ort.SetSharedLibraryPath(lib)
		ortErr = ort.InitializeEnvironment()
	})
	if ortErr != nil {
		t.Fatalf("initialising ONNX Runtime from %s: %v", lib, ortErr)
	}
}
