package snapvlm

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/snapvlm/snapvlm/internal/modelconfig"
	"github.com/snapvlm/snapvlm/internal/ort"
	"github.com/snapvlm/snapvlm/internal/vision"
)

// VisionInt8MinCosine is the cosine similarity between the int8 vision
// rewrite's features and its source's, on a probe tile, below which the
// rewrite is not used (README, "Choosing a variant": the exports' q4 vision
// encoder scores 0.968 on the 256M-size test model, the rewrite 0.999).
const VisionInt8MinCosine = 0.995

// probeResult is the comparison of a rewritten vision encoder with its
// source on the probe tile, cached next to the rewritten file.
type probeResult struct {
	Source string  `json:"source"`
	Cosine float64 `json:"cosine"`
	MaxAbs float64 `json:"max_abs_diff"`
}

// int8VisionFile returns the int8 rewrite of the vision encoder src (every
// float MatMul weight as int8, activations quantized at run time: ONNX
// Runtime's u8×s8 integer path) and why it is used, or src and why not (no
// float weights to quantize, or a probe cosine below minCosine).
// The rewrite is written once to the user cache dir and checked once on a
// probe tile against src; both are reused by later loads.
func int8VisionFile(ctx context.Context, env *ort.Env, src string, so ort.SessionOptions, cfg vision.Config, minCosine float64) (file, why string, err error) {
	dst, err := vision.Int8Rewrite(src)
	if err != nil {
		return src, fmt.Sprintf("int8 rewrite of %s not made (%v)", filepath.Base(src), err), nil
	}
	probe, err := probeRewrite(ctx, env, src, dst, so, cfg)
	if err != nil {
		return "", "", fmt.Errorf("checking the int8 vision encoder %s against %s: %w", dst, src, err)
	}
	if probe.Cosine < minCosine {
		return src, fmt.Sprintf("warning: int8 rewrite of %s rejected: probe feature cosine %.5f < %.4g (max |Δ| %.3g)",
			filepath.Base(src), probe.Cosine, minCosine, probe.MaxAbs), nil
	}
	return dst, fmt.Sprintf("int8 rewrite of %s (u8×s8 MatMulInteger; probe feature cosine %.5f ≥ %.4g, max |Δ| %.3g)",
		filepath.Base(src), probe.Cosine, minCosine, probe.MaxAbs), nil
}

// int8VisionSource is the file the int8 vision rewrite starts from: the
// fp32 export unless a vision variant was asked for (the q4 default has no
// float weights to quantize), else the chosen file.
func int8VisionSource(dir, chosen, asked string) string {
	if asked != "" {
		return chosen
	}
	fp32 := filepath.Join(dir, filepath.FromSlash(modelconfig.GraphPath(GraphVision, "fp32")))
	if _, err := os.Stat(fp32); err == nil {
		return fp32
	}
	return chosen
}

// probeRewrite compares the features of dst with those of src on the probe
// tile, once: the result is kept beside dst (ort.ProbeSuffix).
func probeRewrite(ctx context.Context, env *ort.Env, src, dst string, so ort.SessionOptions, cfg vision.Config) (probeResult, error) {
	cached := dst + ort.ProbeSuffix
	var res probeResult
	if b, err := os.ReadFile(cached); err == nil && json.Unmarshal(b, &res) == nil && res.Source == src {
		return res, nil
	}
	cfg.FramesPerRun = 1
	pixels := probeTile(cfg.TileSize)
	var feats [2][]float32
	for i, f := range []string{src, dst} {
		enc, err := vision.New(env, f, so, cfg)
		if err != nil {
			return res, err
		}
		feats[i], err = enc.Encode(ctx, pixels, 1)
		enc.Close()
		if err != nil {
			return res, err
		}
	}
	res = probeResult{Source: src}
	res.Cosine, res.MaxAbs = compareFeatures(feats[0], feats[1])
	b, err := json.Marshal(res)
	if err != nil {
		return res, err
	}
	return res, os.WriteFile(cached, b, 0o644)
}

// probeTile is one tile of normalised pixels [3, m, m] in [-1, 1]: smooth
// gradients, a checkerboard and fine stripes, different per channel, so
// that every patch has content at several scales.
func probeTile(m int) []float32 {
	px := make([]float32, 3*m*m)
	for c := 0; c < 3; c++ {
		for y := 0; y < m; y++ {
			for x := 0; x < m; x++ {
				fx, fy := float64(x)/float64(m), float64(y)/float64(m)
				v := 0.6*math.Sin(2*math.Pi*(fx*float64(c+1)+fy*0.7)) + 0.25*math.Cos(float64(x*y%97)*0.3)
				if (x/48+y/48+c)%2 == 0 {
					v += 0.3
				} else {
					v -= 0.3
				}
				px[(c*m+y)*m+x] = float32(max(-1, min(1, v)))
			}
		}
	}
	return px
}

// compareFeatures returns the cosine similarity of a and b as vectors and
// their largest absolute difference.
func compareFeatures(a, b []float32) (cosine, maxAbs float64) {
	var dot, na, nb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		dot, na, nb = dot+x*y, na+x*x, nb+y*y
		maxAbs = max(maxAbs, math.Abs(x-y))
	}
	if na == 0 || nb == 0 {
		return 0, maxAbs
	}
	return dot / math.Sqrt(na*nb), maxAbs
}
