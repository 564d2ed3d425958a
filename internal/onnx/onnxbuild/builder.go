// Package onnxbuild assembles ONNX graphs node by node and writes whole
// models (Marshal, WriteFile: tensors with raw data inline or as ONNX
// external data, initializers filled lazily so that graphs of hundreds of
// millions of weights go straight to the file), for the random-weight test
// models (internal/testmodel). Only development tools use it; package onnx
// defines the types and reads and rewrites models.
package onnxbuild

import (
	"fmt"
	"strconv"

	"github.com/snapvlm/snapvlm/internal/onnx"
)

// Builder assembles a Graph. Values are referred to by name (string); every
// helper returns the names of the values it creates, generated unique
// within the graph. The first error (such as a duplicate name) is kept and
// returned by Graph, so building code need not check each call.
type Builder struct {
	// Prefix is prepended to generated node and value names, for example
	// "/model/layers.0/attn/", so graphs read like exported ones.
	Prefix string

	g     onnx.Graph
	names map[string]bool
	count map[string]int
	err   error
}

// New starts an empty graph.
func New(name string) *Builder {
	return &Builder{g: onnx.Graph{Name: name}, names: map[string]bool{}, count: map[string]int{}}
}

func (b *Builder) fail(format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf(format, args...)
	}
}

// claim registers an explicit name and reports a duplicate.
func (b *Builder) claim(name string) string {
	if name == "" {
		b.fail("onnx builder: empty value name")
	}
	if b.names[name] {
		b.fail("onnx builder: name %q used twice", name)
	}
	b.names[name] = true
	return name
}

// Unique returns a new name made of Prefix, base and a counter.
func (b *Builder) Unique(base string) string {
	for {
		b.count[b.Prefix+base]++
		n := b.count[b.Prefix+base]
		name := b.Prefix + base
		if n > 1 {
			name += "_" + strconv.Itoa(n-1)
		}
		if !b.names[name] {
			b.names[name] = true
			return name
		}
	}
}

// Input declares a graph input and returns its name.
func (b *Builder) Input(name string, t onnx.DataType, shape ...onnx.Dim) string {
	b.g.Inputs = append(b.g.Inputs, onnx.ValueInfo{Name: b.claim(name), Type: t, Shape: shape})
	return name
}

// Output declares the value named name as a graph output.
func (b *Builder) Output(name string, t onnx.DataType, shape ...onnx.Dim) {
	if !b.names[name] {
		b.fail("onnx builder: output %q is not a value of the graph", name)
	}
	b.g.Outputs = append(b.g.Outputs, onnx.ValueInfo{Name: name, Type: t, Shape: shape})
}

// OutputAs exposes value under the output name name (through an Identity
// node) and declares it as a graph output.
func (b *Builder) OutputAs(value, name string, t onnx.DataType, shape ...onnx.Dim) {
	b.NodeTo("", "Identity", []string{value}, []string{name})
	b.Output(name, t, shape...)
}

// Init adds an initializer. An empty t.Name gets a unique one. It returns
// the name.
func (b *Builder) Init(t *onnx.Tensor) string {
	if t.Name == "" {
		t.Name = b.Unique("const")
	} else {
		b.claim(t.Name)
	}
	b.g.Initializers = append(b.g.Initializers, t)
	return t.Name
}

// ConstInt64 adds a 1-D int64 initializer.
func (b *Builder) ConstInt64(v ...int64) string {
	return b.Init(onnx.Int64Tensor("", []int64{int64(len(v))}, v))
}

// ScalarInt64 adds a 0-D int64 initializer.
func (b *Builder) ScalarInt64(v int64) string {
	return b.Init(onnx.Int64Tensor("", nil, []int64{v}))
}

// ScalarFloat adds a 0-D float32 initializer.
func (b *Builder) ScalarFloat(v float32) string {
	return b.Init(onnx.FloatTensor("", nil, []float32{v}))
}

// NodeTo adds a node with explicit output names (claimed as values).
// Empty output names mark unused optional outputs. An empty node name is
// generated from the op type.
func (b *Builder) NodeTo(domain, op string, inputs, outputs []string, attrs ...onnx.Attr) {
	b.NamedNode("", domain, op, inputs, outputs, attrs...)
}

// NamedNode is NodeTo with an explicit node name.
func (b *Builder) NamedNode(name, domain, op string, inputs, outputs []string, attrs ...onnx.Attr) {
	if name == "" {
		name = b.Unique(op)
	} else {
		b.claim(name)
	}
	b.addNode(name, domain, op, inputs, outputs, attrs)
}

// addNode appends a node whose name is already claimed.
func (b *Builder) addNode(name, domain, op string, inputs, outputs []string, attrs []onnx.Attr) {
	for _, o := range outputs {
		if o != "" {
			b.claim(o)
		}
	}
	for _, in := range inputs {
		if in != "" && !b.names[in] {
			b.fail("onnx builder: node %q (%s) reads unknown value %q", name, op, in)
		}
	}
	b.g.Nodes = append(b.g.Nodes, onnx.Node{Name: name, OpType: op, Domain: domain, Inputs: inputs, Outputs: outputs, Attrs: attrs})
}

// Op adds a default-domain node with nOut generated outputs.
func (b *Builder) Op(op string, inputs []string, nOut int, attrs ...onnx.Attr) []string {
	return b.DomainOp("", op, inputs, nOut, attrs...)
}

// DomainOp adds a node of the given domain with nOut generated outputs.
func (b *Builder) DomainOp(domain, op string, inputs []string, nOut int, attrs ...onnx.Attr) []string {
	name := b.Unique(op)
	outs := make([]string, nOut)
	for i := range outs {
		outs[i] = b.Unique(op + "/output_" + strconv.Itoa(i))
	}
	b.addNode(name, domain, op, inputs, nil, attrs)
	// The outputs were claimed by Unique already.
	b.g.Nodes[len(b.g.Nodes)-1].Outputs = outs
	return outs
}

// Op1 adds a default-domain node with one output and returns it.
func (b *Builder) Op1(op string, inputs []string, attrs ...onnx.Attr) string {
	return b.Op(op, inputs, 1, attrs...)[0]
}

// MS1 adds a com.microsoft node with one output and returns it.
func (b *Builder) MS1(op string, inputs []string, attrs ...onnx.Attr) string {
	return b.DomainOp(onnx.MicrosoftDomain, op, inputs, 1, attrs...)[0]
}

// Add is x + y.
func (b *Builder) Add(x, y string) string { return b.Op1("Add", []string{x, y}) }

// Sub is x - y.
func (b *Builder) Sub(x, y string) string { return b.Op1("Sub", []string{x, y}) }

// Mul is x * y.
func (b *Builder) Mul(x, y string) string { return b.Op1("Mul", []string{x, y}) }

// Div is x / y.
func (b *Builder) Div(x, y string) string { return b.Op1("Div", []string{x, y}) }

// MatMul is x @ y.
func (b *Builder) MatMul(x, y string) string { return b.Op1("MatMul", []string{x, y}) }

// Reshape reshapes x to shape (0 copies the input dimension, -1 infers).
func (b *Builder) Reshape(x string, shape ...int64) string {
	return b.Op1("Reshape", []string{x, b.ConstInt64(shape...)})
}

// Transpose permutes the axes of x.
func (b *Builder) Transpose(x string, perm ...int64) string {
	return b.Op1("Transpose", []string{x}, onnx.Ints("perm", perm...))
}

// Concat joins xs along axis.
func (b *Builder) Concat(axis int64, xs ...string) string {
	return b.Op1("Concat", xs, onnx.Int("axis", axis))
}

// Gather takes entries of data at indices along axis.
func (b *Builder) Gather(data, indices string, axis int64) string {
	return b.Op1("Gather", []string{data, indices}, onnx.Int("axis", axis))
}

// Softmax normalises x along axis.
func (b *Builder) Softmax(x string, axis int64) string {
	return b.Op1("Softmax", []string{x}, onnx.Int("axis", axis))
}

// Cast converts x to type to.
func (b *Builder) Cast(x string, to onnx.DataType) string {
	return b.Op1("Cast", []string{x}, onnx.Int("to", int64(to)))
}

// Shape returns dims [start, end) of x's shape as a 1-D int64 tensor.
func (b *Builder) Shape(x string, start, end int64) string {
	return b.Op1("Shape", []string{x}, onnx.Int("start", start), onnx.Int("end", end))
}

// Unsqueeze inserts axes of size 1.
func (b *Builder) Unsqueeze(x string, axes ...int64) string {
	return b.Op1("Unsqueeze", []string{x, b.ConstInt64(axes...)})
}

// Squeeze removes axes of size 1.
func (b *Builder) Squeeze(x string, axes ...int64) string {
	return b.Op1("Squeeze", []string{x, b.ConstInt64(axes...)})
}

// Sigmoid is 1/(1+exp(-x)).
func (b *Builder) Sigmoid(x string) string { return b.Op1("Sigmoid", []string{x}) }

// Where selects x where cond holds, else y.
func (b *Builder) Where(cond, x, y string) string { return b.Op1("Where", []string{cond, x, y}) }

// Graph returns the built graph or the first error met while building.
func (b *Builder) Graph() (*onnx.Graph, error) {
	if b.err != nil {
		return nil, b.err
	}
	if len(b.g.Outputs) == 0 {
		return nil, fmt.Errorf("onnx builder: graph %q has no outputs", b.g.Name)
	}
	g := b.g
	return &g, nil
}

// SetLastOutputs sets the outputs of the most recently added node, claiming
// those names not yet used, so a node can write to a name chosen after it
// was added.
func (b *Builder) SetLastOutputs(outputs ...string) {
	if len(b.g.Nodes) == 0 {
		b.fail("onnx builder: SetLastOutputs without a node")
		return
	}
	for _, o := range outputs {
		if o != "" && !b.names[o] {
			b.claim(o)
		}
	}
	b.g.Nodes[len(b.g.Nodes)-1].Outputs = outputs
}
