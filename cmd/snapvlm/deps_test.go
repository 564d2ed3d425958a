package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoDevToolsInBinary: the snapvlm binary holds the engine, the CLI,
// the server and the hub client; the test-model generator, its graph
// builder and BPE trainer, and the transformers.js bridge are development
// tools (cmd/snapvlm-testmodel, cmd/snapvlm-jsref).
func TestNoDevToolsInBinary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dev := range []string{"internal/testmodel", "internal/bpetrain", "internal/jsref", "internal/onnx/onnxbuild", "internal/testtok"} {
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasSuffix(dep, "/"+dev) {
				t.Errorf("snapvlm depends on %s", dep)
			}
		}
	}
}
