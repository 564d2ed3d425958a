// Package onnx reads and rewrites ONNX models (ModelProto, in the
// protobuf wire format) without generated protobuf code: the graph inputs
// and outputs and the operator types of an export, and the rewrites the
// engine makes at load (GroupQueryAttention on the cached key/value heads,
// int8 MatMul weights, a node attribute), which re-encode only the nodes
// and tensors they change.
//
// It also defines the model types (Model, Graph, Node, Tensor, ...) and the
// encoders of one node, value info or tensor header; writing a whole model
// (inline or with ONNX external data, lazily filled initializers) is
// package onnxbuild's, which only the test-model generator uses.
package onnx

import "fmt"

// DataType is TensorProto.DataType.
type DataType int32

// Element types (values from onnx.proto).
const (
	Float   DataType = 1
	Uint8   DataType = 2
	Int8    DataType = 3
	Int32   DataType = 6
	Int64   DataType = 7
	Bool    DataType = 9
	Float16 DataType = 10
)

// Size returns the size of one element in bytes, or 0 for an unknown type.
func (d DataType) Size() int {
	switch d {
	case Float, Int32:
		return 4
	case Uint8, Int8, Bool:
		return 1
	case Int64:
		return 8
	case Float16:
		return 2
	}
	return 0
}

// String returns the onnx.proto name of the type.
func (d DataType) String() string {
	switch d {
	case Float:
		return "FLOAT"
	case Uint8:
		return "UINT8"
	case Int8:
		return "INT8"
	case Int32:
		return "INT32"
	case Int64:
		return "INT64"
	case Bool:
		return "BOOL"
	case Float16:
		return "FLOAT16"
	}
	return fmt.Sprintf("DataType(%d)", int32(d))
}

// Dim is one dimension of a value's shape: a fixed size or a symbolic name.
type Dim struct {
	Value int64  // used when Param is empty
	Param string // symbolic name such as "batch_size"
}

// N is a fixed dimension.
func N(v int) Dim { return Dim{Value: int64(v)} }

// S is a symbolic dimension.
func S(name string) Dim { return Dim{Param: name} }

// ValueInfo is a typed graph input or output (ValueInfoProto with a tensor
// TypeProto).
type ValueInfo struct {
	Name  string
	Type  DataType
	Shape []Dim
}

// Tensor is a TensorProto. Its data is Raw, or, when Raw is nil and the
// tensor is not empty, whatever Fill writes into a buffer of Bytes() bytes
// (little-endian, row-major, as raw_data).
type Tensor struct {
	Name string
	Type DataType
	Dims []int64
	Raw  []byte
	// Fill produces the data lazily; dst has exactly Bytes() bytes and is
	// not zeroed.
	Fill func(dst []byte)
}

// Elements returns the number of elements.
func (t *Tensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// Bytes returns the size of the raw data in bytes.
func (t *Tensor) Bytes() int64 { return t.Elements() * int64(t.Type.Size()) }

// AttrType is AttributeProto.AttributeType.
type AttrType int32

// Attribute types used here (values from onnx.proto).
const (
	AttrFloat   AttrType = 1
	AttrInt     AttrType = 2
	AttrString  AttrType = 3
	AttrTensor  AttrType = 4
	AttrFloats  AttrType = 6
	AttrInts    AttrType = 7
	AttrStrings AttrType = 8
)

// Attr is a node attribute. Exactly the field that Type names is used.
type Attr struct {
	Name    string
	Type    AttrType
	F       float32
	I       int64
	S       string
	T       *Tensor
	Floats  []float32
	Ints    []int64
	Strings []string
}

// Int is an int attribute.
func Int(name string, v int64) Attr { return Attr{Name: name, Type: AttrInt, I: v} }

// Ints is an ints attribute.
func Ints(name string, v ...int64) Attr { return Attr{Name: name, Type: AttrInts, Ints: v} }

// Flt is a float attribute.
func Flt(name string, v float32) Attr { return Attr{Name: name, Type: AttrFloat, F: v} }

// Floats is a floats attribute.
func Floats(name string, v ...float32) Attr { return Attr{Name: name, Type: AttrFloats, Floats: v} }

// Str is a string attribute.
func Str(name, v string) Attr { return Attr{Name: name, Type: AttrString, S: v} }

// TensorAttr is a tensor attribute (for example Constant's value).
func TensorAttr(name string, t *Tensor) Attr { return Attr{Name: name, Type: AttrTensor, T: t} }

// Node is a NodeProto.
type Node struct {
	Name    string
	OpType  string
	Domain  string // "" is the default ONNX domain
	Inputs  []string
	Outputs []string
	Attrs   []Attr
}

// Graph is a GraphProto.
type Graph struct {
	Name         string
	Nodes        []Node
	Initializers []*Tensor
	Inputs       []ValueInfo
	Outputs      []ValueInfo
}

// OpsetID is one entry of ModelProto.opset_import.
type OpsetID struct {
	Domain  string
	Version int64
}

// Model is a ModelProto.
type Model struct {
	IRVersion       int64
	Opsets          []OpsetID
	ProducerName    string
	ProducerVersion string
	Graph           *Graph
	// Metadata becomes metadata_props, in the order given.
	Metadata [][2]string
}

// Default versions: IR 9 with ONNX opset 17 (LayerNormalization) and
// com.microsoft 1, which ONNX Runtime 1.16+ loads.
const (
	DefaultIRVersion = 9
	DefaultOpset     = 17
	MicrosoftDomain  = "com.microsoft"
	DefaultMSVersion = 1
	defaultProducer  = "snapvlm"
)

// NewModel wraps g in a ModelProto with the default IR version and opsets.
func NewModel(g *Graph) *Model {
	return &Model{
		IRVersion:    DefaultIRVersion,
		Opsets:       []OpsetID{{"", DefaultOpset}, {MicrosoftDomain, DefaultMSVersion}},
		ProducerName: defaultProducer,
		Graph:        g,
	}
}
