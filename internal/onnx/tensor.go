package onnx

import (
	"encoding/binary"
	"math"
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

// Int64Tensor returns an int64 tensor holding data.
func Int64Tensor(name string, dims []int64, data []int64) *Tensor {
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return &Tensor{Name: name, Type: Int64, Dims: dims, Raw: raw}
}
