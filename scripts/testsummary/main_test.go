package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// TestSummarize runs the go tool on a sample package (testdata/sample:
// one passing, two skipped, one failing test) and checks what is kept.
func TestSummarize(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test")
	}
	cmd := exec.Command("go", "test", "-json", ".")
	cmd.Dir = "testdata/sample"
	stream, err := cmd.Output()
	if err == nil {
		t.Fatal("go test of the sample passed; it has a failing test")
	}
	var out bytes.Buffer
	failed, err := summarize(bytes.NewReader(stream), &out)
	if err != nil {
		t.Fatal(err)
	}
	if !failed {
		t.Error("failure not reported")
	}
	got := out.String()
	for _, want := range []string{
		"SKIP sample TestSkip: sample_test.go:7: needs the thing\n",
		"SKIP sample TestSub/skipped: sample_test.go:12: sub reason 7\n",
		"sample_test.go:9: broken on purpose",
		"--- FAIL: TestFail",
		"FAIL\tsample\t",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "chatter") {
		t.Errorf("passing test's output shown:\n%s", got)
	}
}
