// Command snapvlm-jsref times and checks snapvlm against transformers.js:
// both generate greedily from the same prompt ids and pixel values (ours,
// since transformers.js resizes differently from Pillow) and the report
// says how long each took and whether the tokens agree. It needs node and
// the reference scripts (scripts/jsref, `make deps`), so it is a
// development tool, kept out of the snapvlm binary.
//
//	snapvlm-jsref --model DIR [--image IMG]... [--no-split] [--max-tokens 32] [--dtype q4] [--js-dtype q4]
//
// Times to first token are counted from the start of generation: snapvlm's
// without image decoding and tiling (snapvlm_ttft_ms, comparable with
// transformers.js, which is handed snapvlm's pixel values) and with it
// (snapvlm_ttft_with_preprocess_ms). Decode rates count the tokens after
// the first.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/snapvlm/snapvlm"
	"github.com/snapvlm/snapvlm/internal/jsref"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "snapvlm-jsref: %v\n", err)
		os.Exit(1)
	}
}

type images []string

func (i *images) String() string     { return strings.Join(*i, ",") }
func (i *images) Set(s string) error { *i = append(*i, s); return nil }

// report is the output; times in milliseconds.
type report struct {
	Model        string  `json:"model"`
	PromptTokens int     `json:"prompt_tokens"`
	NewTokens    int     `json:"new_tokens"`
	OursLoadMS   float64 `json:"snapvlm_load_ms"`
	OursMS       float64 `json:"snapvlm_generate_ms"`
	JSLoadMS     float64 `json:"transformers_js_load_ms"`
	JSMS         float64 `json:"transformers_js_generate_ms"`

	OursFiles     map[string]string `json:"snapvlm_files"`
	JSDtype       map[string]string `json:"transformers_js_dtype"`
	OursTTFT      float64           `json:"snapvlm_ttft_ms"`
	OursTTFTPre   float64           `json:"snapvlm_ttft_with_preprocess_ms"`
	OursDecode    float64           `json:"snapvlm_decode_tokens_per_sec"`
	JSTTFT        float64           `json:"transformers_js_ttft_ms"`
	JSDecode      float64           `json:"transformers_js_decode_tokens_per_sec"`
	TTFTRatio     float64           `json:"ttft_ratio"`     // snapvlm / transformers.js
	DecodeSpeedup float64           `json:"decode_speedup"` // snapvlm / transformers.js
	SameIDs       bool              `json:"same_ids"`       // only meaningful with the same variants
	SameVariants  bool              `json:"same_variants"`
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("snapvlm-jsref", flag.ContinueOnError)
	var imgs images
	model := fs.String("model", "", "model directory")
	fs.Var(&imgs, "image", "image file (repeatable)")
	noSplit := fs.Bool("no-split", false, "one tile per image")
	imageSize := fs.Int("image-size", 0, "longest edge before tiling (0: the model's)")
	maxTokens := fs.Int("max-tokens", 32, "new tokens")
	dtype := fs.String("dtype", "", "variant of all graphs (default: as snapvlm picks)")
	jsDtype := fs.String("js-dtype", "", "variant of all graphs for transformers.js (default: the files snapvlm runs)")
	question := fs.String("question", "Can you describe this image?", "the question")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *model == "" {
		return errors.New("--model DIR is required")
	}
	if err := jsref.Available(); err != nil {
		return err
	}
	var parts []*snapvlm.Image
	for _, p := range imgs {
		img, err := snapvlm.ImageFile(p)
		if err != nil {
			return err
		}
		parts = append(parts, img)
	}
	t := time.Now()
	m, err := snapvlm.Load(ctx, *model, snapvlm.Options{Dtype: *dtype, TextOnly: len(parts) == 0, FeatureCacheSize: -1})
	if err != nil {
		return err
	}
	defer m.Close()
	rep := report{Model: *model, OursLoadMS: ms(time.Since(t)), OursFiles: m.Files()}
	req := snapvlm.Request{
		Messages:        []snapvlm.Message{snapvlm.UserMessage(*question, parts...)},
		GenerateOptions: snapvlm.GenerateOptions{MaxNewTokens: *maxTokens, NoSplit: *noSplit, ImageSize: *imageSize},
	}
	t = time.Now()
	ours, err := m.Generate(ctx, req, nil)
	if err != nil {
		return err
	}
	rep.OursMS = ms(time.Since(t))
	rep.PromptTokens, rep.NewTokens = len(ours.PromptTokens), len(ours.Tokens)
	tm := ours.Timings
	rep.OursTTFT, rep.OursTTFTPre = ms(tm.FirstToken-tm.Preprocess), ms(tm.FirstToken)
	rep.OursDecode = tm.DecodeTokensPerSec

	jr := jsref.Request{ModelDir: m.Dir(), Dtype: map[string]string{}, InputIDs: ours.PromptTokens, MaxNewTokens: *maxTokens, LoadVision: len(parts) > 0}
	rep.SameVariants = true
	for g, d := range m.Dtypes() {
		if *jsDtype != "" && *jsDtype != d {
			d, rep.SameVariants = *jsDtype, false
		}
		if d == "quantized" {
			d = "q8" // transformers.js's name
		}
		jr.Dtype[g] = d
	}
	rep.JSDtype = jr.Dtype
	if len(parts) > 0 {
		if jr.Pixels, jr.PixelShape, err = m.PixelValues(ctx, req); err != nil {
			return err
		}
	}
	js, err := jsref.Generate(ctx, jr)
	if err != nil {
		return err
	}
	n := min(len(js.GeneratedIDs), len(ours.Tokens))
	rep.JSLoadMS, rep.JSMS = ms(js.Load), ms(js.Elapsed)
	rep.SameIDs = n > 0 && slices.Equal(js.GeneratedIDs[:n], ours.Tokens[:n])
	rep.JSTTFT = ms(js.FirstToken)
	if k := len(js.GeneratedIDs); k > 1 && js.LastToken > js.FirstToken {
		rep.JSDecode = float64(k-1) / (js.LastToken - js.FirstToken).Seconds()
	}
	if rep.JSTTFT > 0 {
		rep.TTFTRatio = rep.OursTTFT / rep.JSTTFT
	}
	if rep.JSDecode > 0 {
		rep.DecodeSpeedup = rep.OursDecode / rep.JSDecode
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
