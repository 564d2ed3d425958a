package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a log destination safe for the server's goroutines.
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

// TestRequestLog: one JSON log line per API request with id, status, model
// and tokens; never the key, never the image.
func TestRequestLog(t *testing.T) {
	var logs syncBuffer
	_, hs := startServer(t, Config{APIKey: "sesame-secret", Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	dataURL, _ := sampleDataURL(t)
	body := `{"max_tokens":3,"no_split":true,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"` + dataURL + `"}},{"type":"text","text":"Hi"}]}]}`
	for _, key := range []string{"sesame-secret", "wrong-key"} {
		req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	http.Get(hs.URL + "/health")
	out := logs.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2 (health checks are not logged):\n%s", len(lines), out)
	}
	var ok, denied map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &ok); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &denied); err != nil {
		t.Fatal(err)
	}
	if ok["status"] != 200.0 || ok["model"] != testModelID || ok["completion_tokens"] != 3.0 || ok["id"] == "" || ok["prompt_tokens"].(float64) < 60 {
		t.Errorf("log line of the answered request: %v", ok)
	}
	if denied["status"] != 401.0 {
		t.Errorf("log line of the refused request: %v", denied)
	}
	if strings.Contains(out, "sesame") || strings.Contains(out, "wrong-key") || strings.Contains(out, dataURL[30:60]) {
		t.Errorf("the log holds the key or image bytes:\n%s", out)
	}
}

// TestCORS: with a CORS origin, responses carry it and a preflight is
// answered without the key.
func TestCORS(t *testing.T) {
	_, hs := startServer(t, Config{APIKey: "k", CORSOrigin: "https://example.org"})
	req, _ := http.NewRequest(http.MethodOptions, hs.URL+"/v1/chat/completions", nil)
	req.Header.Set("Origin", "https://example.org")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "https://example.org" ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight: %d %v", resp.StatusCode, h)
	}
	resp, err = http.Get(hs.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("Access-Control-Allow-Origin") != "https://example.org" {
		t.Errorf("GET without key: %d, allow-origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}
