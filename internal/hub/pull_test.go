package hub

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/snapvlm/snapvlm/internal/hub/hubtest"
)

const (
	testRepo   = "TestOrg/TinyVLM"
	testCommit = "0123456789abcdef0123456789abcdef01234567"
	testToken  = "hf_testtoken"
)

// randBytes is deterministic filler for the fake ONNX files.
func randBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// testFiles is a small SmolVLM-shaped repo: configs, a README snapvlm must
// not fetch, the fp32 and q4 variants (fp32 decoder with external data in two
// parts) and a decoder-only fp16 variant.
func testFiles() map[string][]byte {
	return map[string][]byte{
		"config.json":                               []byte(`{"model_type": "smolvlm", "image_token_id": 49190}`),
		"generation_config.json":                    []byte(`{"eos_token_id": 2}`),
		"preprocessor_config.json":                  []byte(`{"size": {"longest_edge": 512}}`),
		"tokenizer.json":                            []byte(`{"version": "1.0", "model": {"type": "BPE"}}`),
		"tokenizer_config.json":                     []byte(`{"bos_token": "<|im_start|>"}`),
		"chat_template.json":                        []byte(`{"chat_template": "{{ messages }}"}`),
		"README.md":                                 []byte("# TinyVLM\n"),
		"model.safetensors":                         randBytes(99, 1000),
		"onnx/vision_encoder.onnx":                  randBytes(1, 3000),
		"onnx/embed_tokens.onnx":                    randBytes(2, 2000),
		"onnx/decoder_model_merged.onnx":            randBytes(3, 1000),
		"onnx/decoder_model_merged.onnx_data":       randBytes(4, 5000),
		"onnx/decoder_model_merged.onnx_data_1":     randBytes(5, 700),
		"onnx/vision_encoder_q4.onnx":               randBytes(6, 4000),
		"onnx/embed_tokens_q4.onnx":                 randBytes(7, 2500),
		"onnx/decoder_model_merged_q4.onnx":         randBytes(8, 200_000),
		"onnx/decoder_model_merged_fp16.onnx":       randBytes(9, 1500),
		"onnx/decoder_model_merged_fp16.onnx_data":  randBytes(10, 600),
		"onnx/decoder_model_merged_q4f16.onnx_data": randBytes(11, 10),
	}
}

var (
	configPaths = []string{"config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.json"}
	q4Paths     = []string{"onnx/vision_encoder_q4.onnx", "onnx/embed_tokens_q4.onnx", "onnx/decoder_model_merged_q4.onnx"}
	fp32Paths   = []string{"onnx/vision_encoder.onnx", "onnx/embed_tokens.onnx", "onnx/decoder_model_merged.onnx_data", "onnx/decoder_model_merged.onnx_data_1", "onnx/decoder_model_merged.onnx"}
)

func testRepoDef() hubtest.Repo {
	return hubtest.Repo{ID: testRepo, Commit: testCommit, Files: testFiles()}
}

func testOptions(srv *hubtest.Server) Options {
	return Options{
		Endpoint:     srv.URL(),
		CacheDir:     "", // set by the caller
		Token:        testToken,
		RetryBackoff: time.Millisecond,
		Retries:      3,
	}
}

// expectedEtag computes the blob name independently of the code under test:
// sha256 for LFS files, the git blob sha1 otherwise (hubtest checks both
// against git and sha256sum).
func expectedEtag(path string, data []byte) string {
	if hubtest.IsLFS(path) {
		return hubtest.SHA256(data)
	}
	return hubtest.GitBlobSHA1(data)
}

// checkLayout checks the cache against huggingface_hub's layout as the spec
// describes it: snapshot entries are relative symlinks ../../blobs/<etag>
// (one more ../ per directory level), blobs hold the bytes, refs/main holds
// the commit, and no .incomplete file is left.
func checkLayout(t *testing.T, cacheDir, repo, commit string, files map[string][]byte, want []string) {
	t.Helper()
	rdir := filepath.Join(cacheDir, "models--"+strings.ReplaceAll(repo, "/", "--"))
	snap := filepath.Join(rdir, "snapshots", commit)
	var got []string
	err := filepath.Walk(snap, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(snap, p)
			got = append(got, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatalf("walk snapshot: %v", err)
	}
	sort.Strings(got)
	w := append([]string(nil), want...)
	sort.Strings(w)
	if !slices.Equal(got, w) {
		t.Errorf("snapshot files:\n got %v\nwant %v", got, w)
	}
	for _, p := range want {
		etag := expectedEtag(p, files[p])
		link := filepath.Join(snap, filepath.FromSlash(p))
		target, err := os.Readlink(link)
		if err != nil {
			t.Errorf("%s: not a symlink: %v", p, err)
			continue
		}
		wantTarget := strings.Repeat("../", strings.Count(p, "/")+2) + "blobs/" + etag
		if target != wantTarget {
			t.Errorf("%s -> %s, want %s", p, target, wantTarget)
		}
		b, err := os.ReadFile(filepath.Join(rdir, "blobs", etag))
		if err != nil || !bytes.Equal(b, files[p]) {
			t.Errorf("blob of %s: err %v, content equal %v", p, err, bytes.Equal(b, files[p]))
		}
	}
	if ref, err := os.ReadFile(filepath.Join(rdir, "refs", "main")); err != nil || string(ref) != commit {
		t.Errorf("refs/main = %q (%v), want %q", ref, err, commit)
	}
	leftovers, _ := filepath.Glob(filepath.Join(rdir, "blobs", "*.incomplete"))
	if len(leftovers) > 0 {
		t.Errorf("incomplete files left: %v", leftovers)
	}
}

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func TestPull(t *testing.T) {
	decoder := "onnx/decoder_model_merged_q4.onnx"
	cases := []struct {
		name    string
		dtypes  []string
		graphs  map[string]string
		token   string
		faults  map[string]hubtest.Fault
		noBlobs bool
		want    []string
		check   func(t *testing.T, reqs []hubtest.Request)
	}{
		{
			name: "clean default q4",
			want: concat(configPaths, q4Paths),
			check: func(t *testing.T, reqs []hubtest.Request) {
				if n := countReqs(reqs, "hub", "HEAD", ""); n != 0 {
					t.Errorf("%d HEAD requests, want 0 (the listing has sizes and hashes)", n)
				}
			},
		},
		{
			name:   "fp32 and q4 with external data",
			dtypes: []string{"fp32", "q4"},
			want:   concat(configPaths, fp32Paths, q4Paths),
		},
		{
			name:   "fp32 vision encoder with q4 text graphs",
			graphs: map[string]string{"vision_encoder": "fp32"},
			want:   concat(configPaths, []string{"onnx/vision_encoder.onnx", "onnx/embed_tokens_q4.onnx", "onnx/decoder_model_merged_q4.onnx"}),
		},
		{
			name:   "connection dropped mid-body resumes with Range",
			faults: map[string]hubtest.Fault{decoder: {DropAfter: 50_000}},
			want:   concat(configPaths, q4Paths),
			check: func(t *testing.T, reqs []hubtest.Request) {
				if !slices.ContainsFunc(reqs, func(r hubtest.Request) bool { return r.Server == "cdn" && r.Range == "bytes=50000-" }) {
					t.Errorf("no CDN request with Range bytes=50000-: %+v", reqs)
				}
			},
		},
		{
			name:   "500 twice then success",
			faults: map[string]hubtest.Fault{"config.json": {Status500: 2}, "onnx/embed_tokens_q4.onnx": {Status500: 1}},
			want:   concat(configPaths, q4Paths),
			check: func(t *testing.T, reqs []hubtest.Request) {
				if n := countReqs(reqs, "hub", "GET", "/"+testRepo+"/resolve/"+testCommit+"/config.json"); n != 3 {
					t.Errorf("config.json fetched %d times, want 3", n)
				}
			},
		},
		{
			name:    "listing without blobs falls back to HEAD",
			noBlobs: true,
			want:    concat(configPaths, q4Paths),
			check: func(t *testing.T, reqs []hubtest.Request) {
				if n := countReqs(reqs, "hub", "HEAD", ""); n != len(configPaths)+len(q4Paths) {
					t.Errorf("%d HEAD requests, want %d", n, len(configPaths)+len(q4Paths))
				}
			},
		},
		{
			name:  "anonymous",
			token: "-",
			want:  concat(configPaths, q4Paths),
			check: func(t *testing.T, reqs []hubtest.Request) {
				for _, r := range reqs {
					if r.Auth != "" {
						t.Errorf("anonymous pull sent Authorization to %s %s", r.Server, r.Path)
					}
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := hubtest.New(t, testToken, testRepoDef())
			srv.NoBlobs = tc.noBlobs
			for p, f := range tc.faults {
				srv.SetFault(p, f)
			}
			opt := testOptions(srv)
			opt.CacheDir = t.TempDir()
			opt.Dtypes = tc.dtypes
			opt.GraphDtypes = tc.graphs
			if tc.token == "-" {
				opt.Token = ""
			}
			var log bytes.Buffer
			opt.Progress = &log
			dir, err := Pull(context.Background(), testRepo, "main", opt)
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			wantDir := filepath.Join(opt.CacheDir, "models--TestOrg--TinyVLM", "snapshots", testCommit)
			if dir != wantDir {
				t.Errorf("dir = %s, want %s", dir, wantDir)
			}
			checkLayout(t, opt.CacheDir, testRepo, testCommit, testFiles(), tc.want)
			reqs := srv.Requests()
			for _, r := range reqs {
				if r.Server == "cdn" && r.Auth != "" {
					t.Errorf("token leaked to the CDN: %s %s Authorization=%q", r.Method, r.Path, r.Auth)
				}
				if r.Server == "hub" && opt.Token != "" && r.Auth != "Bearer "+testToken {
					t.Errorf("hub request %s %s without the token", r.Method, r.Path)
				}
			}
			if n := countReqs(reqs, "cdn", "GET", ""); n == 0 {
				t.Errorf("no LFS file came from the CDN")
			}
			if tc.check != nil {
				tc.check(t, reqs)
			}
			if !strings.Contains(log.String(), "done "+decoder) {
				t.Errorf("progress lacks the done line for %s:\n%s", decoder, log.String())
			}
			// A second pull finds everything cached: only the listing (and
			// HEADs when the listing lacks hashes), no content.
			srv.ResetRequests()
			if _, err := Pull(context.Background(), testRepo, "main", opt); err != nil {
				t.Fatalf("second Pull: %v", err)
			}
			reqs = srv.Requests()
			if n := countReqs(reqs, "hub", "GET", "") + countReqs(reqs, "cdn", "GET", ""); n != 1 {
				t.Errorf("second pull made %d GETs, want only the listing: %+v", n, reqs)
			}
		})
	}
}

func countReqs(reqs []hubtest.Request, server, method, path string) int {
	n := 0
	for _, r := range reqs {
		if r.Server == server && r.Method == method && (path == "" || r.Path == path) {
			n++
		}
	}
	return n
}

func TestPullErrors(t *testing.T) {
	cases := []struct {
		name     string
		repo     hubtest.Repo
		pull     string // repo to pull (default testRepo)
		revision string
		token    string
		dtypes   []string
		faults   map[string]hubtest.Fault
		wantErr  error
		wantMsg  []string
		noFile   string // a file that must be neither blob, link nor .incomplete
	}{
		{
			name:    "corrupted LFS bytes",
			faults:  map[string]hubtest.Fault{"onnx/embed_tokens_q4.onnx": {Corrupt: true}},
			wantErr: ErrChecksum,
			wantMsg: []string{"onnx/embed_tokens_q4.onnx", "sha256 mismatch", "deleted"},
			noFile:  "onnx/embed_tokens_q4.onnx",
		},
		{
			name:    "corrupted regular file",
			faults:  map[string]hubtest.Fault{"tokenizer.json": {Corrupt: true}},
			wantErr: ErrChecksum,
			wantMsg: []string{"tokenizer.json", "git blob sha1 mismatch"},
			noFile:  "tokenizer.json",
		},
		{
			name:    "500 forever",
			faults:  map[string]hubtest.Fault{"config.json": {Status500: 100}},
			wantErr: ErrUnavailable,
			wantMsg: []string{"HTTP 500", "try again later"},
		},
		{
			name:    "gated without token",
			repo:    hubtest.Repo{ID: testRepo, Commit: testCommit, Files: testFiles(), Gated: true},
			token:   "-",
			wantErr: ErrGated,
			wantMsg: []string{"TestOrg/TinyVLM is gated: accept the license at ", "/TestOrg/TinyVLM and set HF_TOKEN"},
		},
		{
			name:    "gated with a token that has no access",
			repo:    hubtest.Repo{ID: testRepo, Commit: testCommit, Files: testFiles(), Gated: true},
			token:   "hf_other",
			wantErr: ErrGated,
			wantMsg: []string{"accept the license at "},
		},
		{
			name:    "unknown repo anonymous (401)",
			pull:    "TestOrg/Nope",
			token:   "-",
			wantErr: ErrRepoNotFound,
			wantMsg: []string{"repository TestOrg/Nope not found", "HF_TOKEN"},
		},
		{
			name:    "unknown repo with token (404)",
			pull:    "TestOrg/Nope",
			wantErr: ErrRepoNotFound,
			wantMsg: []string{"repository TestOrg/Nope not found"},
		},
		{
			name:    "private repo anonymous",
			repo:    hubtest.Repo{ID: testRepo, Commit: testCommit, Files: testFiles(), Private: true},
			token:   "-",
			wantErr: ErrRepoNotFound,
			wantMsg: []string{"if it is private, set HF_TOKEN"},
		},
		{
			name:     "unknown revision",
			revision: "v9",
			wantErr:  ErrRevisionNotFound,
			wantMsg:  []string{`revision "v9" not found in TestOrg/TinyVLM`},
		},
		{
			name:    "missing variant",
			dtypes:  []string{"q4f16"},
			wantErr: ErrVariantMissing,
			wantMsg: []string{"no q4f16 variant", "onnx/vision_encoder_q4f16.onnx", "variants in the repo: fp32, q4"},
		},
		{
			name:    "unknown dtype",
			dtypes:  []string{"q8"},
			wantErr: nil,
			wantMsg: []string{`unknown dtype "q8": want one of fp32, fp16, q4, q4f16, int8, uint8, quantized, bnb4`},
		},
		{
			name:    "partial variant",
			dtypes:  []string{"fp16"},
			wantErr: ErrVariantMissing,
			wantMsg: []string{"(missing onnx/vision_encoder_fp16.onnx, onnx/embed_tokens_fp16.onnx)"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			repo := tc.repo
			if repo.ID == "" {
				repo = testRepoDef()
			}
			srv := hubtest.New(t, testToken, repo)
			for p, f := range tc.faults {
				srv.SetFault(p, f)
			}
			opt := testOptions(srv)
			opt.CacheDir = t.TempDir()
			opt.Dtypes = tc.dtypes
			switch tc.token {
			case "-":
				opt.Token = ""
			case "":
			default:
				opt.Token = tc.token
			}
			name := tc.pull
			if name == "" {
				name = testRepo
			}
			_, err := Pull(context.Background(), name, tc.revision, opt)
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("Pull error = %v, want %v", err, tc.wantErr)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q lacks %q", err, m)
				}
			}
			if tc.noFile != "" {
				etag := expectedEtag(tc.noFile, testFiles()[tc.noFile])
				rdir := filepath.Join(opt.CacheDir, "models--TestOrg--TinyVLM")
				for _, p := range []string{
					filepath.Join(rdir, "blobs", etag),
					filepath.Join(rdir, "blobs", etag+".incomplete"),
					filepath.Join(rdir, "snapshots", testCommit, filepath.FromSlash(tc.noFile)),
				} {
					if _, err := os.Lstat(p); err == nil {
						t.Errorf("%s exists after a checksum failure", p)
					}
				}
			}
			if _, err := Resolve(context.Background(), name, opt); tc.wantErr != nil && !errors.Is(err, ErrNotCached) {
				t.Errorf("Resolve after failed pull = %v, want ErrNotCached", err)
			}
		})
	}
}

// A partial download left by an earlier run is resumed with Range.
func TestPullResumesIncompleteFile(t *testing.T) {
	srv := hubtest.New(t, testToken, testRepoDef())
	opt := testOptions(srv)
	opt.CacheDir = t.TempDir()
	p := "onnx/decoder_model_merged_q4.onnx"
	data := testFiles()[p]
	blobs := filepath.Join(opt.CacheDir, "models--TestOrg--TinyVLM", "blobs")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(blobs, hubtest.SHA256(data)+".incomplete"), data[:123_456], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Pull(context.Background(), testRepo, "", opt); err != nil {
		t.Fatalf("Pull: %v", err)
	}
	checkLayout(t, opt.CacheDir, testRepo, testCommit, testFiles(), concat(configPaths, q4Paths))
	var ranges []string
	for _, r := range srv.Requests() {
		if r.Server == "cdn" && r.Range != "" {
			ranges = append(ranges, r.Range)
		}
	}
	if !slices.Equal(ranges, []string{"bytes=123456-"}) {
		t.Errorf("CDN ranges = %v, want [bytes=123456-]", ranges)
	}
}

func TestOffline(t *testing.T) {
	srv := hubtest.New(t, testToken, testRepoDef())
	cached := testOptions(srv)
	cached.CacheDir = t.TempDir()
	if _, err := Pull(context.Background(), testRepo, "main", cached); err != nil {
		t.Fatalf("Pull: %v", err)
	}
	wantDir := filepath.Join(cached.CacheDir, "models--TestOrg--TinyVLM", "snapshots", testCommit)
	empty := testOptions(srv)
	empty.CacheDir = t.TempDir()
	// A port nothing listens on: the machine has "no network".
	dead := hubtest.New(t, "")
	deadURL := dead.URL()
	dead.Hub.Close()

	cases := []struct {
		name     string
		opt      Options
		offline  bool
		endpoint string
		wantDir  string
		wantErr  []error
		wantMsg  string
	}{
		{name: "HF_HUB_OFFLINE cached", opt: cached, offline: true, wantDir: wantDir},
		{name: "HF_HUB_OFFLINE missing", opt: empty, offline: true, wantErr: []error{ErrNotCached, ErrOffline}, wantMsg: "offline mode is on (HF_HUB_OFFLINE=1)"},
		{name: "no network cached", opt: cached, endpoint: deadURL, wantDir: wantDir},
		{name: "no network missing", opt: empty, endpoint: deadURL, wantErr: []error{ErrNotCached, ErrUnavailable}, wantMsg: "cannot reach the Hub"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv.ResetRequests()
			opt := tc.opt
			opt.Offline = tc.offline
			opt.Retries = 50 // must not matter: no-network errors are not retried
			opt.RetryBackoff = time.Second
			if tc.endpoint != "" {
				opt.Endpoint = tc.endpoint
			}
			start := time.Now()
			dir, err := Pull(context.Background(), testRepo, "main", opt)
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("took %s: offline failures must not retry", el)
			}
			for _, want := range tc.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("error %v is not %v", err, want)
				}
			}
			if tc.wantErr == nil && err != nil {
				t.Fatalf("Pull: %v", err)
			}
			if err != nil && !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q lacks %q", err, tc.wantMsg)
			}
			if dir != tc.wantDir {
				t.Errorf("dir = %q, want %q", dir, tc.wantDir)
			}
			if reqs := srv.Requests(); tc.offline && len(reqs) > 0 {
				t.Errorf("offline pull made requests: %+v", reqs)
			}
		})
	}
}

// A cache written in huggingface_hub's layout by scripts/hfcache is used as
// is: Resolve finds it offline and Pull downloads nothing.
func TestCacheFromHuggingFaceHub(t *testing.T) {
	cache := t.TempDir()
	repo := testRepoDef()
	wantDir := hubtest.MakeCache(t, cache, repo)
	srv := hubtest.New(t, testToken, repo)
	opt := testOptions(srv)
	opt.CacheDir = cache
	opt.Dtypes = []string{"q4", "fp32"}

	off := opt
	off.Offline = true
	dir, err := Resolve(context.Background(), testRepo, off)
	if err != nil || dir != wantDir {
		t.Fatalf("Resolve = %q, %v; want %q", dir, err, wantDir)
	}
	before := hubtest.Tree(t, cache)
	dir, err = Pull(context.Background(), testRepo, "main", opt)
	if err != nil || dir != wantDir {
		t.Fatalf("Pull = %q, %v; want %q", dir, err, wantDir)
	}
	for _, r := range srv.Requests() {
		if !strings.HasPrefix(r.Path, "/api/models/") {
			t.Errorf("pull of a cached model requested %s %s", r.Method, r.Path)
		}
	}
	after := hubtest.Tree(t, cache)
	for k, v := range after {
		if before[k] != v && !strings.HasPrefix(k, ".locks") {
			t.Errorf("pull changed %s: %q -> %q", k, before[k], v)
		}
	}
	models, err := List(opt)
	if err != nil || len(models) != 1 {
		t.Fatalf("List = %+v, %v", models, err)
	}
	if got := models[0].Revisions[0].Variants; !slices.Equal(got, []string{"fp32", "q4"}) {
		t.Errorf("variants = %v, want [fp32 q4]", got)
	}
}

// Blob names read from an old listing may not escape blobs/.
func TestPlanRejectsUnsafeNames(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"config.json", true},
		{"onnx/x.onnx", true},
		{"../x", false},
		{"onnx/../../x", false},
		{"/etc/passwd", false},
		{`onnx\x.onnx`, false},
		{"", false},
	} {
		if got := safeRepoPath(tc.path); got != tc.ok {
			t.Errorf("safeRepoPath(%q) = %v, want %v", tc.path, got, tc.ok)
		}
	}
	for _, tc := range []struct {
		etag string
		ok   bool
	}{
		{hubtest.SHA256(nil), true},
		{hubtest.GitBlobSHA1(nil), true},
		{"../../x", false},
		{"", false},
	} {
		if got := safeBlobName(tc.etag); got != tc.ok {
			t.Errorf("safeBlobName(%q) = %v, want %v", tc.etag, got, tc.ok)
		}
	}
}

func TestPlan(t *testing.T) {
	srv := hubtest.New(t, testToken, testRepoDef())
	opt := testOptions(srv)
	opt.CacheDir = t.TempDir()
	opt.Dtypes = []string{"fp32"}
	plan, err := Plan(context.Background(), testRepo, "main", opt)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	files := testFiles()
	var names []string
	var total int64
	for _, f := range plan.Files {
		names = append(names, f.Path)
		total += int64(len(files[f.Path]))
		if f.Size != int64(len(files[f.Path])) || f.Etag != expectedEtag(f.Path, files[f.Path]) || f.LFS != hubtest.IsLFS(f.Path) {
			t.Errorf("%s: size %d etag %s lfs %v", f.Path, f.Size, f.Etag, f.LFS)
		}
	}
	// Configs first, then each graph's external data before the graph.
	if want := concat(configPaths, fp32Paths); !slices.Equal(names, want) {
		t.Errorf("plan files:\n got %v\nwant %v", names, want)
	}
	if plan.TotalBytes != total || plan.DownloadBytes != total || plan.Downloads != len(names) {
		t.Errorf("plan totals %d/%d/%d, want %d/%d/%d", plan.TotalBytes, plan.DownloadBytes, plan.Downloads, total, total, len(names))
	}
	if plan.Commit != testCommit || !slices.Equal(plan.Available, []string{"fp32", "q4"}) {
		t.Errorf("plan commit %s available %v", plan.Commit, plan.Available)
	}
	if reqs := srv.Requests(); len(reqs) != 1 {
		t.Errorf("Plan made %d requests, want 1 (the listing)", len(reqs))
	}
}

// TestPullRefusesUnsafeRevision: a revision that would name a ref file
// outside the repo's refs/ folder ('org/name@../../../../x' wrote one) is
// refused before any request, and nothing is written anywhere.
func TestPullRefusesUnsafeRevision(t *testing.T) {
	srv := hubtest.New(t, testToken, testRepoDef())
	root := t.TempDir()
	opt := testOptions(srv)
	opt.CacheDir = filepath.Join(root, "hub")
	for _, rev := range []string{"../../../../x", "main/../../x", "/tmp/x", "a\\..\\..\\x"} {
		if _, err := Pull(context.Background(), testRepo, rev, opt); err == nil || !strings.Contains(err.Error(), "revision") {
			t.Errorf("Pull(%s@%s) = %v, want a revision error", testRepo, rev, err)
		}
		if _, err := Ensure(context.Background(), testRepo+"@"+rev, opt, nil); err == nil {
			t.Errorf("Ensure(%s@%s) succeeded", testRepo, rev)
		}
	}
	if reqs := srv.Requests(); len(reqs) != 0 {
		t.Errorf("%d requests sent for unsafe revisions, want none: %+v", len(reqs), reqs)
	}
	if err := writeRef(filepath.Join(opt.CacheDir, "models--org--name"), "../../../x", testCommit); err == nil {
		t.Error("writeRef accepted a revision leading out of refs/")
	}
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		t.Errorf("written under %s: %s", root, e.Name())
	}
}
