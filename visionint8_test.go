package snapvlm

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/modelconfig"
	"github.com/snapvlm/snapvlm/internal/onnx"
	"github.com/snapvlm/snapvlm/internal/ort"
	"github.com/snapvlm/snapvlm/internal/vision"
)

// TestVisionInt8 checks the int8 vision rewrite: made from the fp32 file
// (the default q4 file has no float weights), cached and reused, integer
// matmuls in the graph, and features of a real image close to the fp32
// encoder's (cosine ≥ VisionInt8MinCosine) but not identical; a rewrite
// failing its probe threshold, or impossible, falls back to the source.
func TestVisionInt8(t *testing.T) {
	exact := loadModel(t, "tiny512", Options{Dtype: "fp32"})
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	cached := func() []string {
		files, _ := filepath.Glob(filepath.Join(cache, "snapvlm", "rewritten", "*"))
		return files
	}
	fast := loadModel(t, "tiny512", Options{VisionInt8: true})
	file, why := fast.Files()[GraphVision], fast.FileReasons()[GraphVision]
	if !strings.HasPrefix(file, cache) || !strings.Contains(why, "int8 rewrite of vision_encoder.onnx") || !strings.Contains(why, "probe feature cosine") {
		t.Fatalf("vision runs %s (%s), want the int8 rewrite of the fp32 file", file, why)
	}
	t.Log(why)
	ops, err := onnx.ReadFileOpTypes(file)
	if err != nil {
		t.Fatal(err)
	}
	if ops["MatMulInteger"] == 0 || ops["DynamicQuantizeLinear"] == 0 {
		t.Errorf("rewritten ops: %v", ops)
	}
	if got := fast.vis.Config().FramesPerRun; got != 1 {
		t.Errorf("%d tiles per run, want 1 (dynamically quantized)", got)
	}
	n := len(cached())
	again := loadModel(t, "tiny512", Options{VisionInt8: true})
	if again.Files()[GraphVision] != file || len(cached()) != n {
		t.Errorf("second load: %s and %d cached files, want %s and %d", again.Files()[GraphVision], len(cached()), file, n)
	}

	req := Request{Messages: []Message{UserMessage("?", pngImage(t, 300, 200, 0, false))}}
	px, shape, err := exact.PixelValues(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	frames := int(shape[1])
	a, err := exact.vis.Encode(context.Background(), px, frames)
	if err != nil {
		t.Fatal(err)
	}
	b, err := fast.vis.Encode(context.Background(), px, frames)
	if err != nil {
		t.Fatal(err)
	}
	cos, maxAbs := compareFeatures(a, b)
	t.Logf("%d tiles: cosine %.6f, max |Δ| %.4g", frames, cos, maxAbs)
	if cos < VisionInt8MinCosine || maxAbs == 0 {
		t.Errorf("features of the int8 rewrite vs fp32: cosine %.6f, max |Δ| %g", cos, maxAbs)
	}

	src := filepath.Join(exact.Dir(), filepath.FromSlash(modelconfig.GraphPath(GraphVision, "fp32")))
	q4 := filepath.Join(exact.Dir(), filepath.FromSlash(modelconfig.GraphPath(GraphVision, "q4")))
	cfg := exact.vis.Config()
	for _, c := range []struct {
		name, src string
		min       float64
		want      string
	}{
		{"probe below threshold", src, 1.0001, "warning: int8 rewrite of vision_encoder.onnx rejected: probe feature cosine"},
		{"nothing to quantize", q4, 0.9, "not made (no MatMul with a float32 weight)"},
	} {
		got, why, err := int8VisionFile(context.Background(), exact.env, c.src, ort.SessionOptions{}, vision.Config{TileSize: cfg.TileSize, ImageSeqLen: cfg.ImageSeqLen, Hidden: cfg.Hidden}, c.min)
		if err != nil || got != c.src || !strings.Contains(why, c.want) {
			t.Errorf("%s: %s (%s), %v; want %s and %q", c.name, got, why, err, c.src, c.want)
		}
	}
}
