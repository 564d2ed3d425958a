package ort

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/snapvlm/snapvlm/internal/onnx"
	ortgo "github.com/yalue/onnxruntime_go"
)

// OptLevel is ONNX Runtime's graph optimisation level.
type OptLevel string

// Graph optimisation levels, as ONNX Runtime names them.
const (
	OptDefault  OptLevel = ""         // ONNX Runtime's default (all)
	OptDisable  OptLevel = "disable"  // no graph rewrites
	OptBasic    OptLevel = "basic"    // constant folding, redundant nodes
	OptExtended OptLevel = "extended" // plus fusions
	OptAll      OptLevel = "all"      // plus layout optimisations
)

// SessionOptions tune one session.
type SessionOptions struct {
	// IntraOpThreads is the number of threads inside an operator; 0 lets ONNX
	// Runtime use one per physical core.
	IntraOpThreads int
	// OptLevel is the graph optimisation level.
	OptLevel OptLevel
	// Provider is the execution provider by name: "" or "cpu" (default),
	// "cuda", "coreml", or any name ONNX Runtime's generic
	// AppendExecutionProvider knows ("XNNPACK", "OpenVINO", "QNN", ...).
	// A provider the library lacks is an error.
	Provider string
	// ProviderOptions are passed to the provider as they are.
	ProviderOptions map[string]string
	// MatMulNBitsAccuracy, when non-zero, overrides the accuracy_level of
	// every 4-bit MatMulNBits node: 4 makes ONNX Runtime quantize the
	// activations to int8 and use integer dot products, which on CPU decodes
	// about 2.5x faster than the exports' default (float) path but can flip
	// near-tie tokens. The model is rewritten in memory; the file is untouched.
	MatMulNBitsAccuracy int
	// MatMulQ4, where MatMulQ4Vector, runs the 4-bit MatMulNBits nodes
	// snapvlm's kernel takes (onnx.UseMatMulQ4) on that kernel: int8
	// activations with a scale per row and block of 32, a row's result
	// independent of the other rows, and prefills and batches of rows
	// several times faster than ONNX Runtime's accuracy_level 4 path. Other
	// nodes keep MatMulNBitsAccuracy. The model is rewritten as for
	// MatMulNBitsAccuracy.
	MatMulQ4 bool
	// OptimizedCache keeps the graph ONNX Runtime optimised in the user
	// cache dir (RewrittenDir, ONNX with its weights in a data file, keyed
	// by the model file's path, size and modification time, the ONNX
	// Runtime version, the level and the CPU) and loads that copy next time
	// with graph optimisation off, its weights mapped from the data file
	// instead of copied. Only for the CPU provider; a copy that fails to
	// load is removed and the model loaded as usual.
	OptimizedCache bool
	// NoMemPattern turns off ONNX Runtime's memory pattern: after a run of
	// a new shape it plans one block for all of the run's intermediate
	// tensors and keeps it besides what its arena already holds. For the
	// vision encoder of the 500M size that block is 128 MB that a second
	// image adds to the peak (one tile: 0.67 against 0.55 GB), for no speed
	// measured (per tile 637-735 ms with it, 678-724 without, alternated).
	NoMemPattern bool
	// Warn, when not nil, receives what went wrong with the optimised-graph
	// cache (the session is created the usual way after it).
	Warn func(error)
	// FromCache, when not nil, is called with the optimised copy a session
	// is loaded from.
	FromCache func(path string)
}

// IOInfo describes one graph input or output.
type IOInfo struct {
	Name  string
	DType DType
	// Shape has -1 for a symbolic or unknown dimension.
	Shape []int64
	// DimNames has the symbolic name of each dimension ("" where fixed).
	DimNames []string
}

// graphIO reads a model file's inputs and outputs without loading it, so a
// session is created once, with the names it needs.
func graphIO(path string) (inputs, outputs []IOInfo, err error) {
	in, out, err := onnx.ReadFileIO(path)
	if err != nil {
		return nil, nil, err
	}
	return ioInfos(in), ioInfos(out), nil
}

func ioInfos(vs []onnx.ValueInfo) []IOInfo {
	out := make([]IOInfo, len(vs))
	for i, v := range vs {
		info := IOInfo{Name: v.Name, DType: dtypeFromONNX(v.Type)}
		for _, d := range v.Shape {
			size := d.Value
			if d.Param != "" {
				size = -1
			}
			info.Shape = append(info.Shape, size)
			info.DimNames = append(info.DimNames, d.Param)
		}
		out[i] = info
	}
	return out
}

func dtypeFromONNX(t onnx.DataType) DType {
	switch t {
	case onnx.Float:
		return Float32
	case onnx.Float16:
		return Float16
	case onnx.Int64:
		return Int64
	case onnx.Int32:
		return Int32
	case onnx.Bool:
		return Bool
	case onnx.Uint8:
		return Uint8
	case onnx.Int8:
		return Int8
	}
	return Unknown
}

// Session is one loaded ONNX graph. Run is safe to call from several
// goroutines at once (ONNX Runtime allows concurrent Run on one session);
// each call needs its own tensors.
type Session struct {
	path    string
	s       *ortgo.DynamicAdvancedSession
	inputs  []IOInfo
	outputs []IOInfo
	// optimized is the cached optimised graph the session was loaded from
	// ("" when loaded from path).
	optimized string
}

// NewSession loads the model at path (external data next to it is found by
// ONNX Runtime because the session is created from the path).
func (e *Env) NewSession(path string, o SessionOptions) (*Session, error) {
	if o.MatMulNBitsAccuracy != 0 || o.MatMulQ4 {
		return e.newRewrittenSession(path, o)
	}
	inputs, outputs, err := graphIO(path)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	return e.newSession(path, nil, inputs, outputs, o)
}

// newRewrittenSession loads the model with its MatMulNBits accuracy level
// replaced. The rewritten model is kept in the user cache dir and loaded
// from there (loading from memory would hold extra copies of the weights);
// a model with external data, which must stay next to its data files, is
// loaded from memory instead.
func (e *Env) newRewrittenSession(path string, o SessionOptions) (*Session, error) {
	plain := o
	plain.MatMulNBitsAccuracy, plain.MatMulQ4 = 0, false
	// A graph without MatMulNBits (an fp32 or fp16 decoder) has nothing to
	// rewrite: it is loaded as it is, without a copy.
	if has, err := fileContains(path, []byte("MatMulNBits")); err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	} else if !has {
		return e.NewSession(path, plain)
	}
	useQ4 := o.MatMulQ4 && e.attention != nil && MatMulQ4Vector()
	rewrite := func(data []byte) ([]byte, int, error) {
		n := 0
		if useQ4 {
			var err error
			if data, n, err = onnx.UseMatMulQ4(data, AttentionDomain, MatMulQ4Op, filepath.Dir(path)); err != nil {
				return nil, 0, err
			}
		}
		if o.MatMulNBitsAccuracy == 0 {
			return data, n, nil
		}
		out, m, err := onnx.SetNodeAttrInt(data, "com.microsoft", "MatMulNBits", "accuracy_level", int64(o.MatMulNBitsAccuracy))
		return out, n + m, err
	}
	what := fmt.Sprintf("matmulnbits-accuracy-%d", o.MatMulNBitsAccuracy)
	if useQ4 {
		what = "matmulq4-v4-" + what
	}
	cached, err := rewrittenFile(path, what, rewrite)
	if errors.Is(err, errNothingToRewrite) {
		return e.NewSession(path, plain)
	}
	if err == nil {
		// A fresh rewrite left a model-sized buffer behind; return it to the
		// OS before ONNX Runtime allocates the session's own copy.
		debug.FreeOSMemory()
		inputs, outputs, err := graphIO(cached)
		if err != nil {
			return nil, fmt.Errorf("loading %s (rewritten as %s): %w", path, cached, err)
		}
		return e.newSession(cached, nil, inputs, outputs, o)
	}
	if !errors.Is(err, errExternalData) {
		// The rewrite could not be cached (a read-only or full cache
		// dir): it is made in memory instead, as for external data; a
		// model that cannot be rewritten fails there.
		warn(o, fmt.Errorf("rewriting %s in memory, not cached: %w", path, err))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	data, n, err := rewrite(data)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	if n == 0 {
		return e.NewSession(path, plain)
	}
	in, out, err := onnx.ReadGraphIO(data)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	return e.newSession(path, data, ioInfos(in), ioInfos(out), o)
}

// errExternalData marks a model that cannot be moved away from its files.
var errExternalData = errors.New("model uses external data")

// ErrExternalData is returned by RewrittenFile for a model whose weights are
// in external data files (it cannot be moved away from them).
var ErrExternalData = errExternalData

// RewrittenFile returns the path of the rewrite of the model file at path
// in the user cache dir (~/.cache/snapvlm/rewritten/), running rewrite on
// the memory-mapped file first when it is not cached yet. what names the
// rewrite: the cache key covers it and the file's path, size and
// modification time.
func RewrittenFile(path, what string, rewrite func([]byte) ([]byte, error)) (string, error) {
	return rewrittenFile(path, what, func(data []byte) ([]byte, int, error) {
		out, err := rewrite(data)
		return out, 1, err
	})
}

// errNothingToRewrite marks a model the rewrite leaves as it is.
var errNothingToRewrite = errors.New("nothing to rewrite")

// fileContains reports whether the file at path contains sub (the file is
// mapped, not read into memory).
func fileContains(path string, sub []byte) (bool, error) {
	data, unmap, err := onnx.MapFile(path)
	if err != nil {
		return false, err
	}
	defer unmap()
	return bytes.Contains(data, sub), nil
}

// RewrittenDir is where rewritten models are kept:
// <user cache dir>/snapvlm/rewritten (~/.cache/snapvlm/rewritten on Linux).
func RewrittenDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("user cache dir: %w", err)
	}
	return filepath.Join(base, "snapvlm", "rewritten"), nil
}

// ProbeSuffix names the file beside a rewritten model that records how it
// compared with its source when checked (the int8 vision encoder's probe);
// it is listed and removed with the model.
const ProbeSuffix = ".probe.json"

// sourceSuffix names the file beside each rewritten model that records the
// model it was made from and how (two lines: path, rewrite).
const sourceSuffix = ".source"

// rewriteKey names the rewrite of the model file at abs (its path, size and
// modification time) by what.
func rewriteKey(abs string, st os.FileInfo, what string) string {
	key := sha256.Sum256([]byte(fmt.Sprintf("%s|%d|%d|%s", abs, st.Size(), st.ModTime().UnixNano(), what)))
	return hex.EncodeToString(key[:12]) + "-" + filepath.Base(abs)
}

// SourceBase is the file name a model file was rewritten from: the base
// name of path without the keys rewritten copies are prefixed with (one
// per rewrite, see rewriteKey); the base name itself for other files.
func SourceBase(path string) string {
	base := filepath.Base(path)
	for {
		key, rest, ok := strings.Cut(base, "-")
		if !ok || len(key) != 24 || strings.Trim(key, "0123456789abcdef") != "" || rest == "" {
			return base
		}
		base = rest
	}
}

// RewrittenCopy is one rewritten model in RewrittenDir.
type RewrittenCopy struct {
	Path   string // the rewritten model
	Source string // the model it was made from ("" when not recorded)
	Size   int64  // bytes, with its source record
	// Stale is true when the source is gone or has changed since: the copy
	// will never be loaded again.
	Stale bool
}

// ListRewritten lists the rewritten models kept in RewrittenDir.
func ListRewritten() ([]RewrittenCopy, error) {
	dir, err := RewrittenDir()
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []RewrittenCopy
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() && !strings.HasPrefix(name, ".rewrite-") || strings.HasSuffix(name, sourceSuffix) || strings.HasSuffix(name, ProbeSuffix) || strings.HasSuffix(name, DataSuffix) {
			continue
		}
		f := RewrittenCopy{Path: filepath.Join(dir, name), Stale: true}
		if info, err := e.Info(); err == nil && !e.IsDir() {
			f.Size = info.Size()
		}
		if st, err := os.Stat(f.Path + DataSuffix); err == nil {
			f.Size += st.Size()
		}
		if strings.HasPrefix(name, ".rewrite-") {
			out = append(out, f) // left by an interrupted rewrite or save
			continue
		}
		if b, err := os.ReadFile(f.Path + sourceSuffix); err == nil {
			f.Size += int64(len(b))
			src, what, _ := strings.Cut(strings.TrimSuffix(string(b), "\n"), "\n")
			f.Source = src
			if st, err := os.Stat(src); err == nil && rewriteKey(src, st, what) == name {
				f.Stale = false
			}
		}
		out = append(out, f)
	}
	return out, nil
}

// RemoveRewritten deletes the rewritten models for which keep returns false
// (nil keep removes all) and returns what it removed. A rewrite of a
// rewrite (--decoder-int8 on the attention rewrite) whose source is
// removed is offered to keep again, as stale.
func RemoveRewritten(keep func(RewrittenCopy) bool) ([]RewrittenCopy, error) {
	var removed []RewrittenCopy
	var errs []error
	for {
		files, err := ListRewritten()
		if err != nil {
			return removed, errors.Join(append(errs, err)...)
		}
		n := len(removed)
		errs = errs[:0] // only the last pass's failures count
		for _, f := range files {
			if keep != nil && keep(f) {
				continue
			}
			if err := os.RemoveAll(f.Path); err != nil {
				errs = append(errs, err)
				continue
			}
			os.Remove(f.Path + sourceSuffix)
			os.Remove(f.Path + ProbeSuffix)
			os.Remove(f.Path + DataSuffix)
			removed = append(removed, f)
		}
		if keep == nil || len(removed) == n {
			return removed, errors.Join(errs...)
		}
	}
}

// rewrittenFile returns the cached rewrite of the model at path, writing it
// first when missing. The cache key covers the file's path, size and
// modification time and what the rewrite does, so an updated model is
// rewritten again.
func rewrittenFile(path, what string, rewrite func([]byte) ([]byte, int, error)) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", err
	}
	dir, err := RewrittenDir()
	if err != nil {
		return "", err
	}
	dst := filepath.Join(dir, rewriteKey(abs, st, what))
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	data, unmap, err := onnx.MapFile(abs)
	if err != nil {
		return "", err
	}
	defer unmap()
	if ext, err := onnx.UsesExternalData(data); err != nil {
		return "", err
	} else if ext {
		return "", errExternalData
	}
	out, n, err := rewrite(data)
	if err != nil {
		return "", err
	}
	if n == 0 {
		return "", errNothingToRewrite
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".rewrite-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return "", fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	// The source record lets `snapvlm rm` and `snapvlm cache` find copies
	// whose model is gone.
	if err := os.WriteFile(dst+sourceSuffix, []byte(abs+"\n"+what+"\n"), 0o644); err != nil {
		return "", err
	}
	return dst, os.Rename(tmp.Name(), dst)
}

// newSession creates the session from data when given, else from path
// (through the optimised-graph cache when o asks for it).
func (e *Env) newSession(path string, data []byte, inputs, outputs []IOInfo, o SessionOptions) (*Session, error) {
	if data == nil && optimizedCacheable(o) {
		s, err := e.optimizedSession(path, inputs, outputs, o)
		if err == nil {
			return s, nil
		}
		warn(o, fmt.Errorf("optimised-graph cache of %s not used: %w", path, err))
	}
	return e.createSession(path, data, inputs, outputs, o, nil)
}

// createSession creates the session from data when given, else from path;
// more, when not nil, adds to the options.
func (e *Env) createSession(path string, data []byte, inputs, outputs []IOInfo, o SessionOptions, more func(*ortgo.SessionOptions) error) (*Session, error) {
	opts, err := ortgo.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	defer opts.Destroy()
	if err := applyOptions(opts, o); err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	if e.attention != nil {
		if err := addAttention(opts, e.attention); err != nil {
			return nil, fmt.Errorf("loading %s: %w", path, err)
		}
	}
	if more != nil {
		if err := more(opts); err != nil {
			return nil, fmt.Errorf("loading %s: %w", path, err)
		}
	}
	in := make([]string, len(inputs))
	for i, x := range inputs {
		in[i] = x.Name
	}
	out := make([]string, len(outputs))
	for i, x := range outputs {
		out[i] = x.Name
	}
	var s *ortgo.DynamicAdvancedSession
	if data != nil {
		// External data of a model loaded from memory is looked up here.
		if err := opts.AddSessionConfigEntry("session.model_external_initializers_file_folder_path", filepath.Dir(path)); err != nil {
			return nil, fmt.Errorf("loading %s: %w", path, err)
		}
		s, err = ortgo.NewDynamicAdvancedSessionWithONNXData(data, in, out, opts)
	} else {
		s, err = ortgo.NewDynamicAdvancedSession(path, in, out, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	return &Session{path: path, s: s, inputs: inputs, outputs: outputs}, nil
}

func applyOptions(opts *ortgo.SessionOptions, o SessionOptions) error {
	if o.IntraOpThreads < 0 {
		return fmt.Errorf("intra-op threads must be >= 0, got %d", o.IntraOpThreads)
	}
	if err := opts.SetIntraOpNumThreads(o.IntraOpThreads); err != nil {
		return fmt.Errorf("intra-op threads: %w", err)
	}
	if o.NoMemPattern {
		if err := opts.SetMemPattern(false); err != nil {
			return fmt.Errorf("memory pattern: %w", err)
		}
	}
	// One graph runs at a time per call; inter-op parallelism only adds threads.
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return fmt.Errorf("inter-op threads: %w", err)
	}
	lvl, err := parseOptLevel(o.OptLevel)
	if err != nil {
		return err
	}
	if err := opts.SetGraphOptimizationLevel(lvl); err != nil {
		return fmt.Errorf("graph optimisation level: %w", err)
	}
	switch p := strings.ToLower(o.Provider); p {
	case "", "cpu":
	case "cuda":
		cuda, err := ortgo.NewCUDAProviderOptions()
		if err != nil {
			return fmt.Errorf("execution provider CUDA: %w", err)
		}
		defer cuda.Destroy()
		if len(o.ProviderOptions) > 0 {
			if err := cuda.Update(o.ProviderOptions); err != nil {
				return fmt.Errorf("execution provider CUDA options: %w", err)
			}
		}
		if err := opts.AppendExecutionProviderCUDA(cuda); err != nil {
			return fmt.Errorf("execution provider CUDA is not available in this ONNX Runtime library: %w", err)
		}
	case "coreml":
		if err := opts.AppendExecutionProviderCoreMLV2(o.ProviderOptions); err != nil {
			return fmt.Errorf("execution provider CoreML is not available in this ONNX Runtime library: %w", err)
		}
	default:
		if err := opts.AppendExecutionProvider(o.Provider, o.ProviderOptions); err != nil {
			return fmt.Errorf("execution provider %q is not available in this ONNX Runtime library: %w", o.Provider, err)
		}
	}
	return nil
}

func parseOptLevel(l OptLevel) (ortgo.GraphOptimizationLevel, error) {
	switch strings.ToLower(string(l)) {
	case "", "all":
		return ortgo.GraphOptimizationLevelEnableAll, nil
	case "disable", "none", "off":
		return ortgo.GraphOptimizationLevelDisableAll, nil
	case "basic":
		return ortgo.GraphOptimizationLevelEnableBasic, nil
	case "extended":
		return ortgo.GraphOptimizationLevelEnableExtended, nil
	}
	return 0, fmt.Errorf("graph optimisation level %q: want disable, basic, extended or all", l)
}

// Path is the model file.
func (s *Session) Path() string { return s.path }

// Inputs are the graph inputs in declared order (the order Run expects).
func (s *Session) Inputs() []IOInfo { return s.inputs }

// Outputs are the graph outputs in declared order (the order Run expects).
func (s *Session) Outputs() []IOInfo { return s.outputs }

// InputIndex is the position of the named input, or -1.
func (s *Session) InputIndex(name string) int { return indexOf(s.inputs, name) }

// OutputIndex is the position of the named output, or -1.
func (s *Session) OutputIndex(name string) int { return indexOf(s.outputs, name) }

func indexOf(infos []IOInfo, name string) int {
	for i, x := range infos {
		if x.Name == name {
			return i
		}
	}
	return -1
}

// Run runs the graph. inputs and outputs follow Inputs() and Outputs();
// every output must be a pre-allocated tensor of the shape the graph will
// produce, so results land in Go memory without a copy. Cancelling ctx
// terminates the run inside ONNX Runtime.
func (s *Session) Run(ctx context.Context, inputs, outputs []*Tensor) error {
	if len(inputs) != len(s.inputs) || len(outputs) != len(s.outputs) {
		return fmt.Errorf("%s: run with %d inputs and %d outputs, graph has %d and %d",
			s.path, len(inputs), len(outputs), len(s.inputs), len(s.outputs))
	}
	in := make([]ortgo.Value, len(inputs))
	for i, t := range inputs {
		if t == nil || t.v == nil {
			return fmt.Errorf("%s: input %s is missing", s.path, s.inputs[i].Name)
		}
		in[i] = t.v
	}
	out := make([]ortgo.Value, len(outputs))
	for i, t := range outputs {
		if t == nil || t.v == nil {
			return fmt.Errorf("%s: output %s has no pre-allocated tensor", s.path, s.outputs[i].Name)
		}
		out[i] = t.v
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var ro *ortgo.RunOptions
	if ctx.Done() != nil {
		var err error
		ro, err = ortgo.NewRunOptions()
		if err != nil {
			return fmt.Errorf("run options: %w", err)
		}
		defer ro.Destroy()
		terminated := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			ro.Terminate()
			close(terminated)
		})
		// Destroy must not race a Terminate already under way.
		defer func() {
			if !stop() {
				<-terminated
			}
		}()
	}
	if err := s.s.RunWithOptions(in, out, ro); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("running %s: %w", s.path, err)
	}
	return nil
}

// Close releases the session.
func (s *Session) Close() error {
	if s == nil || s.s == nil {
		return nil
	}
	err := s.s.Destroy()
	s.s = nil
	return err
}

// Optimized is the cached optimised graph the session was loaded from, or
// "" when it was loaded (and optimised) from Path.
func (s *Session) Optimized() string { return s.optimized }
