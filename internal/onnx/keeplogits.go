package onnx

import (
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// KeepInput is the scalar int64 input KeepLastLogits adds, named as in
// transformers: how many of the last positions get logits.
const KeepInput = "num_logits_to_keep"

// KeepLastLogits returns a copy of a serialized decoder whose language-model
// head runs only on the last KeepInput positions of each run, so that a
// prefill of n tokens computes one row of logits instead of n (the exports
// compute all n, each vocab wide, and a generator reads the last). The head
// is found from the output named logits back through casts, scale
// multiplications and bias additions to the matmul that reads a weight
// (MatMul, MatMulNBits, MatMulBnb4, MatMulInteger and their fused forms);
// the rows of that matmul's activation input are sliced, after any
// run-time quantization of the whole input, so the rows kept are the bits
// the original computes. A graph that already has the input, or whose head
// is not of that shape, is an error naming what was found.
func KeepLastLogits(model []byte) ([]byte, error) {
	g, graph, err := indexGraph(model)
	if err != nil {
		return nil, fmt.Errorf("keeping the last logits: %w", err)
	}
	if g.opset < 13 {
		return nil, fmt.Errorf("keeping the last logits: ONNX opset %d, want at least 13", g.opset)
	}
	if g.inputs[KeepInput] {
		return nil, fmt.Errorf("keeping the last logits: the graph already has input %s", KeepInput)
	}
	const logits = "logits"
	if !slices.Contains(g.outputs, logits) {
		return nil, fmt.Errorf("keeping the last logits: no graph output %q", logits)
	}
	head, err := g.lmHead(logits)
	if err != nil {
		return nil, fmt.Errorf("keeping the last logits: %w", err)
	}
	const pfx = "snapvlm_keep/"
	x := g.nodes[head].inputs[0]
	keep1, start, last := pfx+"keep_1d", pfx+"start", pfx+"last_rows"
	inits := []*Tensor{
		Int64Tensor(pfx+"shape_1", []int64{1}, []int64{1}),
		Int64Tensor(pfx+"end", []int64{1}, []int64{math.MaxInt64}),
		Int64Tensor(pfx+"axis_1", []int64{1}, []int64{1}),
	}
	added := []Node{
		{Name: pfx + "Reshape", OpType: "Reshape", Inputs: []string{KeepInput, inits[0].Name}, Outputs: []string{keep1}},
		{Name: pfx + "Neg", OpType: "Neg", Inputs: []string{keep1}, Outputs: []string{start}},
		{Name: pfx + "Slice", OpType: "Slice", Inputs: []string{x, start, inits[1].Name, inits[2].Name}, Outputs: []string{last}},
	}

	newGraph := make([]byte, 0, len(graph)+1024)
	nodeIdx := 0
	err = eachRaw(graph, func(num protowire.Number, typ protowire.Type, raw, v []byte) error {
		if typ != protowire.BytesType {
			newGraph = append(newGraph, raw...)
			return nil
		}
		switch num {
		case graphNode:
			i := nodeIdx
			nodeIdx++
			if i != head {
				newGraph = append(newGraph, raw...)
				return nil
			}
			for _, n := range added {
				b, err := EncodeNode(n)
				if err != nil {
					return err
				}
				newGraph = AppendMessage(newGraph, graphNode, b)
			}
			newGraph = AppendMessage(newGraph, graphNode, renameFirstInput(v, last))
		case graphOutput:
			info, err := parseValueInfo(v)
			if err != nil {
				return err
			}
			if info.Name != logits || len(info.Shape) != 3 {
				newGraph = append(newGraph, raw...)
				return nil
			}
			info.Shape[1] = Dim{Param: KeepInput}
			newGraph = AppendMessage(newGraph, graphOutput, EncodeValueInfo(info))
		default:
			newGraph = append(newGraph, raw...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("keeping the last logits: %w", err)
	}
	newGraph = AppendMessage(newGraph, graphInput, EncodeValueInfo(ValueInfo{Name: KeepInput, Type: Int64}))
	if newGraph, err = appendTensors(newGraph, inits); err != nil {
		return nil, fmt.Errorf("keeping the last logits: %w", err)
	}
	out, err := withGraph(model, newGraph)
	if err != nil {
		return nil, fmt.Errorf("keeping the last logits: %w", err)
	}
	return out, nil
}

// headOps are the matmuls a language-model head is made of.
var headOps = []string{"MatMul", "MatMulNBits", "MatMulBnb4", "MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}

// lmHead returns the index of the matmul that makes output from a weight:
// output's producers are followed back through Cast, Identity, and Mul or
// Add whose other input is a weight or a product of scales.
func (g *gqaGraph) lmHead(output string) (int, error) {
	v := output
	for range 8 {
		i, ok := g.producer[v]
		if !ok {
			return 0, fmt.Errorf("%s is not made by a node", v)
		}
		n := g.nodes[i]
		switch {
		case slices.Contains(headOps, n.op):
			if len(n.inputs) < 2 || !g.isConst(n.inputs[1]) {
				return 0, fmt.Errorf("node %q (%s) makes %s from two activations, want a weight", n.name, n.op, output)
			}
			return i, nil
		case n.op == "Cast" || n.op == "Identity":
			v = n.inputs[0]
		case (n.op == "Mul" || n.op == "Add") && len(n.inputs) == 2:
			// Follow the input that comes from a matmul (directly or cast);
			// the other is a bias, a weight scale or a product of scales.
			var next []string
			for _, in := range n.inputs {
				if p, ok := g.producer[in]; ok && (g.nodes[p].op == "Cast" || slices.Contains(headOps, g.nodes[p].op)) {
					next = append(next, in)
				}
			}
			if len(next) != 1 {
				return 0, fmt.Errorf("node %q (%s) before %s: cannot tell its matmul input from %q", n.name, n.op, output, n.inputs)
			}
			v = next[0]
		default:
			return 0, fmt.Errorf("node %q (%s) makes %s's input %s, want a matmul, cast or scale", n.name, n.op, output, v)
		}
	}
	return 0, fmt.Errorf("no matmul found within 8 nodes of %s", output)
}

// isConst reports whether name is an initializer or a Constant's output.
func (g *gqaGraph) isConst(name string) bool {
	if _, ok := g.inits[name]; ok {
		return true
	}
	i, ok := g.producer[name]
	return ok && g.nodes[i].op == "Constant"
}

// renameFirstInput returns a copy of a NodeProto with its first input
// renamed to name.
func renameFirstInput(node []byte, name string) []byte {
	out := make([]byte, 0, len(node)+len(name))
	first := true
	_ = eachRaw(node, func(num protowire.Number, typ protowire.Type, raw, _ []byte) error {
		if first && num == nodeInput && typ == protowire.BytesType {
			first = false
			out = AppendString(out, nodeInput, name)
			return nil
		}
		out = append(out, raw...)
		return nil
	})
	return out
}
