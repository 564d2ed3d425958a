//go:build !windows

package ort

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>

// The first two members of OrtApiBase are stable across every ONNX Runtime
// release, so the version can be read without the full headers.
typedef struct {
	const void* (*GetApi)(uint32_t version);
	const char* (*GetVersionString)(void);
} snapvlmApiBase;

typedef snapvlmApiBase* (*snapvlmGetApiBase)(void);

static const char* snapvlm_lib_version(const char* path, char** err) {
	void* h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
	if (!h) { *err = dlerror(); return NULL; }
	void* fn = dlsym(h, "OrtGetApiBase");
	if (!fn) { *err = dlerror(); return NULL; }
	snapvlmApiBase* base = ((snapvlmGetApiBase)fn)();
	if (!base || !base->GetVersionString) { *err = "OrtGetApiBase returned no version"; return NULL; }
	// The handle stays open: the binding opens the same library next and the
	// version string is static storage inside it.
	return base->GetVersionString();
}
*/
import "C"

import (
	"errors"
	"unsafe"
)

// libraryVersion opens the library at path (or a bare name resolved by the
// dynamic loader) and returns the ONNX Runtime version it reports.
func libraryVersion(path string) (string, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var cerr *C.char
	v := C.snapvlm_lib_version(cpath, &cerr)
	if v == nil {
		msg := "unknown error"
		if cerr != nil {
			msg = C.GoString(cerr)
		}
		return "", errors.New(msg)
	}
	return C.GoString(v), nil
}
