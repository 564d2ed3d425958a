package hub

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/snapvlm/snapvlm/internal/modelconfig"
)

// PlanFile is one file a pull needs.
type PlanFile struct {
	// Path is the file's path in the repo ("onnx/embed_tokens_q4.onnx").
	Path string
	// Size is its size in bytes (-1 when the Hub did not say).
	Size int64
	// Etag names its blob: the sha256 for LFS files, the git blob sha1
	// otherwise. The downloaded bytes are checked against it.
	Etag string
	// LFS is true for files stored with Git LFS (the ONNX graphs).
	LFS bool
	// Cached is true when the blob is already in the cache (downloaded by
	// snapvlm or by huggingface_hub); it is linked, not downloaded.
	Cached bool
}

// PullPlan says what a pull will fetch, before anything is downloaded.
type PullPlan struct {
	// Repo and Revision are what was asked for; Commit is what Revision
	// pointed to when the plan was made.
	Repo, Revision, Commit string
	// Dtypes describes the ONNX variants the plan fetches ("q4",
	// "q4, vision_encoder=fp32").
	Dtypes string
	// Files are the files of the snapshot, configs first.
	Files []PlanFile
	// TotalBytes is the size of all Files; DownloadBytes and Downloads
	// count only those not cached yet.
	TotalBytes, DownloadBytes int64
	Downloads                 int
	// CacheDir is the hub cache the files go to.
	CacheDir string
	// Available are the variants the repo has all three graphs of.
	Available []string
}

// Plan lists what pulling repo at revision would fetch for opt.Dtypes: the
// configs and the chosen ONNX variants. It asks the Hub for the file list
// (one request, plus a HEAD per file when the Hub omits sizes or hashes) and
// downloads nothing. A variant the repo lacks is an error wrapping
// ErrVariantMissing that lists the variants it has.
func Plan(ctx context.Context, repo, revision string, opt Options) (*PullPlan, error) {
	opt = opt.withDefaults()
	if revision == "" {
		revision = DefaultRevision
	}
	if !validRepoID(repo) {
		return nil, fmt.Errorf("model %q: want a repo id ORG/NAME", repo)
	}
	if err := checkRevision(revision); err != nil {
		return nil, fmt.Errorf("model %s: %w", repo, err)
	}
	if err := checkDtypes(opt); err != nil {
		return nil, err
	}
	if opt.Offline {
		return nil, newError(ErrOffline, nil, "cannot list %s: offline mode is on (HF_HUB_OFFLINE=1)", repo)
	}
	c, err := newClient(opt)
	if err != nil {
		return nil, err
	}
	info, err := c.info(ctx, repo, revision)
	if err != nil {
		return nil, err
	}
	if info.gated() && opt.Token == "" {
		return nil, newError(ErrGated, nil, "%s is gated: accept the license at %s/%s and set HF_TOKEN (a token from %s/settings/tokens)", repo, opt.Endpoint, repo, opt.Endpoint)
	}
	names, available, err := selectFiles(repo, revision, info.Siblings, opt)
	if err != nil {
		return nil, err
	}
	bySibling := map[string]sibling{}
	for _, s := range info.Siblings {
		bySibling[s.RFilename] = s
	}
	plan := &PullPlan{Repo: repo, Revision: revision, Commit: info.SHA, Dtypes: dtypeSummary(opt), CacheDir: opt.CacheDir, Available: available}
	rdir := repoDir(opt.CacheDir, repo)
	for _, name := range names {
		f, err := planFile(ctx, c, repo, info.SHA, bySibling[name])
		if err != nil {
			return nil, err
		}
		f.Cached = blobComplete(filepath.Join(rdir, "blobs", f.Etag), f.Size)
		plan.Files = append(plan.Files, f)
		if f.Size > 0 {
			plan.TotalBytes += f.Size
		}
		if !f.Cached {
			plan.Downloads++
			if f.Size > 0 {
				plan.DownloadBytes += f.Size
			}
		}
	}
	return plan, nil
}

// planFile takes size and blob name from the listing, or from a HEAD on the
// file when the listing lacks them (mirrors without ?blobs=true).
func planFile(ctx context.Context, c *client, repo, commit string, s sibling) (PlanFile, error) {
	f := PlanFile{Path: s.RFilename, Size: -1}
	switch {
	case s.LFS != nil && len(s.LFS.SHA256) == 64:
		f.Etag, f.Size, f.LFS = s.LFS.SHA256, s.LFS.Size, true
	case s.LFS == nil && s.BlobID != "" && s.Size != nil:
		f.Etag, f.Size = s.BlobID, *s.Size
	default:
		m, err := c.head(ctx, repo, commit, s.RFilename)
		if err != nil {
			return f, err
		}
		f.Etag, f.Size, f.LFS = m.Etag, m.Size, m.LFS
	}
	if !safeBlobName(f.Etag) {
		return f, fmt.Errorf("%s from %s: blob name %q from the Hub is not a hash", s.RFilename, repo, f.Etag)
	}
	return f, nil
}

var blobNamePattern = regexp.MustCompile(`^[0-9A-Za-z_-]{8,128}$`)

// safeBlobName keeps a name from the network from escaping blobs/.
func safeBlobName(s string) bool { return blobNamePattern.MatchString(s) }

// safeRepoPath rejects repo paths that would escape the snapshot directory.
func safeRepoPath(p string) bool {
	return p != "" && !strings.HasPrefix(p, "/") && !strings.Contains(p, `\`) &&
		path.Clean(p) == p && p != "." && !strings.HasPrefix(p, "../") && p != ".."
}

// selectFiles picks the configs and the graphs of dtypes (each graph's
// external-data files before the graph, so a present .onnx in a snapshot
// means its data is there too). It returns the variants the repo has all
// graphs of.
func selectFiles(repo, revision string, siblings []sibling, opt Options) ([]string, []string, error) {
	have := map[string]bool{}
	hasONNX := false
	for _, s := range siblings {
		if !safeRepoPath(s.RFilename) {
			return nil, nil, fmt.Errorf("%s@%s lists an unsafe file name %q", repo, revision, s.RFilename)
		}
		have[s.RFilename] = true
		if strings.HasPrefix(s.RFilename, "onnx/") && strings.HasSuffix(s.RFilename, ".onnx") {
			hasONNX = true
		}
	}
	if !have["config.json"] {
		return nil, nil, fmt.Errorf("%s@%s has no config.json: not a model repo snapvlm can run", repo, revision)
	}
	var available []string
	for _, d := range modelconfig.Dtypes() {
		all := true
		for _, g := range modelconfig.Graphs() {
			all = all && have[graphFile(g, d)]
		}
		if all {
			available = append(available, d)
		}
	}
	if !hasONNX {
		return nil, nil, newError(ErrVariantMissing, nil, "%s@%s has no ONNX export (no onnx/*.onnx): snapvlm needs a repo with the vision_encoder, embed_tokens and decoder_model_merged graphs", repo, revision)
	}
	var missing []string
	for _, f := range graphFiles(opt) {
		if !have[f] {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		avail := "none complete"
		if len(available) > 0 {
			avail = strings.Join(available, ", ")
		}
		return nil, nil, newError(ErrVariantMissing, nil, "%s@%s has no %s variant (missing %s); variants in the repo: %s",
			repo, revision, dtypeSummary(opt), strings.Join(missing, ", "), avail)
	}
	var names []string
	seen := map[string]bool{}
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for _, f := range configFiles {
		if have[f] {
			add(f)
		}
	}
	for _, f := range graphFiles(opt) {
		data := regexp.MustCompile(`^` + regexp.QuoteMeta(f+"_data") + `(_\d+)?$`)
		var parts []string
		for _, s := range siblings {
			if data.MatchString(s.RFilename) {
				parts = append(parts, s.RFilename)
			}
		}
		sort.Strings(parts)
		for _, p := range parts {
			add(p)
		}
		add(f)
	}
	return names, available, nil
}

// Download fetches the files of plan that are not cached yet, links all of
// them into snapshots/<commit>, records refs/<revision> and returns the
// snapshot directory. Progress goes to opt.Progress.
func Download(ctx context.Context, plan *PullPlan, opt Options) (string, error) {
	opt = opt.withDefaults()
	if opt.Offline {
		return "", newError(ErrOffline, nil, "cannot download %s: offline mode is on (HF_HUB_OFFLINE=1)", plan.Repo)
	}
	c, err := newClient(opt)
	if err != nil {
		return "", err
	}
	prog := newProgress(opt.Progress, opt.OnProgress)
	rdir := repoDir(opt.CacheDir, plan.Repo)
	if plan.Downloads > 0 {
		prog.printf("pulling %s@%s (commit %.12s): %d files, %s to download into %s",
			plan.Repo, plan.Revision, plan.Commit, plan.Downloads, humanBytes(plan.DownloadBytes), opt.CacheDir)
	}
	for i := range plan.Files {
		if err := c.fetch(ctx, rdir, plan, &plan.Files[i], prog); err != nil {
			return "", err
		}
		plan.Files[i].Cached = true
	}
	if err := writeRef(rdir, plan.Revision, plan.Commit); err != nil {
		return "", err
	}
	return filepath.Join(rdir, "snapshots", plan.Commit), nil
}

// Pull makes repo at revision available in the cache with the graphs of
// opt.Dtypes (and opt.GraphDtypes) and returns its snapshot directory. Blobs already cached (by
// snapvlm or huggingface_hub) are reused. Offline (opt.Offline) or without a
// network, a cached snapshot is returned and a missing one is an error
// wrapping ErrNotCached.
func Pull(ctx context.Context, repo, revision string, opt Options) (string, error) {
	opt = opt.withDefaults()
	if revision == "" {
		revision = DefaultRevision
	}
	if opt.Offline {
		return cachedSnapshot(repo, revision, opt)
	}
	plan, err := Plan(ctx, repo, revision, opt)
	if errors.Is(err, ErrUnavailable) {
		if dir, cerr := cachedSnapshot(repo, revision, opt); cerr == nil {
			newProgress(opt.Progress, opt.OnProgress).printf("the Hub is unreachable; using the cached %s", dir)
			return dir, nil
		}
		return "", newError(ErrNotCached, err, "%s is not in the cache and cannot be downloaded", repo)
	}
	if err != nil {
		return "", err
	}
	return Download(ctx, plan, opt)
}

// ConfirmPull asks whether to download what plan lists. On a terminal (in
// is a tty) it asks "download N files, X MB? [Y/n]" on out and reads the
// answer (empty means yes). Otherwise it says on out that it proceeds and
// returns true. A plan with nothing to download needs no consent. A
// cancelled ctx is a no.
func ConfirmPull(ctx context.Context, in io.Reader, out io.Writer, plan *PullPlan) bool {
	return confirm(ctx, in, out, plan, isTerminal(in))
}

func confirm(ctx context.Context, in io.Reader, out io.Writer, plan *PullPlan, interactive bool) bool {
	if plan.Downloads == 0 {
		return true
	}
	what := fmt.Sprintf("%s is not in the cache: download %d files, %s into %s", plan.Repo, plan.Downloads, humanBytes(plan.DownloadBytes), plan.CacheDir)
	if !interactive {
		fmt.Fprintf(out, "%s (not asking: stdin is not a terminal).\n", what)
		return true
	}
	fmt.Fprintf(out, "%s? [Y/n] ", what)
	answer := make(chan string, 1)
	go func() {
		// The read cannot be interrupted; on cancellation it is abandoned.
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && line == "" {
			answer <- "n" // EOF (Ctrl-D) is a no
			return
		}
		answer <- line
	}()
	select {
	case <-ctx.Done():
		fmt.Fprintln(out)
		return false
	case a := <-answer:
		switch strings.ToLower(strings.TrimSpace(a)) {
		case "", "y", "yes":
			return true
		}
		return false
	}
}

// Ensure is what a --model flag needs: Resolve, and when a repo is not
// cached (or lacks the variant) and the Hub may be used, Plan, ask confirm
// (nil means yes) and Download. It returns the model directory.
func Ensure(ctx context.Context, spec string, opt Options, confirm func(context.Context, *PullPlan) bool) (string, error) {
	dir, err := Resolve(ctx, spec, opt)
	if err == nil || !errors.Is(err, ErrNotCached) || opt.Offline {
		return dir, err
	}
	repo, revision, err := ParseSpec(spec)
	if err != nil {
		return "", err
	}
	plan, err := Plan(ctx, repo, revision, opt)
	if err != nil {
		return "", err
	}
	if confirm != nil && !confirm(ctx, plan) {
		return "", fmt.Errorf("download of %s declined", repo)
	}
	return Download(ctx, plan, opt)
}
