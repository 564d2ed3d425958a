//go:build loadtest

package server

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapvlm/snapvlm"
)

// TestLoad (make loadtest) runs CLIENTS concurrent clients of REQUESTS
// requests each against an in-process server on loopback, --parallel 2
// --queue 8 by default: nothing but 429 may fail, no goroutine may leak,
// and RSS must stay flat. It reports p50/p99 latency and throughput.
// SNAPVLM_LOAD_MODEL (a model directory), SNAPVLM_LOAD_CLIENTS,
// SNAPVLM_LOAD_REQUESTS, SNAPVLM_LOAD_PARALLEL, SNAPVLM_LOAD_QUEUE and
// SNAPVLM_LOAD_TOKENS change the setup.
func TestLoad(t *testing.T) {
	env := func(name string, def int) int {
		if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
			return v
		}
		return def
	}
	clients, perClient := env("SNAPVLM_LOAD_CLIENTS", 50), env("SNAPVLM_LOAD_REQUESTS", 20)
	parallel, queue, tokens := env("SNAPVLM_LOAD_PARALLEL", 2), env("SNAPVLM_LOAD_QUEUE", 8), env("SNAPVLM_LOAD_TOKENS", 16)
	var m *snapvlm.Model
	if dir := os.Getenv("SNAPVLM_LOAD_MODEL"); dir != "" {
		var err error
		if m, err = snapvlm.Load(context.Background(), dir, snapvlm.Options{}); err != nil {
			t.Fatal(err)
		}
		defer m.Close()
	} else {
		m = testModel(t)
	}
	s, err := New(Config{Parallel: parallel, Queue: queue, Logger: discardLogger(),
		Models: []Model{{ID: "load", Load: func(context.Context) (*snapvlm.Model, error) { return m, nil }}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	hs := newServer(t, s)
	dataURL, _ := sampleDataURL(t)
	bodies := []string{
		fmt.Sprintf(`{"max_tokens":%d,"messages":[{"role":"user","content":"Describe a sunny day."}]}`, tokens),
		fmt.Sprintf(`{"max_tokens":%d,"stream":true,"messages":[{"role":"user","content":"Say hello."}]}`, tokens),
		fmt.Sprintf(`{"max_tokens":%d,"no_split":true,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":%q}},{"type":"text","text":"What is this?"}]}]}`, tokens, dataURL),
	}

	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	hc := &http.Client{Transport: tr}
	do := func(body string) (int, error) {
		resp, err := hc.Post(hs.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode == 200 && strings.Contains(body, `"stream":true`) && !strings.HasSuffix(string(b), "data: [DONE]\n\n") {
			err = fmt.Errorf("stream without [DONE]")
		}
		return resp.StatusCode, err
	}
	// Warm up (first runs allocate ONNX Runtime's arenas), then measure.
	for _, b := range bodies {
		if code, err := do(b); code != 200 || err != nil {
			t.Fatalf("warm-up: %d %v", code, err)
		}
	}
	tr.CloseIdleConnections()
	runtime.GC()
	time.Sleep(200 * time.Millisecond)
	goroutines, rss0 := runtime.NumGoroutine(), rssMB(t)

	var mu sync.Mutex
	var lat []time.Duration
	var rejected, failed int
	var rssMid float64
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range perClient {
				body := bodies[(c+r)%len(bodies)]
				for {
					t0 := time.Now()
					code, err := do(body)
					d := time.Since(t0)
					mu.Lock()
					switch {
					case err != nil || (code != 200 && code != 429):
						failed++
						t.Errorf("client %d request %d: status %d, %v", c, r, code, err)
					case code == 429:
						rejected++
					default:
						lat = append(lat, d)
						if len(lat) == clients*perClient/2 {
							rssMid = rssMB(t)
						}
					}
					mu.Unlock()
					if code != 429 {
						break
					}
					time.Sleep(time.Duration(20+rand.IntN(80)) * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	tr.CloseIdleConnections()
	runtime.GC()
	rss1 := rssMB(t)

	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	t.Logf("%d clients x %d requests, --parallel %d --queue %d, %d new tokens: %d served, %d answered 429 (retried), %d failed",
		clients, perClient, parallel, queue, tokens, len(lat), rejected, failed)
	t.Logf("latency (incl. queueing) p50 %s p90 %s p99 %s max %s; throughput %.1f requests/s over %s",
		pct(.5).Round(time.Millisecond), pct(.9).Round(time.Millisecond), pct(.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond),
		float64(len(lat))/elapsed.Seconds(), elapsed.Round(time.Millisecond))
	t.Logf("RSS after warm-up %.0f MB, half-way %.0f MB, end %.0f MB", rss0, rssMid, rss1)
	if rss1 > rss0*1.25+50 {
		t.Errorf("RSS grew from %.0f MB to %.0f MB", rss0, rss1)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after the run, %d before:\n%s", n, goroutines, buf[:runtime.Stack(buf, true)])
	}
	if busy := metric(t, hs.URL, "snapvlm_busy_slots"); busy != 0 {
		t.Errorf("busy_slots %v after the run", busy)
	}
}

func rssMB(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
