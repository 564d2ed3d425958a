package decoder

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/snapvlm/snapvlm/internal/float16"
	"github.com/snapvlm/snapvlm/internal/ort"
)

// Batch is the key/value cache of several sequences decoded together: one
// decoder run per step for all of them, so the weights are read once per
// step for every row instead of once per sequence. Each row has its own
// length and position; GroupQueryAttention reads a row's length from its
// attention_mask row (ones, then padding), so rows of different lengths
// need no other masking.
//
// A sequence joins the batch (the rows its State holds, if any, are copied
// into a free slot, once), is prefilled in its slot, alone or together with
// other joining sequences (Prefill), steps with the others and leaves (its
// rows copied back into a State when they are to be kept). Per step only
// tensor headers are created.
//
// A Batch needs the shared-cache attention (Config.SharedCache). Not safe
// for concurrent use.
type Batch struct {
	d     *Decoder
	slots int
	cap   int // tokens a slot can hold; each slot has one more row, see Step

	bufs []*ort.Buffer // per cache tensor: [slots, kv_heads, cap+1, head_dim]
	n    []int         // tokens cached per slot
	used []bool

	mask, pos []int64
	embeds    []float32
	embHalf   []uint16
	pre       []float32 // a prefill's embeddings, rows × tokens × hidden
	prePos    []int64
	allLogits *ort.Buffer // a prefill's logits of every position, when the graph computes them
	logits    *ort.Buffer
	rows      [][]float32 // float32 logits rows when the graph's are float16
	useCache  []bool
	keep      []int64
	kv        map[int][2][]*ort.Tensor // first*(slots+1)+rows -> past, present tensors over bufs
	minRows   int                      // fewer sequences step one at a time (SetMinRows)
	in, out   []*ort.Tensor
	result    [][]float32
}

// Batchable reports whether the decoder can run a Batch (its attention
// rewritten with a shared cache).
func (d *Decoder) Batchable() bool { return d.shared }

// ErrBatchFull is returned by Join when every slot is taken.
var ErrBatchFull = errors.New("decoder: every batch slot is taken")

// NewBatch allocates a batch of slots sequences of up to capacity tokens
// each.
func (d *Decoder) NewBatch(slots, capacity int) (*Batch, error) {
	if !d.shared {
		return nil, errors.New("decoder: batched decoding needs the GroupQueryAttention graph with a shared past/present cache")
	}
	if slots <= 0 || capacity <= 0 {
		return nil, fmt.Errorf("decoder: batch of %d slots of %d tokens, want both positive", slots, capacity)
	}
	b := &Batch{d: d, slots: slots,
		n: make([]int, slots), used: make([]bool, slots),
		pos: make([]int64, slots), embeds: make([]float32, slots*d.cfg.Hidden),
		useCache: []bool{true}, keep: []int64{1},
		in:  make([]*ort.Tensor, len(d.s.Inputs())),
		out: make([]*ort.Tensor, len(d.s.Outputs())),
	}
	var err error
	if b.logits, err = ort.NewBuffer(d.logitsType, slots*d.cfg.Vocab); err != nil {
		return nil, err
	}
	if d.logitsType == ort.Float16 {
		b.rows = make([][]float32, slots)
		for i := range b.rows {
			b.rows[i] = make([]float32, d.cfg.Vocab)
		}
	}
	if d.embType == ort.Float16 {
		b.embHalf = make([]uint16, len(b.embeds))
	}
	if err := b.alloc(capacity); err != nil {
		return nil, err
	}
	return b, nil
}

// alloc gives the batch new buffers of capacity tokens per slot, keeping
// every slot's cached rows.
func (b *Batch) alloc(capacity int) error {
	cfg := b.d.cfg
	stride := capacity + 1
	bufs := make([]*ort.Buffer, 2*cfg.Layers)
	for k := range bufs {
		buf, err := ort.NewBuffer(b.d.kvType, b.slots*cfg.KVHeads*stride*cfg.HeadDim)
		if err != nil {
			return err
		}
		if b.bufs != nil {
			for s := range b.slots {
				copyRows(buf, s, stride, b.bufs[k], s, b.cap+1, b.n[s], cfg.KVHeads, cfg.HeadDim)
			}
		}
		bufs[k] = buf
	}
	b.closeKV()
	b.bufs, b.cap = bufs, capacity
	b.mask = make([]int64, b.slots*stride)
	return nil
}

// copyRows copies the first n rows of every head of slot ss in src (rows
// per head sstride) to slot ds of dst (dstride).
func copyRows(dst *ort.Buffer, ds, dstride int, src *ort.Buffer, ss, sstride, n, heads, hd int) {
	for h := range heads {
		d := ((ds*heads + h) * dstride) * hd
		s := ((ss*heads + h) * sstride) * hd
		dst.Copy(d, src, s, n*hd)
	}
}

func (b *Batch) closeKV() {
	for _, pp := range b.kv {
		for _, ts := range pp {
			for _, t := range ts {
				t.Close()
			}
		}
	}
	b.kv = map[int][2][]*ort.Tensor{}
}

// Close releases the tensors.
func (b *Batch) Close() { b.closeKV() }

// Slots is the number of sequences the batch holds at most.
func (b *Batch) Slots() int { return b.slots }

// Cap is the number of tokens a slot can hold.
func (b *Batch) Cap() int { return b.cap }

// Len is the number of tokens cached in slot.
func (b *Batch) Len(slot int) int { return b.n[slot] }

// Grow makes room for capacity tokens per slot, keeping the cached rows
// (a copy of every slot's rows: a per-join cost, not a per-step one).
func (b *Batch) Grow(capacity int) error {
	if capacity <= b.cap {
		return nil
	}
	return b.alloc(capacity)
}

// Join copies the cache of st (a State of the same decoder) into a free
// slot and returns the slot. st is left as it is.
func (b *Batch) Join(st *State) (int, error) {
	if st.d != b.d {
		return 0, errors.New("decoder: the state belongs to another decoder")
	}
	if st.n >= b.cap {
		return 0, fmt.Errorf("decoder: a sequence of %d tokens cannot join a batch of %d-token slots (no room for a step)", st.n, b.cap)
	}
	slot := -1
	for s, u := range b.used {
		if !u {
			slot = s
			break
		}
	}
	if slot < 0 {
		return 0, ErrBatchFull
	}
	cfg := b.d.cfg
	for k, buf := range b.bufs {
		copyRows(buf, slot, b.cap+1, st.bufs[0][k], 0, st.cap, st.n, cfg.KVHeads, cfg.HeadDim)
	}
	b.used[slot], b.n[slot] = true, st.n
	return slot, nil
}

// Leave frees slot. With st not nil the slot's cache is copied back into
// st, which must have room for it.
func (b *Batch) Leave(slot int, st *State) error {
	if slot < 0 || slot >= b.slots || !b.used[slot] {
		return fmt.Errorf("decoder: batch slot %d is not in use", slot)
	}
	n := b.n[slot]
	b.used[slot], b.n[slot] = false, 0
	if st == nil {
		return nil
	}
	if st.d != b.d {
		return errors.New("decoder: the state belongs to another decoder")
	}
	if err := st.Grow(n); err != nil {
		return err
	}
	cfg := b.d.cfg
	for k, buf := range b.bufs {
		copyRows(st.bufs[0][k], 0, st.cap, buf, slot, b.cap+1, n, cfg.KVHeads, cfg.HeadDim)
	}
	st.n = n
	return nil
}

// kvTensors returns the past and present tensors of rows slots from first.
func (b *Batch) kvTensors(first, rows int) ([2][]*ort.Tensor, error) {
	key := first*(b.slots+1) + rows
	if t, ok := b.kv[key]; ok {
		return t, nil
	}
	cfg := b.d.cfg
	shape := []int64{int64(rows), int64(cfg.KVHeads), int64(b.cap + 1), int64(cfg.HeadDim)}
	off := first * cfg.KVHeads * (b.cap + 1) * cfg.HeadDim
	var t [2][]*ort.Tensor
	for side := range t {
		t[side] = make([]*ort.Tensor, len(b.bufs))
		for k, buf := range b.bufs {
			x, err := buf.TensorAt(shape, off)
			if err != nil {
				for _, ts := range t {
					for _, x := range ts {
						x.Close()
					}
				}
				return t, err
			}
			t[side][k] = x
		}
	}
	b.kv[key] = t
	return t, nil
}

// SetMinRows makes steps of fewer than n sequences run them one at a time
// (one row each, on the slot's own rows) instead of together: for a graph
// whose matmuls cost much more for several rows than for one (ONNX
// Runtime's exact 4-bit MatMulNBits dequantizes its weights for more than
// one row), a small batch is slower than its rows one by one. 0 or 1: every
// step runs its sequences together.
func (b *Batch) SetMinRows(n int) { b.minRows = n }

// Step runs one token for each of slots, embeds[i] (float32, [hidden])
// being slots[i]'s, and returns each one's logits, valid until the next
// Step. The slots run together (see SetMinRows); then slots below the
// highest one that do not step run as padding rows: they write a row after
// their cache (each slot has a spare row for it) and their logits are not
// returned.
func (b *Batch) Step(ctx context.Context, slots []int, embeds [][]float32) ([][]float32, error) {
	h := b.d.cfg.Hidden
	if len(slots) == 0 || len(slots) != len(embeds) {
		return nil, fmt.Errorf("decoder: batch step of %d slots with %d embeddings", len(slots), len(embeds))
	}
	rows := 0
	clear(b.embeds)
	for i, s := range slots {
		switch {
		case s < 0 || s >= b.slots || !b.used[s]:
			return nil, fmt.Errorf("decoder: batch slot %d is not in use", s)
		case len(embeds[i]) != h:
			return nil, fmt.Errorf("decoder: embedding of width %d, want %d", len(embeds[i]), h)
		case b.n[s]+1 > b.cap:
			return nil, fmt.Errorf("decoder: the cache of batch slot %d (%d tokens) is full", s, b.cap)
		}
		rows = max(rows, s+1)
		copy(b.embeds[s*h:(s+1)*h], embeds[i])
	}
	if len(slots) < b.minRows {
		for _, s := range slots {
			b.pos[s] = int64(b.n[s])
			if err := b.run(ctx, s, 1, 1, b.embeds[s*h:(s+1)*h], b.pos[s:s+1]); err != nil {
				return nil, err
			}
		}
	} else {
		for r := range rows {
			b.pos[r] = int64(b.n[r])
		}
		if err := b.run(ctx, 0, rows, 1, b.embeds[:rows*h], b.pos[:rows]); err != nil {
			return nil, err
		}
	}
	return b.results(slots, 1), nil
}

// results advances slots by c tokens and returns their logits rows.
func (b *Batch) results(slots []int, c int) [][]float32 {
	v := b.d.cfg.Vocab
	b.result = b.result[:0]
	for _, s := range slots {
		b.n[s] += c
		if b.rows != nil {
			float16.ToFloat32s(b.rows[s], b.logits.F16[s*v:(s+1)*v])
			b.result = append(b.result, b.rows[s])
		} else {
			b.result = append(b.result, b.logits.F32[s*v:(s+1)*v])
		}
	}
	return b.result
}

// Prefill runs c tokens for each of slots (embeds[i], float32, c rows of
// width hidden, the same c for every slot) and returns each one's logits
// of its last token, valid until the next Step or Prefill. Slots next to
// each other run together (Config.PrefillTogether; else one by one). A
// slot's cache and logits are those a State prefilled with the same tokens
// would have: every row is computed on its own, however the tokens are
// split into runs.
func (b *Batch) Prefill(ctx context.Context, slots []int, embeds [][]float32) ([][]float32, error) {
	h := b.d.cfg.Hidden
	if len(slots) == 0 || len(slots) != len(embeds) || len(embeds[0]) == 0 || len(embeds[0])%h != 0 {
		return nil, fmt.Errorf("decoder: batch prefill of %d slots with %d embeddings", len(slots), len(embeds))
	}
	c := len(embeds[0]) / h
	for i, s := range slots {
		switch {
		case s < 0 || s >= b.slots || !b.used[s]:
			return nil, fmt.Errorf("decoder: batch slot %d is not in use", s)
		case i > 0 && s <= slots[i-1]:
			return nil, fmt.Errorf("decoder: batch prefill slots %v are not in ascending order", slots)
		case len(embeds[i]) != c*h:
			return nil, fmt.Errorf("decoder: batch prefill of %d values for slot %d, want %d tokens of width %d", len(embeds[i]), s, c, h)
		case b.n[s]+c > b.cap:
			return nil, fmt.Errorf("decoder: %d tokens after %d exceed batch slot %d's cache of %d", c, b.n[s], s, b.cap)
		}
	}
	for i := 0; i < len(slots); {
		j := i + 1
		for b.d.cfg.PrefillTogether && j < len(slots) && slots[j] == slots[j-1]+1 {
			j++
		}
		rows := j - i
		// One slot's embeddings are passed as they are; several are
		// gathered into one run's rows.
		emb := embeds[i]
		if rows > 1 {
			b.pre = slices.Grow(b.pre[:0], rows*c*h)[:rows*c*h]
			for r := range rows {
				copy(b.pre[r*c*h:], embeds[i+r])
			}
			emb = b.pre
		}
		b.prePos = slices.Grow(b.prePos[:0], rows*c)[:rows*c]
		for r := range rows {
			for t := range c {
				b.prePos[r*c+t] = int64(b.n[slots[i+r]] + t)
			}
		}
		if err := b.run(ctx, slots[i], rows, c, emb, b.prePos); err != nil {
			return nil, err
		}
		i = j
	}
	return b.results(slots, c), nil
}

// run runs the decoder on c tokens of rows slots from first (embeddings
// emb, rows × c × hidden; positions pos, rows × c; logits of the last
// token to b.logits at the slots' offsets).
func (b *Batch) run(ctx context.Context, first, rows, c int, emb []float32, pos []int64) error {
	d := b.d
	h, v := d.cfg.Hidden, d.cfg.Vocab
	width := 0
	for r := first; r < first+rows; r++ {
		width = max(width, b.n[r]+c)
	}
	mask := b.mask[:rows*width]
	for r := range rows {
		row := mask[r*width : (r+1)*width]
		for i := range row {
			row[i] = 0
			if i < b.n[first+r]+c {
				row[i] = 1
			}
		}
	}
	var made runTensors
	defer made.close()
	var err error
	embShape := []int64{int64(rows), int64(c), int64(h)}
	if d.embType == ort.Float16 {
		if len(b.embHalf) < len(emb) {
			b.embHalf = make([]uint16, len(emb))
		}
		half := b.embHalf[:len(emb)]
		float16.FromFloat32s(half, emb)
		b.in[d.embIdx], err = made.keep(ort.NewFloat16(embShape, half))
	} else {
		b.in[d.embIdx], err = made.keep(ort.NewFloat32(embShape, emb))
	}
	if err != nil {
		return err
	}
	if b.in[d.maskIdx], err = made.keep(ort.NewInt64([]int64{int64(rows), int64(width)}, mask)); err != nil {
		return err
	}
	if d.posIdx >= 0 {
		if b.in[d.posIdx], err = made.keep(ort.NewInt64([]int64{int64(rows), int64(c)}, pos)); err != nil {
			return err
		}
	}
	if d.useCacheIdx >= 0 {
		if b.in[d.useCacheIdx], err = made.keep(ort.NewBool([]int64{1}, b.useCache)); err != nil {
			return err
		}
	}
	if d.keepIdx >= 0 {
		if b.in[d.keepIdx], err = made.keep(ort.NewInt64([]int64{}, b.keep)); err != nil {
			return err
		}
	}
	// A graph that computes every position's logits writes a prefill's
	// into allLogits; the last row of each slot is copied to b.logits.
	per := 1
	if d.keepIdx < 0 {
		per = c
	}
	logitsShape := []int64{int64(rows), int64(per), int64(v)}
	out := b.logits
	off := first * v
	if per > 1 {
		if b.allLogits == nil || b.allLogits.Len() < rows*per*v {
			if b.allLogits, err = ort.NewBuffer(b.logits.DType, rows*per*v); err != nil {
				return err
			}
		}
		out, off = b.allLogits, 0
	}
	if b.out[d.logitsIdx], err = made.keep(out.TensorAt(logitsShape, off)); err != nil {
		return err
	}
	kv, err := b.kvTensors(first, rows)
	if err != nil {
		return err
	}
	for k := range b.bufs {
		b.in[d.pastIdx[k]] = kv[0][k]
		b.out[d.presentIdx[k]] = kv[1][k]
	}
	if err := d.s.Run(ctx, b.in, b.out); err != nil {
		return fmt.Errorf("decoder: batch run of %d rows of %d tokens: %w", rows, c, err)
	}
	if per > 1 {
		for r := range rows {
			b.logits.Copy((first+r)*v, b.allLogits, (r*per+per-1)*v, v)
		}
	}
	return nil
}

// Move moves the sequence in slot from to the free slot to (a copy of its
// rows, once), so that the slots in use can be kept at the front of the
// batch: a step runs as many rows as the highest slot in it.
func (b *Batch) Move(from, to int) error {
	switch {
	case from < 0 || from >= b.slots || !b.used[from]:
		return fmt.Errorf("decoder: batch slot %d is not in use", from)
	case to < 0 || to >= b.slots || b.used[to]:
		return fmt.Errorf("decoder: batch slot %d is not free", to)
	}
	cfg := b.d.cfg
	for _, buf := range b.bufs {
		copyRows(buf, to, b.cap+1, buf, from, b.cap+1, b.n[from], cfg.KVHeads, cfg.HeadDim)
	}
	b.used[to], b.n[to] = true, b.n[from]
	b.used[from], b.n[from] = false, 0
	return nil
}
