// Package embed turns token ids into input embeddings with the embed_tokens
// graph and merges image features into the positions of the image tokens.
package embed

import (
	"context"
	"fmt"

	"github.com/snapvlm/snapvlm/internal/float16"
	"github.com/snapvlm/snapvlm/internal/ort"
)

// Graph I/O names of the SmolVLM embed_tokens export.
const (
	InputIDs     = "input_ids"
	OutputEmbeds = "inputs_embeds"
)

// Embedder is a loaded embed_tokens graph. It is safe for concurrent use.
type Embedder struct {
	s      *ort.Session
	hidden int
	f16    bool
}

// New loads the graph at path and checks it against the text hidden size.
func New(env *ort.Env, path string, so ort.SessionOptions, hidden int) (*Embedder, error) {
	s, err := env.NewSession(path, so)
	if err != nil {
		return nil, err
	}
	e, err := check(s, hidden)
	if err != nil {
		s.Close()
		return nil, err
	}
	return e, nil
}

func check(s *ort.Session, hidden int) (*Embedder, error) {
	ins, outs := s.Inputs(), s.Outputs()
	if len(ins) != 1 || ins[0].Name != InputIDs || ins[0].DType != ort.Int64 {
		return nil, fmt.Errorf("%s: want one int64 input %s", s.Path(), InputIDs)
	}
	if len(outs) != 1 || outs[0].Name != OutputEmbeds || len(outs[0].Shape) != 3 {
		return nil, fmt.Errorf("%s: want one output %s [batch, sequence, hidden]", s.Path(), OutputEmbeds)
	}
	o := outs[0]
	if o.Shape[2] > 0 && int(o.Shape[2]) != hidden {
		return nil, fmt.Errorf("%s: output %s has width %d but config.json text_config.hidden_size is %d", s.Path(), o.Name, o.Shape[2], hidden)
	}
	e := &Embedder{s: s, hidden: hidden}
	switch o.DType {
	case ort.Float32:
	case ort.Float16:
		e.f16 = true
	default:
		return nil, fmt.Errorf("%s: output %s is %s, want float32 or float16", s.Path(), o.Name, o.DType)
	}
	return e, nil
}

// Hidden is the embedding width.
func (e *Embedder) Hidden() int { return e.hidden }

// Step holds the tensors of one-token embedding so that the decode loop
// reuses them instead of allocating per token. Not safe for concurrent use.
type Step struct {
	e    *Embedder
	id   []int64
	in   *ort.Tensor
	out  *ort.Tensor
	half []uint16
	// Out is the embedding of the last token passed to Run.
	Out []float32
}

// NewStep allocates the reusable one-token tensors. Out is written by Run.
func (e *Embedder) NewStep() (*Step, error) {
	st := &Step{e: e, id: make([]int64, 1), Out: make([]float32, e.hidden)}
	var err error
	if st.in, err = ort.NewInt64([]int64{1, 1}, st.id); err != nil {
		return nil, err
	}
	shape := []int64{1, 1, int64(e.hidden)}
	if e.f16 {
		st.half = make([]uint16, e.hidden)
		st.out, err = ort.NewFloat16(shape, st.half)
	} else {
		st.out, err = ort.NewFloat32(shape, st.Out)
	}
	if err != nil {
		st.in.Close()
		return nil, err
	}
	return st, nil
}

// Run embeds one token into Out.
func (st *Step) Run(ctx context.Context, id int64) error {
	st.id[0] = id
	if err := st.e.s.Run(ctx, []*ort.Tensor{st.in}, []*ort.Tensor{st.out}); err != nil {
		return fmt.Errorf("embedding token %d: %w", id, err)
	}
	if st.half != nil {
		float16.ToFloat32s(st.Out, st.half)
	}
	return nil
}

// Close releases the step's tensors.
func (st *Step) Close() {
	st.in.Close()
	st.out.Close()
}

// Embed returns float32 embeddings [len(ids), hidden].
func (e *Embedder) Embed(ctx context.Context, ids []int64) ([]float32, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("embedding: no tokens")
	}
	in, err := ort.NewInt64([]int64{1, int64(len(ids))}, ids)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	n := len(ids) * e.hidden
	dst := make([]float32, n)
	shape := []int64{1, int64(len(ids)), int64(e.hidden)}
	var out *ort.Tensor
	var half []uint16
	if e.f16 {
		half = make([]uint16, n)
		out, err = ort.NewFloat16(shape, half)
	} else {
		out, err = ort.NewFloat32(shape, dst)
	}
	if err != nil {
		return nil, err
	}
	defer out.Close()
	if err := e.s.Run(ctx, []*ort.Tensor{in}, []*ort.Tensor{out}); err != nil {
		return nil, fmt.Errorf("embedding %d tokens: %w", len(ids), err)
	}
	if e.f16 {
		float16.ToFloat32s(dst, half)
	}
	return dst, nil
}

// Merge writes feature row j over the embedding of the j-th occurrence of
// imageTokenID in ids, in order (the merge of transformers' inputs_merger).
// The number of image tokens must equal the number of feature rows.
func Merge(embeds []float32, ids []int64, imageTokenID int64, features []float32, hidden int) error {
	if len(embeds) != len(ids)*hidden {
		return fmt.Errorf("merging image features: %d embedding values for %d tokens of width %d", len(embeds), len(ids), hidden)
	}
	if len(features)%hidden != 0 {
		return fmt.Errorf("merging image features: %d feature values are not rows of width %d", len(features), hidden)
	}
	rows := len(features) / hidden
	count := 0
	for _, id := range ids {
		if id == imageTokenID {
			count++
		}
	}
	if count != rows {
		return fmt.Errorf("the prompt has %d image tokens but the images gave %d feature rows", count, rows)
	}
	j := 0
	for i, id := range ids {
		if id == imageTokenID {
			copy(embeds[i*hidden:(i+1)*hidden], features[j*hidden:(j+1)*hidden])
			j++
		}
	}
	return nil
}

// Close releases the session.
func (e *Embedder) Close() error { return e.s.Close() }
