package ort

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	ortgo "github.com/yalue/onnxruntime_go"
)

// OptimizedName names the optimised-graph copies in the rewritten-file
// cache key (see rewriteKey); it changes whenever what is saved, or how it
// is loaded, changes.
const OptimizedName = "ort-optimized-v2"

// optimizedCacheable reports whether a session with options o may be
// saved and loaded as an optimised graph: only on the CPU provider (other
// providers may claim nodes when the graph is saved that they compile
// differently when it is loaded) and at a level that optimises something.
func optimizedCacheable(o SessionOptions) bool {
	if !o.OptimizedCache {
		return false
	}
	switch strings.ToLower(o.Provider) {
	case "", "cpu":
	default:
		return false
	}
	lvl, err := parseOptLevel(o.OptLevel)
	return err == nil && lvl != ortgo.GraphOptimizationLevelDisableAll
}

// optimizedWhat is the part of the cache key besides the model file: the
// ONNX Runtime version that optimised, the level, and the machine. At the
// "all" level ONNX Runtime may use layout and kernel choices specific to
// the CPU (its documentation: a model saved above "extended" is valid only
// on the hardware it was optimised on), so the CPU's identity is part of
// the key at every level.
func (e *Env) optimizedWhat(o SessionOptions) string {
	lvl := strings.ToLower(string(o.OptLevel))
	if lvl == "" {
		lvl = "all"
	}
	return fmt.Sprintf("%s|onnxruntime %s|level %s|%s/%s|cpu %s", OptimizedName, e.version, lvl, runtime.GOOS, runtime.GOARCH, cpuIdentity())
}

// cpuIdentity is a short hash of what identifies this machine's CPU to
// ONNX Runtime's kernels: the model name and feature flags of the first
// processor in /proc/cpuinfo (empty where there is none: the key then
// relies on GOOS/GOARCH alone).
func cpuIdentity() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	first, _, _ := bytes.Cut(b, []byte("\n\n"))
	var keep []string
	for _, line := range strings.Split(string(first), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "vendor_id", "model name", "flags", "Features", "CPU implementer", "CPU part", "isa", "uarch":
			keep = append(keep, strings.TrimSpace(k)+"="+strings.TrimSpace(v))
		}
	}
	sum := sha256.Sum256([]byte(strings.Join(keep, "\n")))
	return hex.EncodeToString(sum[:8])
}

// optimizedSession opens the model at path through its optimised copy in
// RewrittenDir: the graph ONNX Runtime optimised, saved as ONNX with its
// weights in a data file beside it (DataSuffix), loaded with graph
// optimisation off. ONNX Runtime maps the data file rather than reading
// it (the 500M model's 189 MB embedding table loads in milliseconds), and
// the weights it prepacks for its kernels do not stay resident (peak RSS
// after loading that model: 0.30 GB, 0.65-0.72 GB uncached). Without
// a usable copy the model is loaded as usual and ONNX Runtime saves the
// graph it optimised for next time. A copy that cannot be loaded
// (truncated, corrupt) is removed and reported through o.Warn, and the
// model is loaded as usual.
func (e *Env) optimizedSession(path string, inputs, outputs []IOInfo, o SessionOptions) (*Session, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	dir, err := RewrittenDir()
	if err != nil {
		warn(o, fmt.Errorf("not caching the optimised graph of %s: %w", path, err))
		return e.createSession(path, nil, inputs, outputs, o, nil)
	}
	what := e.optimizedWhat(o)
	dst := filepath.Join(dir, rewriteKey(abs, st, what))
	if _, err := os.Stat(dst); err == nil {
		s, err := e.openOptimized(path, dst, inputs, outputs, o)
		if err == nil {
			if o.FromCache != nil {
				o.FromCache(dst)
			}
			return s, nil
		}
		warn(o, fmt.Errorf("cached optimised graph %s of %s not usable, optimising again: %w", dst, path, err))
		for _, f := range []string{dst, dst + DataSuffix, dst + sourceSuffix} {
			os.Remove(f)
		}
	}
	// ONNX Runtime writes the graph and its data file (named in the graph,
	// so under its final name) into a directory of this save's own; both
	// are moved into place when complete, the data file first. A cache dir
	// that cannot be written (a read-only home, a full disk) costs the
	// saved copy, not the load.
	tmp, err := saveDir(dir)
	if err != nil {
		warn(o, fmt.Errorf("not saving the optimised graph of %s: %w", path, err))
		return e.createSession(path, nil, inputs, outputs, o, nil)
	}
	defer os.RemoveAll(tmp)
	saved := filepath.Join(tmp, filepath.Base(dst))
	s, err := e.createSession(path, nil, inputs, outputs, o, func(opts *ortgo.SessionOptions) error {
		for _, kv := range [][2]string{
			{"session.optimized_model_external_initializers_file_name", filepath.Base(dst) + DataSuffix},
			{"session.optimized_model_external_initializers_min_size_in_bytes", "1024"},
		} {
			if err := opts.AddSessionConfigEntry(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return opts.SetOptimizedModelFilePath(saved)
	})
	if err != nil {
		return nil, err
	}
	if err := keepOptimized(saved, dst, abs, what); err != nil {
		warn(o, fmt.Errorf("saving the optimised graph of %s: %w", path, err))
	}
	return s, nil
}

// saveDir makes a directory of its own under dir for one save.
func saveDir(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(dir, ".rewrite-")
}

// DataSuffix names the file beside an optimised copy that holds its
// weights (ONNX external data); it is listed and removed with the copy.
const DataSuffix = ".data"

// keepOptimized moves the saved graph and its data file into place as dst,
// with its source record.
func keepOptimized(saved, dst, src, what string) error {
	st, err := os.Stat(saved)
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		return fmt.Errorf("ONNX Runtime wrote an empty %s", saved)
	}
	if err := os.WriteFile(dst+sourceSuffix, []byte(src+"\n"+what+"\n"), 0o644); err != nil {
		return err
	}
	// A graph whose weights are all small has no data file.
	if err := os.Rename(saved+DataSuffix, dst+DataSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Rename(saved, dst)
}

// openOptimized loads the optimised copy dst of path with graph
// optimisation off. The graph (small: the weights are in the data file) is
// handed to ONNX Runtime from memory, which finds the data file in dst's
// directory; created from a path, the binding would keep a copy of that
// path for good (onnxruntime_go v1.27.0 never frees it).
func (e *Env) openOptimized(path, dst string, inputs, outputs []IOInfo, o SessionOptions) (*Session, error) {
	o.OptLevel = OptDisable
	graph, err := os.ReadFile(dst)
	if err != nil {
		return nil, err
	}
	s, err := e.createSession(dst, graph, inputs, outputs, o, nil)
	if err != nil {
		return nil, err
	}
	s.path, s.optimized = path, dst
	return s, nil
}

func warn(o SessionOptions, err error) {
	if o.Warn != nil {
		o.Warn(err)
	}
}
