package onnx

import (
	"encoding/binary"
	"math"

	"github.com/snapvlm/snapvlm/internal/float16"
)

func float32bits(f float32) uint32 { return math.Float32bits(f) }

// FloatTensor returns a float32 tensor holding data.
func FloatTensor(name string, dims []int64, data []float32) *Tensor {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return &Tensor{Name: name, Type: Float, Dims: dims, Raw: raw}
}

// Float16Tensor returns a float16 tensor holding data converted from
// float32 (round to nearest even).
func Float16Tensor(name string, dims []int64, data []float32) *Tensor {
	raw := make([]byte, 2*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint16(raw[2*i:], float16.FromFloat32(v))
	}
	return &Tensor{Name: name, Type: Float16, Dims: dims, Raw: raw}
}

// Int64Tensor returns an int64 tensor holding data.
func Int64Tensor(name string, dims []int64, data []int64) *Tensor {
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return &Tensor{Name: name, Type: Int64, Dims: dims, Raw: raw}
}

// Int32Tensor returns an int32 tensor holding data.
func Int32Tensor(name string, dims []int64, data []int32) *Tensor {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(v))
	}
	return &Tensor{Name: name, Type: Int32, Dims: dims, Raw: raw}
}

// Uint8Tensor returns a uint8 tensor holding data (not copied).
func Uint8Tensor(name string, dims []int64, data []byte) *Tensor {
	return &Tensor{Name: name, Type: Uint8, Dims: dims, Raw: data}
}

// BoolTensor returns a bool tensor holding data.
func BoolTensor(name string, dims []int64, data []bool) *Tensor {
	raw := make([]byte, len(data))
	for i, v := range data {
		if v {
			raw[i] = 1
		}
	}
	return &Tensor{Name: name, Type: Bool, Dims: dims, Raw: raw}
}
