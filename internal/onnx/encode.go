package onnx

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers from onnx.proto (those the readers and rewrites use; the
// whole-model writer, onnxbuild, has its own).
const (
	modelGraph       = 7
	modelOpsetImport = 8

	opsetDomain  = 1
	opsetVersion = 2

	graphNode        = 1
	graphInitializer = 5
	graphInput       = 11
	graphOutput      = 12

	nodeInput     = 1
	nodeOutput    = 2
	nodeName      = 3
	nodeOpType    = 4
	nodeAttribute = 5
	nodeDomain    = 7

	attrName    = 1
	attrF       = 2
	attrI       = 3
	attrS       = 4
	attrT       = 5
	attrFloats  = 7
	attrInts    = 8
	attrStrings = 9
	attrType    = 20

	tensorDims         = 1
	tensorDataType     = 2
	tensorName         = 8
	tensorRawData      = 9
	tensorExternalData = 13
	tensorDataLocation = 14

	valueInfoName = 1
	valueInfoType = 2

	typeTensor      = 1
	tensorTypeElem  = 1
	tensorTypeShape = 2
	shapeDim        = 1
	dimValue        = 1
	dimParam        = 2
	dataLocationExt = 1
)

// AppendString appends a string field (wire type bytes).
func AppendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// AppendVarint appends a varint field.
func AppendVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// AppendMessage appends an embedded message field.
func AppendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

// EncodeTensorHeader encodes the TensorProto fields of t that precede its
// data: dims, data type and name.
func EncodeTensorHeader(t *Tensor) []byte {
	var b []byte
	for _, d := range t.Dims {
		b = AppendVarint(b, tensorDims, uint64(d))
	}
	b = AppendVarint(b, tensorDataType, uint64(t.Type))
	if t.Name != "" {
		b = AppendString(b, tensorName, t.Name)
	}
	return b
}

// TensorData returns t's raw data, filling buf (grown as needed) when the
// tensor is lazy.
func TensorData(t *Tensor, buf *[]byte) ([]byte, error) {
	n := t.Bytes()
	if t.Type.Size() == 0 {
		return nil, fmt.Errorf("tensor %q: unsupported data type %v", t.Name, t.Type)
	}
	if t.Raw != nil || n == 0 {
		if int64(len(t.Raw)) != n {
			return nil, fmt.Errorf("tensor %q: raw data has %d bytes, dims %v of %v need %d", t.Name, len(t.Raw), t.Dims, t.Type, n)
		}
		return t.Raw, nil
	}
	if t.Fill == nil {
		return nil, fmt.Errorf("tensor %q: neither Raw nor Fill set", t.Name)
	}
	if int64(cap(*buf)) < n {
		*buf = make([]byte, n)
	}
	d := (*buf)[:n]
	t.Fill(d)
	return d, nil
}

// encodeTensor encodes a complete tensor with inline raw data.
func encodeTensor(t *Tensor) ([]byte, error) {
	var buf []byte
	data, err := TensorData(t, &buf)
	if err != nil {
		return nil, err
	}
	b := EncodeTensorHeader(t)
	if len(data) > 0 {
		b = protowire.AppendTag(b, tensorRawData, protowire.BytesType)
		b = protowire.AppendBytes(b, data)
	}
	return b, nil
}

func encodeAttr(a Attr) ([]byte, error) {
	var b []byte
	b = AppendString(b, attrName, a.Name)
	switch a.Type {
	case AttrFloat:
		b = protowire.AppendTag(b, attrF, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, float32bits(a.F))
	case AttrInt:
		b = AppendVarint(b, attrI, uint64(a.I))
	case AttrString:
		b = AppendString(b, attrS, a.S)
	case AttrTensor:
		if a.T == nil {
			return nil, fmt.Errorf("attribute %q: nil tensor", a.Name)
		}
		t, err := encodeTensor(a.T)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", a.Name, err)
		}
		b = AppendMessage(b, attrT, t)
	case AttrFloats:
		for _, f := range a.Floats {
			b = protowire.AppendTag(b, attrFloats, protowire.Fixed32Type)
			b = protowire.AppendFixed32(b, float32bits(f))
		}
	case AttrInts:
		for _, v := range a.Ints {
			b = AppendVarint(b, attrInts, uint64(v))
		}
	case AttrStrings:
		for _, s := range a.Strings {
			b = AppendString(b, attrStrings, s)
		}
	default:
		return nil, fmt.Errorf("attribute %q: unsupported type %d", a.Name, a.Type)
	}
	b = AppendVarint(b, attrType, uint64(a.Type))
	return b, nil
}

// EncodeNode encodes a NodeProto.
func EncodeNode(n Node) ([]byte, error) {
	var b []byte
	for _, in := range n.Inputs {
		b = AppendString(b, nodeInput, in)
	}
	for _, out := range n.Outputs {
		b = AppendString(b, nodeOutput, out)
	}
	if n.Name != "" {
		b = AppendString(b, nodeName, n.Name)
	}
	b = AppendString(b, nodeOpType, n.OpType)
	for _, a := range n.Attrs {
		ab, err := encodeAttr(a)
		if err != nil {
			return nil, fmt.Errorf("node %q (%s): %w", n.Name, n.OpType, err)
		}
		b = AppendMessage(b, nodeAttribute, ab)
	}
	if n.Domain != "" {
		b = AppendString(b, nodeDomain, n.Domain)
	}
	return b, nil
}

// EncodeValueInfo encodes a ValueInfoProto of a tensor.
func EncodeValueInfo(v ValueInfo) []byte {
	var shape []byte
	for _, d := range v.Shape {
		var db []byte
		if d.Param != "" {
			db = AppendString(db, dimParam, d.Param)
		} else if d.Value >= 0 { // negative: an unknown dimension, written empty
			db = AppendVarint(db, dimValue, uint64(d.Value))
		}
		shape = AppendMessage(shape, shapeDim, db)
	}
	var tt []byte
	tt = AppendVarint(tt, tensorTypeElem, uint64(v.Type))
	tt = AppendMessage(tt, tensorTypeShape, shape)
	var typ []byte
	typ = AppendMessage(typ, typeTensor, tt)
	var b []byte
	b = AppendString(b, valueInfoName, v.Name)
	b = AppendMessage(b, valueInfoType, typ)
	return b
}
