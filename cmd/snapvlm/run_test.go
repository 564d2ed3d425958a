package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/snapvlm/snapvlm/internal/ort"
	"github.com/snapvlm/snapvlm/internal/ort/orttest"
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
	orttest.Env(t)
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
	// Loads write rewritten decoders to the user cache dir: keep the test
	// models' ones out of the user's, once ONNX Runtime (found through
	// that dir) is located.
	cache, err := os.MkdirTemp("", "snapvlm-cache-")
	if err == nil {
		if lib, err := ort.FindLibrary(""); err == nil && os.Getenv("SNAPVLM_ORT_LIB") == "" {
			os.Setenv("SNAPVLM_ORT_LIB", lib)
		}
		os.Setenv("XDG_CACHE_HOME", cache)
	}
	code := m.Run()
	if tiny.dir != "" {
		os.RemoveAll(filepath.Dir(tiny.dir))
	}
	if cache != "" {
		os.RemoveAll(cache)
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

// realPhoto is a photograph shipped in the testdata of a module this one
// depends on (golang.org/x/image), so tests can use a real camera JPEG
// without committing one.
func realPhoto(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "golang.org/x/image").Output()
	if err != nil {
		t.Skipf("cannot locate golang.org/x/image: %v", err)
	}
	p := filepath.Join(strings.TrimSpace(string(out)), "testdata", "go-turns-two-280x360.jpeg")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no photo in the module cache: %v", err)
	}
	return p
}

func TestRunRealPhoto(t *testing.T) {
	dir := tinyModel(t)
	photo := realPhoto(t)
	var out, errOut bytes.Buffer
	err := runRun(context.Background(), []string{"--model", dir, "--image", photo, "--max-tokens", "8", "--verbose", "What is in this photo?"}, &out, &errOut)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	// Portrait 280x360: resize #1 to 1592x2048, resize #2 to 2048x2048, so a
	// 4x4 grid plus the global view (spec §2.1).
	if !strings.Contains(errOut.String(), "1088 image tokens, 17 tiles") || out.Len() == 0 {
		t.Errorf("stdout %q\nstderr %s", out.String(), errOut.String())
	}
}

// TestChatInterrupt sends the process a real SIGINT while an answer is
// streaming: the answer stops, the chat goes on and the model still works.
func TestChatInterrupt(t *testing.T) {
	dir := tinyModel(t)
	var f engineFlags
	f.model, f.maxTokens = dir, 5000
	m, err := f.load(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	pr, pw := io.Pipe()
	out := &signalWriter{trigger: 20, fired: make(chan struct{})}
	var errOut bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- chatLoop(context.Background(), m, &f, pr, out, &errOut) }()
	io.WriteString(pw, "Tell me everything.\n")
	<-out.fired // an answer is streaming and SIGINT was sent
	f.maxTokens = 3
	io.WriteString(pw, "Short one.\n/quit\n")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if !strings.Contains(errOut.String(), "[stopped]") {
		t.Errorf("no [stopped] after SIGINT; stderr:\n%s", errOut.String())
	}
	if n := out.pieces(); n >= 4000 {
		t.Errorf("the interrupted answer ran to %d pieces", n)
	}
}

// signalWriter collects chat output and sends SIGINT to this process once
// trigger pieces have been written.
type signalWriter struct {
	mu      sync.Mutex
	n       int
	trigger int
	fired   chan struct{} // closed once the signal has landed
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	if w.n == w.trigger {
		// Wait until the signal is delivered, then hold this piece a moment
		// so the chat's watcher cancels the turn before the next decoder
		// step even on a loaded machine (the tiny model may otherwise reach
		// its end token first, and the interrupt lands at the prompt).
		got := make(chan os.Signal, 1)
		signal.Notify(got, os.Interrupt)
		syscall.Kill(os.Getpid(), syscall.SIGINT)
		select {
		case <-got:
		case <-time.After(10 * time.Second):
		}
		signal.Stop(got)
		time.Sleep(200 * time.Millisecond)
		close(w.fired)
	}
	return len(p), nil
}

func (w *signalWriter) pieces() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func TestBench(t *testing.T) {
	dir := tinyModel(t)
	var out, errOut bytes.Buffer
	args := []string{"--model", dir, "--image", sampleImage, "--no-split", "--max-tokens", "4", "--runs", "3", "--json"}
	if err := runBench(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var r benchReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	// With the feature cache on, two of three runs would skip the vision
	// encoder and the median vision time would be 0.
	if r.Runs != 3 || r.Tiles != 1 || r.ImageTokens != 64 || r.NewTokens == 0 || r.LoadMS <= 0 ||
		r.VisionMS <= 0 || r.PrefillMS <= 0 || r.TTFTMS <= 0 || r.PeakRSSMB <= 0 {
		t.Errorf("report %+v", r)
	}
	if strings.Count(errOut.String(), "run ") != 3 {
		t.Errorf("stderr %q", errOut.String())
	}
}

// TestBenchStreams: --streams 3 times 1, 2 and 3 answers at once, in one
// batch (or alone with --streams-alone), in --runs rounds.
func TestBenchStreams(t *testing.T) {
	dir := tinyModel(t)
	for _, alone := range []bool{false, true} {
		var out, errOut bytes.Buffer
		args := []string{"--model", dir, "--max-tokens", "4", "--runs", "2", "--streams", "3", "--json", "--question", "Hello"}
		if alone {
			args = append(args, "--streams-alone")
		}
		if err := runBench(context.Background(), args, &out, &errOut); err != nil {
			t.Fatalf("%v\n%s", err, errOut.String())
		}
		var r benchReport
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		var ns []int
		for _, s := range r.Streams {
			if s.TokensPerSec <= 0 {
				t.Errorf("alone %v: %+v", alone, s)
			}
			ns = append(ns, s.Streams)
		}
		if !slices.Equal(ns, []int{1, 2, 3}) || r.Batched == alone {
			t.Errorf("alone %v: streams %v, batched %v", alone, ns, r.Batched)
		}
		if !strings.Contains(errOut.String(), "round 2, 3 streams") {
			t.Errorf("alone %v: no second round of 3 streams in\n%s", alone, errOut.String())
		}
	}
}

func TestFlagsAfterQuestion(t *testing.T) {
	dir := tinyModel(t)
	var out, errOut bytes.Buffer
	// Flags after the question, as people type them.
	if err := runRun(context.Background(), []string{"--model", dir, "Describe", "this.", "--image", sampleImage, "--no-split", "--max-tokens", "3", "--json"}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if got["tiles"] != 1.0 || len(got["tokens"].([]any)) > 3 {
		t.Errorf("flags after the question were not applied: tiles %v tokens %v", got["tiles"], got["tokens"])
	}
}

// TestRunSchema runs the README's structured-output example: --schema with
// --json gives an envelope whose text is JSON valid against the schema
// (checked with the jsonschema library), and without --json the output is
// that JSON text.
func TestRunSchema(t *testing.T) {
	dir := tinyModel(t)
	const schemaFile = "../../examples/receipt.schema.json"
	doc, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("receipt.json", inst); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("receipt.json")
	if err != nil {
		t.Fatal(err)
	}
	validate := func(text string) {
		t.Helper()
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
		if err != nil {
			t.Fatalf("answer does not parse: %v\n%s", err, text)
		}
		if err := sch.Validate(v); err != nil {
			t.Fatalf("answer does not validate: %v\n%s", err, text)
		}
	}
	args := []string{"--model", dir, "--image", sampleImage, "--no-split", "--max-tokens", "1500", "--schema", schemaFile}
	var out, errOut bytes.Buffer
	if err := runRun(context.Background(), append(args, "--json", "Read the receipt"), &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var env struct {
		Text         string `json:"text"`
		FinishReason string `json:"finish_reason"`
		Incomplete   bool   `json:"incomplete"`
	}
	if err := json.Unmarshal(out.Bytes(), &env); err != nil {
		t.Fatal(err)
	}
	if env.FinishReason != "stop" || env.Incomplete {
		t.Fatalf("finish %s, incomplete %v: %q", env.FinishReason, env.Incomplete, env.Text)
	}
	validate(env.Text)

	out.Reset()
	if err := runRun(context.Background(), append(args, "Read the receipt"), &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	if got := strings.TrimSuffix(out.String(), "\n"); got != env.Text {
		t.Errorf("streamed answer %q differs from the --json text %q", got, env.Text)
	}

	// Cut by --max-tokens: the answer is reported incomplete.
	out.Reset()
	errOut.Reset()
	if err := runRun(context.Background(), []string{"--model", dir, "--max-tokens", "3", "--format", "json", "Hi"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut.String(), "incomplete") {
		t.Errorf("a cut JSON answer gave no warning; stderr %q", errOut.String())
	}
	if err := runRun(context.Background(), []string{"--model", dir, "--schema", "nonexistent.json", "Hi"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "--schema") {
		t.Errorf("missing schema file: %v", err)
	}
}
