// Package hub fetches SmolVLM ONNX exports from the Hugging Face Hub into the
// standard Hugging Face cache and finds them there again.
//
// The cache layout is the one huggingface_hub writes, so a model downloaded by
// Python (transformers, huggingface-cli) is reused by snapvlm and the other way
// round:
//
//	$HF_HUB_CACHE/models--ORG--NAME/
//	    blobs/<etag>                       file contents (sha256 for LFS files, git blob sha1 otherwise)
//	    blobs/<etag>.incomplete            a download in progress (resumed with HTTP Range)
//	    refs/<revision>                    the commit a branch or tag pointed to
//	    snapshots/<commit>/<path>          relative symlinks to ../../blobs/<etag>
//	$HF_HUB_CACHE/.locks/models--ORG--NAME/<etag>.lock
//
// Only the files snapvlm needs are fetched: the JSON configs and the ONNX
// graphs (vision_encoder, embed_tokens, decoder_model_merged) of the chosen
// variants, with their external-data files. Files are listed with the model
// info API (GET /api/models/{repo}/revision/{rev}?blobs=true, the call
// huggingface_hub's snapshot_download makes through repo_info) and fetched
// from /{repo}/resolve/{commit}/{path}.
package hub

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/snapvlm/snapvlm/internal/modelconfig"
)

// DefaultEndpoint is the Hub used when HF_ENDPOINT is not set.
const DefaultEndpoint = "https://huggingface.co"

// DefaultRevision is the branch used when a spec names none.
const DefaultRevision = "main"

// DefaultDtype is the ONNX variant fetched when Options.Dtypes is empty. q4
// keeps the decoder small and runs on the CPU execution provider.
const DefaultDtype = "q4"

// Dtypes returns the names of the ONNX variants the Hub exports use, in a
// stable order.
func Dtypes() []string { return modelconfig.Dtypes() }

// configFiles are the non-ONNX files a model directory may need. Absent ones
// are skipped; config.json is required.
var configFiles = []string{
	"config.json",
	"generation_config.json",
	"preprocessor_config.json",
	"processor_config.json",
	"video_preprocessor_config.json",
	"tokenizer.json",
	"tokenizer_config.json",
	"special_tokens_map.json",
	"added_tokens.json",
	"chat_template.json",
	"chat_template.jinja",
}

// Errors callers test with errors.Is. The messages of the errors wrapping
// them name the repo and tell the user what to do.
var (
	// ErrNotCached: the model (or the requested variant) is not in the cache.
	ErrNotCached = errors.New("model not in cache")
	// ErrOffline: the Hub may not be contacted (HF_HUB_OFFLINE=1).
	ErrOffline = errors.New("offline mode")
	// ErrUnavailable: the Hub cannot be reached or keeps failing (no
	// network, DNS failure, connection refused, 5xx after all retries).
	ErrUnavailable = errors.New("hub unavailable")
	// ErrGated: the repo is gated and the token (if any) has no access.
	ErrGated = errors.New("gated repository")
	// ErrUnauthorized: the Hub refused the request for lack of a valid token.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrRepoNotFound: no such repo (or private and the token cannot see it).
	ErrRepoNotFound = errors.New("repository not found")
	// ErrRevisionNotFound: the repo has no such branch, tag or commit.
	ErrRevisionNotFound = errors.New("revision not found")
	// ErrFileNotFound: the repo has no such file at that revision.
	ErrFileNotFound = errors.New("file not found")
	// ErrVariantMissing: the repo lacks an ONNX variant that was asked for.
	ErrVariantMissing = errors.New("variant missing")
	// ErrChecksum: downloaded bytes do not match the hash the Hub announced.
	ErrChecksum = errors.New("checksum mismatch")
)

// hubError is an error with a user-facing message and sentinel kinds.
type hubError struct {
	kinds []error
	msg   string
	cause error
}

func (e *hubError) Error() string {
	if e.cause != nil {
		return e.msg + ": " + e.cause.Error()
	}
	return e.msg
}

// Unwrap exposes the sentinels and the underlying cause to errors.Is/As.
func (e *hubError) Unwrap() []error {
	if e.cause != nil {
		return append(append([]error(nil), e.kinds...), e.cause)
	}
	return e.kinds
}

func newError(kind error, cause error, format string, args ...any) error {
	return &hubError{kinds: []error{kind}, msg: fmt.Sprintf(format, args...), cause: cause}
}

// Options configures where models come from and where they go. The zero
// value is usable: every empty field takes the default OptionsFromEnv would
// give it, except Token, Offline and Progress.
type Options struct {
	// Endpoint is the Hub URL (default $HF_ENDPOINT or https://huggingface.co).
	Endpoint string
	// CacheDir is the hub cache (default $HF_HUB_CACHE, else $HF_HOME/hub,
	// else ~/.cache/huggingface/hub).
	CacheDir string
	// Token is sent as a Bearer token to Endpoint only, never to the CDN a
	// download redirects to (default $HF_TOKEN, else the token file
	// huggingface_hub writes, $HF_TOKEN_PATH or $HF_HOME/token).
	Token string
	// Offline forbids network access (default HF_HUB_OFFLINE=1).
	Offline bool
	// Dtypes are the ONNX variants to fetch or require for each graph
	// (default DefaultDtype).
	Dtypes []string
	// GraphDtypes overrides Dtypes for single graphs, keyed by graph name
	// ("vision_encoder", "embed_tokens", "decoder_model_merged"), e.g. an
	// fp32 vision encoder with a q4 decoder.
	GraphDtypes map[string]string
	// Progress receives a progress bar per file on a terminal and plain
	// lines otherwise; nil is quiet.
	Progress io.Writer
	// OnProgress, when set, is called on the downloading goroutine as a
	// file's bytes arrive: its repo path, the bytes of it present and its
	// size (-1 when unknown). After a dropped connection that forces a
	// restart, done goes down again.
	OnProgress func(file string, done, size int64)
	// HTTPClient is used for all requests (default http.DefaultClient's
	// transport). Its redirect policy is replaced: redirects are followed by
	// this package so the token never leaves Endpoint's host.
	HTTPClient *http.Client
	// Retries is how many times a request is retried after a 5xx answer or
	// a dropped connection (default 5; negative means none).
	Retries int
	// RetryBackoff is the first wait between retries; it doubles each time
	// (default 1s). Tests set it to a millisecond.
	RetryBackoff time.Duration
}

// OptionsFromEnv returns Options filled from the environment the way
// huggingface_hub reads it.
func OptionsFromEnv() Options {
	return Options{
		Endpoint: envEndpoint(),
		CacheDir: envCacheDir(),
		Token:    envToken(),
		Offline:  isTrue(os.Getenv("HF_HUB_OFFLINE")),
	}
}

func envEndpoint() string {
	if e := strings.TrimRight(os.Getenv("HF_ENDPOINT"), "/"); e != "" {
		return e
	}
	return DefaultEndpoint
}

// hfHome is $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface.
func hfHome() string {
	if h := os.Getenv("HF_HOME"); h != "" {
		return expandHome(h)
	}
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(expandHome(x), "huggingface")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".cache", "huggingface")
	}
	return filepath.Join(home, ".cache", "huggingface")
}

func envCacheDir() string {
	for _, k := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"} {
		if d := os.Getenv(k); d != "" {
			return expandHome(d)
		}
	}
	return filepath.Join(hfHome(), "hub")
}

func envToken() string {
	for _, k := range []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"} {
		if t := strings.TrimSpace(os.Getenv(k)); t != "" {
			return t
		}
	}
	path := os.Getenv("HF_TOKEN_PATH")
	if path == "" {
		path = filepath.Join(hfHome(), "token")
	}
	b, err := os.ReadFile(expandHome(path))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

// isTrue reads a boolean environment value as huggingface_hub does.
func isTrue(v string) bool {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "1", "ON", "YES", "TRUE":
		return true
	}
	return false
}

// withDefaults fills the empty fields of o.
func (o Options) withDefaults() Options {
	if o.Endpoint == "" {
		o.Endpoint = envEndpoint()
	}
	o.Endpoint = strings.TrimRight(o.Endpoint, "/")
	if o.CacheDir == "" {
		o.CacheDir = envCacheDir()
	}
	if len(o.Dtypes) == 0 {
		o.Dtypes = []string{DefaultDtype}
	}
	if o.Retries == 0 {
		o.Retries = 5
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = time.Second
	}
	return o
}

// Graphs returns the names of the three ONNX graphs of a SmolVLM export.
func Graphs() []string { return modelconfig.Graphs() }

// checkDtypes rejects variant and graph names the exports do not use.
func checkDtypes(o Options) error {
	check := func(d string) error {
		if _, ok := modelconfig.DtypeSuffix(d); !ok {
			return fmt.Errorf("unknown dtype %q: want one of %s", d, strings.Join(modelconfig.Dtypes(), ", "))
		}
		return nil
	}
	for _, d := range o.Dtypes {
		if err := check(d); err != nil {
			return err
		}
	}
	for g, d := range o.GraphDtypes {
		if !modelconfig.IsGraph(g) {
			return fmt.Errorf("unknown graph %q: want one of %s", g, strings.Join(modelconfig.Graphs(), ", "))
		}
		if err := check(d); err != nil {
			return err
		}
	}
	return nil
}

// graphFiles returns the repo paths of the graph files opt asks for, in
// graph order.
func graphFiles(o Options) []string {
	var out []string
	for _, g := range modelconfig.Graphs() {
		ds := o.Dtypes
		if d := o.GraphDtypes[g]; d != "" {
			ds = []string{d}
		}
		for _, d := range ds {
			if f := graphFile(g, d); !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out
}

// dtypeSummary describes the variants opt asks for: "q4", "fp32+q4",
// "q4, vision_encoder=fp32".
func dtypeSummary(o Options) string {
	s := strings.Join(o.Dtypes, "+")
	for _, g := range modelconfig.Graphs() {
		if d := o.GraphDtypes[g]; d != "" {
			s += ", " + g + "=" + d
		}
	}
	return s
}

// repoIDPattern follows the Hub's rules for names: letters, digits, '-', '_'
// and '.', not starting or ending with '-' or '.'.
var repoIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$`)

// ParseSpec splits "org/name" or "org/name@revision" into the repo id and
// the revision (DefaultRevision when absent).
func ParseSpec(spec string) (repo, revision string, err error) {
	repo, revision = spec, DefaultRevision
	if i := strings.IndexByte(spec, '@'); i >= 0 {
		repo, revision = spec[:i], spec[i+1:]
		if revision == "" {
			return "", "", fmt.Errorf("model %q: empty revision after '@'", spec)
		}
	}
	if !validRepoID(repo) {
		return "", "", fmt.Errorf("model %q: want a repo id ORG/NAME (optionally @REVISION)", spec)
	}
	if err := checkRevision(revision); err != nil {
		return "", "", fmt.Errorf("model %q: %w", spec, err)
	}
	return repo, revision, nil
}

// checkRevision accepts what the Hub accepts as a revision: a 40-hex commit,
// or a branch or tag name by git's rules (git check-ref-format: components
// separated by single '/', none empty, starting with '.' or ending with
// ".lock"; no "..", "@{", control characters, space or any of ~^:?*[\),
// such as "main", "v1.0" or "refs/pr/3". The revision names a file under
// the repo's refs/ folder, so these rules also keep it inside the cache.
func checkRevision(rev string) error {
	bad := func(why string) error {
		return fmt.Errorf("revision %q: %s (want a branch, tag or 40-hex commit)", rev, why)
	}
	switch {
	case rev == "":
		return bad("empty")
	case len(rev) > 255:
		return bad("longer than 255 bytes")
	case rev == "@":
		return bad("is '@'")
	case strings.Contains(rev, ".."):
		return bad(`contains ".."`)
	case strings.Contains(rev, "@{"):
		return bad(`contains "@{"`)
	}
	for _, r := range rev {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return bad(fmt.Sprintf("contains %q", r))
		}
	}
	for _, part := range strings.Split(rev, "/") {
		switch {
		case part == "":
			return bad("has an empty path component")
		case strings.HasPrefix(part, "."):
			return bad("has a component starting with '.'")
		case strings.HasSuffix(part, ".lock"):
			return bad(`has a component ending with ".lock"`)
		}
	}
	if strings.HasSuffix(rev, ".") {
		return bad("ends with '.'")
	}
	return nil
}

func validRepoID(repo string) bool {
	if len(repo) > 96 || !repoIDPattern.MatchString(repo) {
		return false
	}
	if strings.Contains(repo, "--") || strings.Contains(repo, "..") {
		return false
	}
	for _, part := range strings.Split(repo, "/") {
		if strings.HasSuffix(part, ".") || strings.HasSuffix(part, "-") || strings.HasPrefix(part, "-") || strings.HasPrefix(part, ".") {
			return false
		}
	}
	return true
}

// IsRepoID reports whether s names a Hub repo ("org/name" or
// "org/name@revision") rather than a local path. An existing local path
// always wins, as in transformers.
func IsRepoID(s string) bool {
	if _, err := os.Stat(s); err == nil {
		return false
	}
	_, _, err := ParseSpec(s)
	return err == nil
}
