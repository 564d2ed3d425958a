package onnx

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// SetNodeAttrInt returns a copy of a serialized model in which every node of
// the main graph with the given domain and op type has the integer attribute
// name set to v (replacing the attribute if present), and the number of
// nodes changed. Weights are copied as they are, never decoded.
func SetNodeAttrInt(model []byte, domain, opType, name string, v int64) ([]byte, int, error) {
	out := make([]byte, 0, len(model)+1024)
	changed := 0
	err := eachRaw(model, func(num protowire.Number, typ protowire.Type, raw, val []byte) error {
		if num != modelGraph || typ != protowire.BytesType {
			out = append(out, raw...)
			return nil
		}
		graph := make([]byte, 0, len(val)+1024)
		err := eachRaw(val, func(num protowire.Number, typ protowire.Type, raw, node []byte) error {
			if num != graphNode || typ != protowire.BytesType {
				graph = append(graph, raw...)
				return nil
			}
			n, ok, err := setAttr(node, domain, opType, name, v)
			if err != nil {
				return err
			}
			if ok {
				changed++
			}
			graph = protowire.AppendTag(graph, graphNode, protowire.BytesType)
			graph = protowire.AppendBytes(graph, n)
			return nil
		})
		if err != nil {
			return err
		}
		out = protowire.AppendTag(out, modelGraph, protowire.BytesType)
		out = protowire.AppendBytes(out, graph)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("rewriting ONNX model: %w", err)
	}
	return out, changed, nil
}

// setAttr rewrites one NodeProto when it matches.
func setAttr(node []byte, domain, opType, name string, v int64) ([]byte, bool, error) {
	var op, dom string
	err := eachRaw(node, func(num protowire.Number, typ protowire.Type, _, val []byte) error {
		switch {
		case num == nodeOpType && typ == protowire.BytesType:
			op = string(val)
		case num == nodeDomain && typ == protowire.BytesType:
			dom = string(val)
		}
		return nil
	})
	if err != nil || op != opType || dom != domain {
		return node, false, err
	}
	out := make([]byte, 0, len(node)+32)
	err = eachRaw(node, func(num protowire.Number, typ protowire.Type, raw, val []byte) error {
		if num == nodeAttribute && typ == protowire.BytesType {
			if n, _ := findField(val, attrName); string(n) == name {
				return nil // replaced below
			}
		}
		out = append(out, raw...)
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	var attr []byte
	attr = protowire.AppendTag(attr, attrName, protowire.BytesType)
	attr = protowire.AppendString(attr, name)
	attr = protowire.AppendTag(attr, attrI, protowire.VarintType)
	attr = protowire.AppendVarint(attr, uint64(v))
	attr = protowire.AppendTag(attr, attrType, protowire.VarintType)
	attr = protowire.AppendVarint(attr, uint64(AttrInt))
	out = protowire.AppendTag(out, nodeAttribute, protowire.BytesType)
	out = protowire.AppendBytes(out, attr)
	return out, true, nil
}

// eachRaw calls fn with every field of a message: its raw bytes (tag
// included) and, for length-delimited fields, the value.
func eachRaw(b []byte, fn func(num protowire.Number, typ protowire.Type, raw, val []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errors.New("bad tag")
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return errors.New("bad field")
		}
		var val []byte
		if typ == protowire.BytesType {
			val, _ = protowire.ConsumeBytes(b[n:])
		}
		if err := fn(num, typ, b[:n+m], val); err != nil {
			return err
		}
		b = b[n+m:]
	}
	return nil
}

// withGraph returns a copy of a serialized model with its GraphProto
// replaced by graph.
func withGraph(model, graph []byte) ([]byte, error) {
	out := make([]byte, 0, len(model)+len(graph)/8)
	err := eachRaw(model, func(num protowire.Number, typ protowire.Type, raw, _ []byte) error {
		if num == modelGraph && typ == protowire.BytesType {
			out = AppendMessage(out, modelGraph, graph)
		} else {
			out = append(out, raw...)
		}
		return nil
	})
	return out, err
}

// appendTensors appends ts to a GraphProto as initializers.
func appendTensors(graph []byte, ts []*Tensor) ([]byte, error) {
	for _, t := range ts {
		b, err := encodeTensor(t)
		if err != nil {
			return nil, err
		}
		graph = AppendMessage(graph, graphInitializer, b)
	}
	return graph, nil
}

// importOpset returns model importing the operator domain (version 1), as
// it is when it already does.
func importOpset(model []byte, domain string) []byte {
	found := false
	_ = eachRaw(model, func(num protowire.Number, typ protowire.Type, _, v []byte) error {
		if num != modelOpsetImport || typ != protowire.BytesType {
			return nil
		}
		if d, _ := findField(v, opsetDomain); string(d) == domain {
			found = true
		}
		return nil
	})
	if found {
		return model
	}
	var imp []byte
	imp = AppendString(imp, opsetDomain, domain)
	imp = AppendVarint(imp, opsetVersion, 1)
	return AppendMessage(model, modelOpsetImport, imp)
}
