// Package vision runs the vision encoder graph (vision_encoder*.onnx): tiles
// of normalised pixels in, image features in the text embedding space out.
package vision

import (
	"context"
	"errors"
	"fmt"

	"github.com/snapvlm/snapvlm/internal/float16"
	"github.com/snapvlm/snapvlm/internal/onnx"
	"github.com/snapvlm/snapvlm/internal/ort"
)

// Graph I/O names of the SmolVLM vision encoder export.
const (
	InputPixels   = "pixel_values"
	InputMask     = "pixel_attention_mask"
	OutputFeature = "image_features"
)

// Config is what the encoder must agree with, from the model's configs.
type Config struct {
	TileSize    int // preprocessor max_image_size.longest_edge
	ImageSeqLen int // tokens per tile
	Hidden      int // text hidden size
	// FramesPerRun bounds the tiles encoded in one run (the encoder's
	// activations grow with it); 0 runs all tiles at once.
	FramesPerRun int
}

// Encoder is a loaded vision encoder. It is safe for concurrent use.
type Encoder struct {
	s      *ort.Session
	cfg    Config
	pixIdx int
	outF16 bool
}

// New loads the graph at path and checks its inputs and output against cfg,
// naming the file and the disagreeing dimension.
func New(env *ort.Env, path string, so ort.SessionOptions, cfg Config) (*Encoder, error) {
	s, err := env.NewSession(path, so)
	if err != nil {
		return nil, err
	}
	e, err := check(s, cfg)
	if err != nil {
		s.Close()
		return nil, err
	}
	return e, nil
}

func check(s *ort.Session, cfg Config) (*Encoder, error) {
	e := &Encoder{s: s, cfg: cfg, pixIdx: -1}
	for i, in := range s.Inputs() {
		switch in.Name {
		case InputPixels:
			e.pixIdx = i
			if in.DType != ort.Float32 || len(in.Shape) != 5 {
				return nil, fmt.Errorf("%s: input %s is %s rank %d, want float32 [batch, frames, 3, H, W]", s.Path(), in.Name, in.DType, len(in.Shape))
			}
			for _, d := range in.Shape[3:] {
				if d > 0 && int(d) != cfg.TileSize {
					return nil, fmt.Errorf("%s: input %s takes %dx%d tiles but preprocessor_config.json max_image_size.longest_edge is %d", s.Path(), in.Name, in.Shape[3], in.Shape[4], cfg.TileSize)
				}
			}
		case InputMask:
			if in.DType != ort.Bool || len(in.Shape) != 4 {
				return nil, fmt.Errorf("%s: input %s is %s rank %d, want bool [batch, frames, H, W]", s.Path(), in.Name, in.DType, len(in.Shape))
			}
		default:
			return nil, fmt.Errorf("%s: unexpected input %q (want %s and %s)", s.Path(), in.Name, InputPixels, InputMask)
		}
	}
	if e.pixIdx < 0 {
		return nil, fmt.Errorf("%s: no %s input", s.Path(), InputPixels)
	}
	outs := s.Outputs()
	if len(outs) != 1 || outs[0].Name != OutputFeature {
		return nil, fmt.Errorf("%s: want one output %s, graph has %d outputs", s.Path(), OutputFeature, len(outs))
	}
	o := outs[0]
	if len(o.Shape) != 3 {
		return nil, fmt.Errorf("%s: output %s has rank %d, want [frames, image_seq_len, hidden]", s.Path(), o.Name, len(o.Shape))
	}
	if o.Shape[1] > 0 && int(o.Shape[1]) != cfg.ImageSeqLen {
		return nil, fmt.Errorf("%s: output %s has %d tokens per tile but the model config says image_seq_len %d", s.Path(), o.Name, o.Shape[1], cfg.ImageSeqLen)
	}
	if o.Shape[2] > 0 && int(o.Shape[2]) != cfg.Hidden {
		return nil, fmt.Errorf("%s: output %s has width %d but config.json text_config.hidden_size is %d", s.Path(), o.Name, o.Shape[2], cfg.Hidden)
	}
	switch o.DType {
	case ort.Float32:
	case ort.Float16:
		e.outF16 = true
	default:
		return nil, fmt.Errorf("%s: output %s is %s, want float32 or float16", s.Path(), o.Name, o.DType)
	}
	return e, nil
}

// Config returns the sizes the encoder was checked against.
func (e *Encoder) Config() Config { return e.cfg }

// Encode runs frames tiles (pixels laid out [frames, 3, M, M]) and returns
// float32 features [frames, image_seq_len, hidden]. Tiles are encoded
// independently, so running them in groups of FramesPerRun gives the same
// features with bounded memory.
func (e *Encoder) Encode(ctx context.Context, pixels []float32, frames int) ([]float32, error) {
	return e.EncodeProgress(ctx, pixels, frames, nil)
}

// EncodeProgress is Encode calling progress, when not nil, with the number
// of tiles done after each run of the encoder.
func (e *Encoder) EncodeProgress(ctx context.Context, pixels []float32, frames int, progress func(done int)) ([]float32, error) {
	m := e.cfg.TileSize
	if want := frames * 3 * m * m; len(pixels) != want || frames <= 0 {
		return nil, fmt.Errorf("vision encoder: %d pixel values for %d frames of %dx%d, want %d", len(pixels), frames, m, m, want)
	}
	group := e.cfg.FramesPerRun
	if group <= 0 || group > frames {
		group = frames
	}
	feats := make([]float32, frames*e.cfg.ImageSeqLen*e.cfg.Hidden)
	per, perFeat := 3*m*m, e.cfg.ImageSeqLen*e.cfg.Hidden
	for f := 0; f < frames; f += group {
		n := min(group, frames-f)
		if err := e.run(ctx, pixels[f*per:(f+n)*per], n, feats[f*perFeat:(f+n)*perFeat]); err != nil {
			return nil, err
		}
		if progress != nil {
			progress(f + n)
		}
	}
	return feats, nil
}

// run encodes frames tiles into feats.
func (e *Encoder) run(ctx context.Context, pixels []float32, frames int, feats []float32) error {
	m := e.cfg.TileSize
	px, err := ort.NewFloat32([]int64{1, int64(frames), 3, int64(m), int64(m)}, pixels)
	if err != nil {
		return err
	}
	defer px.Close()
	maskData := make([]bool, frames*m*m)
	for i := range maskData {
		maskData[i] = true
	}
	mask, err := ort.NewBool([]int64{1, int64(frames), int64(m), int64(m)}, maskData)
	if err != nil {
		return err
	}
	defer mask.Close()
	in := make([]*ort.Tensor, 2)
	in[e.pixIdx], in[1-e.pixIdx] = px, mask
	if len(e.s.Inputs()) == 1 {
		in = []*ort.Tensor{px}
	}
	n := len(feats)
	shape := []int64{int64(frames), int64(e.cfg.ImageSeqLen), int64(e.cfg.Hidden)}
	var out *ort.Tensor
	var half []uint16
	if e.outF16 {
		half = make([]uint16, n)
		out, err = ort.NewFloat16(shape, half)
	} else {
		out, err = ort.NewFloat32(shape, feats)
	}
	if err != nil {
		return err
	}
	defer out.Close()
	if err := e.s.Run(ctx, in, []*ort.Tensor{out}); err != nil {
		return fmt.Errorf("vision encoder on %d frames (expected output %s %v): %w", frames, OutputFeature, shape, err)
	}
	if e.outF16 {
		float16.ToFloat32s(feats, half)
	}
	return nil
}

// Close releases the session.
func (e *Encoder) Close() error { return e.s.Close() }

// Int8RewriteName names the int8 rewrite in the rewritten-file cache key;
// it changes whenever onnx.QuantizeMatMulsInt8 changes what it writes.
const Int8RewriteName = "vision-int8-matmulinteger-v1"

// Int8Rewrite returns the int8 rewrite of the vision encoder file src
// (onnx.QuantizeMatMulsInt8: int8 weights per column, activations
// quantized at run time), written once to the user cache dir and reused
// (ort.RewrittenFile). It fails for a file without float MatMul weights
// (such as a q4 export) or with external data.
func Int8Rewrite(src string) (string, error) {
	return ort.RewrittenFile(src, Int8RewriteName, func(data []byte) ([]byte, error) {
		out, n, err := onnx.QuantizeMatMulsInt8(data)
		if err == nil && n == 0 {
			err = errors.New("no MatMul with a float32 weight")
		}
		return out, err
	})
}
