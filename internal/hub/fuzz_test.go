package hub

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapvlm/snapvlm/internal/hub/hubtest"
)

// FuzzPlanJSON answers the model-info request with arbitrary JSON (and HEADs
// with an arbitrary ETag) and plans a pull. Whatever plan comes out names
// only files inside the snapshot, blobs named by a hash and a commit id, so
// a hostile or broken Hub cannot make a pull write outside the cache.
// Seed: the fake Hub's answer for the test repo.
func FuzzPlanJSON(f *testing.F) {
	srv := hubtest.New(f, "", testRepoDef())
	resp, err := http.Get(srv.URL() + "/api/models/" + testRepo + "/revision/main?blobs=true")
	if err != nil {
		f.Fatal(err)
	}
	seed, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		f.Fatalf("seed from hubtest: %d %v", resp.StatusCode, err)
	}
	f.Add(seed, "\"0123456789abcdef\"")
	// Without sizes and hashes: the plan asks HEAD for each file.
	f.Add([]byte(`{"sha": "`+testCommit+`", "siblings": [{"rfilename": "config.json"}, {"rfilename": "onnx/vision_encoder_q4.onnx"},
		{"rfilename": "onnx/embed_tokens_q4.onnx"}, {"rfilename": "onnx/decoder_model_merged_q4.onnx", "lfs": {"sha256": "../../../../x"}}]}`), "W/\"../x\"")

	var body []byte
	var etag string
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/models/"):
			w.Write(body)
		case r.Method == http.MethodHead:
			w.Header().Set("ETag", etag)
			w.Header().Set("X-Repo-Commit", testCommit)
			w.Header().Set("Content-Length", "10")
		default:
			http.NotFound(w, r)
		}
	}))
	f.Cleanup(fake.Close)
	cache := f.TempDir()
	opt := Options{Endpoint: fake.URL, CacheDir: cache, Retries: -1, RetryBackoff: time.Millisecond, Dtypes: []string{"q4"}}
	f.Fuzz(func(t *testing.T, info []byte, headEtag string) {
		// One request at a time per worker process: the handler reads these.
		body, etag = info, headEtag
		plan, err := Plan(context.Background(), testRepo, "main", opt)
		if err != nil {
			return
		}
		if !commitPattern.MatchString(plan.Commit) {
			t.Fatalf("plan commit %q is not a commit id", plan.Commit)
		}
		snap := filepath.Join(repoDir(cache, testRepo), "snapshots", plan.Commit)
		for _, pf := range plan.Files {
			p := filepath.Join(snap, filepath.FromSlash(pf.Path))
			if rel, err := filepath.Rel(snap, p); err != nil || rel == "." || strings.HasPrefix(rel, "..") {
				t.Fatalf("file %q lands outside the snapshot (%s)", pf.Path, p)
			}
			if !safeBlobName(pf.Etag) || strings.ContainsAny(pf.Etag, `/\.`) {
				t.Fatalf("file %q has blob name %q", pf.Path, pf.Etag)
			}
		}
	})
}
