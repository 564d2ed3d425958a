package video

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/snapvlm/snapvlm/internal/imageproc"
	"github.com/snapvlm/snapvlm/internal/prompt"
)

// golden is testdata/golden.json, written by scripts/video-golden/gen.py
// from PyAV, numpy, torchvision and num2words.
type golden struct {
	Stripe string `json:"stripe"`
	Clips  []struct {
		Name       string    `json:"name"`
		Source     string    `json:"source"`
		Args       []string  `json:"args"`
		Ext        string    `json:"ext"`
		MaxFrames  int       `json:"max_frames"`
		FPS        float64   `json:"fps"`
		Frames     int       `json:"frames"`
		Rate       string    `json:"rate"`
		NativeFPS  float64   `json:"native_fps"`
		Duration   float64   `json:"duration"`
		Indices    []int     `json:"indices"`
		Timestamps []float64 `json:"timestamps"`
		Text       string    `json:"text_seq2"`
	} `json:"clips"`
	Multi []struct {
		Clips []string `json:"clips"`
		Text  string   `json:"text_seq2"`
	} `json:"multi"`
	Pixels []struct {
		File         string      `json:"file"`
		Indices      []int       `json:"indices"`
		RGBSHA256    []string    `json:"rgb_sha256"`
		Small        []string    `json:"small"`
		ModelSHA256  []string    `json:"model_sha256"`
		ModelStrided []string    `json:"model_strided"`
		Normalized   [][]float64 `json:"normalized"`
	} `json:"pixels"`
	Resize []struct {
		W, H      int
		VideoSize int    `json:"video_size"`
		Tile      int    `json:"tile"`
		SHA256    string `json:"sha256"`
		Strided   string `json:"strided"`
	} `json:"resize"`
}

func loadGolden(t *testing.T) *golden {
	t.Helper()
	b, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

// testOptions is SmolVLM2's configuration with the given sizes.
func testOptions(videoSize, tile int) Options {
	return Options{
		Sampling:      Sampling{FPS: 1, MaxFrames: 64, SkipSecs: 1},
		VideoSize:     videoSize,
		FrameSize:     tile,
		Mean:          [3]float32{0.5, 0.5, 0.5},
		Std:           [3]float32{0.5, 0.5, 0.5},
		RescaleFactor: 0.00392156862745098,
	}
}

// stripe reads the frame number the golden clips carry in their top 16
// rows (see scripts/video-golden/gen.py).
func stripe(img *imageproc.RGB) int {
	cols := img.W / 8
	n := 0
	for k := range 16 {
		x, y := 8*(k%cols)+4, 8*(k/cols)+4
		p := img.Pix[(y*img.W+x)*3:]
		if (int(p[0])+int(p[1])+int(p[2]))/3 > 128 {
			n |= 1 << k
		}
	}
	return n
}

var clipDir = sync.OnceValues(func() (string, error) { return os.MkdirTemp("", "snapvlm-video-") })

// makeClip writes a golden clip with ffmpeg (once per test binary).
func makeClip(t *testing.T, name, source string, args []string, ext string) string {
	t.Helper()
	dir, err := clipDir()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+"."+ext)
	if _, err := os.Stat(path); err == nil {
		return path
	}
	cmdArgs := append([]string{"-v", "error", "-y", "-f", "lavfi", "-i", source}, args...)
	tmp := filepath.Join(dir, "tmp-"+name+"."+ext)
	cmd := exec.Command("ffmpeg", append(cmdArgs, tmp)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("making %s: %v\n%s", name, err, out)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, err := clipDir(); err == nil {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// TestGoldenClips checks metadata, sampled indices, timestamps and the
// prompt text against the Python reference, and that the frames decoded
// (in each decode mode) are the sampled ones, by the number burned into
// them.
func TestGoldenClips(t *testing.T) {
	requireFFmpeg(t)
	g := loadGolden(t)
	ctx := context.Background()
	for _, c := range g.Clips {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			path := makeClip(t, c.Name, c.Source, c.Args, c.Ext)
			opt := testOptions(64, 48)
			opt.Sampling = Sampling{FPS: c.FPS, MaxFrames: c.MaxFrames, SkipSecs: 1}
			o := opt.withDefaults()
			m, pkts, err := probe(ctx, path, o)
			if err != nil {
				t.Fatal(err)
			}
			if m.Frames != c.Frames || m.FPS != c.NativeFPS || m.Duration != c.Duration {
				t.Errorf("metadata: %d frames, %v fps, %v s; want %d, %v (%s), %v",
					m.Frames, m.FPS, m.Duration, c.Frames, c.NativeFPS, c.Rate, c.Duration)
			}
			idx, err := opt.Sampling.Indices(m)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(idx, c.Indices) {
				t.Fatalf("indices %v, want %v", idx, c.Indices)
			}
			for _, mode := range []DecodeMode{DecodeSelect, DecodeSeek} {
				o.Decode = mode
				want := idx
				if mode == DecodeSeek && len(want) > 6 {
					// One ffmpeg per frame: check the ends and a few
					// between (Load below decodes them all).
					n := len(want)
					want = []int{want[0], want[1], want[n/3], want[n/2], want[n-2], want[n-1]}
				}
				var got []int
				used, err := decode(ctx, path, m, want, pkts, o, func(k int, img *imageproc.RGB) error {
					got = append(got, stripe(img))
					return nil
				})
				if mode == DecodeSeek && err != nil && c.Ext != "mp4" {
					t.Logf("%s: no seek mode: %v", c.Ext, err)
					continue
				}
				if err != nil {
					t.Fatalf("decode %v: %v", mode, err)
				}
				if used != mode || !slices.Equal(got, want) {
					t.Errorf("decode %v (used %v): frames carry numbers %v, want %v", mode, used, got, want)
				}
			}
			v, err := Load(ctx, path, opt)
			if err != nil {
				t.Fatal(err)
			}
			if len(v.Frames) != len(idx) {
				t.Errorf("Load returned %d frames, want %d", len(v.Frames), len(idx))
			}
			if !slices.Equal(v.Timestamps, c.Timestamps) {
				t.Errorf("timestamps %v, want %v", v.Timestamps, c.Timestamps)
			}
			text, err := prompt.Expander{ImageSeqLen: 2}.Expand("<video>", nil,
				[]prompt.VideoFrames{{Timestamps: v.Timestamps, Duration: v.Meta.Duration}})
			if err != nil {
				t.Fatal(err)
			}
			if text != c.Text {
				t.Errorf("prompt text\n%q\nwant\n%q", text, c.Text)
			}
		})
	}
}

// TestGoldenMulti checks the text of several videos in one prompt: every
// intro spells the largest frame count, as transformers does.
func TestGoldenMulti(t *testing.T) {
	g := loadGolden(t)
	for _, mc := range g.Multi {
		var vids []prompt.VideoFrames
		count := 0
		for _, name := range mc.Clips {
			for _, c := range g.Clips {
				if c.Name == name {
					vids = append(vids, prompt.VideoFrames{Timestamps: c.Timestamps, Duration: c.Duration})
					count = max(count, len(c.Timestamps))
				}
			}
		}
		for i := range vids {
			vids[i].Count = count
		}
		text, err := prompt.Expander{ImageSeqLen: 2}.Expand(strings.Repeat("<video>", len(vids)), nil, vids)
		if err != nil {
			t.Fatal(err)
		}
		if text != mc.Text {
			t.Errorf("%v: text\n%q\nwant\n%q", mc.Clips, text, mc.Text)
		}
	}
}

// TestGoldenPixels compares decoded RGB, resized frames and normalised
// values of the committed clips with PyAV + torchvision.
func TestGoldenPixels(t *testing.T) {
	requireFFmpeg(t)
	g := loadGolden(t)
	ctx := context.Background()
	for _, c := range g.Pixels {
		t.Run(c.File, func(t *testing.T) {
			path := filepath.Join("testdata", c.File)
			o := testOptions(64, 48).withDefaults()
			m, pkts, err := probe(ctx, path, o)
			if err != nil {
				t.Fatal(err)
			}
			var rgb []string
			if _, err := decode(ctx, path, m, c.Indices, pkts, o, func(k int, img *imageproc.RGB) error {
				s := sha256.Sum256(img.Pix)
				rgb = append(rgb, hex.EncodeToString(s[:]))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rgb, c.RGBSHA256) {
				t.Errorf("decoded RGB differs from PyAV's to_ndarray(\"rgb24\")")
			}
			small, err := Load(ctx, path, testOptions(64, 48))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(small.Indices, c.Indices) {
				t.Fatalf("indices %v, want %v", small.Indices, c.Indices)
			}
			for k, f := range small.Frames {
				want, _ := base64.StdEncoding.DecodeString(c.Small[k])
				compareCHW(t, "small frame", k, f, want, 1)
			}
			opt := testOptions(512, 512)
			big, err := Load(ctx, path, opt)
			if err != nil {
				t.Fatal(err)
			}
			px := big.Pixels(opt)
			plane := 3 * 512 * 512
			var maxDiff float64
			for k, f := range big.Frames {
				chw := toCHW(f)
				if s := sha256.Sum256(chw); hex.EncodeToString(s[:]) != c.ModelSHA256[k] {
					want, _ := base64.StdEncoding.DecodeString(c.ModelStrided[k])
					compareStrided(t, k, chw, want, 401)
				}
				for j, w := range c.Normalized[k] {
					maxDiff = max(maxDiff, math.Abs(float64(px[k*plane+j*40009])-w))
				}
			}
			t.Logf("max |pixel_values - reference| over %d sampled values per frame: %g", len(c.Normalized[0]), maxDiff)
			if maxDiff > 1e-4 {
				t.Errorf("normalised pixels differ by %g, want <= 1e-4", maxDiff)
			}
		})
	}
}

// TestGoldenResize resizes a busy synthetic image at real video sizes.
func TestGoldenResize(t *testing.T) {
	g := loadGolden(t)
	for _, c := range g.Resize {
		img := pattern(c.W, c.H)
		w1, h1 := FrameSize(c.W, c.H, c.VideoSize)
		out := toCHW(resizeBicubicAA(resizeBicubicAA(img, w1, h1), c.Tile, c.Tile))
		if s := sha256.Sum256(out); hex.EncodeToString(s[:]) != c.SHA256 {
			want, _ := base64.StdEncoding.DecodeString(c.Strided)
			compareStrided(t, 0, out, want, 257)
			t.Errorf("%dx%d -> %d -> %d: differs from torchvision", c.W, c.H, c.VideoSize, c.Tile)
		}
	}
}

// pattern is gen.py's pattern(): a deterministic busy RGB image.
func pattern(w, h int) *imageproc.RGB {
	img := &imageproc.RGB{W: w, H: h, Pix: make([]uint8, w*h*3)}
	for y := range h {
		for x := range w {
			for c := range 3 {
				img.Pix[(y*w+x)*3+c] = uint8((x*x*7 + y*13 + c*101 + (x*y)%251) % 256)
			}
		}
	}
	return img
}

func toCHW(img *imageproc.RGB) []byte {
	plane := img.W * img.H
	out := make([]byte, 3*plane)
	for p := range plane {
		for c := range 3 {
			out[c*plane+p] = img.Pix[p*3+c]
		}
	}
	return out
}

func compareCHW(t *testing.T, what string, k int, f *imageproc.RGB, want []byte, _ int) {
	t.Helper()
	got := toCHW(f)
	if bytes.Equal(got, want) {
		return
	}
	if len(got) != len(want) {
		t.Errorf("%s %d: %d bytes, want %d", what, k, len(got), len(want))
		return
	}
	n, maxd := 0, 0
	for i := range got {
		if d := abs(int(got[i]) - int(want[i])); d > 0 {
			n++
			maxd = max(maxd, d)
		}
	}
	t.Errorf("%s %d: %d of %d values differ from torchvision (max %d levels)", what, k, n, len(got), maxd)
}

func compareStrided(t *testing.T, k int, got, want []byte, step int) {
	t.Helper()
	n, maxd := 0, 0
	for i, w := range want {
		if d := abs(int(got[i*step]) - int(w)); d > 0 {
			n++
			maxd = max(maxd, d)
		}
	}
	t.Errorf("frame %d: differs from torchvision; %d of %d sampled values differ (max %d levels)", k, n, len(want), maxd)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
