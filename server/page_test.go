package server

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// chromium finds Debian's chromium (or Chrome). Without it the browser
// tests skip, unless the run requires them (CI=true or
// SNAPVLM_REQUIRE_CHROMIUM=1, as `make test` sets): then they fail.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome",
		"/Applications/Chromium.app/Contents/MacOS/Chromium", "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium not found (scripts/sysdeps.sh installs Debian's chromium)"
	if os.Getenv("CI") == "true" || os.Getenv("SNAPVLM_REQUIRE_CHROMIUM") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// slowWrites delays each write of the chat stream, as a slow network
// would, so the test can press Stop while an answer is streaming.
type slowWrites struct {
	http.ResponseWriter
	delay time.Duration
}

func (w *slowWrites) Write(b []byte) (int, error) {
	time.Sleep(w.delay)
	return w.ResponseWriter.Write(b)
}

func (w *slowWrites) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TestPageInBrowser drives the page in a real Chromium on a 360-px-wide
// screen: upload a real photo through the file input, ask, wait for the
// streamed answer and compare it with the API's answer to the same request,
// ask a follow-up (compared the same way), then press Stop mid-answer.
func TestPageInBrowser(t *testing.T) {
	exe := chromium(t)
	s, _ := startServer(t, Config{Parallel: 1, Queue: 4, Sessions: 4})
	var slow atomic.Bool
	hs := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() && r.URL.Path == "/v1/chat/completions" {
			w = &slowWrites{ResponseWriter: w, delay: 20 * time.Millisecond}
		}
		s.ServeHTTP(w, r)
	}))
	dataURL, _ := sampleDataURL(t)
	photo, err := filepath.Abs(filepath.Join("..", "assets", "sample.jpg"))
	if err != nil {
		t.Fatal(err)
	}

	pg := newPage(t, exe)
	ctx, step, text, waitFor := pg.ctx, pg.do, pg.text, pg.waitFor
	ask := func(q string) {
		t.Helper()
		step("ask "+q,
			chromedp.SendKeys(chromedp.ID("question"), q),
			chromedp.Click(chromedp.ID("ask")),
		)
	}
	const maxTokens = 24
	step("open the page", chromedp.Navigate(hs.URL))
	waitFor(`document.getElementById("model").textContent === "` + testModelID + `"`)
	step("settings",
		chromedp.Click(chromedp.CSS("#settings summary")),
		chromedp.SetValue(chromedp.ID("max-tokens"), "24"),
	)
	step("upload the photo", chromedp.SetUploadFiles(chromedp.ID("file"), []string{photo}))
	waitFor(`document.getElementById("preview").src.startsWith("data:image/jpeg;base64,")`)
	waitFor(`document.body.dataset.image === "ready"`)
	if st := text(`document.getElementById("image-status").textContent`); !strings.Contains(st, "1 tile") {
		t.Errorf("image status %q, want 1 tile (no split is the page's default)", st)
	}

	// First question: the page's answer is the API's answer.
	q1 := "What is in this picture?"
	ask(q1)
	waitFor(`document.body.dataset.answers === "1" && document.body.dataset.state === "idle"`)
	a1 := text(`document.querySelector("#log li.assistant .text").textContent`)
	c := client(hs.URL)
	base := openai.ChatCompletionNewParams{Model: testModelID, MaxTokens: openai.Int(maxTokens), Temperature: openai.Float(0)}
	first := openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
		openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: dataURL}),
		openai.TextContentPart(q1),
	})
	p := base
	p.Messages = []openai.ChatCompletionMessageParamUnion{first}
	want1, err := c.Chat.Completions.New(ctx, p, option.WithJSONSet("no_split", true))
	if err != nil {
		t.Fatal(err)
	}
	if a1 == "" || a1 != want1.Choices[0].Message.Content {
		t.Errorf("page answer %q, API answer %q", a1, want1.Choices[0].Message.Content)
	}
	if st := text(`document.getElementById("stats").textContent`); !strings.Contains(st, "first token") || !strings.Contains(st, "tokens/s") || !strings.Contains(st, testModelID) {
		t.Errorf("stats %q: want the model, time to first token and tokens/s", st)
	}
	// The photo was encoded when it was chosen: the answer found it cached.
	if st := text(`document.getElementById("stats").textContent`); !strings.Contains(st, "1 tile (cached)") {
		t.Errorf("stats %q: want the photo's tile from the feature cache (encoded on upload)", st)
	}

	// A follow-up continues the conversation about the same photo.
	q2 := "And the colours?"
	ask(q2)
	waitFor(`document.body.dataset.answers === "2" && document.body.dataset.state === "idle"`)
	a2 := text(`document.querySelectorAll("#log li.assistant .text")[1].textContent`)
	p.Messages = []openai.ChatCompletionMessageParamUnion{first, openai.AssistantMessage(a1), openai.UserMessage(q2)}
	want2, err := c.Chat.Completions.New(ctx, p, option.WithJSONSet("no_split", true))
	if err != nil {
		t.Fatal(err)
	}
	if a2 != want2.Choices[0].Message.Content {
		t.Errorf("follow-up: page %q, API %q", a2, want2.Choices[0].Message.Content)
	}

	// Stop mid-answer: the stream is slowed down, the answer may be long.
	slow.Store(true)
	step("longer answers", chromedp.SetValue(chromedp.ID("max-tokens"), "400"))
	ask("Tell me more.")
	waitFor(`document.querySelectorAll("#log li.assistant .text")[2].textContent.length > 0`)
	step("stop", chromedp.Click(chromedp.ID("stop")))
	waitFor(`document.body.dataset.state === "idle"`)
	if fin := text(`document.querySelectorAll("#log li.assistant")[2].dataset.finish`); fin != "stopped" {
		t.Fatalf("third answer finished %q, want stopped (Stop pressed mid-answer)", fin)
	}
	waitMetric(t, hs.URL, "snapvlm_busy_slots", 0, 5*time.Second)
	if n := metric(t, hs.URL, `snapvlm_cancelled_generations_total{model="tiny"}`); n != 1 {
		t.Errorf("cancelled generations %v, want 1", n)
	}
	slow.Store(false)

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "snapvlm-page.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	if err := os.WriteFile("/tmp/snapvlm-page.png", shot, 0o644); err == nil {
		t.Logf("copy for people: /tmp/snapvlm-page.png")
	}
}

// page drives one browser tab for a test; every call fails the test on an
// error, naming what it was doing (and the page's own error line).
type page struct {
	t   *testing.T
	ctx context.Context
}

func newPage(t *testing.T, exe string) *page { return &page{t: t, ctx: browser(t, exe)} }

// do runs actions, described by what in a failure.
func (p *page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// text evaluates a JavaScript expression of string value.
func (p *page) text(js string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// waitFor polls a JavaScript condition for up to 90 s.
func (p *page) waitFor(js string) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(90*time.Second))); err != nil {
		p.t.Fatalf("waiting for %s: %v (page error: %q)", js, err, p.text(`document.getElementById("error").textContent`))
	}
}

// browser starts a headless Chromium with a fresh profile and a
// 360-px-wide window; it ends with the test.
func browser(t *testing.T, exe string) context.Context {
	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(360, 900),
	)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestPageAPIKey: on a server with a key the page asks for it once, then
// works; the key is kept for the next visit.
func TestPageAPIKey(t *testing.T) {
	exe := chromium(t)
	_, hs := startServer(t, Config{APIKey: "sesame"})
	ctx := browser(t, exe)
	modelShown := `document.getElementById("model").textContent === "` + testModelID + `"`
	if err := chromedp.Do(ctx,
		chromedp.Navigate(hs.URL),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), "sesame"),
		chromedp.Click(chromedp.CSS("#key-form button")),
	); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](modelShown, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("the model list did not load after the key was given: %v", err)
	}
	// A reload does not ask again.
	if err := chromedp.Do(ctx, chromedp.Navigate(hs.URL)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](modelShown, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("after a reload: %v", err)
	}
	open, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("key-dialog").open`))
	if err != nil || open {
		t.Errorf("the key dialog is open after a reload (%v)", err)
	}
}
