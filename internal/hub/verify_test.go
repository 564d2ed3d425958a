package hub

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapvlm/snapvlm/internal/hub/hubtest"
)

func TestOnProgressAndVerify(t *testing.T) {
	srv := hubtest.New(t, testToken, testRepoDef())
	opt := testOptions(srv)
	opt.CacheDir = t.TempDir()
	last := map[string][2]int64{} // file -> done, size of its last report
	opt.OnProgress = func(file string, done, size int64) {
		if prev, ok := last[file]; ok && done < prev[0] {
			t.Errorf("%s: progress went back from %d to %d", file, prev[0], done)
		}
		last[file] = [2]int64{done, size}
	}
	dir, err := Pull(context.Background(), testRepo, "", opt)
	if err != nil {
		t.Fatal(err)
	}
	files := testFiles()
	wantFiles := append(append([]string{}, configPaths...), q4Paths...)
	for _, p := range wantFiles {
		got, ok := last[p]
		if want := int64(len(files[p])); !ok || got != [2]int64{want, want} {
			t.Errorf("%s: last progress %v (reported %t), want done = size = %d", p, got, ok, want)
		}
	}
	if len(last) != len(wantFiles) {
		t.Errorf("progress for %d files, want %d: %v", len(last), len(wantFiles), last)
	}

	check := func(spec string) []FileCheck {
		t.Helper()
		snap, got, err := Verify(context.Background(), opt, spec)
		if err != nil {
			t.Fatal(err)
		}
		if snap != dir {
			t.Errorf("Verify dir %s, want %s", snap, dir)
		}
		return got
	}
	for _, c := range check(testRepo) {
		if !c.OK || c.Size != int64(len(files[c.Path])) {
			t.Errorf("fresh pull: %+v, want ok with size %d", c, len(files[c.Path]))
		}
	}

	// Damage an LFS blob (sha256-named) and a regular one (git sha1-named),
	// and delete a third.
	damage := func(p string, fn func(blob string) error) {
		t.Helper()
		blob, err := filepath.EvalSymlinks(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		if err := fn(blob); err != nil {
			t.Fatal(err)
		}
	}
	flip := func(blob string) error {
		b, err := os.ReadFile(blob)
		if err != nil {
			return err
		}
		b[len(b)/2] ^= 0x20
		return os.WriteFile(blob, b, 0o644)
	}
	damage("onnx/decoder_model_merged_q4.onnx", flip)
	damage("config.json", flip)
	damage("onnx/embed_tokens_q4.onnx", os.Remove)
	bad := map[string]bool{"onnx/decoder_model_merged_q4.onnx": true, "config.json": true, "onnx/embed_tokens_q4.onnx": true}
	for _, c := range check(testRepo + "@main") {
		if c.OK == bad[c.Path] || (c.Problem == "") != c.OK {
			t.Errorf("after damage: %+v", c)
		}
	}

	for _, spec := range []string{"TestOrg/Missing", testRepo + "@v9"} {
		if _, _, err := Verify(context.Background(), opt, spec); !errors.Is(err, ErrNotCached) {
			t.Errorf("Verify(%s) = %v, want ErrNotCached", spec, err)
		}
	}
}
