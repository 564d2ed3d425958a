package snapvlm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/ort"
)

// TestRefuseVariant checks the message for a graph ONNX Runtime has no
// kernel for. No variant the exports ship fails so on ONNX Runtime 1.30's
// CPU provider (TestGenerateVariantsAndFamilies runs them all), so the
// error is ONNX Runtime's text as its session state writes it (and as the
// spec §5.4 quotes it for older releases).
func TestRefuseVariant(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "onnx"), 0o755)
	for _, f := range []string{"vision_encoder.onnx", "vision_encoder_int8.onnx", "vision_encoder_uint8.onnx", "embed_tokens_int8.onnx"} {
		if err := os.WriteFile(filepath.Join(dir, "onnx", f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ortErr := errors.New("loading x: Error creating session: Could not find an implementation for ConvInteger(10) node with name '/embeddings/patch_embedding/Conv_quant'")
	cases := []struct {
		name, graph, file string
		err               error
		want              []string
	}{
		{"vision int8", GraphVision, "vision_encoder_int8.onnx", ortErr, []string{
			"int8 variant of vision_encoder (vision_encoder_int8.onnx) cannot run on ONNX Runtime 1.30.0 with the cpu provider",
			"no kernel for operator ConvInteger (opset 10, node \"/embeddings/patch_embedding/Conv_quant\")",
			"use Options.VisionDtype fp32 (variants present: fp32, uint8)", "Could not find an implementation"}},
		{"embed, nothing else", GraphEmbed, "embed_tokens_int8.onnx", ortErr, []string{"no other variant of embed_tokens is present"}},
		{"other error untouched", GraphVision, "vision_encoder.onnx", errors.New("no such file"), []string{"no such file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := refuseVariant(c.err, dir, c.graph, filepath.Join(dir, "onnx", c.file), "1.30.0", "").Error()
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("error %q lacks %q", got, w)
				}
			}
			if !errors.Is(refuseVariant(c.err, dir, c.graph, c.file, "1.30.0", ""), c.err) {
				t.Error("ONNX Runtime's error is not wrapped")
			}
			if strings.Contains(got, "--") {
				t.Errorf("error %q names a command-line flag", got)
			}
		})
	}
}

// TestDefaultVisionBatch: dynamically quantized encoders run one tile at a
// time, so features do not depend on the neighbouring tiles.
func TestDefaultVisionBatch(t *testing.T) {
	for dtype, want := range map[string]int{"fp32": 2, "q4": 2, "bnb4": 2, "int8": 1, "uint8": 1, "quantized": 1} {
		m := loadModel(t, "tiny512+all", Options{Dtype: dtype})
		if got := m.vis.Config().FramesPerRun; got != want {
			t.Errorf("%s: %d tiles per run, want %d", dtype, got, want)
		}
	}
}

// TestDefaultOrder: with every variant present and no dtype asked for, each
// graph runs the measured default (README, "Choosing a variant"), and
// FileReasons says so; a per-graph option still wins.
func TestDefaultOrder(t *testing.T) {
	// Where snapvlm's 4-bit kernel runs, the default decoder is q4 with
	// int8 activations on it.
	dec, decWhy := "int8", "default: first present of "
	if ort.MatMulQ4Vector() {
		dec, decWhy = "q4", "default: q4 with int8 activations on snapvlm's 4-bit kernel"
	}
	cases := []struct {
		opts Options
		want map[string]string
	}{
		{Options{}, map[string]string{GraphVision: "int8", GraphEmbed: "q4", GraphDecoder: dec}},
		{Options{Dtype: "fp32", DecoderDtype: "q4"}, map[string]string{GraphVision: "fp32", GraphEmbed: "fp32", GraphDecoder: "q4"}},
		{Options{DecoderDtype: "int8"}, map[string]string{GraphVision: "int8", GraphEmbed: "q4", GraphDecoder: "int8"}},
	}
	for _, c := range cases {
		m := loadModel(t, "tiny512+all", c.opts)
		for g, d := range c.want {
			if got := dtypeOfFile(m.Files()[g], g); got != d {
				t.Errorf("%+v: %s runs %s, want %s", c.opts, g, got, d)
			}
			why, want := m.FileReasons()[g], "default: first present of "
			if g == GraphDecoder {
				want = decWhy
			}
			if asked := c.opts.Dtype != "" || (g == GraphDecoder && c.opts.DecoderDtype != ""); asked == strings.HasPrefix(why, want) {
				t.Errorf("%+v: %s: reason %q", c.opts, g, why)
			}
			if g == GraphDecoder && dec == "q4" && c.opts.DecoderDtype == "" && c.opts.Dtype == "" && !strings.Contains(why, "on snapvlm's kernel") {
				t.Errorf("the default q4 decoder does not run snapvlm's kernel: %q", why)
			}
		}
	}
	if got := loadModel(t, "tiny512", Options{}).Files()[GraphDecoder]; dtypeOfFile(got, GraphDecoder) != "q4" {
		t.Errorf("without int8 files the decoder runs %s, want q4", got)
	}
}
