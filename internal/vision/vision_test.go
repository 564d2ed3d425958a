package vision

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/ort"
	"github.com/snapvlm/snapvlm/internal/ort/orttest"
	"github.com/snapvlm/snapvlm/internal/testmodel"
)

func TestNewChecksTheGraph(t *testing.T) {
	env := orttest.Env(t)
	dir := t.TempDir()
	if err := testmodel.Generate(context.Background(), "tiny384", dir, testmodel.Options{Variants: []string{"q4"}, GenerateTokenizer: true}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "onnx", "vision_encoder_q4.onnx")
	good := Config{TileSize: 384, ImageSeqLen: 81, Hidden: 64}
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"tile size", Config{TileSize: 512, ImageSeqLen: 81, Hidden: 64}, "max_image_size.longest_edge is 512"},
		{"tokens per tile", Config{TileSize: 384, ImageSeqLen: 64, Hidden: 64}, "image_seq_len 64"},
		{"width", Config{TileSize: 384, ImageSeqLen: 81, Hidden: 576}, "hidden_size is 576"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := New(env, path, ort.SessionOptions{}, c.cfg)
			if err == nil {
				e.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "vision_encoder_q4.onnx") {
				t.Fatalf("err = %v, want naming the file and %q", err, c.want)
			}
		})
	}
	e, err := New(env, path, ort.SessionOptions{}, good)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// Two frames in, [2, 81, 64] out; a wrong pixel count is refused. (An
	// all-zero frame would be dropped as padding, as the real graph does;
	// normalised pixels are never exactly 0.)
	pixels := make([]float32, 2*3*384*384)
	for i := range pixels {
		pixels[i] = 0.5
	}
	feats, err := e.Encode(context.Background(), pixels, 2)
	if err != nil || len(feats) != 2*81*64 {
		t.Fatalf("Encode: %d values, %v", len(feats), err)
	}
	if _, err := e.Encode(context.Background(), make([]float32, 5), 1); err == nil || !strings.Contains(err.Error(), "pixel values") {
		t.Fatalf("short pixels: %v", err)
	}

	// Tiles are independent: one at a time gives the features of all at once.
	for i := range pixels[len(pixels)/2:] {
		pixels[len(pixels)/2+i] = -0.25
	}
	all, err := e.Encode(context.Background(), pixels, 2)
	if err != nil {
		t.Fatal(err)
	}
	one := good
	one.FramesPerRun = 1
	e1, err := New(env, path, ort.SessionOptions{}, one)
	if err != nil {
		t.Fatal(err)
	}
	defer e1.Close()
	each, err := e1.Encode(context.Background(), pixels, 2)
	if err != nil {
		t.Fatal(err)
	}
	half := len(all) / 2
	if slices.Equal(all[:half], all[half:]) {
		t.Fatal("two different tiles gave the same features")
	}
	for i := range all {
		if d := all[i] - each[i]; d > 1e-5 || d < -1e-5 {
			t.Fatalf("feature %d: %g in one run, %g tile by tile", i, all[i], each[i])
		}
	}
}
