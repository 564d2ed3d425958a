package onnx_test

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/onnx"
	"github.com/snapvlm/snapvlm/internal/onnx/onnxbuild"
	ort "github.com/yalue/onnxruntime_go"
)

const gqaN, gqaKV, gqaH = 4, 2, 8

// attnGraph is one attention layer as the SmolVLM decoder exports have it
// (spec §5.3): new K/V rows reshaped to heads, concatenated to the past
// (the present outputs), repeated from kv heads to query heads, and
// MultiHeadAttention with a causal additive bias. builderForm repeats as
// onnxruntime-genai's builder does (dynamic Expand shape, then Transpose and
// Reshape to [B, T, N*H]); otherwise as internal/testmodel does. change
// alters one thing the rewrite must refuse.
func attnGraph(t *testing.T, builderForm bool, change string) []byte {
	t.Helper()
	b := onnxbuild.New("attn")
	B, S, P, T := onnx.S("batch_size"), onnx.S("sequence_length"), onnx.S("past_sequence_length"), onnx.S("total_sequence_length")
	q := b.Input("q", onnx.Float, B, S, onnx.N(gqaN*gqaH))
	k := b.Input("k", onnx.Float, B, S, onnx.N(gqaKV*gqaH))
	v := b.Input("v", onnx.Float, B, S, onnx.N(gqaKV*gqaH))
	mask := b.Input("attention_mask", onnx.Int64, B, T)
	past := [2]string{
		b.Input("past_key_values.0.key", onnx.Float, B, onnx.N(gqaKV), P, onnx.N(gqaH)),
		b.Input("past_key_values.0.value", onnx.Float, B, onnx.N(gqaKV), P, onnx.N(gqaH)),
	}
	// Causal bias [1, 1, S, T] from the past length, as the exports build it.
	pastLen := b.Shape(past[0], 2, 3)
	totalS := b.Squeeze(b.Add(pastLen, b.Shape(q, 1, 2)), 0)
	qPos := b.Op1("Range", []string{b.Squeeze(pastLen, 0), totalS, b.ScalarInt64(1)})
	kPos := b.Op1("Range", []string{b.ScalarInt64(0), totalS, b.ScalarInt64(1)})
	allowed := b.Op1("And", []string{
		b.Op1("LessOrEqual", []string{b.Unsqueeze(kPos, 0), b.Unsqueeze(qPos, 1)}),
		b.Unsqueeze(b.Cast(mask, onnx.Bool), 1, 2),
	})
	bias := b.Where(allowed, b.ScalarFloat(0), b.ScalarFloat(-math.MaxFloat32))
	rep := int64(gqaN / gqaKV)
	var full [2]string
	for j, cur := range []string{k, v} {
		name := []string{"present.0.key", "present.0.value"}[j]
		b.NodeTo("", "Concat", []string{past[j], b.Transpose(b.Reshape(cur, 0, 0, gqaKV, gqaH), 0, 2, 1, 3)}, []string{name}, onnx.Int("axis", 2))
		axis := int64(2)
		if change == "unsqueeze axis" {
			axis = 1
		}
		u := b.Unsqueeze(name, axis)
		var shape string
		switch {
		case change == "other repeat":
			shape = b.ConstInt64(1, 1, rep+1, 1, 1)
		case builderForm:
			shape = b.Mul(b.Op1("Shape", []string{u}), b.ConstInt64(1, 1, rep, 1, 1))
		default:
			shape = b.ConstInt64(1, 1, rep, 1, 1)
		}
		f := b.Reshape(b.Op1("Expand", []string{u, shape}), 0, gqaN, -1, gqaH)
		if builderForm {
			f = b.Reshape(b.Transpose(f, 0, 2, 1, 3), 0, 0, gqaN*gqaH)
		}
		full[j] = f
	}
	ins := []string{q, full[0], full[1], "", "", bias}
	if change == "attention reads the past" {
		ins = append(ins, past[0], past[1])
	}
	b.OutputAs(b.MS1("MultiHeadAttention", ins, onnx.Int("num_heads", gqaN)), "out", onnx.Float, B, S, onnx.N(gqaN*gqaH))
	b.Output("present.0.key", onnx.Float, B, onnx.N(gqaKV), T, onnx.N(gqaH))
	b.Output("present.0.value", onnx.Float, B, onnx.N(gqaKV), T, onnx.N(gqaH))
	return marshal(t, b)
}

// runAttn runs an attention graph on p past and s new positions.
func runAttn(t *testing.T, model []byte, p, s int) [][]float32 {
	t.Helper()
	fill := func(n int, seed float64) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(math.Sin(float64(i)*0.37+seed) * 1.5)
		}
		return x
	}
	mask := make([]int64, p+s)
	for i := range mask {
		mask[i] = 1
	}
	names := []string{"q", "k", "v", "attention_mask", "past_key_values.0.key", "past_key_values.0.value"}
	var ins []ort.Value
	for i, d := range [][]int64{{1, int64(s), gqaN * gqaH}, {1, int64(s), gqaKV * gqaH}, {1, int64(s), gqaKV * gqaH}} {
		ins = append(ins, tensor(t, d, fill(int(d[1]*d[2]), float64(i))))
	}
	m, err := ort.NewTensor(ort.NewShape(1, int64(p+s)), mask)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Destroy()
	ins = append(ins, m)
	for i := range 2 {
		pd := []int64{1, gqaKV, int64(p), gqaH}
		if p == 0 {
			z, err := ort.NewTensor(ort.NewShape(pd...), []float32{})
			if err != nil {
				t.Fatal(err)
			}
			defer z.Destroy()
			ins = append(ins, z)
			continue
		}
		ins = append(ins, tensor(t, pd, fill(gqaKV*p*gqaH, 5+float64(i))))
	}
	outNames := []string{"out", "present.0.key", "present.0.value"}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(model, names, outNames, nil)
	if err != nil {
		t.Fatalf("creating session: %v", err)
	}
	defer sess.Destroy()
	outs := make([]ort.Value, len(outNames))
	if err := sess.Run(ins, outs); err != nil {
		t.Fatalf("run at %d+%d: %v", p, s, err)
	}
	var res [][]float32
	for _, o := range outs {
		res = append(res, append([]float32(nil), o.(*ort.Tensor[float32]).GetData()...))
		o.Destroy()
	}
	return res
}

func TestFuseGroupQueryAttention(t *testing.T) {
	shape := onnx.GQAShape{Heads: gqaN, KVHeads: gqaKV, HeadDim: gqaH}
	cases := []struct {
		name        string
		builderForm bool
		change      string
		shape       onnx.GQAShape
		refused     string // part of the error; "" = rewritten
	}{
		{"test model form", false, "", shape, ""},
		{"builder form", true, "", shape, ""},
		{"repeat other than heads/kv heads", false, "other repeat", shape, "want [1 1 2 1 1]"},
		{"unsqueeze on another axis", false, "unsqueeze axis", shape, "axes [1], want [2]"},
		{"attention given the past", false, "attention reads the past", shape, "at most an attention bias"},
		{"config with other head count", false, "", onnx.GQAShape{Heads: 8, KVHeads: gqaKV, HeadDim: gqaH}, "num_heads [4], want 8"},
		// Another kernel's domain (ort.AttentionDomain's kernel is run on
		// this rewrite by the root package's probe and differential tests).
		{"other domain", false, "", onnx.GQAShape{Heads: gqaN, KVHeads: gqaKV, HeadDim: gqaH, Domain: "ai.example"}, ""},
		// A float32 cache stored as float16 by another kernel's operator.
		{"float16 cache", true, "", onnx.GQAShape{Heads: gqaN, KVHeads: gqaKV, HeadDim: gqaH, Domain: "ai.example", HalfOp: "GQA16", HalfCache: true}, ""},
		{"float16 operator without its domain", false, "", onnx.GQAShape{Heads: gqaN, KVHeads: gqaKV, HeadDim: gqaH, HalfOp: "GQA16", HalfCache: true}, "needs its own domain"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := attnGraph(t, c.builderForm, c.change)
			out, n, err := onnx.FuseGroupQueryAttention(src, c.shape)
			if c.refused != "" {
				if err == nil || !strings.Contains(err.Error(), c.refused) {
					t.Fatalf("got %d replaced, error %v; want an error with %q", n, err, c.refused)
				}
				return
			}
			if err != nil || n != 1 {
				t.Fatalf("got %d replaced, error %v; want 1", n, err)
			}
			ops, err := onnx.ReadOpTypes(out)
			if err != nil {
				t.Fatal(err)
			}
			domain := c.shape.Domain
			if domain == "" {
				domain = "com.microsoft"
			}
			op := "GroupQueryAttention"
			if c.shape.HalfCache {
				op = c.shape.HalfOp
			}
			if ops[domain+":"+op] != 1 || ops["com.microsoft:MultiHeadAttention"] != 0 || ops["Expand"] != 0 || ops["Concat"] != 0 {
				t.Errorf("ops after rewrite: %v", ops)
			}
			ins, outs, err := onnx.ReadGraphIO(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, io := range append(ins, outs...) {
				want := onnx.Float
				if c.shape.HalfCache && (strings.HasPrefix(io.Name, "past_key_values.") || strings.HasPrefix(io.Name, "present.")) {
					want = onnx.Float16
				} else if io.Name == "attention_mask" {
					continue
				}
				if io.Type != want || len(io.Shape) == 0 {
					t.Errorf("%s: %v %v after the rewrite, want %v", io.Name, io.Type, io.Shape, want)
				}
				if io.Name == "past_key_values.0.key" && io.Shape[2].Param != "past_sequence_length" {
					t.Errorf("%s: shape %v, want its dimension names kept", io.Name, io.Shape)
				}
			}
			if c.shape.Domain != "" {
				if !bytes.Contains(out, []byte("\n\x0aai.example\x10\x01")) {
					t.Errorf("no opset import of %s at version 1", c.shape.Domain)
				}
				return
			}
			needORT(t)
			// The original graph, run by ONNX Runtime, is the reference:
			// a prompt, a chunk after a past, one step.
			for _, ps := range [][2]int{{0, 5}, {4, 3}, {7, 1}} {
				want, got := runAttn(t, src, ps[0], ps[1]), runAttn(t, out, ps[0], ps[1])
				for i, name := range []string{"out", "present key", "present value"} {
					if !near(got[i], want[i], 1e-5) {
						t.Errorf("%d+%d: %s differs:\n got %v\nwant %v", ps[0], ps[1], name, got[i][:8], want[i][:8])
					}
				}
			}
		})
	}
}
