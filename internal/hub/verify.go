package hub

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// FileCheck is what Verify found for one file of a snapshot.
type FileCheck struct {
	// Path is the file's path in the repo.
	Path string `json:"path"`
	// Size is the blob's size in bytes (-1 when it is missing).
	Size int64 `json:"size"`
	// OK is false when the blob is missing, unreadable or its contents do
	// not match its name.
	OK bool `json:"ok"`
	// Problem says what is wrong ("" when OK).
	Problem string `json:"problem,omitempty"`
}

// Verify checks the cached snapshot of spec ("org/name[@revision]"): every
// file's blob is read and hashed, and the hash compared with the blob's name
// (sha256 for LFS files, git blob sha1 for the others, as the Hub names them;
// a blob named otherwise is only read). It returns the snapshot directory
// and one FileCheck per file, in path order; damage is reported there, not
// as an error. A repo or revision not in the cache is an error wrapping
// ErrNotCached.
func Verify(ctx context.Context, opt Options, spec string) (string, []FileCheck, error) {
	repo, revision, err := ParseSpec(spec)
	if err != nil {
		return "", nil, err
	}
	opt = opt.withDefaults()
	rdir := repoDir(opt.CacheDir, repo)
	commit, ok := readRef(rdir, revision)
	snap := filepath.Join(rdir, "snapshots", commit)
	if st, err := os.Stat(snap); !ok || err != nil || !st.IsDir() {
		return "", nil, newError(ErrNotCached, nil, "%s (revision %s) is not in the cache %s", repo, revision, opt.CacheDir)
	}
	var out []FileCheck
	err = filepath.WalkDir(snap, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(snap, path)
		out = append(out, checkFile(filepath.ToSlash(rel), path))
		return nil
	})
	if err != nil {
		return "", nil, fmt.Errorf("verify %s: %w", snap, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return snap, out, nil
}

// checkFile hashes one snapshot entry's blob against its name.
func checkFile(rel, path string) FileCheck {
	c := FileCheck{Path: rel, Size: -1}
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		c.Problem = "the blob it links to is missing"
		return c
	}
	f, err := os.Open(target)
	if err != nil {
		c.Problem = fmt.Sprintf("cannot read: %v", err)
		return c
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		c.Problem = fmt.Sprintf("cannot read: %v", err)
		return c
	}
	c.Size = fi.Size()
	etag := strings.ToLower(filepath.Base(target))
	v := newVerifier(&PlanFile{Path: rel, Size: c.Size, Etag: etag, LFS: len(etag) == 64})
	if _, err := io.Copy(v, f); err != nil {
		c.Problem = fmt.Sprintf("cannot read: %v", err)
		return c
	}
	if got, ok := v.check(); !ok {
		c.Problem = fmt.Sprintf("%s is %s, the blob is named %s: the file is damaged; remove the model and pull it again", v.algo, got, etag)
		return c
	}
	c.OK = true
	return c
}
