package onnx

import (
	"fmt"
	"slices"
)

// nbitsAttrs are MatMulNBits' attributes; a node with any other is kept.
var nbitsAttrs = []string{"K", "N", "bits", "block_size", "accuracy_level"}

// FuseMatMulNBits returns a copy of a serialized model in which the
// com.microsoft MatMulNBits nodes that read the same activation with the
// same K, bits, block size and accuracy level (a layer's query, key and
// value projections; its gate and up projections) run as one MatMulNBits
// whose weights are theirs side by side — the operator stores B, scales
// and zero points column by column, so that is a concatenation — and a
// Split gives each original output back. Each output column is computed
// from the same bytes as before; one node does at each decode step what
// two or three did, with one pass over the activation. Nodes with a group
// index or bias, or weights that are not inline initializers, are kept.
// It returns the new model and the number of fused nodes written.
func FuseMatMulNBits(model []byte) ([]byte, int, error) {
	g, graph, err := indexGraph(model)
	if err != nil {
		return nil, 0, fmt.Errorf("fusing MatMulNBits: %w", err)
	}
	type member struct {
		node      int
		n         int64
		b, s, zp  rawTensor
		hasZP     bool
		attrs     [5]int64
		attrsSeen [5]bool
	}
	groups := map[string][]member{}
	var order []string
nodes:
	for i, n := range g.nodes {
		if n.op != "MatMulNBits" || n.domain != MicrosoftDomain || len(n.inputs) < 3 || len(n.inputs) > 4 || len(n.outputs) != 1 {
			continue
		}
		m := member{node: i}
		for name := range n.ints {
			if !slices.Contains(nbitsAttrs, name) {
				continue nodes
			}
		}
		for k, name := range nbitsAttrs {
			if v, ok := n.ints[name]; ok && len(v) == 1 {
				m.attrs[k], m.attrsSeen[k] = v[0], true
			}
		}
		var ok bool
		if m.b, ok = g.initData(n.inputs[1]); !ok || len(m.b.dims) != 3 {
			continue
		}
		if m.s, ok = g.initData(n.inputs[2]); !ok {
			continue
		}
		if len(n.inputs) == 4 && n.inputs[3] != "" {
			if m.zp, ok = g.initData(n.inputs[3]); !ok {
				continue
			}
			m.hasZP = true
		}
		m.n = m.b.dims[0]
		if !m.attrsSeen[1] || m.attrs[1] != m.n || len(m.s.data)%int(m.n) != 0 || (m.hasZP && len(m.zp.data)%int(m.n) != 0) {
			continue
		}
		key := fmt.Sprint(n.inputs[0], m.attrs[0], m.attrs[2:], m.attrsSeen, m.b.dims[1:], m.s.dtype, len(m.s.data)/int(m.n), m.hasZP, m.zp.dtype)
		if _, seen := groups[key]; !seen {
			order = append(order, key)
		}
		groups[key] = append(groups[key], m)
	}

	const pfx = "snapvlm_nbits/"
	replace := map[int][]Node{}
	drop := map[int]bool{}
	var inits []*Tensor
	fused := 0
	for _, key := range order {
		ms := groups[key]
		if len(ms) < 2 {
			continue
		}
		first := g.nodes[ms[0].node]
		base := fmt.Sprintf("%s%d/", pfx, fused)
		var n int64
		var b, s, zp []byte
		var splits []int64
		var outs []string
		for _, m := range ms {
			n += m.n
			splits = append(splits, m.n)
			outs = append(outs, g.nodes[m.node].outputs[0])
			b = append(b, m.b.data...)
			s = append(s, m.s.data...)
			zp = append(zp, m.zp.data...)
			drop[m.node] = true
		}
		// Each tensor keeps its rank, its first dimension now n.
		dims := func(t rawTensor) []int64 {
			d := slices.Clone(t.dims)
			if len(d) == 1 {
				d[0] = d[0] / ms[0].n * n
			} else {
				d[0] = n
			}
			return d
		}
		m0 := ms[0]
		bT := &Tensor{Name: base + "B", Type: m0.b.dtype, Dims: dims(m0.b), Raw: b}
		sT := &Tensor{Name: base + "scales", Type: m0.s.dtype, Dims: dims(m0.s), Raw: s}
		ins := []string{first.inputs[0], bT.Name, sT.Name}
		inits = append(inits, bT, sT)
		if m0.hasZP {
			zT := &Tensor{Name: base + "zero_points", Type: m0.zp.dtype, Dims: dims(m0.zp), Raw: zp}
			ins = append(ins, zT.Name)
			inits = append(inits, zT)
		}
		var attrs []Attr
		for k, name := range nbitsAttrs {
			switch {
			case name == "N":
				attrs = append(attrs, Int(name, n))
			case m0.attrsSeen[k]:
				attrs = append(attrs, Int(name, m0.attrs[k]))
			}
		}
		y := base + "output"
		sp := Int64Tensor(base+"split", []int64{int64(len(splits))}, splits)
		inits = append(inits, sp)
		replace[m0.node] = []Node{
			{Name: base + "MatMulNBits", OpType: "MatMulNBits", Domain: MicrosoftDomain, Inputs: ins, Outputs: []string{y}, Attrs: attrs},
			{Name: base + "Split", OpType: "Split", Inputs: []string{y, sp.Name}, Outputs: outs, Attrs: []Attr{Int("axis", -1)}},
		}
		fused++
	}
	if fused == 0 {
		return model, 0, nil
	}
	out, err := g.rewrite(model, graph, replace, drop, inits)
	if err != nil {
		return nil, 0, fmt.Errorf("fusing MatMulNBits: %w", err)
	}
	return out, fused, nil
}
