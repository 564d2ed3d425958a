package onnx

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// ReadGraphIO reads the inputs and outputs of a serialized ONNX model
// without decoding its weights: length-delimited fields are skipped by their
// length, so only a few pages of a memory-mapped file are touched. Inputs
// that are also initializers (old IR versions list them) are left out, as
// ONNX Runtime does. A dimension that is neither fixed nor named has Value -1.
func ReadGraphIO(model []byte) (inputs, outputs []ValueInfo, err error) {
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

func parseValueInfo(b []byte) (ValueInfo, error) {
	var info ValueInfo
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
				return nil // not a tensor type; Type stays 0
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

func parseTensorType(b []byte, info *ValueInfo) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == tensorTypeElem && typ == protowire.VarintType:
			info.Type = DataType(x)
		case num == tensorTypeShape && typ == protowire.BytesType:
			return eachField(v, func(num protowire.Number, typ protowire.Type, dim []byte, _ uint64) error {
				if num != shapeDim || typ != protowire.BytesType {
					return nil
				}
				d := Dim{Value: -1}
				err := eachField(dim, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
					switch {
					case num == dimValue && typ == protowire.VarintType:
						d.Value = int64(x)
					case num == dimParam && typ == protowire.BytesType:
						d.Param = string(v)
					}
					return nil
				})
				info.Shape = append(info.Shape, d)
				return err
			})
		}
		return nil
	})
}

// UsesExternalData reports whether any initializer of the main graph keeps
// its data in an external file (data_location EXTERNAL), which is found
// relative to the model file's directory.
func UsesExternalData(model []byte) (bool, error) {
	graph, err := findField(model, modelGraph)
	if err != nil {
		return false, fmt.Errorf("reading ONNX model: %w", err)
	}
	external := false
	err = eachRaw(graph, func(num protowire.Number, typ protowire.Type, _, t []byte) error {
		if num != graphInitializer || typ != protowire.BytesType || external {
			return nil
		}
		return eachRaw(t, func(num protowire.Number, typ protowire.Type, raw, _ []byte) error {
			if num == tensorDataLocation && typ == protowire.VarintType {
				v, _ := protowire.ConsumeVarint(raw[protowire.SizeTag(num):])
				external = external || v == dataLocationExt
			}
			return nil
		})
	})
	if err != nil {
		return false, fmt.Errorf("reading ONNX model: %w", err)
	}
	return external, nil
}

// ReadOpTypes counts the nodes of the main graph by operator, keyed
// "domain:op" for operators outside the default ONNX domain ("ai.onnx" is
// the default domain too). Weights are skipped, not decoded.
func ReadOpTypes(model []byte) (map[string]int, error) {
	graph, err := findField(model, modelGraph)
	if err != nil {
		return nil, fmt.Errorf("reading ONNX model: %w", err)
	}
	ops := map[string]int{}
	err = eachRaw(graph, func(num protowire.Number, typ protowire.Type, _, node []byte) error {
		if num != graphNode || typ != protowire.BytesType {
			return nil
		}
		var op, dom string
		err := eachRaw(node, func(num protowire.Number, typ protowire.Type, _, v []byte) error {
			switch {
			case num == nodeOpType && typ == protowire.BytesType:
				op = string(v)
			case num == nodeDomain && typ == protowire.BytesType:
				dom = string(v)
			}
			return nil
		})
		if dom != "" && dom != "ai.onnx" {
			op = dom + ":" + op
		}
		ops[op]++
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading ONNX graph: %w", err)
	}
	return ops, nil
}
