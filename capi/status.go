package main

/*
#include "capi.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime/debug"
	"unsafe"

	"github.com/snapvlm/snapvlm"
	"github.com/snapvlm/snapvlm/internal/hub"
	"github.com/snapvlm/snapvlm/internal/ort"
)

// Status codes of snapvlm.h.
const (
	statusOK              = 0
	statusInvalidArgument = 1
	statusNotFound        = 2
	statusModel           = 3
	statusRuntime         = 4
	statusImage           = 5
	statusCancelled       = 6
	statusNetwork         = 7
	statusChecksum        = 8
	statusInternal        = 9
	statusIO              = 10
)

// codedError is an error with the status it is reported as.
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// withCode marks err (when not nil) to be reported as code, unless it
// already carries a code.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	var ce *codedError
	if errors.As(err, &ce) {
		return err
	}
	return &codedError{code, err}
}

func invalid(format string, args ...any) error {
	return &codedError{statusInvalidArgument, fmt.Errorf(format, args...)}
}

// statusOf picks the status an error is reported as.
func statusOf(err error) int {
	var ce *codedError
	var nf *ort.NotFoundError
	var me *snapvlm.ModelError
	switch {
	case err == nil:
		return statusOK
	case errors.As(err, &ce):
		return ce.code
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return statusCancelled
	case errors.Is(err, snapvlm.ErrClosed), errors.Is(err, snapvlm.ErrPromptTooLong):
		return statusInvalidArgument
	case errors.Is(err, snapvlm.ErrImage):
		return statusImage
	case errors.Is(err, snapvlm.ErrRuntimeMissing):
		return statusRuntime
	case errors.Is(err, hub.ErrChecksum):
		return statusChecksum
	case errors.Is(err, hub.ErrNotCached), errors.Is(err, hub.ErrRepoNotFound), errors.Is(err, hub.ErrRevisionNotFound),
		errors.Is(err, hub.ErrFileNotFound), errors.Is(err, hub.ErrVariantMissing), errors.Is(err, snapvlm.ErrVariantMissing),
		errors.Is(err, fs.ErrNotExist):
		return statusNotFound
	case errors.Is(err, hub.ErrOffline), errors.Is(err, hub.ErrUnavailable), errors.Is(err, hub.ErrGated), errors.Is(err, hub.ErrUnauthorized):
		return statusNetwork
	case errors.As(err, &nf):
		return statusRuntime
	case errors.Is(err, fs.ErrPermission):
		return statusIO
	case errors.As(err, &me):
		return statusModel
	}
	// What is left fails while running: ONNX Runtime errors.
	return statusRuntime
}

// report sets this thread's last error from err and returns its status.
// It runs on the caller's thread: cgo keeps an exported function's
// goroutine on the thread that called it.
func report(err error) C.int {
	code := statusOf(err)
	if err == nil {
		C.snapvlm_set_last_error(nil)
		return statusOK
	}
	msg := C.CString(err.Error())
	defer C.free(unsafe.Pointer(msg))
	C.snapvlm_set_last_error(msg)
	return C.int(code)
}

// guard turns a panic in an export into SNAPVLM_ERR_INTERNAL; use as
// `defer guard(&rc)`.
func guard(rc *C.int) {
	if r := recover(); r != nil {
		*rc = report(&codedError{statusInternal, fmt.Errorf("internal error (please report): %v\n%s", r, debug.Stack())})
	}
}

// guardVoid recovers a panic in an export that returns nothing.
func guardVoid() {
	if r := recover(); r != nil {
		report(&codedError{statusInternal, fmt.Errorf("internal error (please report): %v", r)})
	}
}
