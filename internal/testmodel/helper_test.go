package testmodel

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/snapvlm/snapvlm/internal/ort"
	"github.com/snapvlm/snapvlm/internal/ort/orttest"
)

// Generated models are shared by the tests of one run (generation takes
// about a second per preset) and removed at the end.
var (
	genRoot string
	genMu   sync.Mutex
	genDirs = map[string]*testModel{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "testmodel-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	genRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testModel is a generated model directory.
type testModel struct {
	dir string
	p   preset
	tok *tokenizerInfo
}

// generated returns the preset written with all variants (seed 1).
func generated(t testing.TB, name string) *testModel {
	t.Helper()
	genMu.Lock()
	defer genMu.Unlock()
	if m := genDirs[name]; m != nil {
		return m
	}
	dir := filepath.Join(genRoot, name)
	if err := Generate(context.Background(), name, dir, Options{Seed: 1}); err != nil {
		t.Fatalf("Generate(%s): %v", name, err)
	}
	tok, err := loadTokenizer(Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := &testModel{dir: dir, p: presets[name], tok: tok}
	genDirs[name] = m
	return m
}

func testEnv(t testing.TB) *ort.Env { return orttest.Env(t) }

func (m *testModel) path(graph, variant string) string {
	return filepath.Join(m.dir, "onnx", graph+suffix(variant)+".onnx")
}

func (m *testModel) session(t testing.TB, graph, variant string) *ort.Session {
	t.Helper()
	env := testEnv(t)
	s, err := env.NewSession(m.path(graph, variant), ort.SessionOptions{IntraOpThreads: 2})
	if err != nil {
		t.Fatalf("loading %s %s: %v", graph, variant, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func must[T any](t testing.TB) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// runVision runs the vision encoder on frames [n, 3, M, M] (batch 1, all
// mask true) and returns features [k, N, hidden], where k is the number of
// frames that are not all zero (computed here, independently of the graph).
func (m *testModel) runVision(t testing.TB, s *ort.Session, frames []float32) ([]float32, int) {
	t.Helper()
	M := m.p.tile
	per := 3 * M * M
	n := len(frames) / per
	k := 0
	for f := 0; f < n; f++ {
		for _, v := range frames[f*per : (f+1)*per] {
			if v != 0 {
				k++
				break
			}
		}
	}
	mask := make([]bool, n*M*M)
	for i := range mask {
		mask[i] = true
	}
	pv := must[*ort.Tensor](t)(ort.NewFloat32([]int64{1, int64(n), 3, int64(M), int64(M)}, frames))
	pm := must[*ort.Tensor](t)(ort.NewBool([]int64{1, int64(n), int64(M), int64(M)}, mask))
	N := m.p.imageSeqLen()
	feat := make([]float32, k*N*m.p.hidden)
	out := must[*ort.Tensor](t)(ort.NewFloat32([]int64{int64(k), int64(N), int64(m.p.hidden)}, feat))
	defer pv.Close()
	defer pm.Close()
	defer out.Close()
	if err := s.Run(context.Background(), []*ort.Tensor{pv, pm}, []*ort.Tensor{out}); err != nil {
		t.Fatalf("vision encoder: %v", err)
	}
	return feat, k
}

// runEmbed embeds ids [1, len(ids)].
func (m *testModel) runEmbed(t testing.TB, s *ort.Session, ids []int64) []float32 {
	t.Helper()
	in := must[*ort.Tensor](t)(ort.NewInt64([]int64{1, int64(len(ids))}, ids))
	emb := make([]float32, len(ids)*m.p.hidden)
	out := must[*ort.Tensor](t)(ort.NewFloat32([]int64{1, int64(len(ids)), int64(m.p.hidden)}, emb))
	defer in.Close()
	defer out.Close()
	if err := s.Run(context.Background(), []*ort.Tensor{in}, []*ort.Tensor{out}); err != nil {
		t.Fatalf("embed_tokens: %v", err)
	}
	return emb
}

// kvCache holds past key/values of every layer, batch b, as float32 or
// float16 bits.
type kvCache struct {
	fp16 bool
	f32  [][]float32
	f16  [][]uint16
	len  int
}

// decode runs the decoder on embeddings [b, s, hidden] with the given mask
// [b, past+s] and positions [b, s]; it returns logits [b, s, vocab] and
// advances the cache.
func (m *testModel) decode(t testing.TB, sess *ort.Session, cache *kvCache, b int, emb []float32, mask, pos []int64) []float32 {
	t.Helper()
	p := m.p
	s := len(pos) / b
	total := cache.len + s
	var ins, outs []*ort.Tensor
	add := func(list *[]*ort.Tensor, tt *ort.Tensor) { *list = append(*list, tt) }
	add(&ins, must[*ort.Tensor](t)(ort.NewFloat32([]int64{int64(b), int64(s), int64(p.hidden)}, emb)))
	add(&ins, must[*ort.Tensor](t)(ort.NewInt64([]int64{int64(b), int64(total)}, mask)))
	add(&ins, must[*ort.Tensor](t)(ort.NewInt64([]int64{int64(b), int64(s)}, pos)))
	pastShape := []int64{int64(b), int64(p.kvHeads), int64(cache.len), int64(p.headDim)}
	presShape := []int64{int64(b), int64(p.kvHeads), int64(total), int64(p.headDim)}
	n := 2 * p.layers
	if cache.f32 == nil && cache.f16 == nil {
		cache.f32 = make([][]float32, n)
		cache.f16 = make([][]uint16, n)
	}
	newF32 := make([][]float32, n)
	newF16 := make([][]uint16, n)
	for i := 0; i < n; i++ {
		if cache.fp16 {
			add(&ins, must[*ort.Tensor](t)(ort.NewFloat16(pastShape, cache.f16[i])))
		} else {
			add(&ins, must[*ort.Tensor](t)(ort.NewFloat32(pastShape, cache.f32[i])))
		}
	}
	logits := make([]float32, b*s*m.tok.vocabSize)
	add(&outs, must[*ort.Tensor](t)(ort.NewFloat32([]int64{int64(b), int64(s), int64(m.tok.vocabSize)}, logits)))
	size := b * p.kvHeads * total * p.headDim
	for i := 0; i < n; i++ {
		if cache.fp16 {
			newF16[i] = make([]uint16, size)
			add(&outs, must[*ort.Tensor](t)(ort.NewFloat16(presShape, newF16[i])))
		} else {
			newF32[i] = make([]float32, size)
			add(&outs, must[*ort.Tensor](t)(ort.NewFloat32(presShape, newF32[i])))
		}
	}
	defer func() {
		for _, x := range append(ins, outs...) {
			x.Close()
		}
	}()
	if err := sess.Run(context.Background(), ins, outs); err != nil {
		t.Fatalf("decoder: %v", err)
	}
	cache.f32, cache.f16, cache.len = newF32, newF16, total
	return logits
}

// merge overwrites the embedding at the j-th image token with feature row
// j (spec §6.2); shift moves the features by that many token positions (a
// deliberately wrong merge, for the sensitivity test).
func (m *testModel) merge(t testing.TB, emb []float32, ids []int64, feat []float32, shift int) {
	t.Helper()
	h := m.p.hidden
	img := m.tok.ids[tokImage]
	var pos []int
	for i, id := range ids {
		if id == img {
			pos = append(pos, i)
		}
	}
	if len(pos)*h != len(feat) {
		t.Fatalf("%d image tokens for %d feature rows", len(pos), len(feat)/h)
	}
	for j, p := range pos {
		copy(emb[(p+shift)*h:(p+shift+1)*h], feat[j*h:(j+1)*h])
	}
}

// argmax2 returns the best index and the gap to the second best.
func argmax2(v []float32) (int, float32) {
	best, second := 0, -1
	for i := 1; i < len(v); i++ {
		if v[i] > v[best] {
			best, second = i, best
		} else if second < 0 || v[i] > v[second] {
			second = i
		}
	}
	return best, v[best] - v[second]
}

// run is one greedy generation: its tokens, the top-1/top-2 gap of each
// step and the last-position logits of each step.
type run struct {
	tokens []int64
	gaps   []float32
	logits [][]float32
}

// greedy embeds ids, merges features (shifted by shift), prefills and
// decodes steps-1 more tokens, batch 1, as transformers.js does.
func (m *testModel) greedy(t testing.TB, variant string, ids []int64, feat []float32, shift, steps int) run {
	t.Helper()
	embS := m.session(t, "embed_tokens", variant)
	decS := m.session(t, "decoder_model_merged", variant)
	emb := m.runEmbed(t, embS, ids)
	if feat != nil {
		m.merge(t, emb, ids, feat, shift)
	}
	cache := &kvCache{fp16: variant == FP16}
	V := m.tok.vocabSize
	var r run
	s := len(ids)
	mask := ones(s)
	pos := seq(0, s)
	for step := 0; step < steps; step++ {
		logits := m.decode(t, decS, cache, 1, emb, mask, pos)
		last := append([]float32(nil), logits[len(logits)-V:]...)
		tok, gap := argmax2(last)
		r.tokens = append(r.tokens, int64(tok))
		r.gaps = append(r.gaps, gap)
		r.logits = append(r.logits, last)
		emb = m.runEmbed(t, embS, []int64{int64(tok)})
		mask = ones(cache.len + 1)
		pos = []int64{int64(cache.len)}
	}
	return r
}

func ones(n int) []int64 {
	v := make([]int64, n)
	for i := range v {
		v[i] = 1
	}
	return v
}

func seq(from, to int) []int64 {
	v := make([]int64, 0, to-from)
	for i := from; i < to; i++ {
		v = append(v, int64(i))
	}
	return v
}

// image is a W×H RGB picture in [-1, 1] (already normalised), made of a
// few random sinusoids, quantised to the values uint8 pixels produce.
type image struct {
	w, h int
	px   []float32 // [3][h][w]
}

func testImage(w, h int, seed int64) image {
	r := newRNG(seed, "test image")
	f := func() float64 { return float64(r.next()%1000) / 1000 }
	img := image{w: w, h: h, px: make([]float32, 3*w*h)}
	for c := 0; c < 3; c++ {
		type wave struct{ fx, fy, ph, a float64 }
		var waves []wave
		for i := 0; i < 4; i++ {
			waves = append(waves, wave{fx: 0.5 + 6*f(), fy: 0.5 + 6*f(), ph: 6.28 * f(), a: 0.2 + 0.3*f()})
		}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				v := 0.0
				for _, wv := range waves {
					v += wv.a * math.Sin(2*math.Pi*(wv.fx*float64(x)/float64(w)+wv.fy*float64(y)/float64(h))+wv.ph)
				}
				u8 := math.Round(math.Max(0, math.Min(255, 127.5+127.5*v)))
				img.px[(c*h+y)*w+x] = float32(u8/127.5 - 1)
			}
		}
	}
	return img
}

func (im image) transposed() image {
	out := image{w: im.h, h: im.w, px: make([]float32, len(im.px))}
	for c := 0; c < 3; c++ {
		for y := 0; y < im.h; y++ {
			for x := 0; x < im.w; x++ {
				out.px[(c*out.h+x)*out.w+y] = im.px[(c*im.h+y)*im.w+x]
			}
		}
	}
	return out
}

// frames cuts a rows·M × cols·M image into tiles (row-major) plus a
// global frame (every (w/M)-th pixel; the sampling filter does not matter
// here), as pixel_values [rows·cols+1, 3, M, M].
func (im image) frames(M int) []float32 {
	rows, cols := im.h/M, im.w/M
	out := make([]float32, 0, (rows*cols+1)*3*M*M)
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			for ch := 0; ch < 3; ch++ {
				for y := 0; y < M; y++ {
					row := (ch*im.h+r*M+y)*im.w + c*M
					out = append(out, im.px[row:row+M]...)
				}
			}
		}
	}
	for ch := 0; ch < 3; ch++ {
		for y := 0; y < M; y++ {
			for x := 0; x < M; x++ {
				out = append(out, im.px[(ch*im.h+y*im.h/M)*im.w+x*im.w/M])
			}
		}
	}
	return out
}

// plainIDs are the ordinary (not added) token ids of the tokenizer,
// ascending: what plain text may encode to.
func (ti *tokenizerInfo) plainIDs() []int64 {
	added := map[int64]bool{}
	for _, a := range ti.added {
		added[a.ID] = true
	}
	var ids []int64
	for _, id := range ti.ids {
		if !added[id] {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// plainID is the i-th of a spread of arbitrary ordinary ids of the
// tokenizer (whichever it is: generated or real).
func (ti *tokenizerInfo) plainID(i int) int64 {
	ids := ti.plainIDs()
	return ids[(300+37*i)%len(ids)]
}

// promptIDs is a chat prompt with a rows×cols image expanded as in spec
// §3.2; plain text tokens are arbitrary ordinary ids.
func (m *testModel) promptIDs(rows, cols int) []int64 {
	id := func(s string) int64 { return m.tok.ids[s] }
	plain := m.tok.plainID
	N := m.p.imageSeqLen()
	ids := []int64{id(tokIMStart), plain(0), plain(1)}
	imageRun := func() {
		for i := 0; i < N; i++ {
			ids = append(ids, id(tokImage))
		}
	}
	for r := 1; r <= rows; r++ {
		for c := 1; c <= cols; c++ {
			ids = append(ids, id(tokFake), id(fmt.Sprintf("<row_%d_col_%d>", r, c)))
			imageRun()
		}
		ids = append(ids, plain(2))
	}
	ids = append(ids, plain(3), id(tokFake), id(tokGlobal))
	imageRun()
	ids = append(ids, id(tokFake))
	for i := 4; i < 10; i++ {
		ids = append(ids, plain(i))
	}
	return append(ids, id(tokEndOfUtter), plain(10), plain(11), plain(1))
}
