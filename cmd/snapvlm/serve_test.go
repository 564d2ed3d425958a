package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeSIGTERM: a real SIGTERM during a stream ends it cleanly (the
// answer is cut at the (1 ms) shutdown timeout, the client gets the final chunk
// and [DONE]), new requests are refused and serve returns nil.
func TestServeSIGTERM(t *testing.T) {
	dir := tinyModel(t)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var out, logs bytes.Buffer
	go func() {
		done <- runServe(ctx, []string{"--model", "t=" + dir, "--port", "0", "--shutdown-timeout", "1ms", "--max-tokens", "8"}, &out, &logs, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not become ready")
	}
	base := "http://" + addr
	// A photo split into many tiles keeps the vision encoder busy for a while
	// after the first chunk (the role), whatever the machine's load: the
	// signal arrives while the request is running.
	photo, err := os.ReadFile(filepath.Join("..", "..", "assets", "sample.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	body := `{"model":"t","stream":true,"max_tokens":8000,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,` +
		base64.StdEncoding.EncodeToString(photo) + `"}},{"type":"text","text":"Hi"}]}]}`
	resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var lines []string
	for sc.Scan() {
		if l, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			lines = append(lines, l)
			if len(lines) == 1 {
				if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	if len(lines) < 3 || lines[len(lines)-1] != "[DONE]" {
		t.Fatalf("stream did not end with [DONE]: %d lines, last %q", len(lines), lines[len(lines)-1])
	}
	var last struct {
		Choices []struct {
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-2]), &last); err != nil || len(last.Choices) != 1 || last.Choices[0].FinishReason != "cancelled" {
		t.Errorf("final chunk %s (%v), want finish_reason cancelled", lines[len(lines)-2], err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not return after SIGTERM")
	}
	if _, err := http.Get(base + "/health"); err == nil {
		t.Errorf("the server still accepts connections after shutdown")
	}
	if !strings.Contains(logs.String(), "shutting down") {
		t.Errorf("no shutdown line in the log:\n%s", logs.String())
	}
}
