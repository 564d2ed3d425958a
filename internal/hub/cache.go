package hub

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/snapvlm/snapvlm/internal/modelconfig"
)

// commitPattern matches a full git commit hash, which names a snapshot
// directly (no refs/ lookup).
var commitPattern = regexp.MustCompile(`^[0-9a-f]{40}$`)

// repoFolderName is huggingface_hub's repo_folder_name for a model repo.
func repoFolderName(repo string) string {
	return "models--" + strings.ReplaceAll(repo, "/", "--")
}

// repoDir is the cache directory of one repo.
func repoDir(cacheDir, repo string) string {
	return filepath.Join(cacheDir, repoFolderName(repo))
}

// readRef returns the commit refs/<revision> points to, or the revision
// itself when it is a commit hash. ok is false when the ref is unknown.
func readRef(rdir, revision string) (commit string, ok bool) {
	if commitPattern.MatchString(revision) {
		return revision, true
	}
	b, err := os.ReadFile(filepath.Join(rdir, "refs", filepath.FromSlash(revision)))
	if err != nil {
		return "", false
	}
	c := strings.TrimSpace(string(b))
	return c, commitPattern.MatchString(c)
}

// writeRef records that revision points to commit, rewriting the file only
// when it changed (the cache may be read-only for files already there, see
// huggingface_hub#1216).
func writeRef(rdir, revision, commit string) error {
	if revision == commit {
		return nil
	}
	if err := checkRevision(revision); err != nil || !filepath.IsLocal(filepath.FromSlash(revision)) {
		return fmt.Errorf("write ref of %s: unsafe revision %q", rdir, revision)
	}
	path := filepath.Join(rdir, "refs", filepath.FromSlash(revision))
	if b, err := os.ReadFile(path); err == nil && string(b) == commit {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write ref %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(commit), 0o644); err != nil {
		return fmt.Errorf("write ref %s: %w", path, err)
	}
	return nil
}

// linkBlob points snapshots/<commit>/<name> at blobs/<etag> with a relative
// symlink, as huggingface_hub's _create_symlink does.
func linkBlob(rdir, commit, name, etag string) error {
	dst := filepath.Join(rdir, "snapshots", commit, filepath.FromSlash(name))
	blob := filepath.Join(rdir, "blobs", etag)
	rel, err := filepath.Rel(filepath.Dir(dst), blob)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if cur, err := os.Readlink(dst); err == nil && cur == rel {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("link %s: replace %s: %w", name, dst, err)
	}
	if err := os.Symlink(rel, dst); err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	return nil
}

// graphFile is the repo path of one graph in one variant.
func graphFile(graph, dtype string) string {
	return modelconfig.GraphPath(graph, dtype)
}

// Resolve turns a --model value into a model directory without touching the
// network. A local directory is returned as is. A repo id ("org/name" or
// "org/name@revision") is looked up in the cache (refs/<revision> →
// snapshots/<commit>); the snapshot must hold config.json and the graphs of
// opt.Dtypes (and opt.GraphDtypes). When it does not, the error wraps ErrNotCached and the caller
// decides whether to Pull (see Plan, ConfirmPull, Download).
func Resolve(ctx context.Context, spec string, opt Options) (string, error) {
	if fi, err := os.Stat(spec); err == nil {
		if !fi.IsDir() {
			return "", fmt.Errorf("model %s: not a directory", spec)
		}
		return spec, nil
	}
	repo, revision, err := ParseSpec(spec)
	if err != nil {
		return "", fmt.Errorf("model %q is neither an existing directory nor a Hub repo id: %w", spec, err)
	}
	opt = opt.withDefaults()
	if err := checkDtypes(opt); err != nil {
		return "", err
	}
	return cachedSnapshot(repo, revision, opt)
}

// cachedSnapshot finds a complete snapshot of repo@revision in the cache.
func cachedSnapshot(repo, revision string, opt Options) (string, error) {
	rdir := repoDir(opt.CacheDir, repo)
	commit, ok := readRef(rdir, revision)
	if !ok {
		return "", notCached(repo, revision, opt, "")
	}
	snap := filepath.Join(rdir, "snapshots", commit)
	want := append([]string{"config.json"}, graphFiles(opt)...)
	for _, f := range want {
		// Stat follows the symlink, so a link to a missing blob counts as missing.
		if _, err := os.Stat(filepath.Join(snap, filepath.FromSlash(f))); err != nil {
			return "", notCached(repo, revision, opt, f)
		}
	}
	return snap, nil
}

func notCached(repo, revision string, opt Options, missing string) error {
	what := fmt.Sprintf("%s (revision %s) is not in the Hugging Face cache %s", repo, revision, opt.CacheDir)
	if missing != "" {
		what = fmt.Sprintf("the cached %s (revision %s) lacks %s (dtype %s)", repo, revision, missing, dtypeSummary(opt))
	}
	if opt.Offline {
		return &hubError{kinds: []error{ErrNotCached, ErrOffline},
			msg: fmt.Sprintf("%s and offline mode is on (HF_HUB_OFFLINE=1): unset HF_HUB_OFFLINE and run 'snapvlm pull %s'", what, repo)}
	}
	return newError(ErrNotCached, nil, "%s: run 'snapvlm pull %s'", what, repo)
}

// CachedModel is one repo in the cache.
type CachedModel struct {
	// Repo is the repo id, "org/name".
	Repo string `json:"repo"`
	// Dir is the repo's cache directory (models--org--name).
	Dir string `json:"dir"`
	// Size is the bytes of all its blobs, finished or not.
	Size int64 `json:"size"`
	// Revisions are its snapshots, newest first by modification time.
	Revisions []CachedRevision `json:"revisions"`
}

// CachedRevision is one snapshot of a cached repo.
type CachedRevision struct {
	// Commit is the snapshot's commit hash.
	Commit string `json:"commit"`
	// Refs are the branches or tags that point to Commit.
	Refs []string `json:"refs"`
	// Dir is the snapshot directory, usable as a model directory.
	Dir string `json:"dir"`
	// ModelType is config.json's model_type ("" when absent).
	ModelType string `json:"model_type"`
	// Variants are the dtypes whose three graphs are all present.
	Variants []string `json:"variants"`
	// Size is the bytes of the distinct blobs the snapshot uses.
	Size int64 `json:"size"`
	// Files is the number of files in the snapshot.
	Files int `json:"files"`
}

// List returns the SmolVLM-like models in the cache: repos with a snapshot
// holding onnx/*.onnx files or a config.json of model_type smolvlm or
// idefics3. Other repos are left out. A missing cache is an empty list.
func List(opt Options) ([]CachedModel, error) {
	opt = opt.withDefaults()
	entries, err := os.ReadDir(opt.CacheDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list cache %s: %w", opt.CacheDir, err)
	}
	var out []CachedModel
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, "models--") {
			continue
		}
		repo := strings.Replace(strings.TrimPrefix(name, "models--"), "--", "/", 1)
		m, err := scanRepo(filepath.Join(opt.CacheDir, name), repo)
		if err != nil {
			return nil, err
		}
		if m != nil {
			out = append(out, *m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Repo < out[j].Repo })
	return out, nil
}

// scanRepo describes one repo directory, or returns nil when it holds no
// SmolVLM-like snapshot.
func scanRepo(rdir, repo string) (*CachedModel, error) {
	m := &CachedModel{Repo: repo, Dir: rdir}
	blobs, err := os.ReadDir(filepath.Join(rdir, "blobs"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list cache %s: %w", rdir, err)
	}
	for _, b := range blobs {
		if fi, err := b.Info(); err == nil && fi.Mode().IsRegular() {
			m.Size += fi.Size()
		}
	}
	refs := refsByCommit(rdir)
	snaps, err := os.ReadDir(filepath.Join(rdir, "snapshots"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list cache %s: %w", rdir, err)
	}
	smol := false
	type dated struct {
		rev  CachedRevision
		unix int64
	}
	var revs []dated
	for _, s := range snaps {
		if !s.IsDir() {
			continue
		}
		rev, hasONNX, err := scanSnapshot(filepath.Join(rdir, "snapshots", s.Name()))
		if err != nil {
			return nil, err
		}
		rev.Refs = refs[rev.Commit]
		if hasONNX || rev.ModelType == "smolvlm" || rev.ModelType == "idefics3" {
			smol = true
		}
		var unix int64
		if fi, err := s.Info(); err == nil {
			unix = fi.ModTime().UnixNano()
		}
		revs = append(revs, dated{rev, unix})
	}
	if !smol {
		return nil, nil
	}
	sort.SliceStable(revs, func(i, j int) bool { return revs[i].unix > revs[j].unix })
	for _, r := range revs {
		m.Revisions = append(m.Revisions, r.rev)
	}
	return m, nil
}

// refsByCommit reads refs/** into commit → ref names.
func refsByCommit(rdir string) map[string][]string {
	out := map[string][]string{}
	root := filepath.Join(rdir, "refs")
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		c := strings.TrimSpace(string(b))
		out[c] = append(out[c], filepath.ToSlash(rel))
		return nil
	})
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

// scanSnapshot describes one snapshot directory.
func scanSnapshot(dir string) (CachedRevision, bool, error) {
	rev := CachedRevision{Commit: filepath.Base(dir), Dir: dir}
	present := map[string]bool{}
	seen := map[string]bool{}
	hasONNX := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		fi, err := os.Stat(path) // follows the link to the blob
		if err != nil {
			return nil // dangling link: the blob is gone
		}
		present[rel] = true
		rev.Files++
		target := path
		if t, err := filepath.EvalSymlinks(path); err == nil {
			target = t
		}
		if !seen[target] {
			seen[target] = true
			rev.Size += fi.Size()
		}
		if strings.HasPrefix(rel, "onnx/") && strings.HasSuffix(rel, ".onnx") {
			hasONNX = true
		}
		return nil
	})
	if err != nil {
		return rev, false, fmt.Errorf("list cache snapshot %s: %w", dir, err)
	}
	for _, d := range modelconfig.Dtypes() {
		all := true
		for _, g := range modelconfig.Graphs() {
			all = all && present[graphFile(g, d)]
		}
		if all {
			rev.Variants = append(rev.Variants, d)
		}
	}
	if present["config.json"] {
		if m, err := modelconfig.Load(dir); err == nil {
			rev.ModelType = m.Config.ModelType
		}
	}
	return rev, hasONNX, nil
}

// Remove deletes a repo from the cache. "org/name" removes the whole repo
// directory: blobs belong to one repo directory, so once no snapshot of the
// repo is left none of its blobs is used. "org/name@revision" removes only
// that snapshot and the refs pointing to it, then the blobs no other snapshot
// of the repo links to. The error wraps ErrNotCached when there is nothing to
// remove.
func Remove(opt Options, spec string) error {
	repo, revision, err := ParseSpec(spec)
	if err != nil {
		return err
	}
	opt = opt.withDefaults()
	rdir := repoDir(opt.CacheDir, repo)
	if _, err := os.Stat(rdir); err != nil {
		return newError(ErrNotCached, nil, "%s is not in the cache %s", repo, opt.CacheDir)
	}
	if !strings.Contains(spec, "@") {
		if err := os.RemoveAll(rdir); err != nil {
			return fmt.Errorf("remove %s: %w", rdir, err)
		}
		if err := os.RemoveAll(filepath.Join(opt.CacheDir, ".locks", repoFolderName(repo))); err != nil {
			return fmt.Errorf("remove locks of %s: %w", repo, err)
		}
		return nil
	}
	return removeRevision(rdir, repo, revision)
}

func removeRevision(rdir, repo, revision string) error {
	commit, ok := readRef(rdir, revision)
	snap := filepath.Join(rdir, "snapshots", commit)
	if _, err := os.Stat(snap); !ok || err != nil {
		return newError(ErrNotCached, nil, "%s has no cached revision %s", repo, revision)
	}
	if err := os.RemoveAll(snap); err != nil {
		return fmt.Errorf("remove %s: %w", snap, err)
	}
	_ = os.RemoveAll(filepath.Join(rdir, ".no_exist", commit))
	for c, names := range refsByCommit(rdir) {
		if c != commit {
			continue
		}
		for _, n := range names {
			if err := os.Remove(filepath.Join(rdir, "refs", filepath.FromSlash(n))); err != nil {
				return fmt.Errorf("remove ref %s of %s: %w", n, repo, err)
			}
		}
	}
	// Blobs still linked from the remaining snapshots stay.
	used := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(rdir, "snapshots"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			if t, err := os.Readlink(path); err == nil {
				used[filepath.Base(t)] = true
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan snapshots of %s: %w", repo, err)
	}
	blobs, err := os.ReadDir(filepath.Join(rdir, "blobs"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("scan blobs of %s: %w", repo, err)
	}
	for _, b := range blobs {
		// An .incomplete file may be a download of another revision in
		// progress; it is not ours to delete.
		if used[b.Name()] || strings.HasSuffix(b.Name(), ".incomplete") {
			continue
		}
		if err := os.Remove(filepath.Join(rdir, "blobs", b.Name())); err != nil {
			return fmt.Errorf("remove blob %s of %s: %w", b.Name(), repo, err)
		}
	}
	return nil
}
