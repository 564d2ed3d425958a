package ort

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRewriteOnlyWhatChanges: asking for int8 MatMulNBits on a graph that
// has none loads the file as it is; it used to write a full copy (538 MB
// for a 256M fp32 decoder) to the rewritten-models cache.
func TestRewriteOnlyWhatChanges(t *testing.T) {
	env := testEnv(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	model := writeConcatModel(t)
	s, err := env.NewSession(model, SessionOptions{MatMulNBitsAccuracy: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dir, err := RewrittenDir()
	if err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("%d files written to %s for a graph without MatMulNBits", len(entries), dir)
	}
}

// TestListAndRemoveRewritten: a copy whose source is gone or changed is
// stale; RemoveRewritten removes what keep refuses, with its source record.
func TestListAndRemoveRewritten(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir, err := RewrittenDir()
	if err != nil {
		t.Fatal(err)
	}
	if files, err := ListRewritten(); err != nil || len(files) != 0 {
		t.Fatalf("empty cache: %v, %v", files, err)
	}
	src := t.TempDir()
	write := func(name string, data string) string {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	live, gone, changed := write("live.onnx", "a"), write("gone.onnx", "b"), write("changed.onnx", "c")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyOf := func(p string) string {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, rewriteKey(p, st, "test-rewrite"))
		os.WriteFile(dst, []byte("rewritten"), 0o644)
		os.WriteFile(dst+sourceSuffix, []byte(p+"\ntest-rewrite\n"), 0o644)
		return dst
	}
	liveCopy, goneCopy, changedCopy := copyOf(live), copyOf(gone), copyOf(changed)
	os.Remove(gone)
	write("changed.onnx", "longer now")
	files, err := ListRewritten()
	if err != nil || len(files) != 3 {
		t.Fatalf("ListRewritten = %+v, %v; want 3", files, err)
	}
	stale := map[string]bool{}
	for _, f := range files {
		stale[f.Path] = f.Stale
	}
	if stale[liveCopy] || !stale[goneCopy] || !stale[changedCopy] {
		t.Fatalf("stale flags %v: want only the copies of gone.onnx and changed.onnx stale", stale)
	}
	removed, err := RemoveRewritten(func(f RewrittenCopy) bool { return !f.Stale })
	if err != nil || len(removed) != 2 {
		t.Fatalf("RemoveRewritten(stale) = %+v, %v", removed, err)
	}
	for _, p := range []string{goneCopy, goneCopy + sourceSuffix, changedCopy, changedCopy + sourceSuffix} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s still there", p)
		}
	}
	if _, err := os.Stat(liveCopy); err != nil {
		t.Errorf("the live copy was removed: %v", err)
	}
	if removed, err := RemoveRewritten(nil); err != nil || len(removed) != 1 {
		t.Fatalf("RemoveRewritten(nil) = %+v, %v", removed, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left in %s: %v", dir, entries)
	}
}

func TestSourceBase(t *testing.T) {
	for _, c := range []struct{ path, want string }{
		{"/m/onnx/decoder_model_merged_q4.onnx", "decoder_model_merged_q4.onnx"},
		{"/c/rewritten/8737c9535fe4b2071e19a775-decoder_model_merged.onnx", "decoder_model_merged.onnx"},
		{"/c/rewritten/4ea9310229035618a3247d3d-39198cf76c081e52e165534a-decoder_model_merged_q4.onnx", "decoder_model_merged_q4.onnx"},
		{"/m/onnx/not-a-key-decoder.onnx", "not-a-key-decoder.onnx"},
		{"/c/8737c9535fe4b2071e19a775-", "8737c9535fe4b2071e19a775-"},
	} {
		if got := SourceBase(c.path); got != c.want {
			t.Errorf("SourceBase(%q) = %q, want %q", c.path, got, c.want)
		}
	}
}
