package ort

import (
	"fmt"
	"os"
	"sync"
	"unsafe"

	ortgo "github.com/yalue/onnxruntime_go"
)

// Options selects the library to load.
type Options struct {
	// LibPath is an explicit library file (the --ort-lib flag); empty means
	// search as FindLibrary does.
	LibPath string
}

// Env is the loaded ONNX Runtime. There is one per process because the C
// library keeps one environment; it is safe for concurrent use.
type Env struct {
	path    string
	version string
	// attention is snapvlm's attention kernel domain, registered with every
	// session (nil when the library cannot take it; attentionErr says why).
	attention    unsafe.Pointer
	attentionErr error
}

// process holds the one Env of this process. The C library's environment is
// process-wide state, so this mirrors it rather than pretending otherwise.
var process struct {
	sync.Mutex
	env *Env
}

// Open finds, version-checks and initialises ONNX Runtime. Later calls return
// the same Env; asking for a different library after the first load is an
// error.
func Open(opts Options) (*Env, error) {
	process.Lock()
	defer process.Unlock()
	if process.env != nil {
		if opts.LibPath != "" && opts.LibPath != process.env.path {
			return nil, fmt.Errorf("%w (%s loaded, %s asked)", errAlreadyOpen, process.env.path, opts.LibPath)
		}
		return process.env, nil
	}
	path, err := FindLibrary(opts.LibPath)
	if err != nil {
		return nil, err
	}
	v, err := libraryVersion(path)
	if err != nil {
		return nil, fmt.Errorf("loading ONNX Runtime library %s: %w", path, err)
	}
	if err := checkVersion(path, v); err != nil {
		return nil, err
	}
	if err := disableTelemetry(); err != nil {
		return nil, err
	}
	ortgo.SetSharedLibraryPath(path)
	if err := ortgo.InitializeEnvironment(ortgo.WithLogLevelError()); err != nil {
		return nil, fmt.Errorf("initialising ONNX Runtime %s from %s: %w", v, path, err)
	}
	e := &Env{path: path, version: v}
	e.attention, e.attentionErr = attentionDomain(path)
	process.env = e
	return e, nil
}

// Version is the version string the loaded library reports.
func (e *Env) Version() string { return e.version }

// Attention reports whether sessions run GroupQueryAttention nodes of
// AttentionDomain, and if not, why.
func (e *Env) Attention() (bool, error) { return e.attention != nil, e.attentionErr }

// LibraryPath is the file (or loader name) the library was loaded from.
func (e *Env) LibraryPath() string { return e.path }

// EnvTelemetry is the variable ONNX Runtime reads when it creates its
// environment; any of "1", "true" or "yes" keeps its telemetry off.
const EnvTelemetry = "ORT_DISABLE_TELEMETRY"

// disableTelemetry turns ONNX Runtime's telemetry off unless the user has set
// EnvTelemetry themselves. Since 1.30 the Linux library starts a telemetry
// client when the environment is created: it writes a database under
// ~/.cache/Microsoft, may upload to Microsoft, and matches the whole of
// /proc/self/cmdline against a std::regex whose recursion needs about 200
// bytes of C stack per character, so a command line of ~40 KB (a long
// question) overflows the 8 MB thread stack inside CreateOrtEnv. The library
// reads the setting with getenv, so the process environment is the only
// place it can be given; it must be set before the first Open.
func disableTelemetry() error {
	if _, set := os.LookupEnv(EnvTelemetry); set {
		return nil
	}
	if err := os.Setenv(EnvTelemetry, "1"); err != nil {
		return fmt.Errorf("disabling ONNX Runtime telemetry (%s): %w", EnvTelemetry, err)
	}
	return nil
}
