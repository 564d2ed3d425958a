package hubtest

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Tree describes every entry under root: "dir", "link:<target>" for
// symlinks (not followed) and "file:<sha256 of contents>" for files. Two
// caches with equal Trees have the same layout file for file.
func Tree(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			out[rel] = "link:" + target
		case d.IsDir():
			out[rel] = "dir"
		default:
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			out[rel] = "file:" + hex.EncodeToString(h[:])
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}

// MakeCache writes repo into cacheDir with scripts/hfcache/make_cache.py,
// which replicates huggingface_hub's layout, and returns the snapshot
// directory. The test is skipped when python3 is not installed.
func MakeCache(t testing.TB, cacheDir string, repo Repo) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found: skipping the check against a cache in huggingface_hub's layout (scripts/hfcache/make_cache.py)")
	}
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate hubtest source to find scripts/hfcache")
	}
	script := filepath.Join(filepath.Dir(self), "..", "..", "..", "scripts", "hfcache", "make_cache.py")
	if _, err := os.Stat(script); err != nil {
		t.Fatalf("make_cache.py: %v", err)
	}
	src := t.TempDir()
	for p, data := range repo.Files {
		full := filepath.Join(src, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(py, script, "--cache", cacheDir, "--repo", repo.ID, "--commit", repo.Commit, src).CombinedOutput()
	if err != nil {
		t.Fatalf("make_cache.py: %v\n%s", err, out)
	}
	return filepath.Join(cacheDir, "models--"+strings.ReplaceAll(repo.ID, "/", "--"), "snapshots", repo.Commit)
}
