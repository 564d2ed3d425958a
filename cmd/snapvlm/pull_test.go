package main

import (
	"bytes"
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapvlm/snapvlm/internal/hub"
	"github.com/snapvlm/snapvlm/internal/hub/hubtest"
)

const (
	pullTestRepo   = "TestOrg/TinyVLM"
	pullTestCommit = "0123456789abcdef0123456789abcdef01234567"
)

func pullTestFiles() map[string][]byte {
	blob := func(seed int64, n int) []byte {
		b := make([]byte, n)
		rand.New(rand.NewSource(seed)).Read(b)
		return b
	}
	return map[string][]byte{
		"config.json":                       []byte(`{"model_type": "smolvlm"}`),
		"tokenizer.json":                    []byte(`{"version": "1.0"}`),
		"README.md":                         []byte("# not fetched\n"),
		"onnx/vision_encoder_q4.onnx":       blob(1, 3000),
		"onnx/embed_tokens_q4.onnx":         blob(2, 2000),
		"onnx/decoder_model_merged_q4.onnx": blob(3, 50_000),
		"onnx/decoder_model_merged.onnx":    blob(4, 1000),
	}
}

func pullTestOptions(srv *hubtest.Server, cache string) hub.Options {
	return hub.Options{Endpoint: srv.URL(), CacheDir: cache, RetryBackoff: time.Millisecond}
}

// `snapvlm pull` prints progress lines and the snapshot directory and leaves
// the cache huggingface_hub would: checked against the spec's layout, and
// file for file against scripts/hfcache/make_cache.py when python3 exists.
func TestPullCommand(t *testing.T) {
	files := pullTestFiles()
	repo := hubtest.Repo{ID: pullTestRepo, Commit: pullTestCommit, Files: files}
	srv := hubtest.New(t, "", repo)
	cache := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := runPull(context.Background(), []string{pullTestRepo, "--dtype", "q4"}, &stdout, &stderr, pullTestOptions(srv, cache))
	if err != nil {
		t.Fatalf("pull: %v\n%s", err, stderr.String())
	}
	snap := filepath.Join(cache, "models--TestOrg--TinyVLM", "snapshots", pullTestCommit)
	if got := strings.TrimSpace(stdout.String()); got != snap {
		t.Errorf("stdout = %q, want %q", got, snap)
	}
	fetched := []string{"config.json", "tokenizer.json", "onnx/vision_encoder_q4.onnx", "onnx/embed_tokens_q4.onnx", "onnx/decoder_model_merged_q4.onnx"}
	for _, p := range fetched {
		for _, line := range []string{"get " + p + " (", "done " + p + " "} {
			if !strings.Contains(stderr.String(), line) {
				t.Errorf("progress lacks %q:\n%s", line, stderr.String())
			}
		}
	}
	if strings.Contains(stderr.String(), "\r") {
		t.Errorf("progress to a non-terminal has carriage returns")
	}
	tree := hubtest.Tree(t, cache)
	for _, p := range fetched {
		etag := hubtest.GitBlobSHA1(files[p])
		if hubtest.IsLFS(p) {
			etag = hubtest.SHA256(files[p])
		}
		key := "models--TestOrg--TinyVLM/snapshots/" + pullTestCommit + "/" + p
		want := "link:" + strings.Repeat("../", strings.Count(p, "/")+2) + "blobs/" + etag
		if tree[key] != want {
			t.Errorf("%s = %q, want %q", key, tree[key], want)
		}
	}
	if tree["models--TestOrg--TinyVLM/refs/main"] == "" {
		t.Errorf("no refs/main")
	}

	t.Run("same layout as huggingface_hub", func(t *testing.T) {
		ref := t.TempDir()
		sub := repo
		sub.Files = map[string][]byte{}
		for _, p := range fetched {
			sub.Files[p] = files[p]
		}
		hubtest.MakeCache(t, ref, sub)
		want := hubtest.Tree(t, ref)
		for k, v := range want {
			if tree[k] != v {
				t.Errorf("%s: snapvlm %q, huggingface_hub layout %q", k, tree[k], v)
			}
		}
		for k := range tree {
			if _, ok := want[k]; !ok {
				t.Errorf("%s: only in snapvlm's cache", k)
			}
		}
	})

	t.Run("models lists it", func(t *testing.T) {
		var out bytes.Buffer
		if err := runModels(context.Background(), nil, &out, &out, pullTestOptions(srv, cache)); err != nil {
			t.Fatalf("models: %v", err)
		}
		var size int64
		for _, p := range fetched {
			size += int64(len(files[p]))
		}
		for _, want := range []string{"REPO", pullTestRepo, "main (0123456789ab)", "q4", hub.FormatBytes(size), snap} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("models output lacks %q:\n%s", want, out.String())
			}
		}
	})

	t.Run("rm removes it", func(t *testing.T) {
		var out bytes.Buffer
		if err := runRm(context.Background(), []string{pullTestRepo}, &out, &out, pullTestOptions(srv, cache)); err != nil {
			t.Fatalf("rm: %v", err)
		}
		if !strings.Contains(out.String(), "removed "+pullTestRepo) {
			t.Errorf("rm output %q", out.String())
		}
		if _, err := os.Stat(filepath.Join(cache, "models--TestOrg--TinyVLM")); !os.IsNotExist(err) {
			t.Errorf("repo dir still there: %v", err)
		}
		out.Reset()
		if err := runModels(context.Background(), nil, &out, &out, pullTestOptions(srv, cache)); err != nil || !strings.Contains(out.String(), "no SmolVLM models") {
			t.Errorf("models after rm: %v %q", err, out.String())
		}
		if err := runRm(context.Background(), []string{pullTestRepo}, &out, &out, pullTestOptions(srv, cache)); err == nil {
			t.Errorf("rm of a missing repo succeeded")
		}
	})
}

func TestPullCommandArgs(t *testing.T) {
	srv := hubtest.New(t, "", hubtest.Repo{ID: pullTestRepo, Commit: pullTestCommit, Files: pullTestFiles()})
	cases := []struct {
		name    string
		args    []string
		wantErr string
		quiet   bool
	}{
		{name: "quiet, flags first", args: []string{"--quiet", "--dtype", "q4", pullTestRepo}, quiet: true},
		{name: "revision flag", args: []string{pullTestRepo, "--revision", pullTestCommit, "--quiet"}, quiet: true},
		{name: "no repo", args: nil, wantErr: "want exactly one repo id"},
		{name: "two repos", args: []string{"a/b", "c/d"}, wantErr: "want exactly one repo id"},
		{name: "bad repo", args: []string{"not-a-repo"}, wantErr: "want a repo id ORG/NAME"},
		{name: "revision twice", args: []string{pullTestRepo + "@main", "--revision", "v2"}, wantErr: "revision given twice"},
		{name: "bad dtype", args: []string{pullTestRepo, "--dtype", "q8"}, wantErr: `unknown dtype "q8"`},
		{name: "missing variant", args: []string{pullTestRepo, "--dtype", "fp16,q4"}, wantErr: "variants in the repo: q4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runPull(context.Background(), tc.args, &stdout, &stderr, pullTestOptions(srv, t.TempDir()))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			if tc.quiet && stderr.Len() > 0 {
				t.Errorf("--quiet printed %q", stderr.String())
			}
			if !strings.HasSuffix(strings.TrimSpace(stdout.String()), pullTestCommit) {
				t.Errorf("stdout = %q", stdout.String())
			}
		})
	}
}
