package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/prompt"
	"github.com/snapvlm/snapvlm/internal/testtok"
)

// promptModelDir makes a model directory with the real tokenizer and the
// SmolVLM-256M prompt settings (image_seq_len 64, chat template of §3.1).
func promptModelDir(t *testing.T, withTemplate bool) string {
	t.Helper()
	tok, err := os.ReadFile(testtok.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tmpl, _ := json.Marshal(map[string]string{"chat_template": prompt.SmolVLMTemplate})
	files := map[string]string{
		"config.json":           `{"model_type": "idefics3", "image_token_id": 49190}`,
		"processor_config.json": `{"image_seq_len": 64}`,
		"tokenizer_config.json": `{"bos_token": "<|im_start|>", "eos_token": "<end_of_utterance>"}`,
		"tokenizer.json":        string(tok),
	}
	if withTemplate {
		files["chat_template.json"] = string(tmpl)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPromptCommandJSON(t *testing.T) {
	dir := promptModelDir(t, true)
	// Token and <image> counts of spec §3.3 (one 4×4 image: 1141 tokens,
	// 1088 <image>; single form 81 tokens; two images add up).
	cases := []struct {
		name       string
		args       []string
		wantTokens int
		wantImages int
		prefix     string
	}{
		{"4x4", []string{"--grid", "4x4"}, 1141, 1088, "<|im_start|>User:<fake_token_around_image><row_1_col_1><image>"},
		{"no split", []string{"--no-split"}, 81, 64, "<|im_start|>User:<fake_token_around_image><global-img><image>"},
		{"text only", nil, 14, 0, "<|im_start|>User: Can you"},
		{"two images", []string{"--grid", "1x1", "--grid", "0x0"}, 148 + 81 - 14, 128 + 64, "<|im_start|>User:<fake_token_around_image><row_1_col_1>"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := append([]string{"--model", dir, "--json"}, tc.args...)
			args = append(args, "Can you describe this image?")
			if err := runPrompt(context.Background(), args, &out, &errOut); err != nil {
				t.Fatalf("runPrompt: %v (stderr %q)", err, errOut.String())
			}
			var got struct {
				Prompt      string  `json:"prompt"`
				IDs         []int64 `json:"ids"`
				ImageTokens int     `json:"image_tokens"`
			}
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%.200s", err, out.String())
			}
			if len(got.IDs) != tc.wantTokens || got.ImageTokens != tc.wantImages {
				t.Errorf("%d ids, image_tokens %d; want %d, %d", len(got.IDs), got.ImageTokens, tc.wantTokens, tc.wantImages)
			}
			if !strings.HasPrefix(got.Prompt, tc.prefix) || !strings.HasSuffix(got.Prompt, "<end_of_utterance>\nAssistant:") {
				t.Errorf("prompt = %.120q..., want prefix %q", got.Prompt, tc.prefix)
			}
			if !strings.Contains(out.String(), `"<|im_start|>`) {
				t.Errorf("JSON escapes the special tokens: %.80s", out.String())
			}
		})
	}
}

func TestPromptCommandText(t *testing.T) {
	dir := promptModelDir(t, true)
	var out bytes.Buffer
	if err := runPrompt(context.Background(), []string{"--model", dir, "Can", "you", "describe", "this", "image?"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>User: Can you describe this image?<end_of_utterance>\nAssistant:\n--\n14 tokens, 0 of them <image>\n"
	if out.String() != want {
		t.Errorf("output = %q, want %q", out.String(), want)
	}
}

func TestPromptCommandErrors(t *testing.T) {
	dir := promptModelDir(t, false)
	img := filepath.Join(t.TempDir(), "a.png")
	if err := os.WriteFile(img, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no model", []string{"q"}, "--model DIR is required"},
		{"no question", []string{"--model", dir}, "missing QUESTION"},
		{"bad grid", []string{"--model", dir, "--grid", "4by4", "q"}, `grid "4by4"`},
		{"split and no-split", []string{"--model", dir, "--grid", "2x2", "--no-split", "q"}, "exclude each other"},
		{"image without grid, model without preprocessor config", []string{"--model", dir, "--image", img, "q"}, "size.longest_edge"},
		{"grid count", []string{"--model", dir, "--image", img, "--grid", "1x1", "--grid", "1x1", "q"}, "1 --image flags but 2 --grid flags"},
		{"missing image", []string{"--model", dir, "--image", img + ".no", "--no-split", "q"}, "a.png.no"},
		{"no template", []string{"--model", dir, "q"}, "--default-template"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := runPrompt(context.Background(), tc.args, &out, &out)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	// The built-in template is used on request.
	var out bytes.Buffer
	if err := runPrompt(context.Background(), []string{"--model", dir, "--default-template", "--image", img, "--no-split", "q"}, &out, &out); err != nil {
		t.Fatalf("--default-template: %v", err)
	}
}
