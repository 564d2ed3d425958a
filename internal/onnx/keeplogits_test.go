package onnx_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/onnx"
	"github.com/snapvlm/snapvlm/internal/onnx/onnxbuild"
	ort "github.com/yalue/onnxruntime_go"
)

const headH, headV = 8, 11

// headGraph is a decoder's tail: a row-wise norm of x [B, S, 8], then a
// language-model head of the given form making logits [B, S, 11].
func headGraph(t *testing.T, form string) []byte {
	t.Helper()
	b := onnxbuild.New("head")
	B, S := onnx.S("batch_size"), onnx.S("sequence_length")
	x := b.Input("x", onnx.Float, B, S, onnx.N(headH))
	w := make([]float32, headH*headV)
	for i := range w {
		w[i] = float32(math.Sin(float64(i)*0.91)) * 0.7
	}
	gamma := make([]float32, headH)
	for i := range gamma {
		gamma[i] = 1 + float32(i)/10
	}
	n := b.Mul(x, b.Init(onnx.FloatTensor("gamma", []int64{headH}, gamma)))
	var logits string
	switch form {
	case "float", "two activations":
		wt := b.Init(onnx.FloatTensor("lm_head.weight", []int64{headH, headV}, w))
		if form == "two activations" {
			wt = b.Input("w", onnx.Float, onnx.N(headH), onnx.N(headV))
		}
		logits = b.MatMul(n, wt)
	case "bias":
		bias := b.Init(onnx.FloatTensor("lm_head.bias", []int64{headV}, w[:headV]))
		logits = b.Add(b.Cast(b.MatMul(n, b.Init(onnx.FloatTensor("lm_head.weight", []int64{headH, headV}, w))), onnx.Float), bias)
	case "int8":
		// As ONNX Runtime's dynamic quantization writes it (spec §5.4).
		q := make([]byte, len(w))
		for i, v := range w {
			q[i] = byte(int8(math.Round(float64(v / 0.7 * 127))))
		}
		wq := b.Init(&onnx.Tensor{Name: "lm_head.weight_quantized", Type: onnx.Int8, Dims: []int64{headH, headV}, Raw: q})
		ws := b.Init(onnx.FloatTensor("lm_head.weight_scale", nil, []float32{0.7 / 127}))
		wz := b.Init(&onnx.Tensor{Name: "lm_head.weight_zero_point", Type: onnx.Int8, Raw: []byte{0}})
		dq := b.Op("DynamicQuantizeLinear", []string{n}, 3)
		acc := b.Op1("MatMulInteger", []string{dq[0], wq, dq[2], wz})
		logits = b.Mul(b.Cast(acc, onnx.Float), b.Mul(dq[1], ws))
	case "softmax":
		logits = b.Softmax(b.MatMul(n, b.Init(onnx.FloatTensor("lm_head.weight", []int64{headH, headV}, w))), -1)
	}
	b.OutputAs(logits, "logits", onnx.Float, B, S, onnx.N(headV))
	return marshal(t, b)
}

// runHead runs a head graph on s rows of x; keep < 0 leaves out the input.
func runHead(t *testing.T, model []byte, s int, keep int64) []float32 {
	t.Helper()
	x := make([]float32, s*headH)
	for i := range x {
		x[i] = float32(math.Cos(float64(i)*0.53) * 2)
	}
	xt := tensor(t, []int64{1, int64(s), headH}, x)
	ins, names := []ort.Value{xt}, []string{"x"}
	if keep >= 0 {
		k, err := ort.NewScalar(keep)
		if err != nil {
			t.Fatal(err)
		}
		defer k.Destroy()
		ins, names = append(ins, k), append(names, onnx.KeepInput)
	}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(model, names, []string{"logits"}, nil)
	if err != nil {
		t.Fatalf("creating session: %v", err)
	}
	defer sess.Destroy()
	outs := []ort.Value{nil}
	if err := sess.Run(ins, outs); err != nil {
		t.Fatalf("run: %v", err)
	}
	defer outs[0].Destroy()
	o := outs[0].(*ort.Tensor[float32])
	if keep >= 0 {
		if want := ort.NewShape(1, keep, headV); !slices.Equal(o.GetShape(), want) {
			t.Fatalf("logits shape %v, want %v", o.GetShape(), want)
		}
	}
	return append([]float32(nil), o.GetData()...)
}

func TestKeepLastLogits(t *testing.T) {
	needORT(t)
	const s = 5
	for _, form := range []string{"float", "bias", "int8"} {
		t.Run(form, func(t *testing.T) {
			src := headGraph(t, form)
			dst, err := onnx.KeepLastLogits(src)
			if err != nil {
				t.Fatal(err)
			}
			all := runHead(t, src, s, -1)
			for _, keep := range []int64{1, 2} {
				got := runHead(t, dst, s, keep)
				// The same rows to the bit: the int8 head quantizes
				// the whole input before the rows are cut.
				if want := all[(s-int(keep))*headV:]; !slices.Equal(got, want) {
					t.Errorf("keep %d: logits %v, want the original's last rows %v", keep, got, want)
				}
			}
			if _, err := onnx.KeepLastLogits(dst); err == nil || !strings.Contains(err.Error(), "already has input") {
				t.Errorf("rewriting twice: error %v, want one saying the input is there", err)
			}
		})
	}
	for _, c := range []struct{ form, want string }{
		{"two activations", "two activations"},
		{"softmax", "Softmax"},
	} {
		if _, err := onnx.KeepLastLogits(headGraph(t, c.form)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %q", c.form, err, c.want)
		}
	}
}
