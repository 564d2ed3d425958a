package imageproc

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// animatedGIF encodes n frames of w x h, frame i filled with palette entry
// i%len(pal).
func animatedGIF(tb testing.TB, w, h, n int, pal color.Palette) []byte {
	tb.Helper()
	g := &gif.GIF{}
	for i := range n {
		fr := image.NewPaletted(image.Rect(0, 0, w, h), pal)
		for j := range fr.Pix {
			fr.Pix[j] = uint8(i % len(pal))
		}
		g.Image = append(g.Image, fr)
		g.Delay = append(g.Delay, 10)
	}
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, g); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// TestDecodeGIFFirstFrameOnly decodes a 40-frame 1000x1000 animation: only
// the first frame is used, so only it may be decoded. Decoding all frames
// (as before) allocated 40 MB of frames for a 3 MB result; a 250-frame
// 4000x4000 GIF of 3.4 MB took 4 GB.
func TestDecodeGIFFirstFrameOnly(t *testing.T) {
	const w, h, n = 1000, 1000, 40
	pal := color.Palette{color.RGBA{200, 10, 20, 255}, color.RGBA{0, 0, 255, 255}}
	data := animatedGIF(t, w, h, n, pal)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	img, err := DecodeBytes(data, "anim.gif", 0)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if img.W != w || img.H != h {
		t.Fatalf("decoded %dx%d, want %dx%d", img.W, img.H, w, h)
	}
	for _, i := range []int{0, w*h/2 + 7, w*h - 1} {
		if got := img.Pix[i*3 : i*3+3]; !bytes.Equal(got, []byte{200, 10, 20}) {
			t.Fatalf("pixel %d = %v, want the first frame's colour [200 10 20]", i, got)
		}
	}
	// The pixel budget covers the logical screen, which bounds every frame.
	if _, err := DecodeBytes(data, "anim.gif", w*h-1); err == nil || !strings.Contains(err.Error(), "anim.gif") || !strings.Contains(err.Error(), "more than the limit") {
		t.Fatalf("a %dx%d GIF under a %d-pixel budget: %v, want a limit error naming anim.gif", w, h, w*h-1, err)
	}
	// One frame of indices (1 MB), the RGB result (3 MB) and the LZW
	// decoder's buffers; 40 frames would be 40 MB more.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 12<<20 {
		t.Fatalf("decoding the first frame of a %d-frame GIF allocated %d MB, want < 12 MB", n, alloc>>20)
	}
}

// TestReadFileLimit refuses files longer than the limit, endless devices and
// directories, naming the file; a file of exactly the limit is read.
func TestReadFileLimit(t *testing.T) {
	dir := t.TempDir()
	exact := filepath.Join(dir, "exact.png")
	over := filepath.Join(dir, "over.png")
	if err := os.WriteFile(exact, make([]byte, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(over, make([]byte, 1001), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(exact, 1000); err != nil || len(b) != 1000 {
		t.Fatalf("ReadFile(1000-byte file, 1000) = %d bytes, %v", len(b), err)
	}
	tests := []struct {
		name, path string
		max        int64
		want       string
		tooLarge   bool
	}{
		{"over the limit", over, 1000, "1001 bytes, more than the limit of 1000", true},
		{"endless device", "/dev/zero", 1 << 20, "character device gave more than the limit of 1048576 bytes", true},
		{"endless device default limit", "/dev/zero", 0, "more than the limit of 104857600 bytes", true},
		{"directory", dir, 0, "is a directory", false},
		{"missing", filepath.Join(dir, "missing.jpg"), 0, "no such file", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := os.Stat(tt.path); err != nil && tt.path == "/dev/zero" {
				t.Skip("no /dev/zero here")
			}
			_, err := ReadFile(tt.path, tt.max)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
				t.Fatalf("err = %v, want one naming %s and %q", err, tt.path, tt.want)
			}
			if errors.Is(err, ErrTooLarge) != tt.tooLarge {
				t.Fatalf("errors.Is(%v, ErrTooLarge) = %v, want %v", err, !tt.tooLarge, tt.tooLarge)
			}
		})
	}
	if _, err := Decode("/dev/zero", 0); err == nil || !strings.Contains(err.Error(), "/dev/zero") {
		t.Fatalf("Decode(/dev/zero) = %v, want a limit error naming the file", err)
	}
}
