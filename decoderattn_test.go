package snapvlm

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/onnx"
)

// TestGQARewriteQuantizedDecoders: the 8-bit decoders that quantize their
// activations at run time get the attention rewrite too (their probe allows
// the rounding such graphs add), and answer as the exported graph does;
// the rewrite fuses each layer's query/key/value and gate/up matmuls (4
// matmuls a layer where the export has 7) and the head computes the last
// row of logits only.
func TestGQARewriteQuantizedDecoders(t *testing.T) {
	for _, dtype := range []string{"q4", "int8", "uint8", "quantized"} {
		t.Run(dtype, func(t *testing.T) {
			m := loadModel(t, "tiny512+all", Options{Dtype: dtype, TextOnly: true})
			why := m.FileReasons()[GraphDecoder]
			if !strings.Contains(why, "GroupQueryAttention rewrite") {
				t.Fatalf("decoder runs %s: %s", m.Files()[GraphDecoder], why)
			}
			if !strings.Contains(why, "logits for the last position") {
				t.Errorf("decoder computes every row's logits: %s", why)
			}
			plain := loadModel(t, "tiny512+all", Options{Dtype: dtype, TextOnly: true, PlainAttention: true})
			ops, matmuls := decoderOps(t, m)
			_, srcMatmuls := decoderOps(t, plain)
			layers := 0
			for op, n := range ops {
				if strings.HasSuffix(op, ":GroupQueryAttention") {
					layers += n
				}
			}
			// The head stays a MatMulInteger of its own in the 8-bit
			// variants (its rows are cut after its quantization).
			if want := srcMatmuls - 3*layers; layers == 0 || matmuls != want || (dtype != "q4" && ops["MatMulInteger"] != 1) {
				t.Errorf("rewritten decoder's matmuls %v over %d layers, want %d (the export's %d less 3 a layer)", ops, layers, want, srcMatmuls)
			}
			req := Request{Messages: []Message{UserMessage("Tell me a long story about a red square.")},
				GenerateOptions: GenerateOptions{MaxNewTokens: 24}}
			got, want := greedy(t, m, req), greedy(t, plain, req)
			if !slices.Equal(got.Tokens, want.Tokens) {
				t.Errorf("rewrite answers %v, exported graph %v", got.Tokens, want.Tokens)
			}
		})
	}
}

// TestHeadRewrite: a decoder with as many key/value heads as query heads
// (SmolVLM2-2.2B's layout) gets no attention rewrite but the last-row head
// and the fused matmuls, checked on the probe, and answers as the exported
// graph does.
func TestHeadRewrite(t *testing.T) {
	for _, dtype := range []string{"fp32", "q4", "int8"} {
		t.Run(dtype, func(t *testing.T) {
			m := loadModel(t, "tiny384mha+all", Options{Dtype: dtype, TextOnly: true})
			why := m.FileReasons()[GraphDecoder]
			if !strings.Contains(why, "head and matmul rewrite") || !strings.Contains(why, "logits for the last position") {
				t.Fatalf("decoder runs %s: %s", m.Files()[GraphDecoder], why)
			}
			plain := loadModel(t, "tiny384mha+all", Options{Dtype: dtype, TextOnly: true, PlainAttention: true})
			ops, matmuls := decoderOps(t, m)
			src, want := decoderOps(t, plain)
			layers := src["com.microsoft:MultiHeadAttention"]
			// fp32's MatMuls stay apart: only the 8-bit and 4-bit ones fuse.
			if dtype != "fp32" {
				want -= 3 * layers
			}
			if layers == 0 || matmuls != want || ops["com.microsoft:MultiHeadAttention"] != layers {
				t.Errorf("rewritten decoder's ops %v over %d layers, want %d matmuls and the attention as exported", ops, layers, want)
			}
			req := Request{Messages: []Message{UserMessage("Tell me a long story about a red square.")},
				GenerateOptions: GenerateOptions{MaxNewTokens: 24}}
			if got, want := greedy(t, m, req), greedy(t, plain, req); !slices.Equal(got.Tokens, want.Tokens) {
				t.Errorf("rewrite answers %v, exported graph %v", got.Tokens, want.Tokens)
			}
		})
	}
}

// decoderOps counts the operators of a model's decoder file, and its
// weight matmuls of the quantized kinds.
func decoderOps(t *testing.T, m *Model) (ops map[string]int, matmuls int) {
	t.Helper()
	ops, err := onnx.ReadFileOpTypes(m.Files()[GraphDecoder])
	if err != nil {
		t.Fatal(err)
	}
	return ops, ops["com.microsoft:MatMulNBits"] + ops["MatMulInteger"] + ops["com.microsoft:DynamicQuantizeMatMul"]
}

// TestAttentionKernelChoice: the rewrite runs snapvlm's attention kernel
// by default and ONNX Runtime's with OrtAttention, and both answer as the
// exported graph does (fp32 and the fp16-cache variant, whose rewrite
// attends in float32 between casts).
func TestAttentionKernelChoice(t *testing.T) {
	for _, dtype := range []string{"fp32", "fp16"} {
		t.Run(dtype, func(t *testing.T) {
			req := Request{Messages: []Message{UserMessage("Tell me a long story about a red square.")},
				GenerateOptions: GenerateOptions{MaxNewTokens: 24}}
			plain := loadModel(t, "tiny512+all", Options{Dtype: dtype, TextOnly: true, PlainAttention: true})
			want := greedy(t, plain, req)
			for _, c := range []struct {
				opts Options
				says string
			}{
				{Options{Dtype: dtype, TextOnly: true}, "with snapvlm's attention kernel"},
				{Options{Dtype: dtype, TextOnly: true, OrtAttention: true}, "with ONNX Runtime's kernel"},
			} {
				m := loadModel(t, "tiny512+all", c.opts)
				if why := m.FileReasons()[GraphDecoder]; !strings.Contains(why, c.says) {
					t.Fatalf("OrtAttention %v: decoder %s: %s", c.opts.OrtAttention, m.Files()[GraphDecoder], why)
				}
				if got := greedy(t, m, req); !slices.Equal(got.Tokens, want.Tokens) {
					t.Errorf("OrtAttention %v answers %v, exported graph %v", c.opts.OrtAttention, got.Tokens, want.Tokens)
				}
			}
		})
	}
}

// TestGQAProbeLimit: the looser probe limit applies to the decoders that
// quantize activations at run time, and only to them.
func TestGQAProbeLimit(t *testing.T) {
	dir := modelDir(t, "tiny512+all")
	for dtype, want := range map[string]float64{
		"fp32": gqaProbeMaxDelta, "q4": gqaProbeMaxDelta, "fp16": gqaProbeMaxDelta, "bnb4": gqaProbeMaxDelta,
		"int8": gqaProbeMaxDeltaQuantized, "uint8": gqaProbeMaxDeltaQuantized, "quantized": gqaProbeMaxDeltaQuantized,
	} {
		suffix := "_" + dtype
		if dtype == "fp32" {
			suffix = ""
		}
		if got := gqaProbeLimit(filepath.Join(dir, "onnx", "decoder_model_merged"+suffix+".onnx")); got != want {
			t.Errorf("%s: limit %g, want %g", dtype, got, want)
		}
	}
}
