package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/snapvlm/snapvlm"
	"github.com/snapvlm/snapvlm/internal/hub"
	"github.com/snapvlm/snapvlm/internal/hub/hubtest"
)

// TestFlagValidation: every numeric flag is checked; a bad value is refused
// naming the flag and the allowed range (before, --max-tokens 0 and -5
// silently became 256 and --image-size -100 or --vision-batch -1 were
// ignored).
func TestFlagValidation(t *testing.T) {
	dir := tinyModel(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--max-tokens", "0"}, "--max-tokens 0: want 1 or more"},
		{[]string{"--max-tokens", "-5"}, "--max-tokens -5: want 1 or more"},
		{[]string{"--max-tokens", "9000"}, "--max-tokens 9000: want 1 to 8192"},
		{[]string{"--image", sampleImage, "--image-size", "-100"}, "--image-size -100: want 0 or more"},
		{[]string{"--image", sampleImage, "--image-size", "5000"}, "--image-size 5000: want 0 to 2048"},
		{[]string{"--vision-batch", "-1"}, "--vision-batch -1: want 0 or more"},
		{[]string{"--threads", "-2"}, "--threads -2: want 0 to 1024"},
		{[]string{"--temperature", "-1"}, "--temperature -1: want 0 or more"},
		{[]string{"--temperature", "NaN"}, "--temperature NaN: want 0 or more"},
		{[]string{"--top-k", "-3"}, "--top-k -3: want 0 or more"},
		{[]string{"--top-p", "1.5"}, "--top-p 1.5: want 0 to 1"},
		{[]string{"--min-p", "-0.1"}, "--min-p -0.1: want 0 to 1"},
		{[]string{"--repetition-penalty", "-2"}, "--repetition-penalty -2: want 0 or more"},
		{[]string{"--max-image-bytes", "-1"}, "--max-image-bytes -1: want 0 or more"},
		{[]string{"--image", sampleImage, "--max-image-bytes", "1000"}, "35619 bytes, more than the limit of 1000 (--max-image-bytes raises the limit)"},
		{[]string{"--stop", ""}, "--stop: the stop string is empty"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := append([]string{"--model", dir, "--json"}, c.args...)
			err := runRun(context.Background(), append(args, "hi"), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want containing %q", err, c.want)
			}
		})
	}
	// The same bounds in the commands that only read the model's configs.
	var out bytes.Buffer
	if err := runPrompt(context.Background(), []string{"--model", dir, "--image", sampleImage, "--image-size", "5000", "hi"}, &out, &out); err == nil || !strings.Contains(err.Error(), "--image-size 5000: want 0 to 2048") {
		t.Errorf("prompt --image-size 5000: %v", err)
	}
	if err := runChat(context.Background(), []string{"--model", dir, "--vision-batch", "-1"}, strings.NewReader(""), &out, &out); err == nil || !strings.Contains(err.Error(), "--vision-batch -1") {
		t.Errorf("chat --vision-batch -1: %v", err)
	}
	if err := runServe(context.Background(), []string{"--model", dir, "--port", "0", "--cache-mb", "-1"}, &out, &out, nil); err == nil || !strings.Contains(err.Error(), "--cache-mb -1: want 0 or more") {
		t.Errorf("serve --cache-mb -1: %v", err)
	}
}

// TestQuestionFromStdinAndFile: "-" reads the question from stdin and
// --question-file from a file, for run, prompt and tokenize, giving the same
// prompt as the question on the command line; a 64 KB question works.
func TestQuestionFromStdinAndFile(t *testing.T) {
	dir := tinyModel(t)
	const q = "What colour is the sky?"
	file := filepath.Join(t.TempDir(), "q.txt")
	if err := os.WriteFile(file, []byte(q+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	promptIDs := func(args []string, stdin string) []any {
		t.Helper()
		var out, errOut bytes.Buffer
		all := append([]string{"--model", dir, "--max-tokens", "1", "--json"}, args...)
		if err := runRunIO(context.Background(), all, strings.NewReader(stdin), &out, &errOut); err != nil {
			t.Fatalf("run %q: %v\n%s", args, err, errOut.String())
		}
		var got struct {
			PromptTokens []any `json:"prompt_tokens"`
		}
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		return got.PromptTokens
	}
	want := promptIDs([]string{q}, "")
	if got := promptIDs([]string{"-"}, q+"\n"); !slices.Equal(got, want) {
		t.Errorf("run - : prompt %v, want %v", got, want)
	}
	if got := promptIDs([]string{"--question-file", file}, ""); !slices.Equal(got, want) {
		t.Errorf("run --question-file: prompt %v, want %v", got, want)
	}
	var out bytes.Buffer
	if err := runRunIO(context.Background(), []string{"--model", dir, "--question-file", file, "again"}, strings.NewReader(""), &out, &out); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("question as arguments and file: %v", err)
	}
	tok := func(args []string, stdin string) string {
		var out bytes.Buffer
		if err := runTokenizeIO(append([]string{"--model", dir}, args...), strings.NewReader(stdin), &out); err != nil {
			t.Fatalf("tokenize %q: %v", args, err)
		}
		return out.String()
	}
	if a, b := tok([]string{q}, ""), tok([]string{"-"}, q+"\n"); a != b {
		t.Errorf("tokenize -: %q, want %q", b, a)
	}
	if a, b := tok([]string{q}, ""), tok([]string{"--question-file", file}, ""); a != b {
		t.Errorf("tokenize --question-file: %q, want %q", b, a)
	}
	long := strings.Repeat("information ", 64<<10/12)
	if err := os.WriteFile(file, []byte(long), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := runPrompt(context.Background(), []string{"--model", dir, "--question-file", file, "--json"}, &out, &out); err != nil || !strings.Contains(out.String(), "information information") {
		t.Errorf("prompt --question-file with 64 KB: %v", err)
	}
}

// mainChildEnv makes the test binary run main() with the arguments in it
// (separated by U+001F), so that a test sees the real exit status.
const mainChildEnv = "SNAPVLM_TEST_MAIN_ARGS"

func TestMainChild(t *testing.T) {
	args, ok := os.LookupEnv(mainChildEnv)
	if !ok {
		t.Skip("helper process for TestRunInterruptExitCode")
	}
	os.Args = append([]string{"snapvlm"}, strings.Split(args, "\x1f")...)
	main()
	os.Exit(0)
}

// TestRunInterruptExitCode interrupts `snapvlm run` while it streams: it
// exits with status 130 and "[stopped]" on stderr (it used to exit 0 with
// the text cut and no marker).
func TestRunInterruptExitCode(t *testing.T) {
	dir := tinyModel(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestMainChild$")
	cmd.Env = append(os.Environ(), mainChildEnv+"="+strings.Join([]string{"run", "--model", dir, "--max-tokens", "5000", "Tell me everything."}, "\x1f"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if _, err := io.ReadAtLeast(stdout, buf, 16); err != nil {
		t.Fatalf("no answer streamed: %v\n%s", err, stderr.String())
	}
	cmd.Process.Signal(syscall.SIGINT)
	go io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 {
		t.Fatalf("exit: %v, want status 130\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "[stopped]") {
		t.Errorf("stderr lacks [stopped]:\n%s", stderr.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a polling reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls until s has n occurrences of sub.
func waitFor(t *testing.T, s *syncBuffer, sub string, n int) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if strings.Count(s.String(), sub) >= n {
			return
		}
	}
	t.Fatalf("timed out waiting for %d× %q in:\n%s", n, sub, s.String())
}

// TestChatIdleInterrupt: Ctrl-C at the idle prompt no longer lingers to
// cancel the next answer; two in a row leave the chat.
func TestChatIdleInterrupt(t *testing.T) {
	dir := tinyModel(t)
	var f engineFlags
	f.model, f.maxTokens, f.maxImageBytes = dir, 4, 1<<20
	m, err := f.load(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	pr, pw := io.Pipe()
	defer pw.Close()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() { done <- chatLoop(context.Background(), m, &f, pr, &out, &errOut) }()
	waitFor(t, &out, "> ", 1)
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	waitFor(t, &errOut, "Ctrl-C again", 1)
	io.WriteString(pw, "Hello there\n")
	waitFor(t, &out, "> ", 3) // answered, back at the prompt
	if strings.Contains(errOut.String(), "[stopped]") {
		t.Fatalf("an interrupt at the prompt stopped the next answer:\n%s", errOut.String())
	}
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	waitFor(t, &errOut, "Ctrl-C again", 2)
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("two Ctrl-C at the prompt did not leave the chat")
	}
}

// TestChatImagesAndUsage: a bad /image is refused when given and the chat
// stays usable; quoted, backslash-escaped and ~/ paths work; `chat -h`
// prints a usage; a question argument is the first turn; --system is sent.
func TestChatImagesAndUsage(t *testing.T) {
	dir := tinyModel(t)
	home := t.TempDir()
	t.Setenv("HOME", home)
	img, err := os.ReadFile(sampleImage)
	if err != nil {
		t.Fatal(err)
	}
	spaced := filepath.Join(home, "my photos", "a b.jpg")
	os.MkdirAll(filepath.Dir(spaced), 0o755)
	if err := os.WriteFile(spaced, img, 0o644); err != nil {
		t.Fatal(err)
	}
	escaped := strings.ReplaceAll(spaced, " ", `\ `)
	input := strings.Join([]string{
		"/image chat.go", // not an image: refused now, not at the next turn
		"Hi",
		"/image '" + spaced + "'",
		`/image "` + spaced + `"`,
		"/image " + escaped,
		"/image ~/my photos/a b.jpg",
		"/quit",
	}, "\n") + "\n"
	var out, errOut bytes.Buffer
	err = runChat(context.Background(), []string{"--model", dir, "--max-tokens", "3", "--verbose", "--no-split", "--system", "Be brief.", "First", "question"}, strings.NewReader(input), &out, &errOut)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	log := errOut.String()
	if !strings.Contains(log, "chat.go") || !strings.Contains(log, "not attached") {
		t.Errorf("bad /image not refused at /image time:\n%s", log)
	}
	if strings.Contains(log, "error: ") && strings.Count(log, "error: ") != 1 {
		t.Errorf("errors after the bad image:\n%s", log)
	}
	if n := strings.Count(log, "attached to your next message"); n != 4 {
		t.Errorf("%d of 4 quoted/escaped/~ paths attached:\n%s", n, log)
	}
	if n := strings.Count(log, "[prompt "); n != 2 {
		t.Errorf("%d answers, want 2 (the argument question and Hi):\n%s", n, log)
	}
	var usage bytes.Buffer
	if err := runChat(context.Background(), []string{"-h"}, strings.NewReader(""), &usage, &usage); !errors.Is(err, flag.ErrHelp) || !strings.Contains(usage.String(), "Usage: snapvlm chat") || !strings.Contains(usage.String(), "/image PATH") {
		t.Errorf("chat -h: %v\n%s", err, usage.String())
	}
	if got := shellPath("~"); got != home {
		t.Errorf("shellPath(~) = %q, want %q", got, home)
	}
}

// TestModelsJSONSnakeCase: `models --json` keys are snake_case like
// `run --json` (they were Go field names).
func TestModelsJSONSnakeCase(t *testing.T) {
	repo := hubtest.Repo{ID: pullTestRepo, Commit: pullTestCommit, Files: pullTestFiles()}
	srv := hubtest.New(t, "", repo)
	opt := pullTestOptions(srv, t.TempDir())
	if _, err := hub.Pull(context.Background(), pullTestRepo, "main", opt); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runModels(context.Background(), []string{"--json"}, &out, &out, opt); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || len(got) != 1 {
		t.Fatalf("%v: %s", err, out.String())
	}
	for _, k := range []string{"repo", "dir", "size", "revisions"} {
		if _, ok := got[0][k]; !ok {
			t.Errorf("model lacks %q: %v", k, got[0])
		}
	}
	revs, _ := got[0]["revisions"].([]any)
	if len(revs) != 1 {
		t.Fatalf("revisions %v", got[0]["revisions"])
	}
	for _, k := range []string{"commit", "refs", "dir", "model_type", "variants", "size", "files"} {
		if _, ok := revs[0].(map[string]any)[k]; !ok {
			t.Errorf("revision lacks %q: %v", k, revs[0])
		}
	}
}

// TestSystemFlag: --system puts a system message before the question.
func TestSystemFlag(t *testing.T) {
	dir := tinyModel(t)
	run := func(extra ...string) []int64 {
		t.Helper()
		var out, errOut bytes.Buffer
		args := append([]string{"--model", dir, "--max-tokens", "1", "--json"}, extra...)
		if err := runRun(context.Background(), append(args, "Hi"), &out, &errOut); err != nil {
			t.Fatalf("%v\n%s", err, errOut.String())
		}
		var got struct {
			PromptTokens []int64 `json:"prompt_tokens"`
		}
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		return got.PromptTokens
	}
	plain := run()
	withSystem := run("--system", "You answer in French.")
	var tok bytes.Buffer
	if err := runTokenizeIO([]string{"--model", dir, "--json", " answer in French."}, strings.NewReader(""), &tok); err != nil {
		t.Fatal(err)
	}
	var ids struct {
		IDs []int64 `json:"ids"`
	}
	if err := json.Unmarshal(tok.Bytes(), &ids); err != nil {
		t.Fatal(err)
	}
	found := false
	for i := range withSystem {
		if i+len(ids.IDs) <= len(withSystem) && slices.Equal(withSystem[i:i+len(ids.IDs)], ids.IDs) {
			found = true
		}
	}
	if !found || len(withSystem) <= len(plain) {
		t.Errorf("--system text %v not in the prompt %v (without it: %v)", ids.IDs, withSystem, plain)
	}
}

// TestCacheCommandAndRm: `snapvlm cache` lists the decoders --decoder-int8
// rewrote, `snapvlm rm` removes those whose model is gone and `cache clear`
// removes the rest (they used to stay in ~/.cache/snapvlm/rewritten for good).
func TestCacheCommandAndRm(t *testing.T) {
	src := tinyModel(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	// Two model directories (symlinks to the tiny model's files): the copy
	// of the first goes stale when it is deleted.
	load := func() string {
		dir := t.TempDir()
		entries, _ := os.ReadDir(src)
		for _, e := range entries {
			if err := os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
		// Without the attention rewrite, whose own copy would be rewritten
		// again, and the optimised graphs (copies of their own).
		f := engineFlags{model: dir, dtype: "q4", decoderInt8: true, plainAttention: true, noGraphCache: true, maxTokens: 1}
		m, err := f.load(context.Background(), true)
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
		return dir
	}
	gone, kept := load(), load()
	var out bytes.Buffer
	if err := runCache(context.Background(), nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "in use"); n != 2 || !strings.Contains(out.String(), kept) {
		t.Fatalf("cache list shows %d copies in use, want 2:\n%s", n, out.String())
	}
	if err := os.RemoveAll(gone); err != nil {
		t.Fatal(err)
	}
	repo := hubtest.Repo{ID: pullTestRepo, Commit: pullTestCommit, Files: pullTestFiles()}
	srv := hubtest.New(t, "", repo)
	opt := pullTestOptions(srv, t.TempDir())
	if _, err := hub.Pull(context.Background(), pullTestRepo, "main", opt); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := runRm(context.Background(), []string{pullTestRepo}, &out, &out, opt); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "removed 1 rewritten decoder(s)") {
		t.Errorf("rm did not remove the stale copy:\n%s", out.String())
	}
	out.Reset()
	if err := runCache(context.Background(), []string{"clear"}, &out, &out); err != nil || !strings.Contains(out.String(), "removed 1 rewritten decoder(s)") {
		t.Errorf("cache clear: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := runCache(context.Background(), []string{"list"}, &out, &out); err != nil || !strings.Contains(out.String(), "no rewritten decoders") {
		t.Errorf("cache list after clear: %v\n%s", err, out.String())
	}
	if err := runCache(context.Background(), []string{"bogus"}, &out, &out); err == nil {
		t.Error("cache bogus: no error")
	}
}

// TestRunProgress: the vision progress line is drawn and cleared on a
// terminal, and nothing is written when stderr is not one.
func TestRunProgress(t *testing.T) {
	var b bytes.Buffer
	p := &progressLine{w: &b}
	p.show(snapvlm.Progress{Image: 1, Images: 2, Done: 0, Tiles: 13})
	p.show(snapvlm.Progress{Image: 1, Images: 2, Done: 12, Tiles: 13})
	p.clear()
	p.clear()
	want := "\rencoding image 1/2: tile 0/13" + "\rencoding image 1/2: tile 12/13" + "\r" + strings.Repeat(" ", 30) + "\r"
	if b.String() != want {
		t.Errorf("progress line %q, want %q", b.String(), want)
	}
	dir := tinyModel(t)
	var out, errOut bytes.Buffer
	if err := runRun(context.Background(), []string{"--model", dir, "--image", sampleImage, "--max-tokens", "2", "hi"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr not a terminal, yet: %q", errOut.String())
	}
}
