package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPublicAddr(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"8.8.8.8", true},
		{"2a00:1450:4001:82b::200e", true},
		{"127.0.0.1", false},
		{"::1", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false}, // cloud metadata
		{"fe80::1", false},
		{"fc00::1", false},
		{"100.64.0.1", false}, // CGNAT
		{"0.0.0.0", false},
		{"::", false},
		{"224.0.0.1", false},
		{"::ffff:127.0.0.1", false}, // IPv4-mapped loopback
		{"::ffff:8.8.8.8", true},
		{"64:ff9b::a00:1", false}, // NAT64 of 10.0.0.1
	}
	for _, tc := range tests {
		if got := publicAddr(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("publicAddr(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

// TestRemoteImages: http(s) image URLs are refused unless allowed; when
// allowed, loopback targets (directly or through a redirect) are refused
// unless private URLs are allowed too; size limits hold.
func TestRemoteImages(t *testing.T) {
	photo, err := os.ReadFile(filepath.Join("..", "assets", "sample.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/photo.jpg":
			w.Write(photo)
		case "/redirect":
			http.Redirect(w, r, "/photo.jpg", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer origin.Close()
	tests := []struct {
		name            string
		remote, private bool
		maxBytes        int64
		url             string
		wantStatus      int // 0: fetched
	}{
		{"remote off", false, false, 1 << 20, origin.URL + "/photo.jpg", 400},
		{"loopback refused", true, false, 1 << 20, origin.URL + "/photo.jpg", 400},
		{"redirect to loopback refused", true, false, 1 << 20, origin.URL + "/redirect", 400},
		{"metadata address refused", true, false, 1 << 20, "http://169.254.169.254/latest/meta-data", 400},
		{"private allowed", true, true, 1 << 20, origin.URL + "/photo.jpg", 0},
		{"through a redirect", true, true, 1 << 20, origin.URL + "/redirect", 0},
		{"over the size limit", true, true, 1000, origin.URL + "/photo.jpg", 413},
		{"not found", true, true, 1 << 20, origin.URL + "/nope", 400},
		{"file URL", true, true, 1 << 20, "file:///etc/passwd", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newImageFetcher(tc.remote, tc.private, tc.maxBytes, 5*time.Second)
			img, err := f.fetch(context.Background(), tc.url, "url")
			if tc.wantStatus == 0 {
				if err != nil || len(img.Data) != len(photo) {
					t.Fatalf("fetch: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("fetched %d bytes, want status %d", len(img.Data), tc.wantStatus)
			}
			if got := asAPIError(err).Status; got != tc.wantStatus {
				t.Errorf("status %d (%v), want %d", got, err, tc.wantStatus)
			}
		})
	}
}
