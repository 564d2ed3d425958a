package onnxbuild

import (
	"encoding/binary"

	"github.com/snapvlm/snapvlm/internal/float16"
	"github.com/snapvlm/snapvlm/internal/onnx"
)

// Float16Tensor returns a float16 tensor holding data converted from
// float32 (round to nearest even).
func Float16Tensor(name string, dims []int64, data []float32) *onnx.Tensor {
	raw := make([]byte, 2*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint16(raw[2*i:], float16.FromFloat32(v))
	}
	return &onnx.Tensor{Name: name, Type: onnx.Float16, Dims: dims, Raw: raw}
}

// Int32Tensor returns an int32 tensor holding data.
func Int32Tensor(name string, dims []int64, data []int32) *onnx.Tensor {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(v))
	}
	return &onnx.Tensor{Name: name, Type: onnx.Int32, Dims: dims, Raw: raw}
}

// Uint8Tensor returns a uint8 tensor holding data (not copied).
func Uint8Tensor(name string, dims []int64, data []byte) *onnx.Tensor {
	return &onnx.Tensor{Name: name, Type: onnx.Uint8, Dims: dims, Raw: data}
}

// BoolTensor returns a bool tensor holding data.
func BoolTensor(name string, dims []int64, data []bool) *onnx.Tensor {
	raw := make([]byte, len(data))
	for i, v := range data {
		if v {
			raw[i] = 1
		}
	}
	return &onnx.Tensor{Name: name, Type: onnx.Bool, Dims: dims, Raw: raw}
}
