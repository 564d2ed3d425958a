package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTokenize runs the command over the tiny test tokenizer; the expected
// ids are the Hugging Face tokenizers output stored in the golden file.
func TestTokenize(t *testing.T) {
	dir := t.TempDir()
	tj, err := os.ReadFile("../../internal/tokenizer/testdata/tiny_tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), tj, 0o644); err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Cases []struct {
			Text string  `json:"text"`
			IDs  []int64 `json:"ids"`
		} `json:"cases"`
	}
	gb, err := os.ReadFile("../../internal/tokenizer/testdata/golden_tiny.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(gb, &golden); err != nil {
		t.Fatal(err)
	}
	var text string
	var want []int64
	for _, c := range golden.Cases {
		if c.Text == "<image>Can" {
			text, want = c.Text, c.IDs
		}
	}
	if want == nil {
		t.Fatal(`golden_tiny.json has no case "<image>Can"`)
	}

	var out bytes.Buffer
	if err := runTokenize([]string{"--model", dir, "--json", text}, &out); err != nil {
		t.Fatal(err)
	}
	var got struct {
		IDs    []int64  `json:"ids"`
		Tokens []string `json:"tokens"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("--json output %q: %v", out.String(), err)
	}
	if len(got.IDs) != len(want) || len(got.Tokens) != len(want) || got.Tokens[0] != "<image>" {
		t.Fatalf("--json: got %+v, want ids %v", got, want)
	}
	for i := range want {
		if got.IDs[i] != want[i] {
			t.Fatalf("--json ids = %v, want %v", got.IDs, want)
		}
	}

	out.Reset()
	if err := runTokenize([]string{"--model", dir, text}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 || len(strings.Fields(lines[0])) != len(want) || !strings.HasPrefix(lines[1], `"<image>"`) {
		t.Errorf("plain output = %q, want a line of %d ids and a line of tokens", out.String(), len(want))
	}

	for _, args := range [][]string{{text}, {"--model", dir}, {"--model", t.TempDir(), "x"}} {
		if err := runTokenize(args, &out); err == nil {
			t.Errorf("tokenize %q succeeded, want an error", args)
		}
	}
}
