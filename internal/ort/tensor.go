package ort

import (
	"fmt"
	"unsafe"

	ortgo "github.com/yalue/onnxruntime_go"
)

// DType is a tensor element type.
type DType int

// Element types the SmolVLM graphs use.
const (
	Unknown DType = iota
	Float32
	Float16
	Int64
	Int32
	Bool
	Uint8
	Int8
)

// String is the ONNX-style name of the type.
func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Float16:
		return "float16"
	case Int64:
		return "int64"
	case Int32:
		return "int32"
	case Bool:
		return "bool"
	case Uint8:
		return "uint8"
	case Int8:
		return "int8"
	}
	return "unknown"
}

// Size is the element size in bytes.
func (d DType) Size() int {
	switch d {
	case Float32, Int32:
		return 4
	case Float16:
		return 2
	case Int64:
		return 8
	case Bool, Uint8, Int8:
		return 1
	}
	return 0
}

// Tensor is an ONNX Runtime value whose memory belongs to Go. Inputs are
// read from it; an output tensor passed to Session.Run is written in place,
// so outputs need no copy and are never allocated by ONNX Runtime.
type Tensor struct {
	v     ortgo.Value
	dtype DType
	shape []int64
}

// Close releases the ONNX Runtime value (not the Go memory behind it).
func (t *Tensor) Close() {
	if t != nil && t.v != nil {
		t.v.Destroy()
		t.v = nil
	}
}

// DType is the element type.
func (t *Tensor) DType() DType { return t.dtype }

// Shape is the tensor's shape.
func (t *Tensor) Shape() []int64 { return t.shape }

func elements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

func checkLen(shape []int64, n int, what string) error {
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("%s tensor: negative dimension in shape %v", what, shape)
		}
	}
	if need := elements(shape); int64(n) < need {
		return fmt.Errorf("%s tensor of shape %v needs %d elements, got %d", what, shape, need, n)
	}
	return nil
}

func newTyped[T ortgo.TensorData](shape []int64, data []T, dt DType) (*Tensor, error) {
	if err := checkLen(shape, len(data), dt.String()); err != nil {
		return nil, err
	}
	var v ortgo.Value
	var err error
	if len(shape) == 0 {
		// The binding's NewTensor refuses a shape with no dimensions;
		// its scalar holds a copy of the one value.
		v, err = ortgo.NewScalar(data[0])
	} else {
		v, err = ortgo.NewTensor(ortgo.NewShape(shape...), data)
	}
	if err != nil {
		return nil, fmt.Errorf("%s tensor %v: %w", dt, shape, err)
	}
	return &Tensor{v: v, dtype: dt, shape: append([]int64(nil), shape...)}, nil
}

// NewFloat32 wraps data (not copied) as a float32 tensor. Zero-length
// dimensions are allowed.
func NewFloat32(shape []int64, data []float32) (*Tensor, error) {
	return newTyped(shape, data, Float32)
}

// NewInt64 wraps data (not copied) as an int64 tensor; a scalar (shape
// []) holds a copy of data[0].
func NewInt64(shape []int64, data []int64) (*Tensor, error) {
	return newTyped(shape, data, Int64)
}

// NewBool wraps data (not copied) as a bool tensor.
func NewBool(shape []int64, data []bool) (*Tensor, error) {
	return newTyped(shape, data, Bool)
}

// zeroByte backs zero-element float16 tensors: the binding refuses an empty
// byte slice for custom-typed tensors, and ONNX Runtime only needs the buffer
// to be at least as large as the (empty) shape.
var zeroByte = [2]byte{}

// NewFloat16 wraps data (IEEE binary16 bit patterns, not copied) as a
// float16 tensor. Zero-length dimensions are allowed.
func NewFloat16(shape []int64, data []uint16) (*Tensor, error) {
	if err := checkLen(shape, len(data), "float16"); err != nil {
		return nil, err
	}
	n := elements(shape)
	var buf []byte
	if n == 0 {
		buf = zeroByte[:]
	} else {
		buf = unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), 2*n)
	}
	v, err := ortgo.NewCustomDataTensor(ortgo.NewShape(shape...), buf, ortgo.TensorElementDataTypeFloat16)
	if err != nil {
		return nil, fmt.Errorf("float16 tensor %v: %w", shape, err)
	}
	return &Tensor{v: v, dtype: Float16, shape: append([]int64(nil), shape...)}, nil
}

// Buffer is Go memory of one element type that tensors of growing shapes can
// be cut from without reallocation (the KV cache, logits). Exactly one of the
// slices is used.
type Buffer struct {
	DType DType
	F32   []float32
	F16   []uint16
}

// NewBuffer allocates room for n elements of dt (float32 or float16).
func NewBuffer(dt DType, n int) (*Buffer, error) {
	switch dt {
	case Float32:
		return &Buffer{DType: dt, F32: make([]float32, n)}, nil
	case Float16:
		return &Buffer{DType: dt, F16: make([]uint16, n)}, nil
	}
	return nil, fmt.Errorf("buffer of %s is not supported (float32 or float16)", dt)
}

// Len is the capacity in elements.
func (b *Buffer) Len() int {
	if b.DType == Float16 {
		return len(b.F16)
	}
	return len(b.F32)
}

// Tensor makes a tensor of the given shape over the start of the buffer.
func (b *Buffer) Tensor(shape []int64) (*Tensor, error) { return b.TensorAt(shape, 0) }

// TensorAt makes a tensor of the given shape over the buffer from element
// off.
func (b *Buffer) TensorAt(shape []int64, off int) (*Tensor, error) {
	if b.DType == Float16 {
		return NewFloat16(shape, b.F16[off:])
	}
	return NewFloat32(shape, b.F32[off:])
}

// Copy copies n elements of src from element from to b from element off
// (overlapping ranges as the builtin copy); both buffers have one type.
func (b *Buffer) Copy(off int, src *Buffer, from, n int) {
	if b.DType == Float16 {
		copy(b.F16[off:off+n], src.F16[from:from+n])
		return
	}
	copy(b.F32[off:off+n], src.F32[from:from+n])
}
