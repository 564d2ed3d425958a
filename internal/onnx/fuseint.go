package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// FuseIntegerMatMuls returns a copy of a serialized model in which the
// 8-bit matmuls that ONNX Runtime's dynamic quantization writes —
// DynamicQuantizeLinear(x) → MatMulInteger(x_q, W_q, x_zp, W_zp) → Cast →
// Mul by x_scale × W_scale — run as one com.microsoft DynamicQuantizeMatMul
// per quantized activation: the weights of every matmul reading the same
// DynamicQuantizeLinear (a layer's query, key and value projections; its
// gate and up projections) are concatenated by columns with per-column
// scales and zero points, and a Split gives each original output back.
// One node quantizes x and multiplies where the exports run up to a dozen,
// which at one token per step cost as much as the products. The integer
// products and their scaling are those of the original, so the outputs
// agree to the last bit or nearly (the scale product is rounded once per
// column instead of once per matmul).
//
// A DynamicQuantizeLinear whose outputs are read by anything else, and
// matmuls of another shape, are kept as they are. It returns the new
// model and the number of DynamicQuantizeMatMul nodes written.
func FuseIntegerMatMuls(model []byte) ([]byte, int, error) {
	g, graph, err := indexGraph(model)
	if err != nil {
		return nil, 0, fmt.Errorf("fusing integer matmuls: %w", err)
	}
	users := map[string][]int{} // value -> nodes reading it
	for i, n := range g.nodes {
		for _, in := range n.inputs {
			users[in] = append(users[in], i)
		}
	}
	outputs := map[string]bool{}
	for _, o := range g.outputs {
		outputs[o] = true
	}
	type member struct {
		w, ws, wz rawTensor
		out       string
	}
	type group struct {
		dql     int
		members []member
		drop    []int
	}
	// only returns the single reader of value, if it has exactly one and
	// the value is not a graph output.
	only := func(value string) (int, bool) {
		u := users[value]
		if len(u) != 1 || outputs[value] {
			return 0, false
		}
		return u[0], true
	}
	var groups []group
	for i, dq := range g.nodes {
		if dq.op != "DynamicQuantizeLinear" || (dq.domain != "" && dq.domain != "ai.onnx") || len(dq.outputs) != 3 {
			continue
		}
		xq, xs, xz := dq.outputs[0], dq.outputs[1], dq.outputs[2]
		if outputs[xq] || outputs[xs] || outputs[xz] {
			continue
		}
		gr := group{dql: i, drop: []int{i}}
		ok := true
		var wType DataType
		for _, mi := range users[xq] {
			m := g.nodes[mi]
			if m.op != "MatMulInteger" || len(m.inputs) != 4 || m.inputs[0] != xq || m.inputs[2] != xz {
				ok = false
				break
			}
			w, okW := g.initData(m.inputs[1])
			wz, okZ := g.initData(m.inputs[3])
			if !okW || !okZ || len(w.dims) != 2 || (w.dtype != Int8 && w.dtype != Uint8) || wz.dtype != w.dtype || len(wz.data) != 1 || (wType != 0 && w.dtype != wType) {
				ok = false
				break
			}
			wType = w.dtype
			ci, okC := only(m.outputs[0])
			if !okC || g.nodes[ci].op != "Cast" {
				ok = false
				break
			}
			mul, okM := only(g.nodes[ci].outputs[0])
			if !okM || g.nodes[mul].op != "Mul" || len(g.nodes[mul].inputs) != 2 {
				ok = false
				break
			}
			scale := g.nodes[mul].inputs[0]
			if scale == g.nodes[ci].outputs[0] {
				scale = g.nodes[mul].inputs[1]
			}
			// scale = Mul(x_scale, W_scale), read by this Mul only.
			si, okS := g.producer[scale]
			if _, one := only(scale); !okS || !one || g.nodes[si].op != "Mul" || len(g.nodes[si].inputs) != 2 {
				ok = false
				break
			}
			sIn := g.nodes[si].inputs
			wsName := sIn[1]
			if sIn[1] == xs {
				wsName = sIn[0]
			} else if sIn[0] != xs {
				ok = false
				break
			}
			ws, okWS := g.initData(wsName)
			if !okWS || ws.dtype != Float || len(ws.data) != 4 {
				ok = false
				break
			}
			gr.members = append(gr.members, member{w: w, ws: ws, wz: wz, out: g.nodes[mul].outputs[0]})
			gr.drop = append(gr.drop, mi, ci, mul, si)
		}
		// x_scale and x_zero_point must be read by the chains only.
		if !ok || len(gr.members) == 0 || len(users[xs]) != len(gr.members) || len(users[xz]) != len(gr.members) {
			continue
		}
		k := gr.members[0].w.dims[0]
		for _, m := range gr.members {
			if m.w.dims[0] != k {
				ok = false
			}
		}
		if ok {
			groups = append(groups, gr)
		}
	}
	if len(groups) == 0 {
		return model, 0, nil
	}

	const pfx = "snapvlm_dqmm/"
	drop := map[int]bool{}
	replace := map[int][]Node{}
	var inits []*Tensor
	for gi, gr := range groups {
		for _, d := range gr.drop {
			drop[d] = true
		}
		x := g.nodes[gr.dql].inputs[0]
		k := gr.members[0].w.dims[0]
		var n int64
		var splits []int64
		var outs []string
		for _, m := range gr.members {
			n += m.w.dims[1]
			splits = append(splits, m.w.dims[1])
			outs = append(outs, m.out)
		}
		// Columns of each member side by side, row by row.
		wcat := make([]byte, 0, k*n)
		for r := range k {
			for _, m := range gr.members {
				c := m.w.dims[1]
				wcat = append(wcat, m.w.data[r*c:(r+1)*c]...)
			}
		}
		scales := make([]float32, 0, n)
		zps := make([]byte, 0, n)
		for _, m := range gr.members {
			s := math.Float32frombits(binary.LittleEndian.Uint32(m.ws.data))
			for range m.w.dims[1] {
				scales = append(scales, s)
				zps = append(zps, m.wz.data[0])
			}
		}
		base := fmt.Sprintf("%s%d/", pfx, gi)
		wt := gr.members[0].w.dtype
		w := &Tensor{Name: base + "weight", Type: wt, Dims: []int64{k, n}, Raw: wcat}
		sc := FloatTensor(base+"scale", []int64{n}, scales)
		zp := &Tensor{Name: base + "zero_point", Type: wt, Dims: []int64{n}, Raw: zps}
		inits = append(inits, w, sc, zp)
		y := outs[0]
		if len(outs) > 1 {
			y = base + "output"
		}
		nodes := []Node{{Name: base + "DynamicQuantizeMatMul", OpType: "DynamicQuantizeMatMul", Domain: MicrosoftDomain,
			Inputs: []string{x, w.Name, sc.Name, zp.Name}, Outputs: []string{y}}}
		if len(outs) > 1 {
			sp := Int64Tensor(base+"split", []int64{int64(len(splits))}, splits)
			inits = append(inits, sp)
			nodes = append(nodes, Node{Name: base + "Split", OpType: "Split", Inputs: []string{y, sp.Name}, Outputs: outs, Attrs: []Attr{Int("axis", -1)}})
		}
		replace[gr.dql] = nodes
	}
	out, err := g.rewrite(model, graph, replace, drop, inits)
	if err != nil {
		return nil, 0, fmt.Errorf("fusing integer matmuls: %w", err)
	}
	return out, len(groups), nil
}

// initData returns the initializer name with its data inline, if it is one.
func (g *gqaGraph) initData(name string) (rawTensor, bool) {
	b, ok := g.inits[name]
	if !ok {
		return rawTensor{}, false
	}
	t, err := parseRawTensor(b)
	return t, err == nil && t.data != nil
}

// rewrite writes model with the graph's nodes of replace swapped for the
// new nodes (in place, so the order stays topological), the nodes of drop
// left out with the initializers only they read, and inits added. The
// com.microsoft opset is imported if it was not.
func (g *gqaGraph) rewrite(model, graph []byte, replace map[int][]Node, drop map[int]bool, inits []*Tensor) ([]byte, error) {
	// Initializers read only by dropped nodes go too.
	gone := map[string]bool{}
	for i := range drop {
		for _, in := range g.nodes[i].inputs {
			if _, ok := g.inits[in]; ok {
				gone[in] = true
			}
		}
	}
	for i, n := range g.nodes {
		if !drop[i] {
			for _, in := range n.inputs {
				delete(gone, in)
			}
		}
	}

	newGraph := make([]byte, 0, len(graph))
	nodeIdx := 0
	err := eachRaw(graph, func(num protowire.Number, typ protowire.Type, raw, v []byte) error {
		if typ == protowire.BytesType && num == graphNode {
			i := nodeIdx
			nodeIdx++
			if r, ok := replace[i]; ok {
				for _, nn := range r {
					b, err := EncodeNode(nn)
					if err != nil {
						return err
					}
					newGraph = AppendMessage(newGraph, graphNode, b)
				}
				return nil
			}
			if !drop[i] {
				newGraph = append(newGraph, raw...)
			}
			return nil
		}
		if typ == protowire.BytesType && num == graphInitializer {
			if name := nameOfTensor(v); gone[name] && !slices.Contains(g.outputs, name) {
				return nil
			}
		}
		newGraph = append(newGraph, raw...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if newGraph, err = appendTensors(newGraph, inits); err != nil {
		return nil, err
	}
	out, err := withGraph(model, newGraph)
	if err != nil {
		return nil, err
	}
	return importOpset(out, MicrosoftDomain), nil
}
