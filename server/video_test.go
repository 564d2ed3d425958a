package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/snapvlm/snapvlm"
	"github.com/snapvlm/snapvlm/internal/video/videotest"
)

// TestVideoURL: a video_url content part with a data:video/mp4;base64 URL
// (the form vLLM accepts) answers as Model.Generate does for the same
// bytes; a broken video is a 400 naming the part.
func TestVideoURL(t *testing.T) {
	videotest.Require(t)
	_, hs := startServer(t, Config{Parallel: 1, Queue: 4})
	m := testModel(t)
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=10:duration=3",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", clip).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	data, err := os.ReadFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	post := func(url string) (*http.Response, map[string]any) {
		body, _ := json.Marshal(map[string]any{
			"model": testModelID, "max_tokens": 8,
			"messages": []any{map[string]any{"role": "user", "content": []any{
				map[string]any{"type": "video_url", "video_url": map[string]any{"url": url}},
				map[string]any{"type": "text", "text": "What happens?"},
			}}},
		})
		resp, err := http.Post(hs.URL+"/v1/chat/completions", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return resp, out
	}

	want, err := m.Generate(context.Background(), snapvlm.Request{GenerateOptions: snapvlm.GenerateOptions{MaxNewTokens: 8}, Messages: []snapvlm.Message{{Role: snapvlm.User,
		Content: []snapvlm.Part{{Video: snapvlm.VideoBytes("clip.mp4", data)}, {Text: "What happens?"}}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, out := post("data:video/mp4;base64," + base64.StdEncoding.EncodeToString(data))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %v", resp.StatusCode, out)
	}
	choice := out["choices"].([]any)[0].(map[string]any)
	text := choice["message"].(map[string]any)["content"].(string)
	var ids []int64
	for _, v := range choice["token_ids"].([]any) {
		ids = append(ids, int64(v.(float64)))
	}
	if text != want.Text || !slices.Equal(ids, want.Tokens) {
		t.Errorf("server: %q %v; Generate: %q %v", text, ids, want.Text, want.Tokens)
	}
	if got := int(out["usage"].(map[string]any)["prompt_tokens"].(float64)); got != len(want.PromptTokens) {
		t.Errorf("prompt tokens %d, want %d", got, len(want.PromptTokens))
	}

	for _, bad := range []struct{ url, want string }{
		{"data:video/mp4;base64," + base64.StdEncoding.EncodeToString([]byte("not a video")), "video_url.url"},
		{"https://example.com/clip.mp4", "data:video/"},
		{"data:text/plain;base64,aGVsbG8=", "media type"},
	} {
		resp, out := post(bad.url)
		msg, _ := json.Marshal(out)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), bad.want) {
			t.Errorf("%.40s: status %d, %s; want 400 mentioning %q", bad.url, resp.StatusCode, msg, bad.want)
		}
	}
}

// TestPageVideoInBrowser: in a real Chromium, a video chosen through the
// page's file input is sent as a video_url and answered as Model.Generate
// answers the same bytes.
func TestPageVideoInBrowser(t *testing.T) {
	exe := chromium(t)
	videotest.Require(t)
	_, hs := startServer(t, Config{Parallel: 1, Queue: 4})
	m := testModel(t)
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=10:duration=3",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", clip).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	data, err := os.ReadFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	pg := newPage(t, exe)
	run, text, waitFor := pg.do, pg.text, pg.waitFor
	run("open the page", chromedp.Navigate(hs.URL))
	waitFor(`document.getElementById("model").textContent === "` + testModelID + `"`)
	run("settings", chromedp.Click(chromedp.CSS("#settings summary")), chromedp.SetValue(chromedp.ID("max-tokens"), "16"))
	if accept := text(`document.getElementById("file").accept`); !strings.Contains(accept, "video/*") {
		t.Errorf("file input accepts %q, want video/* too", accept)
	}
	run("upload the video", chromedp.SetUploadFiles(chromedp.ID("file"), []string{clip}))
	waitFor(`!document.getElementById("preview-video").hidden && document.getElementById("image-status").textContent.startsWith("Video ready")`)
	q := "What happens?"
	run("ask", chromedp.SendKeys(chromedp.ID("question"), q), chromedp.Click(chromedp.ID("ask")))
	waitFor(`document.body.dataset.answers === "1" && document.body.dataset.state === "idle"`)
	got := text(`document.querySelector("#log li.assistant .text").textContent`)
	want, err := m.Generate(context.Background(), snapvlm.Request{GenerateOptions: snapvlm.GenerateOptions{MaxNewTokens: 16, NoSplit: true},
		Messages: []snapvlm.Message{{Role: snapvlm.User, Content: []snapvlm.Part{{Video: snapvlm.VideoBytes("clip.mp4", data)}, {Text: q}}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got == "" || got != want.Text {
		t.Errorf("page answer %q, Generate %q", got, want.Text)
	}
}
