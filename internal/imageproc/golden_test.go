package imageproc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// The golden data comes from Pillow 9.4 + numpy through
// scripts/pillow-golden/gen.py (regenerate with scripts/pillow-golden/regen.sh).

type goldenStage struct {
	W, H   int
	SHA256 string `json:"sha256"`
	PNG    string `json:"png"`
}

type goldenCase struct {
	Name         string
	L, M         int
	Split        bool
	Input        string
	Synth        *struct{ W, H, Seed int }
	Big          bool
	Decoded      goldenStage
	Resized1     goldenStage
	Resized2     *goldenStage
	Rows, Cols   int
	Frames       []goldenStage
	Shape        []int64
	PixelsSHA256 string    `json:"pixels_sha256"`
	PixelsSample []float64 `json:"pixels_sample"`
}

func loadGolden(t *testing.T) []goldenCase {
	t.Helper()
	b, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatalf("golden data: %v (regenerate with scripts/pillow-golden/regen.sh)", err)
	}
	var g struct{ Cases []goldenCase }
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("golden.json: %v", err)
	}
	return g.Cases
}

// synthRGB mirrors synth() in scripts/pillow-golden/gen.py.
func synthRGB(w, h, seed int) *RGB {
	img := &RGB{W: w, H: h, Pix: make([]uint8, w*h*3)}
	s := uint32(seed) * 83492791
	cx, cy, rad := w/3, h/2, min(w, h)/4
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			n := uint32(x)*73856093 ^ uint32(y)*19349663 ^ s
			n = (n * 2654435761) >> 24
			r := uint32(x) * 255 / uint32(max(w-1, 1))
			g := uint32(y) * 255 / uint32(max(h-1, 1))
			b := (r + g + n>>2) & 255
			r = (r + n&31) & 255
			dx, dy := x-cx, y-cy
			if dx*dx+dy*dy <= rad*rad {
				g = 255 - g
			}
			p := img.Pix[(y*w+x)*3:]
			p[0], p[1], p[2] = uint8(r), uint8(g), uint8(b)
		}
	}
	return img
}

func hashBytes(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func floatsSHA(v []float32) string {
	b := make([]byte, len(v)*4)
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[i*4:], math.Float32bits(f))
	}
	return hashBytes(b)
}

// checkStage compares an image with a golden stage exactly and, on a
// mismatch with a stored PNG, reports the largest difference.
func checkStage(t *testing.T, what string, got *RGB, want goldenStage) {
	t.Helper()
	if got.W != want.W || got.H != want.H {
		t.Errorf("%s: size %dx%d, Pillow %dx%d", what, got.W, got.H, want.W, want.H)
		return
	}
	if hashBytes(got.Pix) == want.SHA256 {
		return
	}
	msg := "bytes differ from Pillow"
	if want.PNG != "" {
		if ref, err := readPNG(filepath.Join("testdata", want.PNG)); err == nil {
			maxd, at := 0, 0
			for i := range ref {
				d := int(got.Pix[i]) - int(ref[i])
				if d < 0 {
					d = -d
				}
				if d > maxd {
					maxd, at = d, i
				}
			}
			msg = fmt.Sprintf("max abs diff %d at x=%d y=%d c=%d", maxd, at/3%got.W, at/3/got.W, at%3)
		}
	}
	t.Errorf("%s (%dx%d): %s", what, got.W, got.H, msg)
}

func readPNG(path string) ([]uint8, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	img, err := fromImage(m, -1)
	if err != nil {
		return nil, err
	}
	return img.Pix, nil
}

// inexact lists inputs our decoder is known not to reproduce bit for bit,
// with the largest per-sample difference measured against Pillow.
// Empty with cgo; see jpegExact and webpExact.
func inexact() map[string]int {
	m := map[string]int{}
	if !webpExact {
		// x/image/webp has no fancy upsampling and its own YCbCr→RGB.
		m["inputs/lossy.webp"] = 24
	}
	return m
}

func TestGolden(t *testing.T) {
	for _, c := range loadGolden(t) {
		t.Run(c.Name, func(t *testing.T) {
			if c.Big && testing.Short() {
				t.Skip("full-size case; run without -short")
			}
			var img *RGB
			switch {
			case c.Input != "":
				data, err := os.ReadFile(filepath.Join("testdata", c.Input))
				if err != nil {
					t.Fatal(err)
				}
				img, err = DecodeBytes(data, c.Input, 0)
				if err != nil {
					t.Fatal(err)
				}
				if filepath.Ext(c.Input) == ".jpg" && !jpegExact {
					t.Skip("JPEG decoding is exact only with cgo (libjpeg)")
				}
				if bound, ok := inexact()[c.Input]; ok {
					checkBound(t, img, c.Decoded, bound)
					return
				}
			case c.Synth != nil:
				img = synthRGB(c.Synth.W, c.Synth.H, c.Synth.Seed)
			default:
				t.Fatal("case has neither input nor synth")
			}
			checkStage(t, "decoded", img, c.Decoded)
			opt := Options{LongestEdge: c.L, TileSize: c.M, Split: c.Split,
				Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.5, 0.5, 0.5}, RescaleFactor: 1.0 / 255}
			st, err := tiles(img, opt)
			if err != nil {
				t.Fatal(err)
			}
			checkStage(t, "resize #1", st.resized1, c.Resized1)
			if (st.resized2 == nil) != (c.Resized2 == nil) {
				t.Fatalf("resize #2 present: got %v, Pillow %v", st.resized2 != nil, c.Resized2 != nil)
			}
			if c.Resized2 != nil {
				checkStage(t, "resize #2", st.resized2, *c.Resized2)
			}
			if st.info.Rows != c.Rows || st.info.Cols != c.Cols || len(st.frames) != len(c.Frames) {
				t.Fatalf("grid %dx%d with %d frames, Pillow %dx%d with %d", st.info.Rows, st.info.Cols,
					len(st.frames), c.Rows, c.Cols, len(c.Frames))
			}
			for i := range st.frames {
				checkStage(t, fmt.Sprintf("frame %d", i), st.frames[i], c.Frames[i])
			}
			b, err := Process(context.Background(), []*RGB{img}, opt)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(b.Shape()) != fmt.Sprint(c.Shape) {
				t.Errorf("shape %v, Pillow %v", b.Shape(), c.Shape)
			}
			if got := floatsSHA(b.Pixels); got != c.PixelsSHA256 {
				t.Errorf("pixel_values differ from the numpy reference")
			}
			if n := len(c.PixelsSample); n > 0 {
				step := max(1, len(b.Pixels)/64)
				for i := 0; i < n; i++ {
					if got := b.Pixels[i*step]; got != float32(c.PixelsSample[i]) {
						t.Errorf("pixel_values[%d] = %v, numpy %v", i*step, got, float32(c.PixelsSample[i]))
						break
					}
				}
			}
		})
	}
}

// checkBound compares a decoded image whose decoder is known to be inexact
// against the stored PNG within a measured bound.
func checkBound(t *testing.T, img *RGB, want goldenStage, bound int) {
	t.Helper()
	ref, err := readPNG(filepath.Join("testdata", want.PNG))
	if err != nil {
		t.Fatal(err)
	}
	if img.W != want.W || img.H != want.H {
		t.Fatalf("size %dx%d, Pillow %dx%d", img.W, img.H, want.W, want.H)
	}
	maxd := 0
	for i := range ref {
		d := int(img.Pix[i]) - int(ref[i])
		maxd = max(maxd, d, -d)
	}
	if maxd > bound {
		t.Errorf("max abs diff %d to Pillow, known bound %d", maxd, bound)
	}
	t.Logf("known inexact decoder: max abs diff %d to Pillow", maxd)
}
