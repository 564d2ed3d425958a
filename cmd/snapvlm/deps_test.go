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

// TestImportsOnlyWhatTheLibraryCannotOwn: the CLI runs the pipeline
// through the root package's API (Load, Processor, LoadTokenizer,
// BenchVariants); of the internal packages it imports only the hub client,
// ONNX Runtime's location and version, and its installer.
func TestImportsOnlyWhatTheLibraryCannotOwn(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{"internal/hub": true, "internal/ort": true, "internal/ortsetup": true}
	for _, imp := range strings.Fields(string(out)) {
		if _, rel, ok := strings.Cut(imp, "github.com/snapvlm/snapvlm/"); ok && strings.HasPrefix(rel, "internal/") && !allowed[rel] {
			t.Errorf("cmd/snapvlm imports %s", imp)
		}
	}
}
