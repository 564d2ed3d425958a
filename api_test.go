package snapvlm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snapvlm/snapvlm/internal/ort"
)

// TestTimingsJSON: durations marshal as milliseconds (the unit the field
// names promise), to the microsecond, and read back.
func TestTimingsJSON(t *testing.T) {
	in := Timings{Load: 1500 * time.Millisecond, Preprocess: 138400 * time.Microsecond, Vision: 2 * time.Second,
		Prefill: 166400 * time.Microsecond, FirstToken: 596700 * time.Microsecond, Decode: 1234567 * time.Nanosecond, DecodeTokensPerSec: 41.5}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"load_ms":1500,"preprocess_ms":138.4,"vision_ms":2000,"prefill_ms":166.4,"ttft_ms":596.7,"decode_ms":1.234,"decode_tokens_per_sec":41.5}`
	if string(b) != want {
		t.Fatalf("json.Marshal(Timings) = %s\nwant %s", b, want)
	}
	var back Timings
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	in.Decode = 1234 * time.Microsecond
	if back != in {
		t.Fatalf("round trip %+v, want %+v", back, in)
	}
	// Inside a Result too.
	b, err = json.Marshal(Result{FinishReason: FinishLength, Timings: Timings{Load: time.Second}})
	if err != nil || !strings.Contains(string(b), `"load_ms":1000,`) || !strings.Contains(string(b), `"finish_reason":"length"`) {
		t.Fatalf("Result JSON %s, %v", b, err)
	}
}

// TestImageInputs: an image.Image and an io.Reader give what the encoded
// bytes give.
func TestImageInputs(t *testing.T) {
	m := loadModel(t, "tiny512", Options{})
	file := pngImage(t, 300, 200, 0, false)
	decoded, err := png.Decode(bytes.NewReader(file.Data))
	if err != nil {
		t.Fatal(err)
	}
	read, err := ImageReader("reader.png", bytes.NewReader(file.Data))
	if err != nil {
		t.Fatal(err)
	}
	opts := GenerateOptions{MaxNewTokens: 6}
	want := greedy(t, m, Request{Messages: []Message{UserMessage("Describe.", file)}, GenerateOptions: opts})
	for _, img := range []*Image{ImageFromImage("decoded", decoded), read} {
		got := greedy(t, m, Request{Messages: []Message{UserMessage("Describe.", img)}, GenerateOptions: opts})
		if !slices.Equal(got.Tokens, want.Tokens) || got.Tiles != want.Tiles {
			t.Errorf("%s: tokens %v tiles %d, want %v %d", img.Name, got.Tokens, got.Tiles, want.Tokens, want.Tiles)
		}
	}
	if _, err := ImageReader("big", bytes.NewReader(make([]byte, DefaultMaxImageBytes+1))); !errors.Is(err, ErrImage) || !errors.Is(err, ErrImageTooLarge) {
		t.Errorf("oversized reader: %v", err)
	}
	_, err = m.Generate(context.Background(), Request{Messages: []Message{UserMessage("x", &Image{Name: "junk.png", Data: []byte("not an image")})}}, nil)
	if !errors.Is(err, ErrImage) || !strings.Contains(err.Error(), "junk.png") {
		t.Errorf("undecodable image: %v", err)
	}
	_, err = m.Generate(context.Background(), Request{Messages: []Message{UserMessage("x", file)}, GenerateOptions: GenerateOptions{ImageSize: m.MaxImageSize() + 1}}, nil)
	if err == nil || !strings.Contains(err.Error(), "maximum") {
		t.Errorf("image size above the maximum: %v", err)
	}
}

func TestLoadAPI(t *testing.T) {
	dir := modelDir(t, "tiny512")
	var stages []LoadProgress
	m, err := Load(context.Background(), dir, Options{Progress: func(p LoadProgress) { stages = append(stages, p) }})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	last := stages[len(stages)-1]
	if len(stages) != 7 || last.Done != last.Total || stages[0].Stage != "config" || stages[5].Stage != GraphDecoder {
		t.Errorf("progress %+v", stages)
	}
	files := m.Files()
	files[GraphDecoder] = "changed"
	if m.Files()[GraphDecoder] == "changed" {
		t.Error("Files returned the model's own map")
	}
	half := loadModel(t, "tiny512", Options{Dtype: "fp16", EmbedDtype: "fp32"})
	if d := half.Dtypes(); len(d) != 3 || d[GraphVision] != "fp16" || d[GraphEmbed] != "fp32" || d[GraphDecoder] != "fp16" {
		t.Errorf("Dtypes of an fp16 load with an fp32 embedder: %v", d)
	}
	ids := m.Tokenize("Hello world")
	if got := m.Detokenize(ids, true); got != "Hello world" {
		t.Errorf("Detokenize(Tokenize) = %q", got)
	}
	partial := copyDir(t, dir)
	int8s, _ := filepath.Glob(filepath.Join(partial, "onnx", "*_int8.onnx"))
	for _, f := range int8s {
		os.Remove(f)
	}
	_, err = Load(context.Background(), partial, Options{Dtype: "int8"})
	var me *ModelError
	if !errors.Is(err, ErrVariantMissing) || !errors.As(err, &me) || me.Dir != partial || !strings.Contains(me.File, "int8") {
		t.Errorf("missing variant: %v (%#v)", err, me)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Load(ctx, dir, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled load: %v", err)
	}
}

// TestPromptBudgetBeforeVision: a request whose images do not fit the
// context fails with the counts before any image is encoded (50 distinct
// images used to run the vision encoder on every tile first).
func TestPromptBudgetBeforeVision(t *testing.T) {
	m := loadModel(t, "tiny512", Options{FeatureCacheSize: 100})
	var imgs []*Image
	for i := range 50 {
		imgs = append(imgs, pngImage(t, 64+i, 64+i, i%2, false)) // square: 4x4 tiles + global
	}
	start := time.Now()
	_, err := m.Generate(context.Background(), Request{Messages: []Message{UserMessage("Compare them.", imgs...)}}, nil)
	var long *PromptTooLongError
	if !errors.As(err, &long) || !errors.Is(err, ErrPromptTooLong) {
		t.Fatalf("50 images: %v, want a *PromptTooLongError", err)
	}
	// 50 images × (4×4 tiles + global) × 64 tokens, plus the text.
	if long.ImageTokens != 50*17*m.ImageSeqLen() || long.Tokens <= long.ImageTokens || long.Limit != m.ContextLength() {
		t.Errorf("counts %+v (limit %d)", long, m.ContextLength())
	}
	if strings.Contains(err.Error(), "--") {
		t.Errorf("library error names a flag: %v", err)
	}
	if n := len(m.features.items); n != 0 {
		t.Errorf("%d images were encoded before the length check", n)
	}
	t.Logf("refused in %s: %v", time.Since(start), err)
}

// TestRuntimeMissingError: a library ONNX Runtime's loader does not find is
// ErrRuntimeMissing and reads as the loader's own message, once.
func TestRuntimeMissingError(t *testing.T) {
	err := error(&runtimeError{&ort.NotFoundError{Looked: []string{"/x/lib.so (from $SNAPVLM_ORT_LIB): missing"}}})
	var nf *ort.NotFoundError
	if !errors.Is(err, ErrRuntimeMissing) || !errors.As(err, &nf) {
		t.Errorf("%v: not ErrRuntimeMissing and the *ort.NotFoundError", err)
	}
	if msg := err.Error(); strings.Count(msg, "not found") != 1 || !strings.Contains(msg, "/x/lib.so") || strings.Contains(msg, "--") {
		t.Errorf("message %q: want the places looked, once, without flags", msg)
	}
}
