package imageproc

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/modelconfig"
)

// TestGridTable checks the size arithmetic against the table of
// docs/smolvlm-format.md §2.3 (computed there with the Python code).
func TestGridTable(t *testing.T) {
	tests := []struct {
		l, m, w, h     int
		w1, h1, w2, h2 int
		rows, cols     int
	}{
		{2048, 512, 224, 224, 2048, 2048, 2048, 2048, 4, 4},
		{2048, 512, 512, 512, 2048, 2048, 2048, 2048, 4, 4},
		{2048, 512, 640, 480, 2048, 1536, 2048, 1536, 3, 4},
		{2048, 512, 480, 640, 1536, 2048, 1536, 2048, 4, 3},
		{2048, 512, 1280, 640, 2048, 1024, 2048, 1024, 2, 4},
		{2048, 512, 1600, 1067, 2048, 1366, 2048, 1536, 3, 4},
		{2048, 512, 1920, 1080, 2048, 1152, 2048, 1536, 3, 4},
		{2048, 512, 100, 80, 2048, 1638, 2048, 2048, 4, 4},
		{2048, 512, 100, 150, 1366, 2048, 1536, 2048, 4, 3},
		{2048, 512, 3000, 100, 2048, 68, 2048, 512, 1, 4},
		{1536, 384, 1600, 1067, 1536, 1024, 1536, 1152, 3, 4},
	}
	for _, tt := range tests {
		w1, h1 := resize1Size(tt.w, tt.h, tt.l)
		w2, h2 := resize2Size(w1, h1, tt.m)
		if w1 != tt.w1 || h1 != tt.h1 || w2 != tt.w2 || h2 != tt.h2 {
			t.Errorf("%dx%d L=%d M=%d: resize #1 %dx%d, #2 %dx%d; want %dx%d, %dx%d",
				tt.w, tt.h, tt.l, tt.m, w1, h1, w2, h2, tt.w1, tt.h1, tt.w2, tt.h2)
		}
		if rows, cols := h2/tt.m, w2/tt.m; rows != tt.rows || cols != tt.cols {
			t.Errorf("%dx%d: grid %dx%d, want %dx%d", tt.w, tt.h, rows, cols, tt.rows, tt.cols)
		}
		// Plan gives the grid from the size alone.
		plan := Plan(tt.w, tt.h, Options{LongestEdge: tt.l, TileSize: tt.m, Split: true})
		if want := (ImageInfo{Rows: tt.rows, Cols: tt.cols, Frames: tt.rows*tt.cols + 1}); plan != want {
			t.Errorf("Plan(%dx%d) = %+v, want %+v", tt.w, tt.h, plan, want)
		}
	}
}

// TestProcessFrames checks frame counts and layout from §2.1–2.3 and §7.4
// on small images: tiles then global per image, single frame without split
// or when resize #2 fits one tile.
func TestProcessFrames(t *testing.T) {
	opt := Options{LongestEdge: 40, TileSize: 20, Split: true, Mean: [3]float32{0.5, 0.5, 0.5},
		Std: [3]float32{0.5, 0.5, 0.5}, RescaleFactor: 1.0 / 255}
	nosplit := opt
	nosplit.Split = false
	fits := opt
	fits.LongestEdge = 20
	tests := []struct {
		name   string
		opt    Options
		sizes  [][2]int
		want   []ImageInfo
		frames int
	}{
		{"§7.4 sides in [30,40)", opt, [][2]int{{31, 37}, {39, 30}}, []ImageInfo{{2, 2, 5}, {2, 2, 5}}, 10},
		{"no split", nosplit, [][2]int{{31, 37}, {400, 10}}, []ImageInfo{{0, 0, 1}, {0, 0, 1}}, 2},
		{"fits one tile", fits, [][2]int{{7, 5}}, []ImageInfo{{0, 0, 1}}, 1},
		{"wide strip", opt, [][2]int{{5000, 20}}, []ImageInfo{{1, 2, 3}}, 3},
		{"1x1", opt, [][2]int{{1, 1}}, []ImageInfo{{2, 2, 5}}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var imgs []*RGB
			for i, s := range tt.sizes {
				imgs = append(imgs, synthRGB(s[0], s[1], i))
			}
			b, err := Process(context.Background(), imgs, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			if b.Frames != tt.frames || len(b.Images) != len(tt.want) {
				t.Fatalf("frames %d images %v, want %d %v", b.Frames, b.Images, tt.frames, tt.want)
			}
			for i := range tt.want {
				if b.Images[i] != tt.want[i] {
					t.Errorf("image %d: %+v, want %+v", i, b.Images[i], tt.want[i])
				}
				if plan := Plan(tt.sizes[i][0], tt.sizes[i][1], tt.opt); plan != tt.want[i] {
					t.Errorf("image %d: Plan %+v, want %+v", i, plan, tt.want[i])
				}
			}
			m := int64(tt.opt.TileSize)
			if got := b.Shape(); got[0] != 1 || got[1] != int64(tt.frames) || got[2] != 3 || got[3] != m || got[4] != m {
				t.Errorf("shape %v", got)
			}
			if len(b.Pixels) != tt.frames*3*int(m*m) || len(b.Mask()) != tt.frames*int(m*m) {
				t.Errorf("pixels %d mask %d", len(b.Pixels), len(b.Mask()))
			}
			for i, v := range b.Pixels {
				if v < -1 || v > 1 {
					t.Fatalf("pixel %d = %v outside [-1, 1]", i, v)
				}
			}
		})
	}
}

// TestNormalise checks (p/255 - mean)/std at the ends of the range
// (§2.1 step 6) and per-channel mean/std.
func TestNormalise(t *testing.T) {
	opt := Options{RescaleFactor: 1.0 / 255, Mean: [3]float32{0.5, 0.25, 0}, Std: [3]float32{0.5, 0.25, 2}}
	lut := opt.lut()
	tests := []struct {
		c    int
		p    uint8
		want float32
	}{{0, 0, -1}, {0, 255, 1}, {1, 0, -1}, {1, 255, 3}, {2, 0, 0}, {2, 255, 0.5}}
	for _, tt := range tests {
		if got := lut[tt.c][tt.p]; got != tt.want {
			t.Errorf("channel %d value %d: %v, want %v", tt.c, tt.p, got, tt.want)
		}
	}
}

func TestOptionsFromConfig(t *testing.T) {
	b := func(v bool) *bool { return &v }
	i := func(v int) *int { return &v }
	full := modelconfig.Preprocessor{
		Size: modelconfig.LongestEdge{LongestEdge: 2048}, MaxImageSize: modelconfig.LongestEdge{LongestEdge: 512},
		DoImageSplitting: b(true), ImageMean: []float64{0.5, 0.5, 0.5}, ImageStd: []float64{0.5, 0.5, 0.5},
		RescaleFactor: 0.00392156862745098, Resample: i(1),
	}
	tests := []struct {
		name    string
		edit    func(*modelconfig.Preprocessor)
		wantErr string
		check   func(Options) bool
	}{
		{"full", func(*modelconfig.Preprocessor) {}, "", func(o Options) bool {
			return o.LongestEdge == 2048 && o.TileSize == 512 && o.Split && o.RescaleFactor == 0.00392156862745098 &&
				o.MaxPixels == DefaultMaxPixels && o.Resample == Lanczos
		}},
		{"no split", func(p *modelconfig.Preprocessor) { p.DoImageSplitting = b(false) }, "", func(o Options) bool { return !o.Split }},
		{"missing size", func(p *modelconfig.Preprocessor) { p.Size.LongestEdge = 0 }, "size.longest_edge", nil},
		{"missing tile", func(p *modelconfig.Preprocessor) { p.MaxImageSize.LongestEdge = 0 }, "max_image_size.longest_edge", nil},
		{"bad mean", func(p *modelconfig.Preprocessor) { p.ImageMean = []float64{1, 2} }, "image_mean", nil},
		{"zero std", func(p *modelconfig.Preprocessor) { p.ImageStd = []float64{0.5, 0, 0.5} }, "image_std[1]", nil},
		{"nearest", func(p *modelconfig.Preprocessor) { p.Resample = i(0) }, "resample", nil},
		{"bicubic", func(p *modelconfig.Preprocessor) { p.Resample = i(3) }, "", func(o Options) bool { return o.Resample == Bicubic }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := full
			tt.edit(&p)
			o, err := OptionsFromConfig(p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), modelconfig.PreprocessorFile) {
					t.Fatalf("err = %v, want one naming %s and %q", err, modelconfig.PreprocessorFile, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(o) {
				t.Errorf("options %+v", o)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	var pngBuf bytes.Buffer
	if err := png.Encode(&pngBuf, image.NewRGBA(image.Rect(0, 0, 100, 80))); err != nil {
		t.Fatal(err)
	}
	good := pngBuf.Bytes()
	jpg, err := os.ReadFile("testdata/inputs/photo420.jpg")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, file string
		data       []byte
		max        int64
		want       string
	}{
		{"empty", "e.png", nil, 0, "empty"},
		{"text", "notes.txt", []byte("hello, not an image"), 0, "not a supported image"},
		{"truncated header", "t.png", good[:20], 0, "header"},
		{"truncated png data", "t.png", good[:len(good)-30], 0, "decode PNG"},
		{"truncated jpeg", "t.jpg", jpg[:len(jpg)/2], 0, "truncated"},
		{"too many pixels", "big.png", good, 7999, "more than the limit of 7999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeBytes(tt.data, tt.file, tt.max)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.file) {
				t.Fatalf("err = %v, want one naming %s and %q", err, tt.file, tt.want)
			}
		})
	}
	if _, err := DecodeBytes(good, "ok.png", 8000); err != nil {
		t.Errorf("8000-pixel image under an 8000 limit: %v", err)
	}
	if _, err := Decode(filepath.Join(t.TempDir(), "missing.jpg"), 0); err == nil || !strings.Contains(err.Error(), "missing.jpg") {
		t.Errorf("missing file: %v", err)
	}
}

// photoJPEG makes a photo-like JPEG: smooth gradients plus noise.
func photoJPEG(tb testing.TB, w, h int) []byte {
	tb.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(1, 2))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			n := r.IntN(24) - 12
			img.SetRGBA(x, y, color.RGBA{clamp8(x*255/w + n), clamp8(y*255/h + n), clamp8((x+y)*255/(w+h) - n), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkProcess12MP is decode + resizes + tiles + normalise of a
// 4000x3000 JPEG with the SmolVLM-256M sizes (L=2048, M=512).
func BenchmarkProcess12MP(b *testing.B) {
	data := photoJPEG(b, 4000, 3000)
	opt := Options{LongestEdge: 2048, TileSize: 512, Split: true, Mean: [3]float32{0.5, 0.5, 0.5},
		Std: [3]float32{0.5, 0.5, 0.5}, RescaleFactor: 1.0 / 255}
	b.ResetTimer()
	for b.Loop() {
		img, err := DecodeBytes(data, "bench.jpg", 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Process(context.Background(), []*RGB{img}, opt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode12MP is the JPEG decode alone.
func BenchmarkDecode12MP(b *testing.B) {
	data := photoJPEG(b, 4000, 3000)
	for b.Loop() {
		if _, err := DecodeBytes(data, "bench.jpg", 0); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDimensions: the size read from the header (and EXIF orientation)
// is the size Decode gives, for every input of the golden set (rotated
// JPEGs, PNGs, GIFs and WebPs among them).
func TestDimensions(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "inputs", "*"))
	if len(files) == 0 {
		t.Fatal("no test inputs")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		img, derr := DecodeBytes(data, f, 0)
		w, h, err := Dimensions(data, f, 0)
		if derr != nil {
			if err == nil && !strings.Contains(derr.Error(), "decode") {
				t.Errorf("%s: Decode fails (%v) but Dimensions does not", f, derr)
			}
			continue
		}
		if err != nil || w != img.W || h != img.H {
			t.Errorf("%s: Dimensions %dx%d (%v), Decode %dx%d", f, w, h, err, img.W, img.H)
		}
	}
}
