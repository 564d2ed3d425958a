// Package jsref runs transformers.js (@huggingface/transformers, pinned in
// scripts/jsref/package.json), the independent JavaScript implementation
// that executes the same SmolVLM ONNX files, as a reference for snapvlm's
// differential tests.
//
// Each call starts `node scripts/jsref/generate.mjs`, which loads the model
// directory with transformers.js (local files only, CPU, per-session dtype)
// and runs its own generate() with greedy decoding. Requests and results
// travel as one JSON document each over stdin/stdout; pixel values go
// through a temporary raw float32 little-endian file.
//
// The scripts directory is scripts/jsref under the module root (found by
// walking up from the working directory to go.mod), or $SNAPVLM_JSREF_DIR.
// Its node_modules is installed by scripts/deps.sh.
package jsref

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Session names of a SmolVLM model directory, as transformers.js calls them
// (the keys of Request.Dtype).
const (
	VisionEncoder = "vision_encoder"
	EmbedTokens   = "embed_tokens"
	Decoder       = "decoder_model_merged"
)

// DirEnv names the environment variable that overrides the scripts/jsref
// directory.
const DirEnv = "SNAPVLM_JSREF_DIR"

// script is the runner inside the scripts directory.
const script = "generate.mjs"

// Dir returns the scripts/jsref directory: $SNAPVLM_JSREF_DIR when set,
// else scripts/jsref under the module root containing the working directory.
func Dir() (string, error) {
	if d := os.Getenv(DirEnv); d != "" {
		return filepath.Abs(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("jsref: %w", err)
	}
	root, err := moduleRoot(wd)
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "scripts", "jsref"), nil
}

// moduleRoot walks up from dir to the first directory holding go.mod.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("jsref: no go.mod in %s or any parent (set %s)", dir, DirEnv)
		}
		d = parent
	}
}

// Available reports why the reference cannot run: node is not on PATH, the
// scripts directory is missing, or its node_modules has not been installed
// (run scripts/deps.sh). It returns nil when Generate and Smoke can run.
func Available() error {
	if _, err := exec.LookPath("node"); err != nil {
		return fmt.Errorf("jsref: node not found on PATH: %w", err)
	}
	dir, err := Dir()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, script)); err != nil {
		return fmt.Errorf("jsref: %w", err)
	}
	pkg := filepath.Join(dir, "node_modules", "@huggingface", "transformers", "package.json")
	if _, err := os.Stat(pkg); err != nil {
		return fmt.Errorf("jsref: transformers.js not installed in %s (run scripts/deps.sh): %w", dir, err)
	}
	return nil
}

// Request is one generation run.
type Request struct {
	// ModelDir is a SmolVLM model directory in the Hugging Face layout
	// (config.json, generation_config.json, onnx/*.onnx).
	ModelDir string
	// Dtype chooses each session's file variant by transformers.js dtype
	// name ("fp32" → x.onnx, "q4" → x_q4.onnx, "fp16" → x_fp16.onnx, also
	// "q4f16", "q8", "int8", "uint8", "bnb4"), keyed by session name
	// (VisionEncoder, EmbedTokens, Decoder). Missing sessions use fp32.
	Dtype map[string]string
	// InputIDs is the whole prompt, image tokens already expanded. The
	// attention mask is all ones.
	InputIDs []int64
	// Pixels holds pixel_values in row-major order for PixelShape
	// [1, frames, 3, M, M]; nil for a text-only prompt. The pixel attention
	// mask is all true.
	Pixels     []float32
	PixelShape []int64
	// MaxNewTokens bounds the generated tokens (transformers.js would
	// otherwise stop at a total length of 20).
	MaxNewTokens int
	// LoadVision loads the vision encoder even for a text-only prompt
	// (transformers.js's full SmolVLM class instead of its text-only load).
	LoadVision bool
}

// Result is what transformers.js generated.
type Result struct {
	// GeneratedIDs are the new tokens only, exactly as generate() returned
	// them (greedy; ends with an EOS id when it stopped early).
	GeneratedIDs []int64
	// Sessions are the ONNX sessions transformers.js created, sorted.
	Sessions []string
	// EOSTokenIDs are the ids generate() stops on (generation_config.json,
	// else config.json's text_config).
	EOSTokenIDs []int64
	// Load is the model load time; Elapsed the generate() time.
	Load    time.Duration
	Elapsed time.Duration
	// FirstToken and LastToken are when the first and the last new token
	// reached generate()'s streamer, counted from the start of generate().
	FirstToken time.Duration
	LastToken  time.Duration
}

// wire formats of generate.mjs.
type wireRequest struct {
	ModelDir     string            `json:"model_dir"`
	Dtype        map[string]string `json:"dtype,omitempty"`
	InputIDs     []int64           `json:"input_ids"`
	PixelValues  *wirePixels       `json:"pixel_values"`
	MaxNewTokens int               `json:"max_new_tokens"`
	LoadVision   bool              `json:"load_vision,omitempty"`
}

type wirePixels struct {
	Shape []int64 `json:"shape"`
	File  string  `json:"file"`
}

type wireResult struct {
	Error        string   `json:"error"`
	GeneratedIDs []int64  `json:"generated_ids"`
	Sessions     []string `json:"sessions"`
	EOSTokenIDs  []int64  `json:"eos_token_ids"`
	Text         string   `json:"text"`
	LoadMS       float64  `json:"load_ms"`
	ElapsedMS    float64  `json:"elapsed_ms"`
	FirstTokenMS float64  `json:"first_token_ms"`
	LastTokenMS  float64  `json:"last_token_ms"`
}

// validate checks what generate.mjs would reject, with clearer messages.
func (r *Request) validate() error {
	if r.ModelDir == "" {
		return errors.New("ModelDir is empty")
	}
	if len(r.InputIDs) == 0 {
		return errors.New("InputIDs is empty")
	}
	if r.MaxNewTokens < 1 {
		return fmt.Errorf("MaxNewTokens = %d, want >= 1", r.MaxNewTokens)
	}
	if r.Pixels == nil && r.PixelShape == nil {
		return nil
	}
	s := r.PixelShape
	if len(s) != 5 || s[0] != 1 || s[1] < 1 || s[2] != 3 || s[3] < 1 || s[3] != s[4] {
		return fmt.Errorf("PixelShape = %v, want [1, frames, 3, M, M]", s)
	}
	if n := s[1] * 3 * s[3] * s[4]; int64(len(r.Pixels)) != n {
		return fmt.Errorf("len(Pixels) = %d, want %d for PixelShape %v", len(r.Pixels), n, s)
	}
	return nil
}

// Generate runs transformers.js's generate() on req (greedy, do_sample
// false) and returns the new tokens.
func Generate(ctx context.Context, req Request) (*Result, error) {
	if err := req.validate(); err != nil {
		return nil, fmt.Errorf("jsref: request: %w", err)
	}
	modelDir, err := filepath.Abs(req.ModelDir)
	if err != nil {
		return nil, fmt.Errorf("jsref: %w", err)
	}
	w := wireRequest{
		ModelDir:     modelDir,
		Dtype:        req.Dtype,
		InputIDs:     req.InputIDs,
		MaxNewTokens: req.MaxNewTokens,
		LoadVision:   req.LoadVision,
	}
	if req.Pixels != nil {
		f, err := writePixels(req.Pixels)
		if err != nil {
			return nil, err
		}
		defer os.Remove(f)
		w.PixelValues = &wirePixels{Shape: req.PixelShape, File: f}
	}
	body, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("jsref: encoding request: %w", err)
	}
	res, err := run(ctx, body)
	if err != nil {
		return nil, err
	}
	return &Result{
		GeneratedIDs: res.GeneratedIDs,
		Sessions:     res.Sessions,
		EOSTokenIDs:  res.EOSTokenIDs,
		Load:         ms(res.LoadMS),
		Elapsed:      ms(res.ElapsedMS),
		FirstToken:   ms(res.FirstTokenMS),
		LastToken:    ms(res.LastTokenMS),
	}, nil
}

// Smoke runs transformers.js end to end on modelDir with its own processor
// (image preprocessing, chat template, tokenizer) on a synthetic 640×480
// image, generating up to 8 tokens, and returns the new token ids and
// their decoded text (special tokens skipped).
func Smoke(ctx context.Context, modelDir string) (ids []int64, text string, err error) {
	abs, err := filepath.Abs(modelDir)
	if err != nil {
		return nil, "", fmt.Errorf("jsref: %w", err)
	}
	res, err := run(ctx, nil, "--smoke", abs)
	if err != nil {
		return nil, "", err
	}
	return res.GeneratedIDs, res.Text, nil
}

// writePixels stores p as raw little-endian float32 in a temporary file.
func writePixels(p []float32) (string, error) {
	f, err := os.CreateTemp("", "jsref-pixels-*.f32")
	if err != nil {
		return "", fmt.Errorf("jsref: pixel file: %w", err)
	}
	buf := make([]byte, 4*len(p))
	for i, v := range p {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	_, werr := f.Write(buf)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("jsref: writing %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}

// run starts node generate.mjs with args, feeds stdin and decodes the one
// JSON result on stdout.
func run(ctx context.Context, stdin []byte, args ...string) (*wireResult, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join(dir, script)}, args...)...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	// ONNX Runtime threads can keep pipes open briefly after a kill.
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, fmt.Errorf("jsref: node %s: %w", script, ctxErr)
	}
	var res wireResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("jsref: node %s: %v; bad JSON on stdout (%w): %q; stderr: %s",
			script, runErr, err, clip(stdout.String()), clip(stderr.String()))
	}
	if res.Error != "" {
		return nil, fmt.Errorf("jsref: transformers.js: %s", res.Error)
	}
	if runErr != nil {
		return nil, fmt.Errorf("jsref: node %s: %w; stderr: %s", script, runErr, clip(stderr.String()))
	}
	return &res, nil
}

// clip keeps the end of a long diagnostic, where the cause usually is.
func clip(s string) string {
	const max = 2000
	s = strings.TrimSpace(s)
	if len(s) > max {
		return "…" + s[len(s)-max:]
	}
	return s
}

func ms(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
