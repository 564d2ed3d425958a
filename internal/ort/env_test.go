package ort

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// envLongArgChild marks the re-executed test binary of TestOpenLongCommandLine.
const envLongArgChild = "SNAPVLM_TEST_ORT_LONG_ARGV"

// TestOpenLongCommandLine opens ONNX Runtime in a child process whose command
// line carries a 64 KB argument (a long question). ONNX Runtime 1.30's
// telemetry runs a recursive std::regex over /proc/self/cmdline when the
// environment is created and overflowed the C stack (SIGSEGV in CreateOrtEnv)
// for command lines of about 40 KB and more.
func TestOpenLongCommandLine(t *testing.T) {
	if os.Getenv(envLongArgChild) == "1" {
		env, err := Open(Options{})
		if err != nil {
			t.Skipf("ONNX Runtime not available: %v", err)
		}
		t.Logf("opened %s", env.Version())
		return
	}
	testEnv(t) // skip (or fail under SNAPVLM_REQUIRE_ORT) without a library
	long := strings.Repeat("a", 64<<10)
	cmd := exec.Command(os.Args[0], "-test.run=^TestOpenLongCommandLine$", "-test.v", long)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, EnvTelemetry+"=") { // what a user's shell has
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, envLongArgChild+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "opened ") {
		lines := strings.SplitN(string(out), "\n", 6)
		t.Fatalf("opening ONNX Runtime with a 64 KB command line: %v\n%s", err, strings.Join(lines[:min(len(lines), 5)], "\n"))
	}
}
