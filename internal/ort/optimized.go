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

	"github.com/snapvlm/snapvlm/internal/onnx"
	ortgo "github.com/yalue/onnxruntime_go"
)

// OptimizedName names the optimised-graph copies in the rewritten-file
// cache key (see rewriteKey); it changes whenever what is saved, or how it
// is loaded, changes.
const OptimizedName = "ort-optimized-v1"

// ortFormatID is the flatbuffers file identifier of an ORT format model
// (bytes 4-8 of the file).
var ortFormatID = []byte("ORTM")

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
// RewrittenDir: the copy is loaded with graph optimisation off and its
// weights used in place from the mapped file; without a usable copy the
// model is loaded as usual and ONNX Runtime saves the graph it optimised
// (ORT format) for next time. A copy that cannot be loaded (truncated,
// corrupt) is removed and reported through o.Warn, and the model is loaded
// as usual. errNotCached means the model cannot be cached (external data)
// and the caller loads it the normal way.
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
		return nil, err
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
		os.Remove(dst)
		os.Remove(dst + sourceSuffix)
	}
	if ext, err := fileUsesExternalData(abs); err != nil {
		return nil, err
	} else if ext {
		return nil, errExternalData
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, ".rewrite-*.ort")
	if err != nil {
		return nil, err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	s, err := e.createSession(path, nil, inputs, outputs, o, func(opts *ortgo.SessionOptions) error {
		if err := opts.AddSessionConfigEntry("session.save_model_format", "ORT"); err != nil {
			return err
		}
		return opts.SetOptimizedModelFilePath(tmp.Name())
	})
	if err != nil {
		return nil, err
	}
	if err := keepOptimized(tmp.Name(), dst, abs, what); err != nil {
		warn(o, fmt.Errorf("saving the optimised graph of %s: %w", path, err))
	}
	return s, nil
}

// keepOptimized moves the saved graph tmp to dst, with its source record.
func keepOptimized(tmp, dst, src, what string) error {
	st, err := os.Stat(tmp)
	if err != nil {
		return err
	}
	if st.Size() < 8 {
		return fmt.Errorf("ONNX Runtime wrote %d bytes to %s", st.Size(), tmp)
	}
	if err := os.WriteFile(dst+sourceSuffix, []byte(src+"\n"+what+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// openOptimized loads the ORT format file dst (the optimised copy of
// path) with graph optimisation off, its initializers used in place from
// the file's read-only mapping, which lives as long as the session.
func (e *Env) openOptimized(path, dst string, inputs, outputs []IOInfo, o SessionOptions) (*Session, error) {
	data, unmap, err := onnx.MapFile(dst)
	if err != nil {
		return nil, err
	}
	if len(data) < 8 || !bytes.Equal(data[4:8], ortFormatID) {
		unmap()
		return nil, errors.New("not an ORT format model")
	}
	o.OptLevel = OptDisable
	s, err := e.createSession(path, data, inputs, outputs, o, func(opts *ortgo.SessionOptions) error {
		for _, kv := range [][2]string{
			{"session.use_ort_model_bytes_directly", "1"},
			{"session.use_ort_model_bytes_for_initializers", "1"},
		} {
			if err := opts.AddSessionConfigEntry(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		unmap()
		return nil, err
	}
	s.release = unmap
	s.optimized = dst
	return s, nil
}

// fileUsesExternalData reports whether the model file keeps its weights in
// other files (the file is mapped, not read).
func fileUsesExternalData(path string) (bool, error) {
	data, unmap, err := onnx.MapFile(path)
	if err != nil {
		return false, err
	}
	defer unmap()
	return onnx.UsesExternalData(data)
}

func warn(o SessionOptions, err error) {
	if o.Warn != nil {
		o.Warn(err)
	}
}
