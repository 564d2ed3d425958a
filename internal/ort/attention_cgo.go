//go:build !windows

package ort

/*
#cgo CFLAGS: -O3 -Wno-psabi
#cgo LDFLAGS: -ldl -lm
#include <stdlib.h>
#include "attention.h"
#include "matmulq4.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	ortgo "github.com/yalue/onnxruntime_go"
)

// AttentionDomain is the operator domain of snapvlm's own attention kernel:
// a GroupQueryAttention node in this domain has the inputs, outputs and
// attributes of com.microsoft's (float32 only, no rotary, no local window)
// and runs snapvlm's kernel (attention.c) instead of ONNX Runtime's.
const AttentionDomain = "ai.snapvlm"

// attentionDomain makes the custom-op domain of the library at path.
func attentionDomain(path string) (unsafe.Pointer, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var msg [512]C.char
	d := C.snapvlm_attention_domain(cpath, &msg[0], C.size_t(len(msg)))
	if d == nil {
		return nil, errors.New(C.GoString(&msg[0]))
	}
	return d, nil
}

// addAttention registers the attention domain with a session's options.
func addAttention(opts *ortgo.SessionOptions, domain unsafe.Pointer) error {
	var msg [512]C.char
	if C.snapvlm_attention_add(sessionOptionsPtr(opts), domain, &msg[0], C.size_t(len(msg))) != 0 {
		return fmt.Errorf("registering snapvlm's attention kernel: %s", C.GoString(&msg[0]))
	}
	return nil
}

// sessionOptionsPtr is the OrtSessionOptions* inside the binding's
// SessionOptions, whose only field it is (TestSessionOptionsLayout checks
// this against the binding in use): the binding has no call to add a
// custom-op domain.
func sessionOptionsPtr(opts *ortgo.SessionOptions) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(opts))
}

// attentionDomainC is the domain name attention.c registers.
const attentionDomainC = C.SNAPVLM_ATTENTION_DOMAIN

// Attention16Op is the name, in AttentionDomain, of the attention kernel
// with a float16 cache: GroupQueryAttention's contract with past_key,
// past_value and both present outputs float16 (query, key, value and
// output stay float32). New rows are rounded to float16 as they are
// appended, as a float16-cache export's Cast does; the sums are float32.
const Attention16Op = C.SNAPVLM_ATTENTION16_OP

// AttentionHalf reports whether AttentionDomain has Attention16Op (the C
// compiler had _Float16).
func AttentionHalf() bool { return C.snapvlm_attention_half() != 0 }

// MatMulQ4Op is the name, in AttentionDomain, of snapvlm's 4-bit matmul
// (matmulq4.c): com.microsoft MatMulNBits's inputs and K and N attributes
// for bits 4, block_size 32 and no zero points, float32, with the
// activations quantized to int8 per row and block of 32 (as accuracy_level
// 4 does), summed in one order whatever the number of rows, so that each
// row's result is the one it would get alone.
const MatMulQ4Op = C.SNAPVLM_MATMUL_Q4_OP

// MatMulQ4Vector reports whether this CPU runs the 4-bit matmul's vector
// path (AVX-512 with VNNI: Cascade Lake, Ice Lake, Zen 4 and later).
// Elsewhere the operator runs a portable loop, correct but far slower than
// ONNX Runtime's MatMulNBits.
func MatMulQ4Vector() bool { return C.snapvlm_matmul_q4_vector() != 0 }

// MatMulQ4Tiles reports whether this process runs the 4-bit matmul's AMX
// path too, which computes many rows at once (prefills) about 3x faster
// than ONNX Runtime's accuracy_level 4 kernel. The paths give the same
// bits.
func MatMulQ4Tiles() bool { return C.snapvlm_matmul_q4_tiles() != 0 }
