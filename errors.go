package snapvlm

import (
	"errors"
	"fmt"
	"strings"

	"github.com/snapvlm/snapvlm/internal/ort"
)

// Errors a caller can branch on with errors.Is. The messages name the
// problem (file, field, counts); they do not name command-line flags, which
// a program adds where it has them.
var (
	// ErrRuntimeMissing: the ONNX Runtime shared library was not found
	// (Options.ORTLib, $SNAPVLM_ORT_LIB, the user cache where `snapvlm setup`
	// installs it, the system's library paths).
	ErrRuntimeMissing = errors.New("ONNX Runtime library not found")
	// ErrVariantMissing: the model directory lacks the asked file variant
	// (Options.Dtype and the per-graph dtypes) of a graph. The error is also
	// a *ModelError.
	ErrVariantMissing = errors.New("variant missing")
	// ErrImage: an image could not be read, decoded or preprocessed, or is
	// larger than the limits allow. The message names the image.
	ErrImage = errors.New("image")
)

// ModelError reports a model directory that cannot be used: a missing or
// malformed file, or a field whose value disagrees with another file. File
// and Field are empty where they do not apply.
type ModelError struct {
	Dir   string // the model directory
	File  string // the file at fault, relative to Dir where possible
	Field string // the JSON field or graph input/output at fault
	Err   error  // what is wrong
}

// Error reads "model DIR: FILE: FIELD: problem", leaving out what is empty
// or already part of the problem's own text.
func (e *ModelError) Error() string {
	msg := e.Err.Error()
	if strings.HasPrefix(msg, "model "+e.Dir) {
		return msg
	}
	var b strings.Builder
	fmt.Fprintf(&b, "model %s: ", e.Dir)
	if e.File != "" && !strings.Contains(msg, e.File) {
		b.WriteString(e.File + ": ")
	}
	if e.Field != "" && !strings.Contains(msg, e.Field) {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(msg)
	return b.String()
}

// Unwrap returns the underlying error.
func (e *ModelError) Unwrap() error { return e.Err }

// PromptTooLongError reports a prompt that does not fit the model's context
// (max_position_embeddings); errors.Is(err, ErrPromptTooLong) is true. It is returned before any image is run through
// the vision encoder. Images cost the most tokens: fewer images,
// GenerateOptions.NoSplit (one tile per image) or a smaller
// GenerateOptions.ImageSize make the prompt shorter.
type PromptTooLongError struct {
	Tokens      int // prompt tokens
	ImageTokens int // of which image tokens
	Limit       int // the model's positions
}

// Is makes errors.Is(err, ErrPromptTooLong) true.
func (e *PromptTooLongError) Is(target error) bool { return target == ErrPromptTooLong }

// Error gives the counts and what makes the prompt shorter.
func (e *PromptTooLongError) Error() string {
	return fmt.Sprintf("the prompt has %d tokens (%d of them for images), more than the model's %d positions (max_position_embeddings); use fewer images, Request.NoSplit or a smaller Request.ImageSize",
		e.Tokens, e.ImageTokens, e.Limit)
}

// imageError is an ErrImage about one image, reading "image NAME: problem".
type imageError struct {
	name string
	err  error
}

func imageErr(name string, err error) error { return &imageError{name, err} }

func (e *imageError) Error() string {
	msg := e.err.Error()
	if prefix := "image " + e.name + ":"; strings.HasPrefix(msg, prefix) {
		return msg
	}
	return "image " + e.name + ": " + msg
}

func (e *imageError) Unwrap() []error { return []error{ErrImage, e.err} }

// runtimeError is an ErrRuntimeMissing reading as ONNX Runtime's own
// message (which already says the library was not found, and where it
// looked).
type runtimeError struct{ err error }

func (e *runtimeError) Error() string   { return e.err.Error() }
func (e *runtimeError) Unwrap() []error { return []error{ErrRuntimeMissing, e.err} }

// openRuntime opens ONNX Runtime from lib ("" searches as `snapvlm setup`
// installs it); a library that is not found is an ErrRuntimeMissing.
func openRuntime(lib string) (*ort.Env, error) {
	env, err := ort.Open(ort.Options{LibPath: lib})
	var nf *ort.NotFoundError
	if errors.As(err, &nf) {
		return nil, &runtimeError{err}
	}
	return env, err
}
