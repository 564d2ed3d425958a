// Package jsreftest gates tests on the transformers.js reference of package
// jsref.
package jsreftest

import (
	"os"
	"testing"

	"github.com/snapvlm/snapvlm/internal/jsref"
)

// Require skips t when the reference cannot run (no node, or transformers.js
// not installed), with the reason. When CI=true and SNAPVLM_REQUIRE_JSREF=1
// it fails t instead, so that CI cannot silently lose the differential tests.
func Require(t testing.TB) {
	t.Helper()
	err := jsref.Available()
	if err == nil {
		return
	}
	if Required() {
		t.Fatalf("transformers.js reference required (CI=true, SNAPVLM_REQUIRE_JSREF=1): %v", err)
	}
	t.Skipf("transformers.js reference unavailable: %v", err)
}

// Required reports whether the environment demands the reference:
// CI=true and SNAPVLM_REQUIRE_JSREF=1.
func Required() bool {
	return os.Getenv("CI") == "true" && os.Getenv("SNAPVLM_REQUIRE_JSREF") == "1"
}
