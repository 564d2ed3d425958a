package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // image.DecodeConfig checks the formats snapvlm decodes
	_ "image/jpeg"
	_ "image/png"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	_ "golang.org/x/image/webp"

	"github.com/snapvlm/snapvlm"
)

// maxImagePixels refuses images whose header announces more pixels than
// the engine's decode guard (imageproc.DefaultMaxPixels).
const maxImagePixels = 50_000_000

// imageFetcher turns an image_url into an image: data: URLs always, http(s)
// only when remote images are allowed.
type imageFetcher struct {
	allowRemote  bool
	allowPrivate bool
	maxBytes     int64
	timeout      time.Duration
	client       *http.Client
}

func newImageFetcher(allowRemote, allowPrivate bool, maxBytes int64, timeout time.Duration) *imageFetcher {
	f := &imageFetcher{allowRemote: allowRemote, allowPrivate: allowPrivate, maxBytes: maxBytes, timeout: timeout}
	dialer := &net.Dialer{Timeout: timeout, Control: f.checkDial}
	f.client = &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 nil, // a proxy would hide the address we check
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
			MaxIdleConns:          4,
			IdleConnTimeout:       30 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("more than 3 redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to a %s: URL", req.URL.Scheme)
			}
			return nil // the new address is checked again when dialled
		},
	}
	return f
}

// checkDial runs for every connection, after name resolution and on every
// redirect, so a name that resolves to a private address (or is rebound to
// one) is refused.
func (f *imageFetcher) checkDial(network, address string, _ syscall.RawConn) error {
	if f.allowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("remote image: address %q: %w", address, err)
	}
	if !publicAddr(ap.Addr()) {
		return fmt.Errorf("remote image: %s is a loopback, private, link-local or otherwise non-public address (--allow-private-urls allows it)", ap.Addr())
	}
	return nil
}

// publicAddr reports whether a is a globally routable unicast address: not
// loopback, private (RFC 1918, fc00::/7), link-local (incl. the cloud
// metadata address 169.254.169.254), CGNAT, multicast or unspecified.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return a.IsGlobalUnicast()
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // CGNAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 can reach IPv4 private space
	netip.MustParsePrefix("2001:db8::/32"),
}

// fetch returns the image at rawURL, named param for errors (never the
// bytes).
func (f *imageFetcher) fetch(ctx context.Context, rawURL, param string) (*snapvlm.Image, error) {
	var data []byte
	switch {
	case strings.HasPrefix(rawURL, "data:"):
		var err error
		if data, err = decodeDataURL(rawURL, param); err != nil {
			return nil, err
		}
	case strings.HasPrefix(rawURL, "http://") || strings.HasPrefix(rawURL, "https://"):
		if !f.allowRemote {
			return nil, badRequest(param, "%s: remote image URLs are disabled on this server (start it with --allow-remote-images); send the image as a data:image/...;base64, URL", param)
		}
		var err error
		if data, err = f.download(ctx, rawURL, param); err != nil {
			return nil, err
		}
	default:
		return nil, badRequest(param, "%s: the image URL must be a data:image/...;base64, URL (or http(s) with --allow-remote-images)", param)
	}
	if err := checkImage(data, param); err != nil {
		return nil, err
	}
	return &snapvlm.Image{Name: param, Data: data}, nil
}

func decodeDataURL(u, param string) ([]byte, error) {
	return decodeDataURLOf(u, param, "image/")
}

// decodeDataURLOf decodes a base64 data URL whose media type starts with
// one of kinds ("image/", "video/").
func decodeDataURLOf(u, param string, kinds ...string) ([]byte, error) {
	meta, payload, ok := strings.Cut(strings.TrimPrefix(u, "data:"), ",")
	if !ok {
		return nil, badRequest(param, "%s: malformed data URL (no comma)", param)
	}
	kindOK := false
	for _, k := range kinds {
		kindOK = kindOK || strings.HasPrefix(meta, k)
	}
	if !kindOK || !strings.HasSuffix(meta, ";base64") {
		mt, _, _ := strings.Cut(meta, ";")
		return nil, badRequest(param, "%s: want a data:%s...;base64, URL, got media type %q", param, kinds[0], mt)
	}
	data, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		// Some clients send URL-safe or unpadded base64.
		var err2 error
		if data, err2 = base64.RawStdEncoding.DecodeString(strings.TrimRight(payload, "=")); err2 != nil {
			return nil, badRequest(param, "%s: the data URL is not valid base64: %v", param, err)
		}
	}
	return data, nil
}

func (f *imageFetcher) download(ctx context.Context, rawURL, param string) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil, badRequest(param, "%s: not a valid URL", param)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, badRequest(param, "%s: %v", param, err)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, badRequest(param, "%s: fetching the image failed: %v", param, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, badRequest(param, "%s: fetching the image: HTTP %d", param, resp.StatusCode)
	}
	if resp.ContentLength > f.maxBytes {
		return nil, tooLarge(param, fmt.Sprintf("%s: the image is %d bytes, over the limit of %d", param, resp.ContentLength, f.maxBytes))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, badRequest(param, "%s: reading the image: %v", param, err)
	}
	if int64(len(data)) > f.maxBytes {
		return nil, tooLarge(param, fmt.Sprintf("%s: the image is over the limit of %d bytes", param, f.maxBytes))
	}
	return data, nil
}

// checkImage reads the image header: a format snapvlm decodes, and a size
// within the decode guard (413 beyond it).
func checkImage(data []byte, param string) error {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return badRequest(param, "%s: not an image snapvlm can read (JPEG, PNG, GIF, WebP): %v", param, err)
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > maxImagePixels || cfg.Width <= 0 || cfg.Height <= 0 {
		return tooLarge(param, fmt.Sprintf("%s: the %s image is %d×%d pixels, over the limit of %d pixels", param, format, cfg.Width, cfg.Height, maxImagePixels))
	}
	return nil
}

// videoFromURL turns a video_url into a video: a data:video/...;base64 URL
// (an animated image/gif is a video too). The frames are sampled and
// decoded when the request runs (ffmpeg); a file ffmpeg cannot read fails
// the request with 400 naming param.
func videoFromURL(rawURL, param string) (*snapvlm.Video, error) {
	if !strings.HasPrefix(rawURL, "data:") {
		return nil, badRequest(param, "%s: send the video as a data:video/...;base64, URL (remote video URLs are not fetched)", param)
	}
	data, err := decodeDataURLOf(rawURL, param, "video/", "image/gif", "image/webp")
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, badRequest(param, "%s: the video is empty", param)
	}
	return snapvlm.VideoBytes(param, data), nil
}
