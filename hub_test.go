package snapvlm

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/hub/hubtest"
)

// TestLoadFromHub serves the generated tiny model from a fake Hub on
// loopback: LoadFromHub downloads only the files of the variant asked for
// into a Hugging Face cache, loads the snapshot and answers as the model
// loaded from its directory does; offline, it loads from that cache, and an
// uncached repo is an error naming it.
func TestLoadFromHub(t *testing.T) {
	src := modelDir(t, "tiny512")
	files := hubtest.DirFiles(t, src)
	const repo, commit = "TestOrg/TinyVLM", "0123456789abcdef0123456789abcdef01234567"
	srv := hubtest.New(t, "", hubtest.Repo{ID: repo, Commit: commit, Files: files})
	cache := t.TempDir()
	ctx := context.Background()
	opts := Options{Dtype: "q4"}
	m, err := LoadFromHub(ctx, repo, opts, HubOptions{Endpoint: srv.URL(), CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if want := filepath.Join(cache, "models--TestOrg--TinyVLM", "snapshots", commit); m.Dir() != want {
		t.Errorf("Dir = %s, want the snapshot %s", m.Dir(), want)
	}
	for g, d := range m.Dtypes() {
		if d != "q4" {
			t.Errorf("%s runs %s, want q4", g, d)
		}
	}
	var fetched []string
	for _, r := range srv.Requests() {
		if r.Method == "GET" && strings.Contains(r.Path, "/onnx/") {
			fetched = append(fetched, r.Path[strings.LastIndex(r.Path, "/")+1:])
		}
	}
	slices.Sort(fetched)
	fetched = slices.Compact(fetched)
	if want := []string{"decoder_model_merged_q4.onnx", "embed_tokens_q4.onnx", "vision_encoder_q4.onnx"}; !slices.Equal(fetched, want) {
		t.Errorf("graphs downloaded %v, want %v", fetched, want)
	}

	req := Request{Messages: []Message{UserMessage("What is this?", pngImage(t, 300, 200, 0, false))}}
	want := greedy(t, loadModel(t, "tiny512", opts), req).Tokens
	if got := greedy(t, m, req).Tokens; !slices.Equal(got, want) {
		t.Errorf("tokens %v, want those of the model loaded from its directory %v", got, want)
	}

	srv.ResetRequests()
	off, err := LoadFromHub(ctx, repo, opts, HubOptions{Endpoint: srv.URL(), CacheDir: cache, Offline: true})
	if err != nil {
		t.Fatalf("offline from the cache: %v", err)
	}
	off.Close()
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("offline load made %d requests", n)
	}
	if _, err := LoadFromHub(ctx, "TestOrg/Other", opts, HubOptions{Endpoint: srv.URL(), CacheDir: cache, Offline: true}); err == nil || !strings.Contains(err.Error(), "TestOrg/Other") {
		t.Errorf("offline, not cached: err = %v, want one naming the repo", err)
	}
	if _, err := LoadFromHub(ctx, "TestOrg/Missing", opts, HubOptions{Endpoint: srv.URL(), CacheDir: t.TempDir()}); err == nil || errors.Is(err, ErrRuntimeMissing) {
		t.Errorf("missing repo: err = %v", err)
	}
}
