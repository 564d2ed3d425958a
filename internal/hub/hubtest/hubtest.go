// Package hubtest is a fake Hugging Face Hub for tests. It speaks the parts
// of the real API that huggingface_hub and package hub use:
//
//	GET  /api/models/{org}/{name}/revision/{rev}[?blobs=true]
//	     {"id", "sha", "private", "gated", "siblings": [{"rfilename", "size", "blobId", "lfs": {"sha256", "size", "pointerSize"}}]}
//	HEAD /{org}/{name}/resolve/{rev}/{path}
//	GET  /{org}/{name}/resolve/{rev}/{path}
//
// Regular files are answered directly with ETag "<git blob sha1>" and
// X-Repo-Commit; LFS files (*.onnx, *.onnx_data*) are answered with a 302 to
// a second server (another host, as the real CDN) carrying X-Linked-Etag
// (sha256), X-Linked-Size and X-Repo-Commit. Both servers honour
// "Range: bytes=N-". Errors carry X-Error-Code (RepoNotFound, GatedRepo,
// RevisionNotFound, EntryNotFound) like the Hub's. Faults (500s, dropped
// connections, corrupted bytes) are injected per file.
package hubtest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Repo is one model repo on the fake Hub, at a single commit.
type Repo struct {
	// ID is "org/name".
	ID string
	// Commit is the 40-hex commit "main" points to.
	Commit string
	// Files maps repo paths to contents.
	Files map[string][]byte
	// Gated repos list files to anyone but serve them only with Token.
	Gated bool
	// Private repos exist only for requests with Token.
	Private bool
}

// Fault is trouble injected into the GETs of one file's content.
type Fault struct {
	// Status500 answers this many GETs with 500 before serving.
	Status500 int
	// DropAfter, when > 0, cuts the connection once after this many body bytes.
	DropAfter int
	// Corrupt flips one byte of every answer.
	Corrupt bool
}

// Request is one request a server saw.
type Request struct {
	// Server is "hub" or "cdn".
	Server string
	Method string
	Path   string
	Range  string
	// Auth is the Authorization header.
	Auth string
}

// Server is a running fake Hub and its CDN.
type Server struct {
	// Hub is the API and resolve server; CDN serves LFS contents.
	Hub, CDN *httptest.Server
	// Token grants access to gated and private repos.
	Token string
	// NoBlobs makes the listing omit size, blobId and lfs, as a mirror
	// without ?blobs=true support would.
	NoBlobs bool

	mu     sync.Mutex
	repos  map[string]*Repo
	sums   map[string]fileSums // by repo id + "\x00" + path
	faults map[string]*Fault   // by repo path
	log    []Request
}

// fileSums are a file's hashes, computed once so the fake Hub stays fast.
type fileSums struct {
	sha256, gitSHA1, pointerSHA1 string
	pointerSize                  int
}

// addRepo stores r and its hashes; s.mu must be held.
func (s *Server) addRepo(r Repo) {
	s.repos[r.ID] = &r
	for p, d := range r.Files {
		fs := fileSums{sha256: SHA256(d), gitSHA1: GitBlobSHA1(d)}
		ptr := lfsPointer(d)
		fs.pointerSHA1, fs.pointerSize = GitBlobSHA1(ptr), len(ptr)
		s.sums[r.ID+"\x00"+p] = fs
	}
}

func (s *Server) sumsOf(id, path string) fileSums {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sums[id+"\x00"+path]
}

// New starts a fake Hub serving repos; token unlocks gated and private ones.
// The servers are closed when the test ends.
func New(t testing.TB, token string, repos ...Repo) *Server {
	s := &Server{Token: token, repos: map[string]*Repo{}, sums: map[string]fileSums{}, faults: map[string]*Fault{}}
	for _, r := range repos {
		s.addRepo(r)
	}
	s.Hub = httptest.NewServer(http.HandlerFunc(s.serveHub))
	s.CDN = httptest.NewServer(http.HandlerFunc(s.serveCDN))
	t.Cleanup(func() {
		s.Hub.Close()
		s.CDN.Close()
	})
	return s
}

// URL is the endpoint to give the client.
func (s *Server) URL() string { return s.Hub.URL }

// SetFault injects f into the GETs of path's content.
func (s *Server) SetFault(path string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[path] = &f
}

// Requests returns the requests seen so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// ResetRequests forgets the requests seen so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
}

// IsLFS is how the fake Hub decides a file is stored with Git LFS, as the
// .gitattributes of the Hub's ONNX repos do.
func IsLFS(path string) bool {
	return strings.HasSuffix(path, ".onnx") || strings.Contains(path, ".onnx_data")
}

// GitBlobSHA1 is the git object id of a blob: sha1("blob <len>\0" + data).
func GitBlobSHA1(data []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// SHA256 is the hex sha256 of data (the LFS oid).
func SHA256(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// lfsPointer is the pointer file git stores for an LFS file.
func lfsPointer(data []byte) []byte {
	return []byte(fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", SHA256(data), len(data)))
}

func (s *Server) record(server string, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, Request{Server: server, Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"), Auth: r.Header.Get("Authorization")})
}

func (s *Server) authorized(r *http.Request) bool {
	return s.Token != "" && r.Header.Get("Authorization") == "Bearer "+s.Token
}

func hubError(w http.ResponseWriter, status int, code, msg string) {
	if code != "" {
		w.Header().Set("X-Error-Code", code)
	}
	w.Header().Set("X-Error-Message", msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// lookup finds a repo the request may see; it answers the error itself.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request, id string) *Repo {
	s.mu.Lock()
	repo := s.repos[id]
	s.mu.Unlock()
	if repo == nil || (repo.Private && !s.authorized(r)) {
		// The Hub does not tell an anonymous caller whether a repo exists.
		status := http.StatusNotFound
		if r.Header.Get("Authorization") == "" {
			status = http.StatusUnauthorized
		}
		hubError(w, status, "RepoNotFound", "Repository not found")
		return nil
	}
	return repo
}

func (s *Server) serveHub(w http.ResponseWriter, r *http.Request) {
	s.record("hub", r)
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	for i, p := range parts {
		if u, err := url.PathUnescape(p); err == nil {
			parts[i] = u
		}
	}
	switch {
	case len(parts) == 6 && parts[0] == "api" && parts[1] == "models" && parts[4] == "revision":
		s.serveInfo(w, r, parts[2]+"/"+parts[3], parts[5])
	case len(parts) >= 5 && parts[2] == "resolve":
		s.serveResolve(w, r, parts[0]+"/"+parts[1], parts[3], strings.Join(parts[4:], "/"))
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) serveInfo(w http.ResponseWriter, r *http.Request, id, rev string) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	repo := s.lookup(w, r, id)
	if repo == nil {
		return
	}
	if rev != "main" && rev != repo.Commit {
		hubError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
		return
	}
	type lfs struct {
		SHA256      string `json:"sha256"`
		Size        int    `json:"size"`
		PointerSize int    `json:"pointerSize"`
	}
	type sibling struct {
		RFilename string `json:"rfilename"`
		Size      *int   `json:"size,omitempty"`
		BlobID    string `json:"blobId,omitempty"`
		LFS       *lfs   `json:"lfs,omitempty"`
	}
	var sib []sibling
	for p, data := range repo.Files {
		e := sibling{RFilename: p}
		if r.URL.Query().Get("blobs") == "true" && !s.NoBlobs {
			n := len(data)
			e.Size = &n
			sums := s.sumsOf(repo.ID, p)
			if IsLFS(p) {
				e.BlobID = sums.pointerSHA1
				e.LFS = &lfs{SHA256: sums.sha256, Size: n, PointerSize: sums.pointerSize}
			} else {
				e.BlobID = sums.gitSHA1
			}
		}
		sib = append(sib, e)
	}
	sort.Slice(sib, func(i, j int) bool { return sib[i].RFilename < sib[j].RFilename })
	var gated any = false
	if repo.Gated {
		gated = "manual"
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"id": repo.ID, "modelId": repo.ID, "sha": repo.Commit, "private": repo.Private,
		"gated": gated, "siblings": sib,
	})
}

func (s *Server) serveResolve(w http.ResponseWriter, r *http.Request, id, rev, path string) {
	repo := s.lookup(w, r, id)
	if repo == nil {
		return
	}
	if repo.Gated && !s.authorized(r) {
		status := http.StatusForbidden
		if r.Header.Get("Authorization") == "" {
			status = http.StatusUnauthorized
		}
		hubError(w, status, "GatedRepo", "Access to model "+id+" is restricted. You must have access to it and be authenticated to access it. Please log in.")
		return
	}
	if rev != "main" && rev != repo.Commit {
		hubError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
		return
	}
	data, ok := repo.Files[path]
	if !ok {
		hubError(w, http.StatusNotFound, "EntryNotFound", path+" does not exist on \""+rev+"\"")
		return
	}
	h := w.Header()
	h.Set("X-Repo-Commit", repo.Commit)
	sums := s.sumsOf(id, path)
	if IsLFS(path) {
		h.Set("ETag", `"`+sums.pointerSHA1+`"`)
		h.Set("X-Linked-Etag", `"`+sums.sha256+`"`)
		h.Set("X-Linked-Size", strconv.Itoa(len(data)))
		h.Set("Location", s.CDN.URL+"/repos/"+sums.sha256[:2]+"/"+sums.sha256+"?X-Amz-Signature=fake")
		w.WriteHeader(http.StatusFound)
		return
	}
	h.Set("ETag", `"`+sums.gitSHA1+`"`)
	s.serveContent(w, r, path, data)
}

func (s *Server) serveCDN(w http.ResponseWriter, r *http.Request) {
	s.record("cdn", r)
	oid := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	s.mu.Lock()
	var path string
	var data []byte
	for _, repo := range s.repos {
		for p, d := range repo.Files {
			if IsLFS(p) && s.sums[repo.ID+"\x00"+p].sha256 == oid {
				path, data = p, d
			}
		}
	}
	s.mu.Unlock()
	if path == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("ETag", `"`+oid+`"`)
	s.serveContent(w, r, path, data)
}

// serveContent answers GET/HEAD for data with Range support and faults.
func (s *Server) serveContent(w http.ResponseWriter, r *http.Request, path string, data []byte) {
	s.mu.Lock()
	f := s.faults[path]
	var fault Fault
	if f != nil && r.Method == http.MethodGet {
		fault = *f
		if f.Status500 > 0 {
			f.Status500--
		}
		f.DropAfter = 0 // only once
	}
	s.mu.Unlock()
	if fault.Status500 > 0 {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	body := data
	if fault.Corrupt && len(body) > 0 {
		body = append([]byte(nil), data...)
		body[len(body)/2] ^= 0xff
	}
	start := 0
	status := http.StatusOK
	if rg := r.Header.Get("Range"); rg != "" {
		spec, ok := strings.CutPrefix(rg, "bytes=")
		spec, _, ok2 := strings.Cut(spec, "-")
		n, err := strconv.Atoi(spec)
		if !ok || !ok2 || err != nil || n >= len(body) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(body)))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start, status = n, http.StatusPartialContent
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", n, len(body)-1, len(body)))
	}
	w.Header().Set("Accept-Ranges", "bytes")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)-start))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	part := body[start:]
	if fault.DropAfter > 0 && fault.DropAfter < len(part) {
		w.Write(part[:fault.DropAfter])
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		panic(http.ErrAbortHandler) // closes the connection mid-body
	}
	w.Write(part)
}

// SetRepo adds or replaces a repo (a new commit of it, for instance).
func (s *Server) SetRepo(r Repo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addRepo(r)
}

// DirFiles reads every file below dir into a Repo's Files map (paths
// relative to dir, with forward slashes): a generated model to serve.
func DirFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)], err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
