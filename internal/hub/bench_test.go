package hub

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapvlm/snapvlm/internal/hub/hubtest"
)

// BenchmarkDownload measures the client side of a pull over loopback: HTTP,
// the CDN redirect, writing the blob and its sha256 check (8 MB per op).
func BenchmarkDownload(b *testing.B) {
	const size = 8 << 20
	files := map[string][]byte{"config.json": []byte(`{"model_type": "smolvlm"}`)}
	for _, g := range Graphs() {
		files[graphFile(g, "q4")] = []byte("x")
	}
	files["onnx/decoder_model_merged_q4.onnx"] = randBytes(1, size)
	srv := hubtest.New(b, "", hubtest.Repo{ID: testRepo, Commit: testCommit, Files: files})
	opt := Options{Endpoint: srv.URL()}
	b.SetBytes(size)
	for b.Loop() {
		b.StopTimer()
		opt.CacheDir = b.TempDir()
		b.StartTimer()
		if _, err := Pull(context.Background(), testRepo, "main", opt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResolve measures the offline lookup every --model REPO pays.
func BenchmarkResolve(b *testing.B) {
	cache := b.TempDir()
	snap := filepath.Join(cache, "models--TestOrg--TinyVLM", "snapshots", testCommit)
	for _, p := range append([]string{"config.json"}, q4Paths...) {
		full := filepath.Join(snap, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("{}"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if err := writeRef(filepath.Join(cache, "models--TestOrg--TinyVLM"), "main", testCommit); err != nil {
		b.Fatal(err)
	}
	opt := Options{CacheDir: cache, Offline: true}
	for b.Loop() {
		if _, err := Resolve(context.Background(), testRepo, opt); err != nil {
			b.Fatal(err)
		}
	}
}
