package server

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEncodeOnUpload: POST /v1/snapvlm/encode (JSON or multipart) computes
// a photo's features, so the chat request that follows finds them cached
// and runs no vision encoder.
func TestEncodeOnUpload(t *testing.T) {
	_, hs := startServer(t, Config{Parallel: 1, Queue: 4})
	dataURL, _ := sampleDataURL(t)
	post := func(ct string, body io.Reader) map[string]any {
		t.Helper()
		resp, err := http.Post(hs.URL+"/v1/snapvlm/encode", ct, body)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		out["status_code"] = float64(resp.StatusCode)
		return out
	}
	// Background encode: answers at once with the id.
	bg := post("application/json", strings.NewReader(`{"image":"`+dataURL+`","image_size":1024}`))
	if bg["status_code"] != 202.0 || bg["status"] != "encoding" || len(bg["id"].(string)) != 64 {
		t.Fatalf("background encode: %v", bg)
	}
	// The same image and options through a multipart form, waiting: the
	// same id, and the features are (or become) cached.
	photo, _ := os.ReadFile(filepath.Join("..", "assets", "sample.jpg"))
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	mw.WriteField("image_size", "1024")
	mw.WriteField("wait", "true")
	fw, _ := mw.CreateFormFile("image", "sample.jpg")
	fw.Write(photo)
	mw.Close()
	got := post(mw.FormDataContentType(), &form)
	if got["status_code"] != 200.0 || got["status"] != "ready" || got["id"] != bg["id"] || got["tiles"].(float64) < 2 {
		t.Fatalf("multipart encode: %v (background id %v)", got, bg["id"])
	}
	// The chat request takes the features from the cache.
	body := `{"max_tokens":4,"image_size":1024,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"` + dataURL + `"}},{"type":"text","text":"What is this?"}]}]}`
	resp, err := http.Post(hs.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res completion
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	if res.Timings.CachedImages != 1 || res.Timings.VisionMS != 0 || res.Timings.Tiles != int(got["tiles"].(float64)) {
		t.Errorf("chat after encode: timings %+v, want the image cached (%v tiles)", res.Timings, got["tiles"])
	}
	if hits := metric(t, hs.URL, `snapvlm_feature_cache_hits_total{model="tiny"}`); hits < 2 {
		t.Errorf("feature cache hits %v, want at least 2 (the waiting encode or the chat)", hits)
	}
	waitMetric(t, hs.URL, "snapvlm_busy_slots", 0, 5*time.Second)

	// Bad input is a named 400.
	for _, bad := range []string{`{}`, `{"image":"data:text/plain;base64,aGk="}`, `{"image":"` + dataURL + `","image_size":-1}`} {
		if r := post("application/json", strings.NewReader(bad)); r["status_code"] != 400.0 {
			t.Errorf("%s: %v, want 400", bad, r)
		}
	}
}
