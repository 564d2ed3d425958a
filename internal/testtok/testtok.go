// Package testtok finds the real SmolVLM tokenizer.json for tests. The file
// is third-party data that the repository does not ship, so a test that needs
// it asks Path, which looks in order at $SNAPVLM_TEST_TOKENIZER, the
// workspace's ../shared/smolvlm/tokenizer.json beside the repository, and the
// Hugging Face cache (`snapvlm pull HuggingFaceTB/SmolVLM-256M-Instruct`),
// and checks its SHA-256.
//
// Only tests import this package; production code never looks outside the
// repository or the caches it was told about.
package testtok

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/hub"
)

// SHA256 is the digest of SmolVLM-256M-Instruct's tokenizer.json (SmolVLM2
// ships the same file).
const SHA256 = "5ece781dc8d2b2f3e2f289ca0ae50b17cfc27dd27bfe7971bb8241e0b964331a"

// Repo is the Hub repository whose cached snapshot Path looks in.
const Repo = "HuggingFaceTB/SmolVLM-256M-Instruct"

// Required reports whether a missing tokenizer fails tests instead of
// skipping them: under CI=true, unless SNAPVLM_ALLOW_NO_TOKENIZER=1 (the
// fresh-clone run of .ci/run, which proves what a GitHub user sees).
func Required() bool {
	return os.Getenv("CI") == "true" && os.Getenv("SNAPVLM_ALLOW_NO_TOKENIZER") != "1"
}

// Path returns the real tokenizer.json, or skips t with one line naming
// where it looked (fails instead when Required).
func Path(t testing.TB) string {
	t.Helper()
	p, err := Find()
	if err != nil {
		if Required() {
			t.Fatalf("real SmolVLM tokenizer required (CI=true): %v", err)
		}
		t.Skipf("needs the real SmolVLM tokenizer.json: %v", err)
	}
	return p
}

// Find returns the path of the real tokenizer.json, or an error that names
// every place it looked.
func Find() (string, error) {
	var tried []string
	try := func(p string) (string, bool, error) {
		if p == "" {
			return "", false, nil
		}
		tried = append(tried, p)
		if _, err := os.Stat(p); err != nil {
			return "", false, nil
		}
		if err := checkSum(p); err != nil {
			return "", false, err
		}
		return p, true, nil
	}
	if env := os.Getenv("SNAPVLM_TEST_TOKENIZER"); env != "" {
		p, ok, err := try(env)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", fmt.Errorf("$SNAPVLM_TEST_TOKENIZER=%s does not exist", env)
		}
		return p, nil
	}
	candidates := []string{sharedPath()}
	cached, pattern := cachedPaths()
	candidates = append(candidates, cached...)
	for _, c := range candidates {
		p, ok, err := try(c)
		if err != nil {
			return "", err
		}
		if ok {
			return p, nil
		}
	}
	if len(cached) == 0 {
		tried = append(tried, pattern)
	}
	return "", fmt.Errorf("not found at $SNAPVLM_TEST_TOKENIZER (unset), %s; set SNAPVLM_TEST_TOKENIZER or run 'snapvlm pull %s'", strings.Join(tried, ", "), Repo)
}

// sharedPath is ../shared/smolvlm/tokenizer.json next to the repository
// root (the directory with go.mod above the working directory).
func sharedPath() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(dir), "shared", "smolvlm", "tokenizer.json")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// cachedPaths are the tokenizer.json files of Repo's cached snapshots, and
// the pattern that finds them.
func cachedPaths() (paths []string, pattern string) {
	dir := hub.OptionsFromEnv().CacheDir
	pattern = filepath.Join(dir, "models--"+strings.ReplaceAll(Repo, "/", "--"), "snapshots", "*", "tokenizer.json")
	m, _ := filepath.Glob(pattern)
	return m, pattern
}

func checkSum(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != SHA256 {
		return fmt.Errorf("%s: sha256 %s, want %s (not SmolVLM's tokenizer.json)", p, got, SHA256)
	}
	return nil
}
