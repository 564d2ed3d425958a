package server

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapvlm/snapvlm"
	"github.com/snapvlm/snapvlm/internal/ort/orttest"
	"github.com/snapvlm/snapvlm/internal/testmodel"
)

// shared is the test model, generated and loaded once per test binary.
var shared struct {
	sync.Mutex
	root string
	m    *snapvlm.Model
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.m != nil {
		shared.m.Close()
	}
	if shared.root != "" {
		os.RemoveAll(shared.root)
	}
	os.Exit(code)
}

// testModel is a tiny random-weight model in the real format (its answers
// are meaningless but deterministic).
func testModel(t testing.TB) *snapvlm.Model {
	t.Helper()
	orttest.Env(t)
	shared.Lock()
	defer shared.Unlock()
	if shared.m != nil {
		return shared.m
	}
	root, err := os.MkdirTemp("", "snapvlm-server-test-")
	if err != nil {
		t.Fatal(err)
	}
	shared.root = root
	dir := filepath.Join(root, "tiny512")
	if err := testmodel.Generate(context.Background(), "tiny512", dir, testmodel.Options{Seed: 1, Variants: []string{testmodel.Q4}, GenerateTokenizer: true}); err != nil {
		t.Fatalf("generating the test model: %v", err)
	}
	// As `snapvlm serve --parallel 4` loads it: concurrent requests decode
	// in one batch (and every test's answers go through the batch).
	if shared.m, err = snapvlm.Load(context.Background(), dir, snapvlm.Options{Parallel: 4}); err != nil {
		t.Fatal(err)
	}
	return shared.m
}

const testModelID = "tiny"

// startServer serves the test model with cfg (Models filled in) on a
// loopback httptest server.
func startServer(t testing.TB, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	m := testModel(t)
	cfg.Models = []Model{{ID: testModelID, Aliases: []string{"tiny-alias"}, Load: func(context.Context) (*snapvlm.Model, error) { return m, nil }}}
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	hs := newServer(t, s)
	t.Cleanup(func() {
		s.Cancel()
		s.bg.Wait()
	})
	return s, hs
}

// newServer serves h on loopback until the test ends.
func newServer(t testing.TB, h http.Handler) *httptest.Server {
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs
}

// sampleDataURL is assets/sample.jpg, a real photo, as a data URL.
func sampleDataURL(t testing.TB) (string, *snapvlm.Image) {
	t.Helper()
	img, err := snapvlm.ImageFile(filepath.Join("..", "assets", "sample.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	return "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(img.Data), img
}

var metricLine = regexp.MustCompile(`(?m)^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$`)

// metric reads one series from GET /metrics (e.g. "snapvlm_busy_slots").
func metric(t testing.TB, base, series string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, m := range metricLine.FindAllStringSubmatch(string(body), -1) {
		if m[1] == series {
			v, _ := strconv.ParseFloat(m[2], 64)
			return v
		}
	}
	return 0
}

// waitMetric polls a series until it equals want or the time runs out.
func waitMetric(t testing.TB, base, series string, want float64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := metric(t, base, series)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v after %s, want %v", series, got, within, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sseLines reads an SSE body's data lines as they come.
func sseLines(r io.Reader) <-chan string {
	ch := make(chan string, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				ch <- line
			}
		}
	}()
	return ch
}

var long struct {
	sync.Once
	prompt string
	seed   uint64
}

// longAnswer finds a question and sampling seed (greedy first, then temperature 1) the
// random-weight test model answers with at least 500 tokens (no end
// token), so a test can act while it streams. It returns the request body
// fields for them.
func longAnswer(t testing.TB) string {
	t.Helper()
	m := testModel(t)
	long.Do(func() {
		for seed := uint64(0); seed <= 8; seed++ {
			for _, p := range []string{"Hi", "Tell me a story.", "What?", "Go on."} {
				res, err := m.Generate(context.Background(), snapvlm.Request{GenerateOptions: snapvlm.GenerateOptions{MaxNewTokens: 500, Temperature: float32(min(seed, 1)), Seed: seed},
					Messages: []snapvlm.Message{snapvlm.UserMessage(p)}}, nil)
				if err == nil && res.FinishReason == snapvlm.FinishLength {
					long.prompt, long.seed = p, seed
					return
				}
			}
		}
	})
	if long.prompt == "" {
		t.Fatal("no candidate prompt and seed give the test model a 500-token answer")
	}
	return fmt.Sprintf(`"max_tokens":500,"temperature":%d,"seed":%d,"messages":[{"role":"user","content":%q}]`, min(long.seed, 1), long.seed, long.prompt)
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
