package snapvlm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snapvlm/snapvlm/internal/ort/orttest"
)

// TestCloseWhileGenerating closes the model while a Generate is between two
// decoder steps: Close must wait for it (releasing the sessions under a
// running call crashed in RunOrtSessionWithOptions), and every call after
// Close returns ErrClosed instead of dereferencing released sessions.
func TestCloseWhileGenerating(t *testing.T) {
	m, err := Load(context.Background(), modelDir(t, "tiny512"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	chat := m.NewChat()
	req := Request{Messages: []Message{UserMessage("Tell me a story.")}, GenerateOptions: GenerateOptions{MaxNewTokens: 40}}
	started := make(chan struct{})
	type outcome struct {
		res *Result
		err error
	}
	got := make(chan outcome, 1)
	go func() {
		pieces := 0
		res, err := m.Generate(context.Background(), req, func(Token) error {
			pieces++
			if pieces == 1 {
				close(started)
				// Keep generating only once Close has begun.
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
					m.life.mu.Lock()
					closing := m.life.closed
					m.life.mu.Unlock()
					if closing {
						break
					}
				}
			}
			return nil
		})
		got <- outcome{res, err}
	}()
	<-started
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	o := <-got
	if o.err != nil || len(o.res.Tokens) < 2 {
		t.Fatalf("Generate running across Close: %+v, %v (want it to finish normally)", o.res, o.err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return after the running Generate did")
	}
	if _, err := m.Generate(context.Background(), req, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Generate after Close: %v, want ErrClosed", err)
	}
	if _, err := chat.Send(context.Background(), UserMessage("hi"), GenerateOptions{MaxNewTokens: 2}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Chat.Send after Close: %v, want ErrClosed", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestMaxNewTokensBound loads a model whose config.json has no
// max_position_embeddings (transformers then uses LlamaConfig's 2048) and
// asks for more new tokens than that: an error, not a key/value cache sized
// from the request (100M tokens took a fatal 12.8 GB allocation).
func TestMaxNewTokensBound(t *testing.T) {
	dir := tinyWithTextConfig(t, func(text map[string]any) {
		if _, ok := text["max_position_embeddings"]; !ok {
			t.Fatal("the test model's text_config has no max_position_embeddings to remove")
		}
		delete(text, "max_position_embeddings")
	})
	m, err := Load(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	msgs := []Message{UserMessage("Hi")}
	for _, n := range []int{-5, 2049, 100_000_000} {
		_, err := m.Generate(context.Background(), Request{Messages: msgs, GenerateOptions: GenerateOptions{MaxNewTokens: n}}, nil)
		if err == nil || !strings.Contains(err.Error(), "MaxNewTokens") {
			t.Errorf("MaxNewTokens %d: %v, want an error naming MaxNewTokens", n, err)
		} else if n > 0 && !strings.Contains(err.Error(), "2048") {
			t.Errorf("MaxNewTokens %d: %v, want the 2048-position bound named", n, err)
		}
	}
	// Up to the bound is fine: the answer is cut where the positions end.
	res, err := m.Generate(context.Background(), Request{Messages: msgs, GenerateOptions: GenerateOptions{MaxNewTokens: 2048}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.PromptTokens) + len(res.Tokens); n > 2048 {
		t.Fatalf("prompt %d + answer %d tokens > 2048 positions", len(res.PromptTokens), len(res.Tokens))
	}
}

// tinyWithTextConfig is the tiny512 test model with its config.json's
// text_config changed by edit (the other files are symlinks).
func tinyWithTextConfig(t *testing.T, edit func(text map[string]any)) string {
	t.Helper()
	src := modelDir(t, "tiny512")
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "config.json" {
			continue
		}
		if err := os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	edit(cfg["text_config"].(map[string]any))
	raw, _ = json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestChatOutgrowsContext chats past a 160-token context: the oldest turns
// are left out and every turn is answered (every turn used to fail once the
// history was too long).
func TestChatOutgrowsContext(t *testing.T) {
	dir := tinyWithTextConfig(t, func(text map[string]any) { text["max_position_embeddings"] = 160 })
	m, err := Load(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	chat := m.NewChat()
	chat.SetSystem("Answer briefly.")
	dropped := false
	for i := range 12 {
		q := fmt.Sprintf("Question number %d: what can you tell me about the weather today?", i)
		res, err := chat.Send(context.Background(), UserMessage(q), GenerateOptions{MaxNewTokens: 24}, nil)
		if err != nil {
			t.Fatalf("turn %d: %v", i, err)
		}
		if n := len(res.PromptTokens); n >= 160 {
			t.Fatalf("turn %d: prompt of %d tokens in a 160-token context", i, n)
		}
		h := chat.History()
		if len(h) < 2*(i+1) {
			dropped = true
		}
		if last := h[len(h)-2]; last.Content[0].Text != q {
			t.Fatalf("turn %d: the last question in the history is %q", i, last.Content[0].Text)
		}
	}
	if !dropped {
		t.Fatal("12 turns fit in 160 tokens; the test does not reach the limit")
	}
	// A single question longer than the context is still an error.
	long := strings.Repeat("weather ", 200)
	if _, err := chat.Send(context.Background(), UserMessage(long), GenerateOptions{MaxNewTokens: 4}, nil); !errors.Is(err, ErrPromptTooLong) {
		t.Fatalf("a 200-word question in 160 tokens: %v, want ErrPromptTooLong", err)
	}
}

// TestProgress: OnProgress follows the vision encoder through the tiles of
// an image (assets/sample.jpg, 640x480: 3x4 tiles and the global one, 13),
// in groups of Options.VisionBatch; cached features report nothing.
func TestProgress(t *testing.T) {
	m := loadModel(t, "tiny512", Options{VisionBatch: 4})
	img, err := ImageFile("assets/sample.jpg")
	if err != nil {
		t.Fatal(err)
	}
	var got []Progress
	req := Request{Messages: []Message{UserMessage("What is this?", img)}, GenerateOptions: GenerateOptions{MaxNewTokens: 1, OnProgress: func(p Progress) { got = append(got, p) }}}
	if _, err := m.Generate(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	want := []Progress{{1, 1, 0, 13}, {1, 1, 4, 13}, {1, 1, 8, 13}, {1, 1, 12, 13}, {1, 1, 13, 13}}
	if !slices.Equal(got, want) {
		t.Fatalf("progress %v, want %v", got, want)
	}
	got = nil
	if _, err := m.Generate(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("progress for cached features: %v", got)
	}
}

// TestLoadUnwritableCache: with a cache dir that cannot be written (a
// read-only home), the rewrites that would be cached there are made in
// memory or skipped, with warnings, and the answers stay those of a
// normal load.
func TestLoadUnwritableCache(t *testing.T) {
	dir := modelDir(t, "tiny512")
	lib := orttest.Env(t).LibraryPath()
	req := Request{Messages: []Message{UserMessage("What is in the picture?")}, GenerateOptions: GenerateOptions{MaxNewTokens: 12}}
	for _, opts := range []Options{{Dtype: "q4", TextOnly: true}, {Dtype: "q4", DecoderInt8: true, TextOnly: true}} {
		want := greedy(t, loadModel(t, "tiny512", opts), req)
		home := t.TempDir()
		t.Setenv("XDG_CACHE_HOME", home)
		if err := os.WriteFile(filepath.Join(home, "snapvlm"), []byte("not a directory"), 0o644); err != nil {
			t.Fatal(err)
		}
		o := opts
		o.ORTLib = lib
		m, err := Load(context.Background(), dir, o)
		if err != nil {
			t.Fatalf("%+v: load with an unwritable cache dir: %v", opts, err)
		}
		got := greedy(t, m, req)
		m.Close()
		if !slices.Equal(got.Tokens, want.Tokens) {
			t.Errorf("%+v: answer %v, want %v as with a writable cache", opts, got.Tokens, want.Tokens)
		}
	}
}
