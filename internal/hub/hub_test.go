package hub

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseSpec(t *testing.T) {
	cases := []struct {
		spec, repo, rev string
		ok              bool
	}{
		{"HuggingFaceTB/SmolVLM2-500M-Video-Instruct", "HuggingFaceTB/SmolVLM2-500M-Video-Instruct", "main", true},
		{"HuggingFaceTB/SmolVLM-256M-Instruct@v1.0", "HuggingFaceTB/SmolVLM-256M-Instruct", "v1.0", true},
		{"org/name@refs/pr/3", "org/name", "refs/pr/3", true},
		{"org/name_x.y", "org/name_x.y", "main", true},
		{"org/name@", "", "", false},
		{"name", "", "", false},
		{"a/b/c", "", "", false},
		{"org--x/name", "", "", false},
		{"org/na..me", "", "", false},
		{"org/name.", "", "", false},
		{"-org/name", "", "", false},
		{"./org/name", "", "", false},
		{"/abs/path", "", "", false},
		{"org/" + strings.Repeat("x", 100), "", "", false},
		{"org/name@0123456789abcdef0123456789abcdef01234567", "org/name", "0123456789abcdef0123456789abcdef01234567", true},
		{"org/name@feature/x-1_2", "org/name", "feature/x-1_2", true},
		// Revisions name a file under refs/: nothing may lead outside it.
		{"org/name@../../../../x", "", "", false},
		{"org/name@a/../../b", "", "", false},
		{"org/name@/etc/x", "", "", false},
		{"org/name@a//b", "", "", false},
		{"org/name@a/", "", "", false},
		{"org/name@.hidden", "", "", false},
		{"org/name@v1.lock", "", "", false},
		{"org/name@a b", "", "", false},
		{"org/name@a\\b", "", "", false},
		{"org/name@a\nb", "", "", false},
		{"org/name@x@{1}", "", "", false},
		{"org/name@" + strings.Repeat("x", 256), "", "", false},
	}
	for _, tc := range cases {
		repo, rev, err := ParseSpec(tc.spec)
		if (err == nil) != tc.ok || repo != tc.repo || rev != tc.rev {
			t.Errorf("ParseSpec(%q) = %q, %q, %v; want %q, %q, ok=%v", tc.spec, repo, rev, err, tc.repo, tc.rev, tc.ok)
		}
	}
}

func TestIsRepoID(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "org", "local"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	cases := []struct {
		s    string
		want bool
	}{
		{"HuggingFaceTB/SmolVLM2-500M-Video-Instruct", true},
		{"org/name@main", true},
		{"org/local", false}, // an existing directory wins
		{dir, false},
		{"model-dir", false},
		{"", false},
	}
	for _, tc := range cases {
		if got := IsRepoID(tc.s); got != tc.want {
			t.Errorf("IsRepoID(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func TestOptionsFromEnv(t *testing.T) {
	home := t.TempDir()
	hfHomeDir := filepath.Join(home, "hfhome")
	if err := os.MkdirAll(hfHomeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hfHomeDir, "token"), []byte("hf_fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenPath := filepath.Join(home, "tok")
	if err := os.WriteFile(tokenPath, []byte("hf_frompath"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := []string{"HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ENDPOINT", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_OFFLINE", "XDG_CACHE_HOME"}
	cases := []struct {
		name string
		env  map[string]string
		want Options
	}{
		{"defaults", nil, Options{Endpoint: DefaultEndpoint, CacheDir: filepath.Join(home, ".cache", "huggingface", "hub")}},
		{"HF_HOME and its token file", map[string]string{"HF_HOME": hfHomeDir}, Options{Endpoint: DefaultEndpoint, CacheDir: filepath.Join(hfHomeDir, "hub"), Token: "hf_fromfile"}},
		{"HF_HUB_CACHE wins over HF_HOME", map[string]string{"HF_HOME": hfHomeDir, "HF_HUB_CACHE": "/c", "HF_TOKEN": "hf_env"}, Options{Endpoint: DefaultEndpoint, CacheDir: "/c", Token: "hf_env"}},
		{"XDG_CACHE_HOME", map[string]string{"XDG_CACHE_HOME": "/x"}, Options{Endpoint: DefaultEndpoint, CacheDir: "/x/huggingface/hub"}},
		{"HF_TOKEN_PATH", map[string]string{"HF_TOKEN_PATH": tokenPath}, Options{Endpoint: DefaultEndpoint, CacheDir: filepath.Join(home, ".cache", "huggingface", "hub"), Token: "hf_frompath"}},
		{"endpoint and offline", map[string]string{"HF_ENDPOINT": "https://hf-mirror.com/", "HF_HUB_OFFLINE": "1"}, Options{Endpoint: "https://hf-mirror.com", CacheDir: filepath.Join(home, ".cache", "huggingface", "hub"), Offline: true}},
		{"offline spelled true", map[string]string{"HF_HUB_OFFLINE": "True"}, Options{Endpoint: DefaultEndpoint, CacheDir: filepath.Join(home, ".cache", "huggingface", "hub"), Offline: true}},
		{"offline 0", map[string]string{"HF_HUB_OFFLINE": "0"}, Options{Endpoint: DefaultEndpoint, CacheDir: filepath.Join(home, ".cache", "huggingface", "hub")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("HOME", home)
			for _, v := range vars {
				t.Setenv(v, "")
				os.Unsetenv(v)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			got := OptionsFromEnv()
			if got.Endpoint != tc.want.Endpoint || got.CacheDir != tc.want.CacheDir || got.Token != tc.want.Token || got.Offline != tc.want.Offline {
				t.Errorf("OptionsFromEnv() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestConfirmPull(t *testing.T) {
	plan := &PullPlan{Repo: "org/name", Downloads: 9, DownloadBytes: 512_300_000, CacheDir: "/cache"}
	cases := []struct {
		name        string
		input       string
		interactive bool
		downloads   int
		want        bool
		wantOut     string
	}{
		{"non-interactive proceeds and says so", "", false, 9, true, "org/name is not in the cache: download 9 files, 512.3 MB into /cache (not asking: stdin is not a terminal).\n"},
		{"enter is yes", "\n", true, 9, true, "org/name is not in the cache: download 9 files, 512.3 MB into /cache? [Y/n] "},
		{"y", "y\n", true, 9, true, "? [Y/n] "},
		{"YES", " YES \n", true, 9, true, "? [Y/n] "},
		{"n", "n\n", true, 9, false, "? [Y/n] "},
		{"other", "maybe\n", true, 9, false, "? [Y/n] "},
		{"EOF is no", "", true, 9, false, "? [Y/n] "},
		{"nothing to download", "", true, 0, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := *plan
			p.Downloads = tc.downloads
			var out bytes.Buffer
			got := confirm(context.Background(), strings.NewReader(tc.input), &out, &p, tc.interactive)
			if got != tc.want {
				t.Errorf("confirm = %v, want %v", got, tc.want)
			}
			if !strings.HasSuffix(out.String(), tc.wantOut) || (tc.wantOut == "" && out.Len() > 0) {
				t.Errorf("output %q, want suffix %q", out.String(), tc.wantOut)
			}
		})
	}
	// A strings.Reader is not a terminal: ConfirmPull proceeds without asking.
	var out bytes.Buffer
	if !ConfirmPull(context.Background(), strings.NewReader("n\n"), &out, plan) || !strings.Contains(out.String(), "not asking") {
		t.Errorf("ConfirmPull on a non-terminal: %q", out.String())
	}
	// Cancelling while waiting for an answer is a no.
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	if confirm(ctx, pr, io.Discard, plan, true) {
		t.Errorf("confirm after cancel = true")
	}
}

func TestHumanBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {999, "999 B"}, {1000, "1.0 kB"}, {1536, "1.5 kB"},
		{265_100_000, "265.1 MB"}, {1_500_000_000, "1.5 GB"},
	} {
		if got := humanBytes(tc.n); got != tc.want {
			t.Errorf("humanBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// fakeClock reads the time the test sets.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestProgress(t *testing.T) {
	t.Run("terminal bar", func(t *testing.T) {
		var out bytes.Buffer
		clk := &fakeClock{t: time.Unix(0, 0)}
		p := &progress{w: &out, tty: true, width: 100, now: clk.now}
		b := p.start("onnx/decoder_model_merged_q4.onnx", 2000, 0)
		clk.t = clk.t.Add(time.Second)
		b.Write(make([]byte, 1000)) // 1000 B in 1 s
		line := out.String()[strings.LastIndex(out.String(), "\r")+1:]
		// 1000 of 2000 bytes at 1000 B/s: 50%, 1 s left.
		for _, want := range []string{"onnx/decoder_model_merged_q4.onnx", " 50% |", "1.0 kB/2.0 kB", "1.0 kB/s", "ETA 1s"} {
			if !strings.Contains(line, want) {
				t.Errorf("bar %q lacks %q", line, want)
			}
		}
		if n := len([]rune(strings.TrimPrefix(line, "\x1b[K"))); n > 100 {
			t.Errorf("bar is %d wide, terminal is 100", n)
		}
		b.finish(nil)
		if !strings.HasSuffix(out.String(), "\n") || !strings.Contains(out.String(), "done onnx/decoder_model_merged_q4.onnx 1.0 kB") {
			t.Errorf("finish output %q", out.String())
		}
	})
	t.Run("plain lines", func(t *testing.T) {
		var out bytes.Buffer
		clk := &fakeClock{t: time.Unix(0, 0)}
		p := &progress{w: &out, now: clk.now}
		b := p.start("config.json", 4000, 1000)
		clk.t = clk.t.Add(3 * time.Second)
		b.Write(make([]byte, 1000)) // 3 s: too soon for a status line
		if strings.Contains(out.String(), "  config.json") {
			t.Errorf("status line after 3 s: %q", out.String())
		}
		clk.t = clk.t.Add(3 * time.Second)
		b.Write(make([]byte, 1000)) // 6 s: 2000 B at 333 B/s, 1000 B left
		b.finish(nil)
		got := out.String()
		if strings.Contains(got, "\r") {
			t.Errorf("plain output has carriage returns: %q", got)
		}
		want := []string{"resume config.json at 1.0 kB of 4.0 kB\n", "  config.json  75% 3.0 kB/4.0 kB 333 B/s ETA 3s\n", "done config.json 3.0 kB in"}
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("plain output %q lacks %q", got, w)
			}
		}
	})
	t.Run("nil is quiet", func(t *testing.T) {
		p := newProgress(nil, nil)
		b := p.start("x", 1, 0)
		if n, err := b.Write([]byte("x")); n != 1 || err != nil {
			t.Errorf("nil bar Write = %d, %v", n, err)
		}
		b.finish(nil)
		p.printf("x")
	})
}
