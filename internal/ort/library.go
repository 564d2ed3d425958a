// Package ort runs ONNX graphs on ONNX Runtime: it finds and loads the shared
// library, checks its version, and wraps sessions and tensors of
// github.com/yalue/onnxruntime_go with what the pipeline needs (named I/O
// metadata, float16 tensors, pre-allocated outputs, cancellation). Its C
// files are snapvlm's own CPU kernels, registered as custom operators in
// AttentionDomain: the decoder's attention (attention.c) and its 4-bit
// matmuls (matmulq4.c).
//
// The ONNX Runtime environment is process-wide in the C library; Open
// initialises it once and returns the same Env afterwards.
package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Version is the ONNX Runtime release that `snapvlm setup` installs.
const Version = "1.30.0"

// MinVersion is the oldest ONNX Runtime accepted: the contrib operators of the
// SmolVLM exports and the C API of the Go binding need it.
const MinVersion = "1.20.0"

// EnvLibPath names the environment variable that points at the library.
const EnvLibPath = "SNAPVLM_ORT_LIB"

// Platform returns the os-arch name used for the library's cache folder and
// in the npm tarball ("linux-x64", "linux-arm64", "darwin-arm64").
func Platform() string {
	arch := runtime.GOARCH
	if arch == "amd64" {
		arch = "x64"
	}
	return runtime.GOOS + "-" + arch
}

// LibraryFileName is the file name of the library on this OS.
func LibraryFileName() string {
	switch runtime.GOOS {
	case "darwin":
		return "libonnxruntime." + Version + ".dylib"
	case "windows":
		return "onnxruntime.dll"
	}
	return "libonnxruntime.so.1"
}

// CacheDir is the folder where `snapvlm setup` installs the library:
// <user cache dir>/snapvlm/onnxruntime/<version>/<platform>.
func CacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("user cache dir: %w", err)
	}
	return filepath.Join(base, "snapvlm", "onnxruntime", Version, Platform()), nil
}

// CachedLibraryPath is where `snapvlm setup` puts the library.
func CachedLibraryPath() (string, error) {
	dir, err := CacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, LibraryFileName()), nil
}

// systemNames are the names handed to the dynamic loader to find a library
// installed in the system's default paths.
func systemNames() []string {
	switch runtime.GOOS {
	case "darwin":
		return []string{"libonnxruntime.dylib"}
	case "windows":
		return []string{"onnxruntime.dll"}
	}
	return []string{"libonnxruntime.so.1", "libonnxruntime.so"}
}

// NotFoundError lists every place FindLibrary looked, or the one it was
// told to use (an explicit path or $SNAPVLM_ORT_LIB) that does not exist.
type NotFoundError struct {
	Looked []string
}

// Error lists the places searched and how to install the library. It does
// not name a program's flags: a command adds its own hint.
func (e *NotFoundError) Error() string {
	return "ONNX Runtime library not found; looked in:\n  " + strings.Join(e.Looked, "\n  ") +
		"\nrun 'snapvlm setup' to install ONNX Runtime " + Version +
		", or give the library file's path (the library path option, or $" + EnvLibPath + ")"
}

// FindLibrary returns the library to load, in this order: explicit (a
// program's library path option), $SNAPVLM_ORT_LIB, the user cache dir where
// setup installs it, the system's default library paths. An explicit path or
// $SNAPVLM_ORT_LIB that does not exist is an error, not a reason to fall back:
// the user asked for that file.
func FindLibrary(explicit string) (string, error) {
	return findLibrary(explicit, searcher{
		getenv:    os.Getenv,
		cachePath: CachedLibraryPath,
		probe: func(name string) error {
			_, err := libraryVersion(name)
			return err
		},
	})
}

// searcher is what findLibrary consults; tests replace the loader probe,
// which would otherwise find a library this process already loaded.
type searcher struct {
	getenv    func(string) string
	cachePath func() (string, error)
	probe     func(name string) error
}

func findLibrary(explicit string, s searcher) (string, error) {
	for _, c := range []struct{ path, what string }{
		{explicit, "the library path given"},
		{s.getenv(EnvLibPath), "$" + EnvLibPath},
	} {
		if c.path == "" {
			continue
		}
		if _, err := os.Stat(c.path); err != nil {
			return "", &NotFoundError{Looked: []string{fmt.Sprintf("%s (from %s): %v", c.path, c.what, err)}}
		}
		return c.path, nil
	}
	var looked []string
	looked = append(looked, "the library path option (not given)", "$"+EnvLibPath+" (not set)")
	if p, err := s.cachePath(); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		looked = append(looked, p+" (missing)")
	}
	for _, name := range systemNames() {
		if s.probe(name) == nil {
			return name, nil
		}
		looked = append(looked, "system library path: "+name+" (not found)")
	}
	return "", &NotFoundError{Looked: looked}
}

// checkVersion refuses libraries older than MinVersion.
func checkVersion(path, v string) error {
	if compareVersions(v, MinVersion) < 0 {
		return fmt.Errorf("ONNX Runtime %s at %s is too old: snapvlm needs %s or newer (run 'snapvlm setup' to install %s)",
			v, path, MinVersion, Version)
	}
	return nil
}

// compareVersions compares dotted numeric versions ("1.30.0" vs "1.20").
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(strings.TrimFunc(pa[i], func(r rune) bool { return r < '0' || r > '9' }))
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// errAlreadyOpen is returned when Open is asked for a different library than
// the one the process already loaded.
var errAlreadyOpen = errors.New("ONNX Runtime is already initialised in this process with another library")
