//go:build cgo

package imageproc

/*
#cgo LDFLAGS: -lwebp
#include <stdlib.h>
#include <webp/decode.h>
*/
import "C"

import (
	"errors"
	"unsafe"
)

// webpExact reports whether WebP decoding matches Pillow bit for bit.
const webpExact = true

// decodeWebP decodes a still WebP through libwebp, the library Pillow uses,
// with its default (fancy) upsampling; alpha is dropped, not composited.
func decodeWebP(data []byte) (*RGB, error) {
	if len(data) == 0 {
		return nil, errors.New("empty WebP")
	}
	var w, h C.int
	p := C.WebPDecodeRGB((*C.uint8_t)(unsafe.Pointer(&data[0])), C.size_t(len(data)), &w, &h)
	if p == nil {
		return nil, errors.New("libwebp cannot decode it (truncated, corrupt or animated)")
	}
	defer C.WebPFree(unsafe.Pointer(p))
	n := int(w) * int(h) * 3
	return &RGB{W: int(w), H: int(h), Pix: C.GoBytes(unsafe.Pointer(p), C.int(n))}, nil
}
