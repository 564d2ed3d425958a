package ort

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// IOInfo describes one graph input or output.
type IOInfo struct {
	Name  string
	DType DType
	// Shape has -1 for a symbolic or unknown dimension.
	Shape []int64
	// DimNames has the symbolic name of each dimension ("" where fixed).
	DimNames []string
}

// ONNX protobuf field numbers (onnx.proto) read by graphIO.
const (
	modelGraph       = 7
	graphInitializer = 5
	graphInput       = 11
	graphOutput      = 12
	tensorName       = 8
	valueInfoName    = 1
	valueInfoType    = 2
	typeTensor       = 1
	tensorTypeElem   = 1
	tensorTypeShape  = 2
	shapeDim         = 1
	dimValue         = 1
	dimParam         = 2
	onnxElemFloat    = 1
	onnxElemUint8    = 2
	onnxElemInt8     = 3
	onnxElemInt32    = 6
	onnxElemInt64    = 7
	onnxElemBool     = 9
	onnxElemFloat16  = 10
)

// graphIO reads the inputs and outputs of a serialized ONNX model without
// decoding its weights: length-delimited fields are skipped by their length,
// so only a few pages of a memory-mapped file are touched. Inputs that are
// also initializers (old IR versions list them) are left out, as ONNX Runtime
// does.
func graphIO(model []byte) (inputs, outputs []IOInfo, err error) {
	graph, err := findField(model, modelGraph)
	if err != nil {
		return nil, nil, fmt.Errorf("reading ONNX model: %w", err)
	}
	if graph == nil {
		return nil, nil, errors.New("reading ONNX model: no graph")
	}
	inits := map[string]bool{}
	for b := graph; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, nil, errors.New("reading ONNX graph: bad tag")
		}
		b = b[n:]
		if typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return nil, nil, errors.New("reading ONNX graph: bad field")
			}
			b = b[m:]
			continue
		}
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return nil, nil, errors.New("reading ONNX graph: truncated field")
		}
		b = b[m:]
		switch num {
		case graphInitializer:
			if name, err := findField(v, tensorName); err == nil && name != nil {
				inits[string(name)] = true
			}
		case graphInput, graphOutput:
			info, err := parseValueInfo(v)
			if err != nil {
				return nil, nil, err
			}
			if num == graphInput {
				inputs = append(inputs, info)
			} else {
				outputs = append(outputs, info)
			}
		}
	}
	kept := inputs[:0]
	for _, in := range inputs {
		if !inits[in.Name] {
			kept = append(kept, in)
		}
	}
	return kept, outputs, nil
}

// findField returns the bytes of the first length-delimited field num.
func findField(b []byte, num protowire.Number) ([]byte, error) {
	for len(b) > 0 {
		f, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, errors.New("bad tag")
		}
		b = b[n:]
		if f == num && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return nil, errors.New("truncated field")
			}
			return v, nil
		}
		m := protowire.ConsumeFieldValue(f, typ, b)
		if m < 0 {
			return nil, errors.New("bad field")
		}
		b = b[m:]
	}
	return nil, nil
}

// eachField calls fn for every field of a message.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errors.New("bad tag")
		}
		b = b[n:]
		var v []byte
		var x uint64
		var m int
		switch typ {
		case protowire.BytesType:
			v, m = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, m = protowire.ConsumeVarint(b)
		default:
			m = protowire.ConsumeFieldValue(num, typ, b)
		}
		if m < 0 {
			return errors.New("bad field")
		}
		b = b[m:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

func parseValueInfo(b []byte) (IOInfo, error) {
	var info IOInfo
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == valueInfoName && typ == protowire.BytesType:
			info.Name = string(v)
		case num == valueInfoType && typ == protowire.BytesType:
			tensor, err := findField(v, typeTensor)
			if err != nil {
				return err
			}
			if tensor == nil {
				return nil // not a tensor type; DType stays Unknown
			}
			return parseTensorType(tensor, &info)
		}
		return nil
	})
	if err != nil {
		return info, fmt.Errorf("reading ONNX value info %q: %w", info.Name, err)
	}
	return info, nil
}

func parseTensorType(b []byte, info *IOInfo) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == tensorTypeElem && typ == protowire.VarintType:
			info.DType = dtypeFromONNX(int(x))
		case num == tensorTypeShape && typ == protowire.BytesType:
			return eachField(v, func(num protowire.Number, typ protowire.Type, dim []byte, _ uint64) error {
				if num != shapeDim || typ != protowire.BytesType {
					return nil
				}
				size, name := int64(-1), ""
				err := eachField(dim, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
					switch {
					case num == dimValue && typ == protowire.VarintType:
						size = int64(x)
					case num == dimParam && typ == protowire.BytesType:
						name = string(v)
					}
					return nil
				})
				info.Shape = append(info.Shape, size)
				info.DimNames = append(info.DimNames, name)
				return err
			})
		}
		return nil
	})
}

func dtypeFromONNX(t int) DType {
	switch t {
	case onnxElemFloat:
		return Float32
	case onnxElemFloat16:
		return Float16
	case onnxElemInt64:
		return Int64
	case onnxElemInt32:
		return Int32
	case onnxElemBool:
		return Bool
	case onnxElemUint8:
		return Uint8
	case onnxElemInt8:
		return Int8
	}
	return Unknown
}
