//go:build !windows

package ort

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/float16"
	"google.golang.org/protobuf/encoding/protowire"

	ortgo "github.com/yalue/onnxruntime_go"
)

// attr encodes an int (kind 2) or float (kind 1) attribute.
func attr(name string, i int64, f float32, kind int) []byte {
	var a []byte
	a = protowire.AppendTag(a, 1, protowire.BytesType)
	a = protowire.AppendString(a, name)
	if kind == 1 {
		a = protowire.AppendTag(a, 2, protowire.Fixed32Type)
		a = protowire.AppendFixed32(a, math.Float32bits(f))
	} else {
		a = protowire.AppendTag(a, 3, protowire.VarintType)
		a = protowire.AppendVarint(a, uint64(i))
	}
	a = protowire.AppendTag(a, 20, protowire.VarintType)
	return protowire.AppendVarint(a, uint64(kind))
}

// importDomain appends to a serialized model the import of domain at
// version 1 (writeModel imports only the default opset).
func importDomain(m []byte, domain string) []byte {
	var opset []byte
	opset = protowire.AppendTag(opset, 1, protowire.BytesType)
	opset = protowire.AppendString(opset, domain)
	opset = protowire.AppendTag(opset, 2, protowire.VarintType)
	opset = protowire.AppendVarint(opset, 1)
	m = protowire.AppendTag(m, 8, protowire.BytesType)
	return protowire.AppendBytes(m, opset)
}

// writeGQAModel writes one GroupQueryAttention node of domain with its
// int32 length inputs cast from int64 graph inputs.
func writeGQAModel(t testing.TB, domain string, heads, kvHeads, headDim int, scale float32) string {
	return writeAttentionModel(t, domain, "GroupQueryAttention", 1, heads, kvHeads, headDim, scale)
}

// writeAttentionModel is writeGQAModel for the operator op whose past and
// present are of ONNX element type cache (1 float, 10 float16).
func writeAttentionModel(t testing.TB, domain, op string, cache, heads, kvHeads, headDim int, scale float32) string {
	t.Helper()
	cast := func(in, out string) []byte {
		n := node("Cast", []string{in}, []string{out})
		n = protowire.AppendTag(n, 5, protowire.BytesType)
		return protowire.AppendBytes(n, attr("to", 6, 0, 2))
	}
	gqa := node(op,
		[]string{"q", "k", "v", "past_key", "past_value", "seqlens_k", "total"},
		[]string{"out", "present_key", "present_value"})
	gqa = protowire.AppendTag(gqa, 7, protowire.BytesType)
	gqa = protowire.AppendString(gqa, domain)
	for _, a := range [][]byte{attr("num_heads", int64(heads), 0, 2), attr("kv_num_heads", int64(kvHeads), 0, 2), attr("scale", 0, scale, 1)} {
		gqa = protowire.AppendTag(gqa, 5, protowire.BytesType)
		gqa = protowire.AppendBytes(gqa, a)
	}
	path := writeModel(t,
		[][]byte{cast("lens", "seqlens_k"), cast("total64", "total"), gqa},
		[][]byte{
			valueInfo("q", 1, "b", "s", heads*headDim), valueInfo("k", 1, "b", "s", kvHeads*headDim), valueInfo("v", 1, "b", "s", kvHeads*headDim),
			valueInfo("past_key", cache, "b", kvHeads, "p", headDim), valueInfo("past_value", cache, "b", kvHeads, "p", headDim),
			valueInfo("lens", 7, "b"), valueInfo("total64", 7, 1),
		},
		[][]byte{
			valueInfo("out", 1, "b", "s", heads*headDim),
			valueInfo("present_key", cache, "b", kvHeads, "t", headDim), valueInfo("present_value", cache, "b", kvHeads, "t", headDim),
		})
	// writeModel imports only the default opset; add the node's domain.
	m, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, importDomain(m, domain), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAttentionMatchesGroupQueryAttention runs snapvlm's kernel and ONNX
// Runtime's com.microsoft GroupQueryAttention on the same inputs: first
// prompts, chunked prefills after a past, batched decoding steps with a
// different length per row, past and present in one buffer or two, long
// caches and scores spread widely enough that most weights are cut off.
func TestAttentionMatchesGroupQueryAttention(t *testing.T) {
	env := testEnv(t)
	if ok, err := env.Attention(); !ok {
		t.Fatalf("attention kernel not registered: %v", err)
	}
	cases := []struct {
		name                string
		heads, kvHeads, dim int
		seq                 int
		past                []int // cached rows per sequence
		capacity            int   // shared buffer rows; 0: separate past and present
		spread              float32
	}{
		{"decode step", 6, 2, 64, 1, []int{20}, 32, 1},
		{"first prompt", 6, 2, 64, 24, []int{0}, 40, 1},
		{"chunk after past", 6, 2, 64, 5, []int{24}, 40, 1},
		{"batched steps", 6, 2, 64, 1, []int{4, 17, 9}, 20, 1},
		{"separate present", 6, 2, 64, 3, []int{6}, 0, 1},
		{"separate first prompt", 4, 4, 64, 7, []int{0}, 0, 1},
		{"long cache", 15, 5, 64, 1, []int{700}, 760, 1},
		{"long prefill", 3, 1, 64, 40, []int{100}, 150, 1},
		{"prefill over parts", 6, 2, 64, 20, []int{300}, 330, 1},
		{"batched steps over parts", 6, 2, 64, 1, []int{300, 20, 270, 600}, 620, 1},
		{"head size 128 over parts", 4, 2, 128, 2, []int{200}, 210, 1},
		{"peaked scores", 6, 2, 64, 3, []int{300}, 320, 12},
		{"head size 12", 4, 2, 12, 2, []int{9}, 16, 1},
		{"head size 32", 4, 2, 32, 3, []int{10}, 16, 1},
		{"more sequences than the kernel's stack array", 2, 1, 8, 1, pastLengths(70), 12, 1},
	}
	for _, c := range cases {
		for _, half := range []bool{false, true} {
			name := c.name
			if half {
				if !AttentionHalf() {
					t.Fatal("the attention domain has no float16-cache operator (built without _Float16)")
				}
				name += "/float16 cache"
			}
			t.Run(name, func(t *testing.T) {
				checkAttention(t, env, c.heads, c.kvHeads, c.dim, c.seq, c.past, c.capacity, c.spread, half)
			})
		}
	}
}

// checkAttention is one case of TestAttentionMatchesGroupQueryAttention.
// With half, the kernel runs with a float16 cache (Attention16Op) and
// every reference on the same values rounded to float16 (the cache and
// the new key and value rows): its output must be the float32 kernel's
// on those values, bit for bit where the head size is a multiple of 8,
// and its present their float16 bits.
func checkAttention(t *testing.T, env *Env, heads, kvHeads, d, s int, pasts []int, capacity int, spread float32, half bool) {
	rng := rand.New(rand.NewPCG(uint64(heads*1000+len(pasts)*100+s), uint64(pasts[0]+7)))
	rnd := func(n int, spread float32) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = (rng.Float32()*2 - 1) * spread
		}
		return x
	}
	b := len(pasts)
	maxPast := 0
	for _, p := range pasts {
		maxPast = max(maxPast, p)
	}
	total := maxPast + s
	q := rnd(b*s*heads*d, spread)
	k := rnd(b*s*kvHeads*d, spread)
	v := rnd(b*s*kvHeads*d, 1)
	lens := make([]int64, b)
	for i, p := range pasts {
		lens[i] = int64(p + s - 1)
	}
	pastLen, presLen := capacity, capacity
	if capacity == 0 {
		pastLen, presLen = maxPast, total
	}
	cache := rnd(2*b*kvHeads*pastLen*d, spread)
	if half {
		for _, x := range [][]float32{k, v, cache} {
			for i := range x {
				x[i] = float16.ToFloat32(float16.FromFloat32(x[i]))
			}
		}
	}
	run := func(domain string, half bool) (out, pk, pv []float32) {
		op, dt, elem := "GroupQueryAttention", Float32, 1
		if half {
			op, dt, elem = Attention16Op, Float16, 10
		}
		path := writeAttentionModel(t, domain, op, elem, heads, kvHeads, d, 1/float32(math.Sqrt(float64(d))))
		sess, err := env.NewSession(path, SessionOptions{IntraOpThreads: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		n := b * kvHeads * pastLen * d
		pastK, _ := NewBuffer(dt, max(n, 1))
		pastV, _ := NewBuffer(dt, max(n, 1))
		if half {
			float16.FromFloat32s(pastK.F16, cache[:n])
			float16.FromFloat32s(pastV.F16, cache[n:])
		} else {
			copy(pastK.F32, cache[:n])
			copy(pastV.F32, cache[n:])
		}
		presK, presV := pastK, pastV
		if capacity == 0 {
			presK, _ = NewBuffer(dt, b*kvHeads*presLen*d)
			presV, _ = NewBuffer(dt, b*kvHeads*presLen*d)
		}
		outBuf := make([]float32, b*s*heads*d)
		kvShape := func(n int) []int64 { return []int64{int64(b), int64(kvHeads), int64(n), int64(d)} }
		keep := tensorKeeper(t)
		in := []*Tensor{
			keep(NewFloat32([]int64{int64(b), int64(s), int64(heads * d)}, q)),
			keep(NewFloat32([]int64{int64(b), int64(s), int64(kvHeads * d)}, k)),
			keep(NewFloat32([]int64{int64(b), int64(s), int64(kvHeads * d)}, v)),
			keep(pastK.Tensor(kvShape(pastLen))),
			keep(pastV.Tensor(kvShape(pastLen))),
			keep(NewInt64([]int64{int64(b)}, lens)),
			keep(NewInt64([]int64{1}, []int64{int64(total)})),
		}
		outs := []*Tensor{
			keep(NewFloat32([]int64{int64(b), int64(s), int64(heads * d)}, outBuf)),
			keep(presK.Tensor(kvShape(presLen))),
			keep(presV.Tensor(kvShape(presLen))),
		}
		if err := sess.Run(context.Background(), in, outs); err != nil {
			t.Fatalf("%s %s: %v", domain, op, err)
		}
		if !half {
			return outBuf, presK.F32, presV.F32
		}
		pk, pv = make([]float32, len(presK.F16)), make([]float32, len(presV.F16))
		float16.ToFloat32s(pk, presK.F16)
		float16.ToFloat32s(pv, presV.F16)
		return outBuf, pk, pv
	}
	gotOut, gotK, gotV := run(AttentionDomain, half)
	// Scores of large inputs carry rounding of their size into exp.
	tol := 2e-5 * float64(spread*spread)
	ref := naiveAttention(q, k, v, cache, pasts, s, heads, kvHeads, pastLen, d)
	if worst := maxDiff(gotOut, ref); worst > tol {
		t.Fatalf("output differs from float64 attention by up to %.3g", worst)
	}
	samePresent := func(wantK, wantV []float32, of string) {
		t.Helper()
		for r, past := range pasts {
			per := presLen * d
			for h := range kvHeads {
				off := (r*kvHeads + h) * per
				n := (past + s) * d // rows written; the rest of a shared buffer is the caller's
				if !reflect.DeepEqual(gotK[off:off+n], wantK[off:off+n]) || !reflect.DeepEqual(gotV[off:off+n], wantV[off:off+n]) {
					t.Fatalf("sequence %d kv head %d: present differs from %s", r, h, of)
				}
			}
		}
	}
	if half {
		out32, k32, v32 := run(AttentionDomain, false)
		// The vector path (head sizes of multiples of 8) is written out
		// operation by operation; the scalar fallback is left to the
		// compiler, which may fuse its multiply-adds differently.
		if d%8 == 0 && !reflect.DeepEqual(gotOut, out32) {
			t.Fatal("output with a float16 cache differs from the float32 kernel's on the same values")
		}
		samePresent(k32, v32, "the float32 kernel's")
	}
	if d%8 != 0 {
		return // com.microsoft's kernel takes head sizes of multiples of 8 only
	}
	wantOut, wantK, wantV := run("com.microsoft", false)
	samePresent(wantK, wantV, "com.microsoft's")
	want64 := make([]float64, len(wantOut))
	for i, x := range wantOut {
		want64[i] = float64(x)
	}
	worst := maxDiff(gotOut, want64)
	if worst > tol {
		t.Fatalf("output differs by up to %.3g", worst)
	}
	t.Logf("max |Δ| %.2g", worst)
}

// TestAttentionPartsSameBits: a decoding step over a long cache gives the
// same bits whether its parts run as tasks of their own (one sequence: few
// tasks) or one after the other in a task per key/value head (a batch of
// four: enough tasks), so batched answers stay those answered alone.
func TestAttentionPartsSameBits(t *testing.T) {
	env := testEnv(t)
	if ok, err := env.Attention(); !ok {
		t.Fatalf("attention kernel not registered: %v", err)
	}
	const heads, kvHeads, d, capacity = 6, 2, 64, 800
	pasts := []int{700, 31, 520, 256}
	sess, err := env.NewSession(writeAttentionModel(t, AttentionDomain, "GroupQueryAttention", 1, heads, kvHeads, d, 0.125), SessionOptions{IntraOpThreads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	rnd := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = rng.Float32()*2 - 1
		}
		return x
	}
	b := len(pasts)
	q, k, v := rnd(b*heads*d), rnd(b*kvHeads*d), rnd(b*kvHeads*d)
	cache := rnd(2 * b * kvHeads * capacity * d)
	// run steps sequences rows of the inputs together and returns their
	// outputs.
	run := func(rows []int) []float32 {
		n := len(rows)
		pick := func(x []float32, per int) []float32 {
			var out []float32
			for _, r := range rows {
				out = append(out, x[r*per:(r+1)*per]...)
			}
			return out
		}
		per := kvHeads * capacity * d
		pk, _ := NewBuffer(Float32, n*per)
		pv, _ := NewBuffer(Float32, n*per)
		copy(pk.F32, pick(cache[:b*per], per))
		copy(pv.F32, pick(cache[b*per:], per))
		lens := make([]int64, n)
		total := 0
		for i, r := range rows {
			lens[i] = int64(pasts[r])
			total = max(total, pasts[r]+1)
		}
		out := make([]float32, n*heads*d)
		keep := tensorKeeper(t)
		kvShape := []int64{int64(n), kvHeads, capacity, d}
		in := []*Tensor{
			keep(NewFloat32([]int64{int64(n), 1, heads * d}, pick(q, heads*d))),
			keep(NewFloat32([]int64{int64(n), 1, kvHeads * d}, pick(k, kvHeads*d))),
			keep(NewFloat32([]int64{int64(n), 1, kvHeads * d}, pick(v, kvHeads*d))),
			keep(pk.Tensor(kvShape)), keep(pv.Tensor(kvShape)),
			keep(NewInt64([]int64{int64(n)}, lens)),
			keep(NewInt64([]int64{1}, []int64{int64(total)})),
		}
		outs := []*Tensor{keep(NewFloat32([]int64{int64(n), 1, heads * d}, out)), keep(pk.Tensor(kvShape)), keep(pv.Tensor(kvShape))}
		if err := sess.Run(context.Background(), in, outs); err != nil {
			t.Fatal(err)
		}
		return out
	}
	batched := run([]int{0, 1, 2, 3})
	for r := range pasts {
		alone := run([]int{r})
		if !slices.Equal(alone, batched[r*heads*d:(r+1)*heads*d]) {
			t.Errorf("sequence %d (%d cached rows): its output alone differs from its output in the batch", r, pasts[r])
		}
	}
}

// pastLengths is n cache lengths of 0 to 10.
func pastLengths(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i * 7 % 11
	}
	return p
}

func maxDiff(a []float32, b []float64) float64 {
	var worst float64
	for i := range a {
		worst = max(worst, math.Abs(float64(a[i])-b[i]))
	}
	return worst
}

// naiveAttention is attention in float64 straight from its definition:
// query row s of sequence r attends to the r's past cache rows and the
// new rows up to s, its head's kv head being head / (heads / kvHeads).
func naiveAttention(q, k, v, cache []float32, past []int, s, heads, kvHeads, pastLen, d int) []float64 {
	half := len(past) * kvHeads * pastLen * d
	out := make([]float64, len(q))
	for r, p := range past {
		for i := range s {
			for h := range heads {
				kh := h / (heads / kvHeads)
				row := func(src []float32, t int) []float32 {
					if t < p {
						off := ((r*kvHeads+kh)*pastLen + t) * d
						return cache[off : off+d]
					}
					off := ((r*s+t-p)*kvHeads + kh) * d
					return src[off : off+d]
				}
				qr := q[((r*s+i)*heads+h)*d:][:d]
				n := p + i + 1
				sc := make([]float64, n)
				m := math.Inf(-1)
				for t := range n {
					kr := row(k, t)
					for j := range d {
						sc[t] += float64(qr[j]) * float64(kr[j])
					}
					sc[t] /= math.Sqrt(float64(d))
					m = max(m, sc[t])
				}
				var sum float64
				for t := range n {
					sc[t] = math.Exp(sc[t] - m)
					sum += sc[t]
				}
				o := out[((r*s+i)*heads+h)*d:][:d]
				for t := range n {
					vr := row(v, t)
					if t < p {
						vr = cache[half+((r*kvHeads+kh)*pastLen+t)*d:][:d]
					}
					for j := range d {
						o[j] += sc[t] / sum * float64(vr[j])
					}
				}
			}
		}
	}
	return out
}

// TestAttentionErrors: shapes the kernel cannot take are errors that say
// so, not crashes.
func TestAttentionErrors(t *testing.T) {
	env := testEnv(t)
	path := writeGQAModel(t, AttentionDomain, 4, 2, 8, 0)
	sess, err := env.NewSession(path, SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	q := make([]float32, 32)
	kv := make([]float32, 16)
	cache := make([]float32, 2*4*8)
	mk := func(x *Tensor, err error) *Tensor {
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(x.Close)
		return x
	}
	in := func(lens, total int64) []*Tensor {
		return []*Tensor{
			mk(NewFloat32([]int64{1, 1, 32}, q)), mk(NewFloat32([]int64{1, 1, 16}, kv)), mk(NewFloat32([]int64{1, 1, 16}, kv)),
			mk(NewFloat32([]int64{1, 2, 4, 8}, cache)), mk(NewFloat32([]int64{1, 2, 4, 8}, cache)),
			mk(NewInt64([]int64{1}, []int64{lens})), mk(NewInt64([]int64{1}, []int64{total})),
		}
	}
	out := func() []*Tensor {
		return []*Tensor{mk(NewFloat32([]int64{1, 1, 32}, make([]float32, 32))),
			mk(NewFloat32([]int64{1, 2, 4, 8}, make([]float32, 64))), mk(NewFloat32([]int64{1, 2, 4, 8}, make([]float32, 64)))}
	}
	for _, c := range []struct{ lens, total int64 }{{5, 4}, {-3, 1}} {
		err := sess.Run(context.Background(), in(c.lens, c.total), out())
		if err == nil || !strings.Contains(err.Error(), "seqlens_k out of range") {
			t.Errorf("seqlens_k %d, total %d: err = %v, want seqlens_k out of range", c.lens, c.total, err)
		}
	}
	if err := sess.Run(context.Background(), in(2, 3), out()); err != nil {
		t.Errorf("a valid step after the errors: %v", err)
	}
}

func TestAttentionDomainName(t *testing.T) {
	if attentionDomainC != AttentionDomain {
		t.Fatalf("attention.c registers %q, AttentionDomain is %q", attentionDomainC, AttentionDomain)
	}
}

// TestSessionOptionsLayout: sessionOptionsPtr reads the binding's
// SessionOptions as one C pointer.
func TestSessionOptionsLayout(t *testing.T) {
	typ := reflect.TypeOf(ortgo.SessionOptions{})
	if typ.NumField() != 1 || typ.Field(0).Type.Kind() != reflect.Pointer {
		t.Fatalf("onnxruntime_go.SessionOptions is %v; sessionOptionsPtr needs one pointer field", typ)
	}
}

// TestAttentionAPIIndices compiles the binding's onnxruntime_c_api.h with
// the C compiler and checks that every OrtApi index ortop.h lists, and
// its OrtCustomOp layout, are the header's.
func TestAttentionAPIIndices(t *testing.T) {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc")
	}
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/yalue/onnxruntime_go").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	src, err := os.ReadFile("ortop.h")
	if err != nil {
		t.Fatal(err)
	}
	var prog strings.Builder
	prog.WriteString("#include <stdio.h>\n#include <stddef.h>\n#include \"onnxruntime_c_api.h\"\nint main(void) {\n")
	want := map[string]string{}
	for _, m := range regexp.MustCompile(`\bi(\w+) = (\d+),`).FindAllStringSubmatch(string(src), -1) {
		want[m[1]] = m[2]
		fmt.Fprintf(&prog, "printf(\"%s %%zu\\n\", offsetof(OrtApi, %s) / sizeof(void*));\n", m[1], m[1])
	}
	if len(want) < 15 {
		t.Fatalf("found %d indices in ortop.h", len(want))
	}
	prog.WriteString("printf(\"KernelComputeV2 %zu\\n\", offsetof(OrtCustomOp, KernelComputeV2) / sizeof(void*));\n")
	prog.WriteString("printf(\"ORT_API_VERSION %d\\n\", ORT_API_VERSION);\nreturn 0; }\n")
	want["KernelComputeV2"] = "18" // the version word padded to a pointer, then 17 entries before it
	tmp := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmp, "idx.c"), []byte(prog.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(tmp, "idx")
	if out, err := exec.Command(cc, "-I", strings.TrimSpace(string(dir)), "-o", bin, filepath.Join(tmp, "idx.c")).CombinedOutput(); err != nil {
		t.Fatalf("compiling against the header: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, got, _ := strings.Cut(line, " ")
		if name == "ORT_API_VERSION" {
			continue
		}
		if want[name] != got {
			t.Errorf("OrtApi %s is entry %s in the header, ortop.h uses %s", name, got, want[name])
		}
	}
}

// BenchmarkAttention times one decoding step of one layer of the 256M
// size (9 heads on 3 key/value heads of 64) and the 500M size (15 on 5)
// at a short and a long context, on a float32 and a float16 cache shared
// by past and present, either cycling through 32 layers' caches as a
// decoder step does (at 876 tokens 72 MB of float32 on the 500M size,
// beyond the cores' own caches) or on one layer's, which stays in them:
// the difference is what reading the cache costs. GB/s counts the cache
// bytes the step reads.
func BenchmarkAttention(b *testing.B) {
	env, err := Open(Options{})
	if err != nil {
		b.Skip(err)
	}
	const d, capacity = 64, 1024
	for _, shape := range []struct {
		name           string
		heads, kvHeads int
	}{{"256M", 9, 3}, {"500M", 15, 5}} {
		for _, past := range []int{80, 875} {
			for _, cache := range []string{"f32", "f16"} {
				for _, layers := range []int{32, 1} {
					name := fmt.Sprintf("%s/past=%d/%s/layers=%d", shape.name, past, cache, layers)
					b.Run(name, func(b *testing.B) {
						benchAttention(b, env, shape.heads, shape.kvHeads, d, capacity, layers, past, cache == "f16")
					})
				}
			}
		}
	}
}

// benchAttention is one case of BenchmarkAttention.
func benchAttention(b *testing.B, env *Env, heads, kvHeads, d, capacity, layers, past int, half bool) {
	op, dt, elem, es := "GroupQueryAttention", Float32, 1, 4
	if half {
		op, dt, elem, es = Attention16Op, Float16, 10, 2
	}
	s, err := env.NewSession(writeAttentionModel(b, AttentionDomain, op, elem, heads, kvHeads, d, 0.125), SessionOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	q := make([]float32, heads*d)
	for i := range q {
		q[i] = float32(math.Cos(float64(i)))
	}
	keep := tensorKeeper(b)
	shape := []int64{1, int64(kvHeads), int64(capacity), int64(d)}
	common := []*Tensor{
		keep(NewFloat32([]int64{1, 1, int64(heads * d)}, q)),
		keep(NewFloat32([]int64{1, 1, int64(kvHeads * d)}, q[:kvHeads*d])),
		keep(NewFloat32([]int64{1, 1, int64(kvHeads * d)}, q[:kvHeads*d])),
	}
	lens := []*Tensor{keep(NewInt64([]int64{1}, []int64{int64(past)})), keep(NewInt64([]int64{1}, []int64{int64(past + 1)}))}
	out := keep(NewFloat32([]int64{1, 1, int64(heads * d)}, make([]float32, heads*d)))
	ins, outs := make([][]*Tensor, layers), make([][]*Tensor, layers)
	for l := range layers {
		var kv [2]*Tensor
		for i := range kv {
			buf, _ := NewBuffer(dt, kvHeads*capacity*d)
			for j := range buf.Len() {
				x := float32(math.Sin(float64(j + l)))
				if dt == Float16 {
					buf.F16[j] = float16.FromFloat32(x)
				} else {
					buf.F32[j] = x
				}
			}
			kv[i] = keep(buf.Tensor(shape))
		}
		ins[l] = append(append(append([]*Tensor(nil), common...), kv[0], kv[1]), lens...)
		outs[l] = []*Tensor{out, kv[0], kv[1]}
	}
	b.ResetTimer()
	for i := range b.N {
		if err := s.Run(context.Background(), ins[i%layers], outs[i%layers]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(2*kvHeads*(past+1)*d*es)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}

// tensorKeeper returns keep, which fails tb on a tensor's error and closes
// the tensor when tb ends.
func tensorKeeper(tb testing.TB) func(*Tensor, error) *Tensor {
	return func(x *Tensor, err error) *Tensor {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { x.Close() })
		return x
	}
}
