package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// userAgent identifies snapvlm to the Hub, as huggingface_hub identifies itself.
const userAgent = "snapvlm; hf_hub-compatible"

// maxRedirects bounds a redirect chain (the Hub uses one or two).
const maxRedirects = 10

// client talks to one Hub endpoint.
type client struct {
	opt      Options
	hc       *http.Client
	endpoint *url.URL
}

func newClient(opt Options) (*client, error) {
	u, err := url.Parse(opt.Endpoint)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("hub endpoint %q: want an absolute URL like %s", opt.Endpoint, DefaultEndpoint)
	}
	hc := http.Client{}
	if opt.HTTPClient != nil {
		hc = *opt.HTTPClient
	}
	// Redirects are followed by hand so the token is only ever sent to the
	// endpoint's host (a CDN must not see it) and so HEAD can stop at the
	// CDN redirect, whose headers carry the file's metadata.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &client{opt: opt, hc: &hc, endpoint: u}, nil
}

// sameHost reports whether u is on the endpoint's scheme, host and port.
func (c *client) sameHost(u *url.URL) bool {
	return u.Scheme == c.endpoint.Scheme && u.Host == c.endpoint.Host
}

// redirectPolicy says which redirects a request follows.
type redirectPolicy int

const (
	followNone     redirectPolicy = iota
	followSameHost                // renamed repos: /old/name → /new/name
	followAll                     // downloads: the Hub redirects LFS files to a CDN
)

// send performs one request, following redirects per policy, without
// retrying. The Authorization header goes only to the endpoint's host.
func (c *client) send(ctx context.Context, method, rawURL string, hdr http.Header, policy redirectPolicy) (*http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", rawURL, err)
	}
	for hops := 0; ; hops++ {
		req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("request %s: %w", u, err)
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", userAgent)
		// Identity keeps byte offsets meaningful for Range and the
		// announced sizes equal to what is written.
		req.Header.Set("Accept-Encoding", "identity")
		if c.opt.Token != "" && c.sameHost(u) {
			req.Header.Set("Authorization", "Bearer "+c.opt.Token)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode < 300 || resp.StatusCode > 399 || resp.StatusCode == http.StatusNotModified {
			return resp, nil
		}
		loc := resp.Header.Get("Location")
		if loc == "" {
			return resp, nil
		}
		next, err := u.Parse(loc)
		if err != nil {
			resp.Body.Close()
			return nil, fmt.Errorf("request %s: bad redirect %q: %w", u, loc, err)
		}
		follow := policy == followAll || (policy == followSameHost && c.sameHost(next))
		if !follow {
			return resp, nil
		}
		if hops >= maxRedirects {
			resp.Body.Close()
			return nil, fmt.Errorf("request %s: more than %d redirects", rawURL, maxRedirects)
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		u = next
	}
}

// do is send with retries: 5xx and 429 answers and dropped connections are
// retried up to opt.Retries times with doubling backoff. Connection failures
// that mean "no network" (DNS, refused, unreachable) fail at once with
// ErrUnavailable, so an offline machine gets its answer without waiting.
func (c *client) do(ctx context.Context, method, rawURL string, hdr http.Header, policy redirectPolicy) (*http.Response, error) {
	backoff := c.opt.RetryBackoff
	for attempt := 0; ; attempt++ {
		resp, err := c.send(ctx, method, rawURL, hdr, policy)
		retry := false
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil && isNoNetwork(err):
			return nil, newError(ErrUnavailable, err, "cannot reach the Hub at %s (no network? set HF_HUB_OFFLINE=1 to use the cache only)", c.opt.Endpoint)
		case err != nil:
			retry = true
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
			retry = true
		}
		if !retry {
			return resp, nil
		}
		if attempt >= c.opt.Retries {
			if err != nil {
				return nil, newError(ErrUnavailable, err, "%s %s failed after %d attempts", method, rawURL, attempt+1)
			}
			return resp, nil
		}
		if resp != nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
		}
		if err := sleep(ctx, backoff); err != nil {
			return nil, err
		}
		backoff *= 2
	}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// isNoNetwork reports errors that retrying soon will not fix: the host cannot
// be resolved or connected to.
func isNoNetwork(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// statusError turns a non-2xx answer into an error that says what to do. The
// Hub names the failure in X-Error-Code (RepoNotFound, GatedRepo,
// RevisionNotFound, EntryNotFound); plain status codes are the fallback.
func (c *client) statusError(resp *http.Response, repo, revision, file string) error {
	code := resp.Header.Get("X-Error-Code")
	msg := resp.Header.Get("X-Error-Message")
	if msg == "" {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var body struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &body) == nil {
			msg = body.Error
		}
	}
	page := c.opt.Endpoint + "/" + repo
	what := repo
	if file != "" {
		what = fmt.Sprintf("%s from %s", file, repo)
	}
	switch {
	case code == "GatedRepo":
		if c.opt.Token == "" {
			return newError(ErrGated, nil, "%s is gated: accept the license at %s and set HF_TOKEN (a token from %s/settings/tokens)", repo, page, c.opt.Endpoint)
		}
		return newError(ErrGated, nil, "%s is gated and your token has no access yet: accept the license at %s with the account the token belongs to", repo, page)
	case code == "RepoNotFound" || (resp.StatusCode == http.StatusNotFound && code == "" && file == ""):
		if c.opt.Token == "" {
			return newError(ErrRepoNotFound, nil, "repository %s not found at %s: check the name; if it is private, set HF_TOKEN", repo, c.opt.Endpoint)
		}
		return newError(ErrRepoNotFound, nil, "repository %s not found at %s: check the name, and that your token can read it if it is private", repo, c.opt.Endpoint)
	case code == "RevisionNotFound":
		return newError(ErrRevisionNotFound, nil, "revision %q not found in %s: check the branch, tag or commit", revision, repo)
	case code == "EntryNotFound" || resp.StatusCode == http.StatusNotFound:
		return newError(ErrFileNotFound, nil, "%s not found (revision %s)", what, revision)
	case resp.StatusCode == http.StatusUnauthorized:
		return newError(ErrUnauthorized, nil, "%s: the Hub wants a valid token (HTTP 401%s): set HF_TOKEN to a token from %s/settings/tokens", what, detail(msg), c.opt.Endpoint)
	case resp.StatusCode == http.StatusForbidden:
		return newError(ErrUnauthorized, nil, "%s: access denied (HTTP 403%s): check that your token has read access to %s", what, detail(msg), page)
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return newError(ErrUnavailable, nil, "%s: the Hub keeps failing (HTTP %d%s): try again later", what, resp.StatusCode, detail(msg))
	}
	return fmt.Errorf("%s: unexpected HTTP %d%s", what, resp.StatusCode, detail(msg))
}

func detail(msg string) string {
	if msg == "" {
		return ""
	}
	return ": " + msg
}

// repoInfo is the part of /api/models/{repo}/revision/{rev} used here.
type repoInfo struct {
	ID       string    `json:"id"`
	SHA      string    `json:"sha"`
	Gated    any       `json:"gated"` // false, "auto" or "manual"
	Private  bool      `json:"private"`
	Siblings []sibling `json:"siblings"`
}

// sibling is one file of the repo (with ?blobs=true: size, blobId, lfs).
type sibling struct {
	RFilename string   `json:"rfilename"`
	Size      *int64   `json:"size"`
	BlobID    string   `json:"blobId"`
	LFS       *lfsInfo `json:"lfs"`
}

type lfsInfo struct {
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
	PointerSize int64  `json:"pointerSize"`
}

func (r *repoInfo) gated() bool {
	switch g := r.Gated.(type) {
	case bool:
		return g
	case string:
		return g != "" && g != "false"
	}
	return false
}

// info fetches the repo's file list at revision, with sizes and hashes.
func (c *client) info(ctx context.Context, repo, revision string) (*repoInfo, error) {
	u := fmt.Sprintf("%s/api/models/%s/revision/%s?blobs=true", c.opt.Endpoint, repo, url.PathEscape(revision))
	resp, err := c.do(ctx, http.MethodGet, u, nil, followSameHost)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, c.statusError(resp, repo, revision, "")
	}
	var info repoInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return nil, fmt.Errorf("model info of %s@%s from %s: %w", repo, revision, u, err)
	}
	if !commitPattern.MatchString(info.SHA) {
		return nil, fmt.Errorf("model info of %s@%s from %s: sha %q is not a commit hash", repo, revision, u, info.SHA)
	}
	return &info, nil
}

// resolveURL is where a file is fetched from.
func (c *client) resolveURL(repo, commit, path string) string {
	return fmt.Sprintf("%s/%s/resolve/%s/%s", c.opt.Endpoint, repo, url.PathEscape(commit), escapePath(path))
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// fileMeta is what a HEAD on the resolve URL tells, as huggingface_hub's
// get_hf_file_metadata reads it.
type fileMeta struct {
	Commit string
	Etag   string // X-Linked-Etag (LFS sha256) or ETag (git blob sha1)
	Size   int64  // X-Linked-Size or Content-Length; -1 when unknown
	LFS    bool
}

// head asks for a file's metadata without following the CDN redirect, whose
// own headers (X-Linked-Etag, X-Linked-Size) describe the file.
func (c *client) head(ctx context.Context, repo, commit, path string) (*fileMeta, error) {
	resp, err := c.do(ctx, http.MethodHead, c.resolveURL(repo, commit, path), nil, followSameHost)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return nil, c.statusError(resp, repo, commit, path)
	}
	m := &fileMeta{Commit: resp.Header.Get("X-Repo-Commit"), Size: -1}
	if e := resp.Header.Get("X-Linked-Etag"); e != "" {
		m.Etag, m.LFS = normalizeEtag(e), true
	} else {
		m.Etag = normalizeEtag(resp.Header.Get("ETag"))
	}
	sz := resp.Header.Get("X-Linked-Size")
	if sz == "" {
		sz = resp.Header.Get("Content-Length")
	}
	if n, err := strconv.ParseInt(sz, 10, 64); err == nil {
		m.Size = n
	}
	if m.Etag == "" {
		return nil, fmt.Errorf("%s from %s: the Hub sent no ETag, so the file cannot be stored in the cache", path, repo)
	}
	return m, nil
}

// normalizeEtag drops the weak prefix and quotes: W/"abc" → abc.
func normalizeEtag(e string) string {
	e = strings.TrimPrefix(strings.TrimSpace(e), "W/")
	return strings.Trim(e, `"`)
}
