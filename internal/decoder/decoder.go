// Package decoder runs the language model graph (decoder_model_merged*.onnx)
// with its key/value cache: a prefill over the prompt's embeddings, then one
// token at a time.
//
// The cache never passes through Go code: every generation owns two buffers
// per cache tensor, sized once for the whole generation, and ONNX Runtime
// writes each step's present.* into one while reading past_key_values.* from
// the other (the previous step's present). Per step only tensor headers are
// created; nothing is allocated or copied that grows with the sequence.
//
// A graph whose attention appends the new rows to the past in place when
// past and present are the same memory (GroupQueryAttention, see
// Config.SharedCache) gets one buffer per cache tensor instead: each step
// writes only its own rows, and the cache takes half the memory.
package decoder

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/snapvlm/snapvlm/internal/float16"
	"github.com/snapvlm/snapvlm/internal/ort"
)

// Graph I/O names of the SmolVLM decoder export.
const (
	InputEmbeds    = "inputs_embeds"
	InputMask      = "attention_mask"
	InputPositions = "position_ids"
	InputUseCache  = "use_cache_branch"
	InputKeep      = "num_logits_to_keep"
	OutputLogits   = "logits"
	pastPrefix     = "past_key_values."
	presentPrefix  = "present."
)

// Config is what the graph must agree with, from config.json.
type Config struct {
	Layers  int
	KVHeads int
	HeadDim int
	Hidden  int
	Vocab   int // 0: taken from the graph when it is fixed there
	// SharedCache says the graph's attention (com.microsoft
	// GroupQueryAttention or snapvlm's kernel, reading the past only there)
	// appends to the past in place when past_key_values.* and present.* are
	// one buffer of the cache's full capacity, the lengths coming from
	// attention_mask. A float16 cache attended in float32 through Casts
	// (com.microsoft's kernel on a float16-cache export) does not: the
	// caller says which.
	SharedCache bool
	// PrefillTogether says the graph's attention takes several sequences
	// of several new tokens after a past in one run (snapvlm's kernel;
	// com.microsoft's GroupQueryAttention refuses it): Batch.Prefill then
	// runs neighbouring slots together, else one by one.
	PrefillTogether bool
}

// Decoder is a loaded decoder graph. It is safe for concurrent use; each
// generation has its own State.
type Decoder struct {
	s   *ort.Session
	cfg Config

	embIdx, maskIdx, posIdx, useCacheIdx, keepIdx int
	pastIdx                                       []int // 2*layer (+1 for value) -> input index
	logitsIdx                                     int
	presentIdx                                    []int // 2*layer (+1 for value) -> output index

	embType, kvType, logitsType ort.DType
	shared                      bool // one buffer per cache tensor (Config.SharedCache)
}

// New loads the graph at path and checks its inputs and outputs against cfg.
func New(env *ort.Env, path string, so ort.SessionOptions, cfg Config) (*Decoder, error) {
	s, err := env.NewSession(path, so)
	if err != nil {
		return nil, err
	}
	d, err := check(s, cfg)
	if err != nil {
		s.Close()
		return nil, err
	}
	return d, nil
}

// kvName parses "past_key_values.3.key" / "present.3.value" into 2*3 (+1).
func kvName(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	num, kind, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, false
	}
	layer, err := strconv.Atoi(num)
	if err != nil || layer < 0 {
		return 0, false
	}
	switch kind {
	case "key":
		return 2 * layer, true
	case "value":
		return 2*layer + 1, true
	}
	return 0, false
}

// check maps the session's inputs and outputs to their roles and checks
// them against the config.
func check(s *ort.Session, cfg Config) (*Decoder, error) {
	d := &Decoder{s: s, cfg: cfg, embIdx: -1, maskIdx: -1, posIdx: -1, useCacheIdx: -1, keepIdx: -1, logitsIdx: -1}
	d.pastIdx = make([]int, 2*cfg.Layers)
	d.presentIdx = make([]int, 2*cfg.Layers)
	for i := range d.pastIdx {
		d.pastIdx[i], d.presentIdx[i] = -1, -1
	}
	for i, in := range s.Inputs() {
		if err := d.input(i, in); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Path(), err)
		}
	}
	for i, out := range s.Outputs() {
		if err := d.output(i, out); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Path(), err)
		}
	}
	if err := d.complete(); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Path(), err)
	}
	return d, nil
}

// input records graph input i.
func (d *Decoder) input(i int, in ort.IOInfo) error {
	switch in.Name {
	case InputEmbeds:
		d.embIdx, d.embType = i, in.DType
		if len(in.Shape) != 3 || (in.Shape[2] > 0 && int(in.Shape[2]) != d.cfg.Hidden) {
			return fmt.Errorf("input %s has shape %v, want [batch, sequence, %d] (config.json text_config.hidden_size)", in.Name, in.Shape, d.cfg.Hidden)
		}
		return floatType("input", in)
	case InputMask:
		d.maskIdx = i
	case InputPositions:
		d.posIdx = i
	case InputUseCache:
		d.useCacheIdx = i
	case InputKeep:
		d.keepIdx = i
	default:
		return d.cacheTensor(i, in, "input", pastPrefix, d.pastIdx)
	}
	return nil
}

// output records graph output i.
func (d *Decoder) output(i int, out ort.IOInfo) error {
	if out.Name != OutputLogits {
		return d.cacheTensor(i, out, "output", presentPrefix, d.presentIdx)
	}
	d.logitsIdx, d.logitsType = i, out.DType
	if len(out.Shape) != 3 {
		return fmt.Errorf("output logits has rank %d, want [batch, sequence, vocab]", len(out.Shape))
	}
	if v := out.Shape[2]; v > 0 {
		if d.cfg.Vocab > 0 && int(v) != d.cfg.Vocab {
			return fmt.Errorf("output logits has width %d but config.json text_config.vocab_size is %d", v, d.cfg.Vocab)
		}
		d.cfg.Vocab = int(v)
	}
	return floatType("output", out)
}

// floatType accepts float32 and float16 tensors.
func floatType(what string, io ort.IOInfo) error {
	if io.DType != ort.Float32 && io.DType != ort.Float16 {
		return fmt.Errorf("%s %s is %s, want float32 or float16", what, io.Name, io.DType)
	}
	return nil
}

// cacheTensor records a past_key_values.* input or present.* output at its
// layer's slot of idx and checks its shape and type: [batch, kv_heads,
// sequence, head_dim], the same float type as every other cache tensor.
func (d *Decoder) cacheTensor(i int, io ort.IOInfo, what, prefix string, idx []int) error {
	k, ok := kvName(io.Name, prefix)
	switch {
	case !ok:
		return fmt.Errorf("unexpected %s %q", what, io.Name)
	case k >= len(idx):
		return fmt.Errorf("%s %s is beyond config.json text_config.num_hidden_layers %d", what, io.Name, d.cfg.Layers)
	case len(io.Shape) != 4:
		return fmt.Errorf("%s %s has rank %d, want [batch, kv_heads, sequence, head_dim]", what, io.Name, len(io.Shape))
	case io.Shape[1] > 0 && int(io.Shape[1]) != d.cfg.KVHeads:
		return fmt.Errorf("%s %s has %d heads but config.json text_config.num_key_value_heads is %d", what, io.Name, io.Shape[1], d.cfg.KVHeads)
	case io.Shape[3] > 0 && int(io.Shape[3]) != d.cfg.HeadDim:
		return fmt.Errorf("%s %s has head size %d but config.json text_config.head_dim is %d", what, io.Name, io.Shape[3], d.cfg.HeadDim)
	}
	if err := floatType(what, io); err != nil {
		return err
	}
	if d.kvType == ort.Unknown {
		d.kvType = io.DType
	} else if d.kvType != io.DType {
		return fmt.Errorf("%s %s is %s but other cache tensors are %s", what, io.Name, io.DType, d.kvType)
	}
	idx[k] = i
	return nil
}

// complete checks that every required input and output was found.
func (d *Decoder) complete() error {
	if d.embIdx < 0 || d.maskIdx < 0 || d.logitsIdx < 0 {
		return fmt.Errorf("want inputs %s, %s and output %s", InputEmbeds, InputMask, OutputLogits)
	}
	d.shared = d.cfg.SharedCache
	if d.cfg.Vocab <= 0 {
		return errors.New("the vocabulary size is neither in the graph nor in config.json text_config.vocab_size")
	}
	for k := range d.pastIdx {
		kind := [2]string{"key", "value"}[k%2]
		if d.pastIdx[k] < 0 {
			return fmt.Errorf("no input %s%d.%s, but config.json text_config.num_hidden_layers is %d", pastPrefix, k/2, kind, d.cfg.Layers)
		}
		if d.presentIdx[k] < 0 {
			return fmt.Errorf("no output %s%d.%s, but config.json text_config.num_hidden_layers is %d", presentPrefix, k/2, kind, d.cfg.Layers)
		}
	}
	return nil
}

// LastLogitsOnly reports whether the graph computes logits for the last
// position of a run only (it has the num_logits_to_keep input), so a
// prefill's lm_head costs one row, not one per token.
func (d *Decoder) LastLogitsOnly() bool { return d.keepIdx >= 0 }

// Vocab is the logits width.
func (d *Decoder) Vocab() int { return d.cfg.Vocab }

// KVType is the element type of the cache.
func (d *Decoder) KVType() ort.DType { return d.kvType }

// Close releases the session.
func (d *Decoder) Close() error { return d.s.Close() }

// Path is the file the decoder's session was created from (a rewrite's
// cached copy when the session options rewrote the graph).
func (d *Decoder) Path() string { return d.s.Path() }

// State is one generation's cache and reusable tensors. Not safe for
// concurrent use.
type State struct {
	d     *Decoder
	cap   int // tokens the cache can hold
	chunk int // prefill tokens per run
	n     int // tokens in the cache

	bufs [2][]*ort.Buffer // ping-pong cache buffers per cache tensor (one side when shared)
	cur  int              // side of bufs that past points into
	past []*ort.Tensor    // current past_key_values.* tensors
	// present are the present.* tensors of a shared cache: the same
	// memory as past, both of the full capacity.
	present []*ort.Tensor

	mask, pos []int64
	embHalf   []uint16 // float16 copy of embeddings when the graph wants it
	logits    *ort.Buffer
	row       []float32 // float32 copy of the last logits row when float16
	useCache  []bool
	keep      []int64
	in, out   []*ort.Tensor
}

// NewState allocates a cache for capacity tokens; prefills run at most chunk
// tokens at a time, which bounds the logits buffer to chunk × vocab.
func (d *Decoder) NewState(capacity, chunk int) (*State, error) {
	if capacity <= 0 {
		return nil, fmt.Errorf("decoder cache capacity must be positive, got %d", capacity)
	}
	if chunk <= 0 || chunk > capacity {
		chunk = capacity
	}
	st := &State{d: d, cap: capacity, chunk: chunk,
		mask: make([]int64, capacity), pos: make([]int64, capacity),
		useCache: []bool{false}, keep: []int64{1},
		in:  make([]*ort.Tensor, len(d.s.Inputs())),
		out: make([]*ort.Tensor, len(d.s.Outputs())),
	}
	for i := range st.mask {
		st.mask[i], st.pos[i] = 1, int64(i)
	}
	per := d.cfg.KVHeads * capacity * d.cfg.HeadDim
	sides := 2
	if d.shared {
		sides = 1
	}
	for side := range sides {
		st.bufs[side] = make([]*ort.Buffer, 2*d.cfg.Layers)
		for k := range st.bufs[side] {
			b, err := ort.NewBuffer(d.kvType, per)
			if err != nil {
				return nil, err
			}
			st.bufs[side][k] = b
		}
	}
	rows := chunk
	if d.keepIdx >= 0 {
		rows = 1
	}
	var err error
	if st.logits, err = ort.NewBuffer(d.logitsType, rows*d.cfg.Vocab); err != nil {
		return nil, err
	}
	if d.logitsType == ort.Float16 {
		st.row = make([]float32, d.cfg.Vocab)
	}
	if d.embType == ort.Float16 {
		st.embHalf = make([]uint16, chunk*d.cfg.Hidden)
	}
	if err := st.Reset(); err != nil {
		return nil, err
	}
	return st, nil
}

// Len is the number of tokens in the cache.
func (st *State) Len() int { return st.n }

// Cap is the number of tokens the cache can hold.
func (st *State) Cap() int { return st.cap }

// Reset empties the cache (zero-length past tensors, as the first step of
// every generation needs: the graph reads all of them even then).
func (st *State) Reset() error {
	st.closePast()
	st.n, st.cur = 0, 0
	st.past = make([]*ort.Tensor, len(st.bufs[0]))
	if st.d.shared {
		// Both cover the whole buffer; the lengths are attention_mask's.
		st.present = make([]*ort.Tensor, len(st.bufs[0]))
		if err := st.makeTensors(st.bufs[0], st.cap, st.present); err != nil {
			return err
		}
		return st.makeTensors(st.bufs[0], st.cap, st.past)
	}
	return st.makeTensors(st.bufs[0], 0, st.past)
}

func (st *State) kvShape(n int) []int64 {
	return []int64{1, int64(st.d.cfg.KVHeads), int64(n), int64(st.d.cfg.HeadDim)}
}

func (st *State) makeTensors(bufs []*ort.Buffer, n int, dst []*ort.Tensor) error {
	for k, b := range bufs {
		t, err := b.Tensor(st.kvShape(n))
		if err != nil {
			return err
		}
		dst[k] = t
	}
	return nil
}

func (st *State) closePast() {
	for _, t := range st.past {
		t.Close()
	}
	for _, t := range st.present {
		t.Close()
	}
	st.past, st.present = nil, nil
}

// Close releases the tensors (the Go buffers go with the State).
func (st *State) Close() { st.closePast() }

// Prefill runs the embeddings of n tokens (float32, [n, hidden]) after what
// the cache holds and returns the logits of the last one. The returned slice
// is valid until the next call.
func (st *State) Prefill(ctx context.Context, embeds []float32) ([]float32, error) {
	h := st.d.cfg.Hidden
	if len(embeds) == 0 || len(embeds)%h != 0 {
		return nil, fmt.Errorf("decoder: %d embedding values are not whole rows of width %d", len(embeds), h)
	}
	n := len(embeds) / h
	if st.n+n > st.cap {
		return nil, fmt.Errorf("decoder: %d tokens after %d exceed the cache of %d", n, st.n, st.cap)
	}
	var last []float32
	for off := 0; off < n; off += st.chunk {
		c := min(st.chunk, n-off)
		var err error
		if last, err = st.run(ctx, embeds[off*h:(off+c)*h], c); err != nil {
			return nil, err
		}
	}
	return last, nil
}

// Step runs one token's embedding (float32, [hidden]).
func (st *State) Step(ctx context.Context, embed []float32) ([]float32, error) {
	if len(embed) != st.d.cfg.Hidden {
		return nil, fmt.Errorf("decoder: embedding of width %d, want %d", len(embed), st.d.cfg.Hidden)
	}
	if st.n+1 > st.cap {
		return nil, fmt.Errorf("decoder: the cache of %d tokens is full", st.cap)
	}
	return st.run(ctx, embed, 1)
}

// run feeds c new tokens and advances the cache by c.
func (st *State) run(ctx context.Context, embeds []float32, c int) ([]float32, error) {
	d := st.d
	total := st.n + c
	var made runTensors
	defer made.close()
	var err error
	embShape := []int64{1, int64(c), int64(d.cfg.Hidden)}
	if d.embType == ort.Float16 {
		half := st.embHalf[:len(embeds)]
		float16.FromFloat32s(half, embeds)
		st.in[d.embIdx], err = made.keep(ort.NewFloat16(embShape, half))
	} else {
		st.in[d.embIdx], err = made.keep(ort.NewFloat32(embShape, embeds))
	}
	if err != nil {
		return nil, err
	}
	if st.in[d.maskIdx], err = made.keep(ort.NewInt64([]int64{1, int64(total)}, st.mask)); err != nil {
		return nil, err
	}
	if d.posIdx >= 0 {
		if st.in[d.posIdx], err = made.keep(ort.NewInt64([]int64{1, int64(c)}, st.pos[st.n:])); err != nil {
			return nil, err
		}
	}
	if d.useCacheIdx >= 0 {
		st.useCache[0] = st.n > 0
		if st.in[d.useCacheIdx], err = made.keep(ort.NewBool([]int64{1}, st.useCache)); err != nil {
			return nil, err
		}
	}
	rows := c
	if d.keepIdx >= 0 {
		rows = 1
		if st.in[d.keepIdx], err = made.keep(ort.NewInt64([]int64{}, st.keep)); err != nil {
			return nil, err
		}
	}
	for k, t := range st.past {
		st.in[d.pastIdx[k]] = t
	}
	if st.out[d.logitsIdx], err = made.keep(st.logits.Tensor([]int64{1, int64(rows), int64(d.cfg.Vocab)})); err != nil {
		return nil, err
	}
	if d.shared {
		for k, t := range st.past {
			st.in[d.pastIdx[k]] = t
			st.out[d.presentIdx[k]] = st.present[k]
		}
		if err := d.s.Run(ctx, st.in, st.out); err != nil {
			return nil, fmt.Errorf("decoder at %d+%d tokens: %w", st.n, c, err)
		}
		st.n = total
		return st.lastRow(rows), nil
	}
	next := st.bufs[1-st.cur]
	present := make([]*ort.Tensor, len(next))
	if err := st.makeTensors(next, total, present); err != nil {
		for _, t := range present {
			t.Close()
		}
		return nil, err
	}
	for k, t := range present {
		st.out[d.presentIdx[k]] = t
	}
	if err := d.s.Run(ctx, st.in, st.out); err != nil {
		for _, t := range present {
			t.Close()
		}
		return nil, fmt.Errorf("decoder at %d+%d tokens: %w", st.n, c, err)
	}
	// present becomes the next past: same tensors, no copy.
	st.closePast()
	st.past, st.cur, st.n = present, 1-st.cur, total
	return st.lastRow(rows), nil
}

// lastRow is the float32 logits of the last of rows positions.
func (st *State) lastRow(rows int) []float32 {
	v := st.d.cfg.Vocab
	off := (rows - 1) * v
	if st.row != nil {
		float16.ToFloat32s(st.row, st.logits.F16[off:off+v])
		return st.row
	}
	return st.logits.F32[off : off+v]
}

// Truncate keeps the first n tokens of the cache and drops the rest, so a
// conversation can reuse the cache of its earlier turns. The kept rows are
// moved to the layout of an n-token cache once (a per-turn cost, not a
// per-step one).
func (st *State) Truncate(n int) error {
	if n < 0 || n > st.n {
		return fmt.Errorf("decoder: cannot keep %d of %d cached tokens", n, st.n)
	}
	if n == st.n {
		return nil
	}
	if st.d.shared {
		// Rows stay where they are; the next run overwrites those after n.
		st.n = n
		return nil
	}
	heads, hd, old := st.d.cfg.KVHeads, st.d.cfg.HeadDim, st.n
	for _, b := range st.bufs[st.cur] {
		// Head h moves from offset h*old*hd to h*n*hd; destinations never
		// pass their sources, so copying in head order is safe.
		for h := 1; h < heads; h++ {
			if b.DType == ort.Float16 {
				copy(b.F16[h*n*hd:(h*n+n)*hd], b.F16[h*old*hd:(h*old+n)*hd])
			} else {
				copy(b.F32[h*n*hd:(h*n+n)*hd], b.F32[h*old*hd:(h*old+n)*hd])
			}
		}
	}
	st.closePast()
	st.past = make([]*ort.Tensor, len(st.bufs[st.cur]))
	st.n = n
	return st.makeTensors(st.bufs[st.cur], n, st.past)
}

// Grow makes room for capacity tokens, keeping the cached ones (an n-token
// cache occupies the start of each buffer whatever the capacity, so the
// rows are copied as they are).
func (st *State) Grow(capacity int) error {
	if capacity <= st.cap {
		return nil
	}
	per := st.d.cfg.KVHeads * capacity * st.d.cfg.HeadDim
	used := st.d.cfg.KVHeads * st.n * st.d.cfg.HeadDim
	var bufs [2][]*ort.Buffer
	sides := 2
	if st.d.shared {
		sides = 1
	}
	for side := range sides {
		bufs[side] = make([]*ort.Buffer, len(st.bufs[0]))
		for k := range bufs[side] {
			b, err := ort.NewBuffer(st.d.kvType, per)
			if err != nil {
				return err
			}
			bufs[side][k] = b
		}
	}
	for k, old := range st.bufs[st.cur] {
		if st.d.shared {
			// Head h's rows start at h*capacity: move them to the new stride.
			hd := st.cap * st.d.cfg.HeadDim
			nd := capacity * st.d.cfg.HeadDim
			rowsLen := st.n * st.d.cfg.HeadDim
			for h := range st.d.cfg.KVHeads {
				bufs[0][k].Copy(h*nd, old, h*hd, rowsLen)
			}
			continue
		}
		if old.DType == ort.Float16 {
			copy(bufs[0][k].F16, old.F16[:used])
		} else {
			copy(bufs[0][k].F32, old.F32[:used])
		}
	}
	mask, pos := make([]int64, capacity), make([]int64, capacity)
	for i := range mask {
		mask[i], pos[i] = 1, int64(i)
	}
	st.closePast()
	st.bufs, st.cur, st.cap, st.mask, st.pos = bufs, 0, capacity, mask, pos
	st.past = make([]*ort.Tensor, len(bufs[0]))
	if st.d.shared {
		st.present = make([]*ort.Tensor, len(bufs[0]))
		if err := st.makeTensors(bufs[0], capacity, st.present); err != nil {
			return err
		}
		return st.makeTensors(bufs[0], capacity, st.past)
	}
	return st.makeTensors(bufs[0], st.n, st.past)
}

// Snapshot is a copy of the first positions of a State's cache, laid out
// compactly (no room for more tokens, no logits or tensors): a prompt kept
// for later requests that start the same way. It is immutable, so any
// number of States may be started from one at the same time.
type Snapshot struct {
	d     *Decoder
	n     int
	dtype ort.DType
	f32   [][]float32 // per cache tensor, [KVHeads, n, HeadDim], for a float32 cache
	f16   [][]uint16  // the same for a float16 cache
}

// Snapshot copies the first n cached tokens.
func (st *State) Snapshot(n int) (*Snapshot, error) {
	if n < 0 || n > st.n {
		return nil, fmt.Errorf("decoder: cannot snapshot %d of %d cached tokens", n, st.n)
	}
	heads, hd := st.d.cfg.KVHeads, st.d.cfg.HeadDim
	// An unshared cache holds n tokens at stride st.n; a shared one at
	// stride st.cap.
	stride := st.n
	if st.d.shared {
		stride = st.cap
	}
	s := &Snapshot{d: st.d, n: n, dtype: st.d.kvType}
	for _, b := range st.bufs[st.cur] {
		if b.DType == ort.Float16 {
			dst := make([]uint16, heads*n*hd)
			for h := range heads {
				copy(dst[h*n*hd:(h+1)*n*hd], b.F16[h*stride*hd:(h*stride+n)*hd])
			}
			s.f16 = append(s.f16, dst)
			continue
		}
		dst := make([]float32, heads*n*hd)
		for h := range heads {
			copy(dst[h*n*hd:(h+1)*n*hd], b.F32[h*stride*hd:(h*stride+n)*hd])
		}
		s.f32 = append(s.f32, dst)
	}
	return s, nil
}

// Len is the number of tokens the snapshot holds.
func (s *Snapshot) Len() int { return s.n }

// Bytes is the memory the snapshot's cache rows take.
func (s *Snapshot) Bytes() int64 {
	var b int64
	for _, v := range s.f32 {
		b += 4 * int64(len(v))
	}
	for _, v := range s.f16 {
		b += 2 * int64(len(v))
	}
	return b
}

// Restore starts a State of the given capacity holding the first n tokens
// of s (see NewState for capacity and chunk). s must come from a State of
// this Decoder.
func (d *Decoder) Restore(s *Snapshot, n, capacity, chunk int) (*State, error) {
	if s.d != d {
		return nil, errors.New("decoder: the snapshot is of another decoder")
	}
	if n < 0 || n > s.n || n > capacity {
		return nil, fmt.Errorf("decoder: cannot restore %d tokens of a %d-token snapshot into a cache of %d", n, s.n, capacity)
	}
	st, err := d.NewState(capacity, chunk)
	if err != nil {
		return nil, err
	}
	heads, hd := d.cfg.KVHeads, d.cfg.HeadDim
	stride := n // an unshared n-token cache is laid out for n tokens
	if d.shared {
		stride = capacity
	}
	for k, b := range st.bufs[0] {
		for h := range heads {
			src, dst := h*s.n*hd, h*stride*hd
			if b.DType == ort.Float16 {
				copy(b.F16[dst:dst+n*hd], s.f16[k][src:src+n*hd])
			} else {
				copy(b.F32[dst:dst+n*hd], s.f32[k][src:src+n*hd])
			}
		}
	}
	st.n = n
	if !d.shared {
		st.closePast()
		st.past = make([]*ort.Tensor, len(st.bufs[0]))
		if err := st.makeTensors(st.bufs[0], n, st.past); err != nil {
			st.Close()
			return nil, err
		}
	}
	return st, nil
}

// runTensors are the tensor headers made for one run (over buffers that
// outlive it), closed together when the run ends.
type runTensors []*ort.Tensor

// keep notes t for close when it was made.
func (ts *runTensors) keep(t *ort.Tensor, err error) (*ort.Tensor, error) {
	if err == nil {
		*ts = append(*ts, t)
	}
	return t, err
}

func (ts *runTensors) close() {
	for _, t := range *ts {
		t.Close()
	}
}
