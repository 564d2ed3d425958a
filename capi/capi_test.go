package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapvlm/snapvlm"
	"github.com/snapvlm/snapvlm/internal/hub/hubtest"
	"github.com/snapvlm/snapvlm/internal/ort"
	"github.com/snapvlm/snapvlm/internal/ort/orttest"
	"github.com/snapvlm/snapvlm/internal/testmodel"
)

// The C test program runs against a library built from this package with
// `go build -buildmode=c-shared`, compiled by the system cc with
// AddressSanitizer and LeakSanitizer on the C side (see cBuild).

var shared struct {
	sync.Mutex
	root     string
	built    bool
	capitest string
	asan     bool
	model    string
	// decoders are the decoder files of each model directory (decoderFile)
	// (the attention rewrite in the cache dir), loaded once here so the C
	// program's loads find the rewrite made and checked.
	decoders map[string][2]string
}

func TestMain(m *testing.M) {
	// Loads write rewritten decoders to the user cache dir: keep the test
	// models' ones out of the user's (the C program inherits this), once
	// ONNX Runtime (found through that dir) is located.
	cache, err := os.MkdirTemp("", "snapvlm-cache-")
	if err == nil {
		if lib, err := ort.FindLibrary(""); err == nil && os.Getenv("SNAPVLM_ORT_LIB") == "" {
			os.Setenv("SNAPVLM_ORT_LIB", lib)
		}
		os.Setenv("XDG_CACHE_HOME", cache)
	}
	code := m.Run()
	if shared.root != "" {
		os.RemoveAll(shared.root)
	}
	if cache != "" {
		os.RemoveAll(cache)
	}
	os.Exit(code)
}

// decoderFile loads the q4 model at dir once, as the C program does (no
// options) and asking for q4, and returns the decoder file the first runs
// (where snapvlm's 4-bit kernel runs, a rewrite of the second for it) and
// the second, the attention rewrite.
func decoderFile(t *testing.T, dir string) (runs, rewrite string) {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if f, ok := shared.decoders[dir]; ok {
		return f[0], f[1]
	}
	var f [2]string
	for i, o := range []snapvlm.Options{{}, {Dtype: "q4"}} {
		m, err := snapvlm.Load(context.Background(), dir, o)
		if err != nil {
			t.Fatal(err)
		}
		f[i] = m.Files()[snapvlm.GraphDecoder]
		m.Close()
	}
	if shared.decoders == nil {
		shared.decoders = map[string][2]string{}
	}
	shared.decoders[dir] = f
	return f[0], f[1]
}

// requireCC skips without a C compiler, or fails when the run requires one
// (CI=true: make test installs gcc through scripts/sysdeps.sh).
func requireCC(t *testing.T) string {
	t.Helper()
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	path, err := exec.LookPath(cc)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the C test of libsnapvlm needs a C compiler (%s): %v", cc, err)
		}
		t.Skipf("no C compiler (%s): skipping the C test of libsnapvlm", cc)
	}
	return path
}

func run(t *testing.T, env []string, dir, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// cBuild builds libsnapvlm.so and the C test program once per test run, and
// a tiny generated model. The C program is compiled with
// -fsanitize=address (ASan + LSan) when the compiler supports it: the
// library's own C (capi.c) and the caller's code are then checked for
// invalid accesses and leaks, while the Go runtime's memory, which
// valgrind would report as noise, is not malloc'd and stays out of it.
func cBuild(t *testing.T) (capitest, model string, asan bool) {
	t.Helper()
	orttest.Env(t)
	cc := requireCC(t)
	shared.Lock()
	defer shared.Unlock()
	if shared.built {
		return shared.capitest, shared.model, shared.asan
	}
	if shared.root == "" {
		root, err := os.MkdirTemp("", "snapvlm-capi-")
		if err != nil {
			t.Fatal(err)
		}
		shared.root = root
	}
	root := shared.root
	lib := filepath.Join(root, "libsnapvlm.so")
	// go test puts its own toolchain's bin directory first on PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	run(t, nil, ".", goBin, "build", "-buildmode=c-shared", "-o", lib, ".")

	// The hand-written header must agree with what the library exports:
	// one translation unit with both sets of prototypes fails to compile
	// on any difference.
	check := filepath.Join(root, "check.c")
	if err := os.WriteFile(check, []byte("#include \"snapvlm.h\"\n#include \"libsnapvlm.h\"\nint main(void) { return snapvlm_abi_version() != SNAPVLM_ABI_VERSION; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, nil, ".", cc, "-Wall", "-Werror", "-I", ".", "-I", root, "-o", filepath.Join(root, "check"), check, "-L", root, "-lsnapvlm", "-Wl,-rpath,"+root)
	run(t, nil, ".", filepath.Join(root, "check"))

	flags := []string{"-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror", "-g", "-O1", "-I", "."}
	asanFlags := []string{"-fsanitize=address", "-fno-omit-frame-pointer"}
	probe := exec.Command(cc, append(asanFlags, "-x", "c", "-o", filepath.Join(root, "probe"), "-")...)
	probe.Stdin = strings.NewReader("int main(void) { return 0; }\n")
	if err := probe.Run(); err == nil {
		flags, asan = append(flags, asanFlags...), true
	} else {
		t.Logf("%s has no AddressSanitizer: the C test runs without it", cc)
	}
	exe := filepath.Join(root, "capitest")
	run(t, nil, ".", cc, append(flags, "-o", exe, filepath.Join("testdata", "capitest.c"), "-L", root, "-lsnapvlm", "-Wl,-rpath,"+root, "-lpthread")...)

	model = filepath.Join(root, "tiny512")
	if err := testmodel.Generate(context.Background(), "tiny512", model, testmodel.Options{Seed: 1, Variants: []string{testmodel.Q4}, GenerateTokenizer: true}); err != nil {
		t.Fatal(err)
	}
	shared.capitest, shared.model, shared.asan, shared.built = exe, model, asan, true
	return exe, model, asan
}

// capitest runs the C program on a model at modelDir (the graphs LSan
// accounts for, see leakCheck) opened `opens` times.
func capitest(t *testing.T, exe, modelDir string, opens int, args ...string) []byte {
	t.Helper()
	supp := filepath.Join(shared.root, "lsan.supp")
	// ONNX Runtime's own allocations at environment and thread-pool set-up
	// live until the process ends; they are not the C side's.
	if err := os.WriteFile(supp, []byte("leak:libonnxruntime.so\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A model that exists now is loaded here first (see decoderFile); one
	// the program downloads is rewritten and probed by the program itself.
	var decoder, rewrite string
	_, err := os.Stat(modelDir)
	prepared := opens > 0 && err == nil
	if prepared {
		decoder, rewrite = decoderFile(t, modelDir)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "ASAN_OPTIONS=detect_leaks=1:exitcode=23", "LSAN_OPTIONS=suppressions="+supp+":print_suppressions=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 23 {
		probed := false
		if !prepared && opens > 0 {
			decoder, rewrite = decoderFile(t, modelDir)
			probed = true
		}
		if leakCheck(t, stderr.String(), modelDir, decoder, rewrite, opens, probed) {
			err = nil
		}
	}
	if err != nil {
		t.Fatalf("capitest %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// knownLeak is LSan's record of memory Go code got from C.malloc/C.CString
// (LSan cannot unwind through Go frames, so all such leaks share it).
var knownLeak = regexp.MustCompile(`(?m)^Direct leak of (\d+) byte\(s\) in (\d+) object\(s\) allocated from:\n\s+#0 \S+ in __interceptor_malloc .*\n\s+#1 \S+ in _cgo_\w+_Cfunc__Cmalloc .*\n(?:\s+#2 \S+ in runtime.asmcgocall .*\n)?\n`)

// leakCheck accepts an LSan report that holds exactly one known leak of the
// ONNX Runtime Go binding (github.com/yalue/onnxruntime_go v1.27.0, the
// latest: createCSessionFromFile never frees the C copy of the model path),
// that is one string per graph per model opened from its file (a graph
// opened from its optimised copy in the cache is handed over from memory
// and leaks nothing), and nothing else. Any
// other leak — of capi.c, a handle block, a returned string, or another
// C.malloc in Go code, which would change the count — fails the test.
//
// decoder is the decoder file the loads use, rewrite the attention rewrite;
// probed says the program made and checked the latter, opening the original
// and the rewrite once more.
func leakCheck(t *testing.T, report, modelDir, decoder, rewrite string, opens int, probed bool) bool {
	t.Helper()
	wantBytes := len(decoder) + 1
	for _, g := range []string{"vision_encoder_q4", "embed_tokens_q4"} {
		wantBytes += len(filepath.Join(modelDir, "onnx", g+".onnx")) + 1
	}
	wantBytes *= opens
	wantAllocs := 3 * opens
	if probed {
		wantBytes += len(filepath.Join(modelDir, "onnx", "decoder_model_merged_q4.onnx")) + 1 + len(rewrite) + 1
		wantAllocs += 2
	}
	m := knownLeak.FindAllStringSubmatch(report, -1)
	if len(m) != 1 || strings.Count(report, "Direct leak")+strings.Count(report, "Indirect leak") != 1 {
		return false
	}
	if m[0][1] != fmt.Sprint(wantBytes) || m[0][2] != fmt.Sprint(wantAllocs) {
		t.Errorf("leaked %s bytes in %s C allocations of Go code, want %d in %d (the model paths onnxruntime_go keeps)", m[0][1], m[0][2], wantBytes, wantAllocs)
		return false
	}
	return true
}

// lines returns the payloads of the output lines starting with tag.
func lines(out []byte, tag string) []string {
	var got []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), tag+" "); ok {
			got = append(got, rest)
		}
	}
	return got
}

type cResult struct {
	Text         string  `json:"text"`
	Tokens       []int64 `json:"tokens"`
	PromptTokens int     `json:"prompt_tokens"`
	ImageTokens  int     `json:"image_tokens"`
	Tiles        int     `json:"tiles"`
	FinishReason string  `json:"finish_reason"`
	Timings      struct {
		FirstToken float64 `json:"ttft_ms"`
	} `json:"timings"`
}

func results(t *testing.T, out []byte) []cResult {
	t.Helper()
	var rs []cResult
	for _, l := range lines(out, "RESULT") {
		var r cResult
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("result %q: %v", l, err)
		}
		rs = append(rs, r)
	}
	return rs
}

const (
	question  = "What is in this picture?"
	maxTokens = 24
)

// goReference answers the C program's request through the Go API.
func goReference(t *testing.T, model string, maxNew int) *snapvlm.Result {
	t.Helper()
	m, err := snapvlm.Load(context.Background(), model, snapvlm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	img, err := snapvlm.ImageFile(filepath.Join("..", "assets", "sample.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Generate(context.Background(), snapvlm.Request{
		Messages: []snapvlm.Message{snapvlm.UserMessage(question, img)}, GenerateOptions: snapvlm.GenerateOptions{MaxNewTokens: maxNew, NoSplit: true},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestCGenerateEqualsGo(t *testing.T) {
	exe, model, _ := cBuild(t)
	want := goReference(t, model, maxTokens)
	out := capitest(t, exe, model, 1, "generate", model, filepath.Join("..", "assets", "sample.jpg"), question, fmt.Sprint(maxTokens))
	rs := results(t, out)
	if len(rs) != 1 {
		t.Fatalf("%d results, want 1:\n%s", len(rs), out)
	}
	got := rs[0]
	if !slices.Equal(got.Tokens, want.Tokens) {
		t.Errorf("C tokens %v\nGo tokens %v", got.Tokens, want.Tokens)
	}
	if got.Text != want.Text || got.FinishReason != string(want.FinishReason) || got.PromptTokens != len(want.PromptTokens) || got.ImageTokens != want.ImageTokens {
		t.Errorf("C result %+v differs from Go's (text %q, finish %s, prompt %d, image tokens %d)", got, want.Text, want.FinishReason, len(want.PromptTokens), want.ImageTokens)
	}
	if streamed := lines(out, "STREAMED"); len(streamed) != 1 || streamed[0] != hex.EncodeToString([]byte(got.Text)) {
		t.Errorf("streamed text (hex) %q, result text %q", streamed, got.Text)
	}
	if len(want.Tokens) < 2 {
		t.Errorf("the reference answer has %d tokens: too short to compare", len(want.Tokens))
	}
	img := lines(out, "IMAGE")
	if len(img) != 1 || !strings.Contains(img[0], `"frames":1`) || !strings.Contains(img[0], `"no_split":true`) {
		t.Errorf("image info %q: want one frame, no_split", img)
	}
}

func TestCThreadsOneModel(t *testing.T) {
	exe, model, _ := cBuild(t)
	want := goReference(t, model, maxTokens)
	const n = 4
	out := capitest(t, exe, model, 1, "threads", model, filepath.Join("..", "assets", "sample.jpg"), question, fmt.Sprint(maxTokens), fmt.Sprint(n))
	rs := results(t, out)
	if len(rs) != n {
		t.Fatalf("%d results, want %d", len(rs), n)
	}
	for i, r := range rs {
		if !slices.Equal(r.Tokens, want.Tokens) {
			t.Errorf("thread %d: tokens %v, want %v", i, r.Tokens, want.Tokens)
		}
	}
}

func TestCCancel(t *testing.T) {
	exe, model, _ := cBuild(t)
	// The checks need an answer that would run to 400 tokens.
	if ref := goReference(t, model, 400); ref.FinishReason != snapvlm.FinishLength {
		t.Fatalf("the test model's answer stops after %d tokens (%s): the cancel test needs a long one", len(ref.Tokens), ref.FinishReason)
	}
	out := capitest(t, exe, model, 1, "cancel", model, filepath.Join("..", "assets", "sample.jpg"), question)
	if got := lines(out, "CANCELLED"); len(got) != 2 {
		t.Errorf("cancel output:\n%s", out)
	}
}

func TestCErrors(t *testing.T) {
	exe, model, _ := cBuild(t)
	out := capitest(t, exe, model, 1, "errors", model)
	if v := lines(out, "VERSION"); len(v) != 1 || v[0] != snapvlm.Version {
		t.Errorf("version %q, want %s", v, snapvlm.Version)
	}
	for _, want := range []string{"dtipe", "threads", "temprature", "robot", "image 3", "video"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("no error message names %q:\n%s", want, out)
		}
	}
}

// TestCCycles opens, uses and closes the model 100 times under LSan: a leak
// in capi.c, in the handle blocks or of a returned string fails it.
func TestCCycles(t *testing.T) {
	exe, model, asan := cBuild(t)
	if !asan {
		t.Log("without AddressSanitizer this only checks that 100 cycles work")
	}
	n := 100
	if testing.Short() {
		n = 10
	}
	start := time.Now()
	out := capitest(t, exe, model, n, "cycles", model, filepath.Join("..", "assets", "sample.jpg"), fmt.Sprint(n))
	if got := lines(out, "CYCLES"); len(got) != 1 || got[0] != fmt.Sprint(n) {
		t.Errorf("cycles output:\n%s", out)
	}
	t.Logf("%d open/encode/generate/close cycles in %v", n, time.Since(start).Round(time.Millisecond))
}

// TestCModelManager pulls a generated model from a fake Hub (loopback)
// through the C API, with progress and cancellation, then verifies,
// damages, verifies and removes it.
func TestCModelManager(t *testing.T) {
	exe, model, _ := cBuild(t)
	files := hubtest.DirFiles(t, model)
	const repo, commit = "TestOrg/TinyVLM", "0123456789abcdef0123456789abcdef01234567"
	srv := hubtest.New(t, "", hubtest.Repo{ID: repo, Commit: commit, Files: files})
	cache := t.TempDir()
	snapshot := filepath.Join(cache, "models--TestOrg--TinyVLM", "snapshots", commit)
	out := capitest(t, exe, snapshot, 1, "manager", cache, srv.URL(), repo)
	var list []cachedJSON
	if l := lines(out, "LIST"); len(l) != 1 || json.Unmarshal([]byte(l[0]), &list) != nil || len(list) != 1 || list[0].Repo != repo {
		t.Fatalf("list output:\n%s", out)
	}
	var size int64
	for _, b := range files {
		size += int64(len(b))
	}
	if list[0].Size != size || len(list[0].Revisions) != 1 || !slices.Equal(list[0].Revisions[0].Variants, []string{"q4"}) {
		t.Errorf("listed %+v, want %d bytes, one revision with variant q4", list[0], size)
	}
	verify := func() verifyJSON {
		t.Helper()
		out := capitest(t, exe, cache, 0, "verify", cache, srv.URL(), repo)
		var v verifyJSON
		if l := lines(out, "VERIFY"); len(l) != 1 || json.Unmarshal([]byte(l[0]), &v) != nil {
			t.Fatalf("verify output:\n%s", out)
		}
		return v
	}
	if v := verify(); !v.OK || len(v.Files) != len(files) {
		t.Errorf("verify after pull: %+v, want ok with %d files", v, len(files))
	}
	// Damage the decoder's blob: verify names it, the others stay fine.
	dec := filepath.Join(list[0].Revisions[0].Dir, "onnx", "decoder_model_merged_q4.onnx")
	blob, err := filepath.EvalSymlinks(dec)
	if err != nil {
		t.Fatal(err)
	}
	b := files["onnx/decoder_model_merged_q4.onnx"]
	damaged := append([]byte(nil), b...)
	damaged[len(damaged)/2] ^= 1
	if err := os.WriteFile(blob, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	v := verify()
	if v.OK {
		t.Error("verify after damage: ok")
	}
	for _, f := range v.Files {
		if (f.Path == "onnx/decoder_model_merged_q4.onnx") == f.OK {
			t.Errorf("verify after damage: %+v", f)
		}
	}
	var usage usageJSON
	out = capitest(t, exe, cache, 0, "remove", cache, srv.URL(), repo)
	if l := lines(out, "USAGE"); len(l) != 1 || json.Unmarshal([]byte(l[0]), &usage) != nil || usage.ModelsBytes != 0 || usage.FreeBytes <= 0 {
		t.Errorf("usage after remove:\n%s", out)
	}
}

// TestCStaticArchive links the C program with libsnapvlm.a (make lib's
// c-archive) instead of the shared library and runs its error checks.
func TestCStaticArchive(t *testing.T) {
	_, model, _ := cBuild(t)
	cc := requireCC(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	archive := filepath.Join(dir, "libsnapvlm.a")
	run(t, nil, ".", goBin, "build", "-buildmode=c-archive", "-o", archive, ".")
	exe := filepath.Join(dir, "capitest-static")
	run(t, nil, ".", cc, "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-O1", "-I", ".", "-o", exe, filepath.Join("testdata", "capitest.c"),
		archive, "-lpthread", "-ldl", "-ljpeg", "-lwebp", "-lm")
	out := run(t, nil, ".", exe, "errors", model)
	if v := lines(out, "VERSION"); len(v) != 1 || v[0] != snapvlm.Version {
		t.Errorf("static build: version %q, want %s\n%s", v, snapvlm.Version, out)
	}
}

// TestOpenOptions checks the open options the library reads before it
// loads anything.
func TestOpenOptions(t *testing.T) {
	cases := []struct {
		json, err string
		kv        string
	}{
		{`{"kv_cache": "f16"}`, "", "f16"},
		{`{"kv_cache": "f32"}`, "", "f32"},
		{`{}`, "", ""},
		{`{"kv_cache": "f8"}`, `kv_cache "f8"`, ""},
		{`{"threads": -1}`, "must not be negative", ""},
	}
	for _, c := range cases {
		var o openOptions
		if err := decodeJSON("options", c.json, &o); err != nil {
			t.Fatalf("%s: %v", c.json, err)
		}
		opts, err := o.engine()
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one with %q", c.json, err, c.err)
			}
			continue
		}
		if err != nil || opts.KVCache != c.kv {
			t.Errorf("%s: KVCache %q, error %v; want %q", c.json, opts.KVCache, err, c.kv)
		}
	}
}
