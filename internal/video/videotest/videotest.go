// Package videotest gives tests ffmpeg: it skips a test when ffmpeg or
// ffprobe is not on PATH, or fails it when the run requires them
// (SNAPVLM_REQUIRE_FFMPEG=1 or CI=true, as `make test` sets), so CI cannot
// pass by skipping.
package videotest

import (
	"os"
	"testing"

	"github.com/snapvlm/snapvlm/internal/video"
)

// Require skips or fails t when ffmpeg is missing.
func Require(t testing.TB) {
	t.Helper()
	if err := video.Available(); err != nil {
		if os.Getenv("SNAPVLM_REQUIRE_FFMPEG") == "1" || os.Getenv("CI") == "true" {
			t.Fatalf("ffmpeg required (SNAPVLM_REQUIRE_FFMPEG=1 or CI=true): %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
}
