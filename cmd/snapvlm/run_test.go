package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/snapvlm/snapvlm/internal/ort"
	"github.com/snapvlm/snapvlm/internal/testmodel"
)

const sampleImage = "../../assets/sample.jpg"

var tiny struct {
	once sync.Once
	dir  string
	err  error
}

// tinyModel generates the tiny512 test model once for this package's tests.
func tinyModel(t *testing.T) string {
	t.Helper()
	if _, err := ort.Open(ort.Options{}); err != nil {
		if os.Getenv("SNAPVLM_REQUIRE_ORT") == "1" {
			t.Fatalf("ONNX Runtime required: %v", err)
		}
		t.Skipf("ONNX Runtime not available: %v", err)
	}
	tiny.once.Do(func() {
		tiny.dir, tiny.err = os.MkdirTemp("", "snapvlm-cmd-")
		if tiny.err == nil {
			tiny.dir = filepath.Join(tiny.dir, "tiny512")
			tiny.err = testmodel.Generate(context.Background(), "tiny512", tiny.dir, testmodel.Options{Variants: []string{"fp32", "q4"}})
		}
	})
	if tiny.err != nil {
		t.Fatal(tiny.err)
	}
	return tiny.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tiny.dir != "" {
		os.RemoveAll(filepath.Dir(tiny.dir))
	}
	os.Exit(code)
}

func TestRunJSONAndStream(t *testing.T) {
	dir := tinyModel(t)
	var out, errOut bytes.Buffer
	args := []string{"--model", dir, "--image", sampleImage, "--max-tokens", "6", "--json", "Can you describe this image?"}
	if err := runRun(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("--json output is not one JSON object: %v\n%s", err, out.String())
	}
	for _, k := range []string{"text", "tokens", "prompt_tokens", "image_tokens", "tiles", "finish_reason", "timings"} {
		if _, ok := got[k]; !ok {
			t.Errorf("--json lacks %q", k)
		}
	}
	// sample.jpg is 640x480: 3x4 tiles + global (spec §2.3), 64 tokens each.
	if got["tiles"] != 13.0 || got["image_tokens"] != 832.0 {
		t.Errorf("tiles %v, image tokens %v; want 13, 832", got["tiles"], got["image_tokens"])
	}
	if n := len(got["tokens"].([]any)); n == 0 || n > 6 {
		t.Errorf("%d tokens", n)
	}
	timings := got["timings"].(map[string]any)
	for _, k := range []string{"load_ms", "preprocess_ms", "vision_ms", "prefill_ms", "ttft_ms", "decode_tokens_per_sec"} {
		if _, ok := timings[k]; !ok {
			t.Errorf("timings lack %q", k)
		}
	}
	if r := got["finish_reason"]; r != "stop" && r != "length" {
		t.Errorf("finish_reason %v", r)
	}

	// Streaming prints the same greedy answer, and --verbose the statistics.
	out.Reset()
	errOut.Reset()
	args = []string{"--model", dir, "--image", sampleImage, "--max-tokens", "6", "--verbose", "Can you describe this image?"}
	if err := runRun(context.Background(), args, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSuffix(out.String(), "\n") != got["text"] {
		t.Errorf("streamed %q, --json text %q", out.String(), got["text"])
	}
	if !strings.Contains(errOut.String(), "832 image tokens, 13 tiles") || !strings.Contains(errOut.String(), "tokens/s") {
		t.Errorf("--verbose printed %q", errOut.String())
	}
}

func TestRunErrors(t *testing.T) {
	dir := tinyModel(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no question", []string{"--model", dir}, "no question"},
		{"no model", []string{"hi"}, "--model is required"},
		{"not a model", []string{"--model", "no/such/dir/here", "hi"}, "neither a directory nor"},
		{"missing image", []string{"--model", dir, "--image", "nope.jpg", "hi"}, "nope.jpg"},
		{"not an image", []string{"--model", dir, "--image", "run_test.go", "hi"}, "run_test.go"},
		{"missing variant", []string{"--model", dir, "--dtype", "fp16", "hi"}, "variants present: fp32, q4"},
		{"bad temperature", []string{"--model", dir, "--temperature", "-1", "hi"}, "temperature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := runRun(context.Background(), c.args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want containing %q", err, c.want)
			}
		})
	}
}

func TestChatLoop(t *testing.T) {
	dir := tinyModel(t)
	var f engineFlags
	f.model, f.maxTokens, f.verbose = dir, 4, true
	m, err := f.load(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	in := strings.NewReader("/image " + sampleImage + "\nWhat is this?\nAnd now?\n/bogus\n/image missing.png\n/reset\nHello\n/quit\nnever read\n")
	var out, errOut bytes.Buffer
	if err := chatLoop(context.Background(), m, &f, in, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	log := errOut.String()
	for _, want := range []string{
		"image ../../assets/sample.jpg attached",
		"832 image tokens, 13 tiles", // first turn encodes the image
		"prompt tokens reused",       // second turn reuses the cache
		"unknown command /bogus",
		"missing.png",
		"conversation cleared",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("stderr lacks %q:\n%s", want, log)
		}
	}
	if strings.Count(log, "[prompt ") != 3 {
		t.Errorf("want 3 answers, stderr:\n%s", log)
	}
}

func TestPromptImageGrid(t *testing.T) {
	dir := tinyModel(t)
	var out bytes.Buffer
	if err := runPrompt(context.Background(), []string{"--model", dir, "--image", sampleImage, "--json", "Can you describe this image?"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	var got promptJSON
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	// 640x480 -> 3x4 grid: (12+1)*64 image tokens (spec §2.3).
	if got.ImageTokens != 832 || !strings.Contains(got.Prompt, "<row_3_col_4>") || strings.Contains(got.Prompt, "<row_4_col_1>") {
		t.Errorf("image tokens %d; prompt grid wrong", got.ImageTokens)
	}
}
