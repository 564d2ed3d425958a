package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDisconnectFreesSlot: a client that goes away mid-stream cancels its
// generation; the slot is free again (busy_slots 0, one cancelled
// generation in the metrics) and the next request is served.
func TestDisconnectFreesSlot(t *testing.T) {
	_, hs := startServer(t, Config{Parallel: 1, Queue: -1})
	ctx, cancel := context.WithCancel(context.Background())
	body := `{"model":"tiny","stream":true,` + longAnswer(t) + `}`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+"/v1/chat/completions", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	lines := sseLines(resp.Body)
	for i := 0; i < 3; i++ { // role, then two content chunks
		if _, ok := <-lines; !ok {
			t.Fatal("the stream ended early")
		}
	}
	if got := metric(t, hs.URL, "snapvlm_busy_slots"); got != 1 {
		t.Errorf("busy_slots %v while streaming, want 1", got)
	}
	cancel()
	resp.Body.Close()
	start := time.Now()
	waitMetric(t, hs.URL, "snapvlm_busy_slots", 0, 5*time.Second)
	t.Logf("slot free %s after the disconnect", time.Since(start).Round(time.Millisecond))
	waitMetric(t, hs.URL, `snapvlm_cancelled_generations_total{model="tiny"}`, 1, 5*time.Second)
	r2, err := http.Post(hs.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"max_tokens":2,"messages":[{"role":"user","content":"Hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 200 {
		t.Errorf("the next request got %d", r2.StatusCode)
	}
}
