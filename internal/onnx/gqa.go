package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// GQAShape is what FuseGroupQueryAttention checks the graph against
// (config.json's text_config).
type GQAShape struct {
	Heads, KVHeads, HeadDim int
	// Domain is the operator domain the GroupQueryAttention nodes are
	// written in: "" for com.microsoft's, or another kernel's with the same
	// contract (snapvlm's own, ort.AttentionDomain), imported at version 1.
	Domain string
	// HalfOp, when set, is the operator in Domain with GroupQueryAttention's
	// contract but a float16 past and present (ort.Attention16Op): a
	// float16-cache export then attends on its cache as it is, with no
	// Cast of the whole cache up and down per step, and past and present
	// can share one buffer.
	HalfOp string
	// HalfCache, with HalfOp, makes a float32 cache float16 too: the
	// past_key_values.* inputs and present.* outputs become float16, and
	// a step reads half the cache bytes. It changes the results by the
	// rounding of each key and value to float16 (what float16-cache
	// exports and llama.cpp's default cache do).
	HalfCache bool
}

// FuseGroupQueryAttention returns a copy of a serialized SmolVLM decoder
// (onnxruntime-genai builder, MultiHeadAttention path, spec §5.3) in which
// each layer's attention reads the key/value heads directly: the
// MultiHeadAttention node fed with K and V repeated from KVHeads to Heads
// (present → [Cast →] Unsqueeze → Expand → Reshape [→ Transpose → Reshape])
// becomes one com.microsoft GroupQueryAttention with kv_num_heads, which
// appends the new key/value rows to the past itself and writes the present
// outputs. The repeat-KV subgraphs and the 4-D additive mask, then unused,
// are dropped. GroupQueryAttention's seqlens_k and total_sequence_length are
// computed inside the graph from attention_mask (sum − 1 and its width), so
// the graph's inputs and outputs stay as they are.
//
// GroupQueryAttention masks causally and by each row's length: it equals
// the original for masks of ones followed by padding (all that batch-1
// decoding feeds), not for holes inside the mask.
//
// With float16 past/present and float32 attention (the _fp16 exports), the
// attention still runs in float32 on the same float16-rounded values: the
// past is cast up, the new rows rounded through float16, the present cast
// down, as the original graph does — or, with shape.HalfOp, that operator
// reads and appends the float16 cache itself. shape.HalfCache makes a
// float32 cache float16 (the graph's cache inputs and outputs change type).
//
// Every MultiHeadAttention must match; anything else is an error naming the
// node and what differs, and the caller keeps the original. It returns the
// new model and the number of attention nodes replaced.
func FuseGroupQueryAttention(model []byte, shape GQAShape) ([]byte, int, error) {
	out, n, err := fuseGQA(model, shape)
	if err != nil {
		return nil, 0, fmt.Errorf("GroupQueryAttention rewrite: %w", err)
	}
	return out, n, nil
}

// graphValueInfo is GraphProto.value_info.
const graphValueInfo = 13

// gnode is one NodeProto: its raw bytes and what the matcher reads.
type gnode struct {
	raw []byte
	nodeRef
	ints map[string][]int64 // int and ints attributes
	val  []byte             // Constant's value tensor
}

func parseGNode(b []byte) (gnode, error) {
	ref, err := parseNodeRef(b)
	if err != nil {
		return gnode{}, err
	}
	n := gnode{raw: b, nodeRef: ref, ints: map[string][]int64{}}
	err = eachRaw(b, func(num protowire.Number, typ protowire.Type, _, v []byte) error {
		if num != nodeAttribute || typ != protowire.BytesType {
			return nil
		}
		var name string
		var vals []int64
		var tensor []byte
		err := eachField(v, func(num protowire.Number, typ protowire.Type, b []byte, x uint64) error {
			switch {
			case num == attrName && typ == protowire.BytesType:
				name = string(b)
			case num == attrI && typ == protowire.VarintType:
				vals = append(vals, int64(x))
			case num == attrInts && typ == protowire.VarintType:
				vals = append(vals, int64(x))
			case num == attrInts && typ == protowire.BytesType:
				for len(b) > 0 {
					y, m := protowire.ConsumeVarint(b)
					if m < 0 {
						return errors.New("bad packed ints")
					}
					vals = append(vals, int64(y))
					b = b[m:]
				}
			case num == attrT && typ == protowire.BytesType:
				tensor = b
			}
			return nil
		})
		if err != nil {
			return err
		}
		if tensor != nil && name == "value" {
			n.val = tensor
		} else if vals != nil {
			n.ints[name] = vals
		}
		return nil
	})
	return n, err
}

// tensorInt64s reads an int64 TensorProto's values (raw_data or int64_data).
func tensorInt64s(b []byte) ([]int64, bool) {
	var dt uint64
	var raw []byte
	var vals []int64
	hasRaw := false
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == tensorDataType && typ == protowire.VarintType:
			dt = x
		case num == tensorRawData && typ == protowire.BytesType:
			raw, hasRaw = v, true
		case num == 7 && typ == protowire.VarintType: // int64_data
			vals = append(vals, int64(x))
		case num == 7 && typ == protowire.BytesType:
			for len(v) > 0 {
				y, m := protowire.ConsumeVarint(v)
				if m < 0 {
					return errors.New("bad packed int64_data")
				}
				vals = append(vals, int64(y))
				v = v[m:]
			}
		case num == tensorDataLocation && typ == protowire.VarintType && x == dataLocationExt:
			return errors.New("external")
		}
		return nil
	})
	if err != nil || DataType(dt) != Int64 {
		return nil, false
	}
	if hasRaw {
		if len(raw)%8 != 0 {
			return nil, false
		}
		vals = make([]int64, len(raw)/8)
		for i := range vals {
			vals[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	}
	return vals, true
}

// gqaGraph indexes a graph for the matcher.
type gqaGraph struct {
	nodes    []gnode
	producer map[string]int // value -> index of the node making it
	readers  map[string]int // value -> number of nodes reading it
	inits    map[string][]byte
	inputs   map[string]bool
	outputs  []string
	infos    map[string]ValueInfo // graph inputs and outputs
	opset    int64
}

// consts returns the int64 values of an initializer or Constant output.
func (g *gqaGraph) consts(name string) ([]int64, bool) {
	if t, ok := g.inits[name]; ok {
		return tensorInt64s(t)
	}
	if i, ok := g.producer[name]; ok && g.nodes[i].op == "Constant" && g.nodes[i].val != nil {
		return tensorInt64s(g.nodes[i].val)
	}
	return nil, false
}

// prod returns the node making value when it is op (default domain).
func (g *gqaGraph) prod(value, op string) (gnode, bool) {
	i, ok := g.producer[value]
	if !ok {
		return gnode{}, false
	}
	n := g.nodes[i]
	if n.op != op || (n.domain != "" && n.domain != "ai.onnx") {
		return gnode{}, false
	}
	return n, true
}

// axes returns a Squeeze/Unsqueeze node's axes (attribute or input).
func (g *gqaGraph) axes(n gnode) ([]int64, bool) {
	if a, ok := n.ints["axes"]; ok {
		return a, true
	}
	if len(n.inputs) > 1 {
		return g.consts(n.inputs[1])
	}
	return nil, false
}

// kvPath is what one of K / V looks like in a matched layer.
type kvPath struct {
	layer   int
	half    bool   // past/present are float16, attention float32
	new     string // the new rows, [B, S, kv_heads*head_dim], after rotary
	past    string // graph input past_key_values.L.key|value
	present string // graph output present.L.key|value
	concat  int    // node index of the Concat making present
}

// matchKV follows a MultiHeadAttention key/value input back to the present
// output it repeats, and that output back to the new rows.
func (g *gqaGraph) matchKV(full, kind string, s GQAShape) (kvPath, error) {
	var p kvPath
	rep := int64(s.Heads / s.KVHeads)
	r, ok := g.prod(full, "Reshape")
	if !ok {
		return p, fmt.Errorf("%s input %q is not made by a Reshape", kind, full)
	}
	if t, ok := g.prod(r.inputs[0], "Transpose"); ok {
		// Builder form: Reshape [B,N,T,H] → Transpose → Reshape [B,T,N*H].
		if !slices.Equal(t.ints["perm"], []int64{0, 2, 1, 3}) {
			return p, fmt.Errorf("%s: Transpose %q has perm %v, want [0 2 1 3]", kind, t.name, t.ints["perm"])
		}
		if c, ok := g.consts(r.inputs[1]); ok && !(len(c) == 3 && c[2] == int64(s.Heads*s.HeadDim)) {
			return p, fmt.Errorf("%s: Reshape %q to %v, want [B, T, %d]", kind, r.name, c, s.Heads*s.HeadDim)
		}
		if r, ok = g.prod(t.inputs[0], "Reshape"); !ok {
			return p, fmt.Errorf("%s: Transpose %q does not read a Reshape", kind, t.name)
		}
	}
	if c, ok := g.consts(r.inputs[1]); ok && !(len(c) == 4 && c[1] == int64(s.Heads) && (c[3] == int64(s.HeadDim) || c[3] == -1)) {
		return p, fmt.Errorf("%s: Reshape %q to %v, want [B, %d, T, %d]", kind, r.name, c, s.Heads, s.HeadDim)
	}
	e, ok := g.prod(r.inputs[0], "Expand")
	if !ok {
		return p, fmt.Errorf("%s: Reshape %q does not read an Expand", kind, r.name)
	}
	if c, ok := g.consts(e.inputs[1]); ok && !(len(c) == 5 && c[2] == rep && c[0] == 1 && c[1] == 1 && c[3] == 1 && c[4] == 1) {
		return p, fmt.Errorf("%s: Expand %q to %v, want [1 1 %d 1 1]", kind, e.name, c, rep)
	}
	u, ok := g.prod(e.inputs[0], "Unsqueeze")
	if !ok {
		return p, fmt.Errorf("%s: Expand %q does not read an Unsqueeze", kind, e.name)
	}
	if a, ok := g.axes(u); !ok || !slices.Equal(a, []int64{2}) {
		return p, fmt.Errorf("%s: Unsqueeze %q axes %v, want [2]", kind, u.name, a)
	}
	present := u.inputs[0]
	if c, ok := g.prod(present, "Cast"); ok {
		if !slices.Equal(c.ints["to"], []int64{int64(Float)}) {
			return p, fmt.Errorf("%s: Cast %q to %v, want float", kind, c.name, c.ints["to"])
		}
		present, p.half = c.inputs[0], true
	}
	p.present = present
	layer, what, ok := strings.Cut(strings.TrimPrefix(present, "present."), ".")
	l, err := strconv.Atoi(layer)
	if !strings.HasPrefix(present, "present.") || !ok || err != nil || what != kind || !slices.Contains(g.outputs, present) {
		return p, fmt.Errorf("%s: repeated value %q is not a graph output present.<layer>.%s", kind, present, kind)
	}
	p.layer = l
	ci, ok := g.producer[present]
	cat := g.nodes[ci]
	if !ok || cat.op != "Concat" || len(cat.inputs) != 2 || !slices.Equal(cat.ints["axis"], []int64{2}) {
		return p, fmt.Errorf("%s: %s is not a Concat of past and new along axis 2", kind, present)
	}
	p.concat = ci
	p.past = cat.inputs[0]
	if p.past != fmt.Sprintf("past_key_values.%d.%s", l, kind) || !g.inputs[p.past] {
		return p, fmt.Errorf("%s: %s concatenates %q, want graph input past_key_values.%d.%s", kind, present, p.past, l, kind)
	}
	newRows := cat.inputs[1]
	if p.half {
		c, ok := g.prod(newRows, "Cast")
		if !ok || !slices.Equal(c.ints["to"], []int64{int64(Float16)}) {
			return p, fmt.Errorf("%s: new rows of %s are not cast to float16", kind, present)
		}
		newRows = c.inputs[0]
	}
	t, ok := g.prod(newRows, "Transpose")
	if !ok || !slices.Equal(t.ints["perm"], []int64{0, 2, 1, 3}) {
		return p, fmt.Errorf("%s: new rows of %s are not a Transpose [0 2 1 3]", kind, present)
	}
	rs, ok := g.prod(t.inputs[0], "Reshape")
	if !ok {
		return p, fmt.Errorf("%s: Transpose %q does not read a Reshape", kind, t.name)
	}
	c, ok := g.consts(rs.inputs[1])
	if !ok || len(c) != 4 || c[0] != 0 || c[1] != 0 || c[2] != int64(s.KVHeads) || (c[3] != int64(s.HeadDim) && c[3] != -1) {
		return p, fmt.Errorf("%s: Reshape %q to %v, want [0 0 %d %d]", kind, rs.name, c, s.KVHeads, s.HeadDim)
	}
	p.new = rs.inputs[0]
	return p, nil
}

func fuseGQA(model []byte, s GQAShape) ([]byte, int, error) {
	if s.Heads <= 0 || s.KVHeads <= 0 || s.HeadDim <= 0 || s.Heads%s.KVHeads != 0 {
		return nil, 0, fmt.Errorf("heads %d, kv heads %d, head dim %d: want positive, heads a multiple of kv heads", s.Heads, s.KVHeads, s.HeadDim)
	}
	g, graph, err := indexGraph(model)
	if err != nil {
		return nil, 0, err
	}
	if g.opset < 13 {
		return nil, 0, fmt.Errorf("ONNX opset %d, want at least 13", g.opset)
	}
	if !g.inputs["attention_mask"] {
		return nil, 0, errors.New("no graph input attention_mask")
	}

	// Match every attention node.
	type layerMatch struct {
		mha  int
		k, v kvPath
	}
	var matches []layerMatch
	seen := map[int]bool{}
	for i, n := range g.nodes {
		if n.op == "GroupQueryAttention" {
			return nil, 0, fmt.Errorf("node %q is already GroupQueryAttention", n.name)
		}
		if n.op != "MultiHeadAttention" {
			continue
		}
		if n.domain != MicrosoftDomain {
			return nil, 0, fmt.Errorf("node %q: MultiHeadAttention in domain %q", n.name, n.domain)
		}
		opt := func(k int) string {
			if k < len(n.inputs) {
				return n.inputs[k]
			}
			return ""
		}
		if len(n.inputs) < 3 || opt(3) != "" || opt(4) != "" || opt(6) != "" || opt(7) != "" {
			return nil, 0, fmt.Errorf("node %q: MultiHeadAttention inputs %q, want query, key, value and at most an attention bias", n.name, n.inputs)
		}
		if len(n.outputs) < 1 || slices.ContainsFunc(n.outputs[1:], func(o string) bool { return o != "" }) {
			return nil, 0, fmt.Errorf("node %q: MultiHeadAttention outputs %q, want the output only", n.name, n.outputs)
		}
		if !slices.Equal(n.ints["num_heads"], []int64{int64(s.Heads)}) {
			return nil, 0, fmt.Errorf("node %q: num_heads %v, want %d", n.name, n.ints["num_heads"], s.Heads)
		}
		if s.Heads == s.KVHeads {
			return nil, 0, fmt.Errorf("node %q: as many kv heads as heads, nothing to fuse", n.name)
		}
		k, err := g.matchKV(n.inputs[1], "key", s)
		if err != nil {
			return nil, 0, fmt.Errorf("node %q: %w", n.name, err)
		}
		v, err := g.matchKV(n.inputs[2], "value", s)
		if err != nil {
			return nil, 0, fmt.Errorf("node %q: %w", n.name, err)
		}
		if k.layer != v.layer || k.half != v.half || seen[k.layer] {
			return nil, 0, fmt.Errorf("node %q: key of layer %d and value of layer %d", n.name, k.layer, v.layer)
		}
		seen[k.layer] = true
		matches = append(matches, layerMatch{mha: i, k: k, v: v})
	}
	if len(matches) == 0 {
		return nil, 0, errors.New("no MultiHeadAttention node")
	}
	for _, o := range g.outputs {
		if strings.HasPrefix(o, "present.") {
			l, _, _ := strings.Cut(strings.TrimPrefix(o, "present."), ".")
			if n, err := strconv.Atoi(l); err != nil || !seen[n] {
				return nil, 0, fmt.Errorf("graph output %s is not made for a matched attention node", o)
			}
		}
	}

	domain := s.Domain
	if domain == "" {
		domain = MicrosoftDomain
	}
	// New nodes: shared sequence lengths, then one GroupQueryAttention per layer.
	const pfx = "snapvlm_gqa/"
	newInits := []*Tensor{
		Int64Tensor(pfx+"axis1", []int64{1}, []int64{1}),
		Int64Tensor(pfx+"one", nil, []int64{1}),
	}
	shared := []Node{
		{Name: pfx + "ReduceSum", OpType: "ReduceSum", Inputs: []string{"attention_mask", pfx + "axis1"}, Outputs: []string{pfx + "lengths"}, Attrs: []Attr{Int("keepdims", 0)}},
		{Name: pfx + "Sub", OpType: "Sub", Inputs: []string{pfx + "lengths", pfx + "one"}, Outputs: []string{pfx + "seqlens_k64"}},
		{Name: pfx + "seqlens_k", OpType: "Cast", Inputs: []string{pfx + "seqlens_k64"}, Outputs: []string{pfx + "seqlens_k"}, Attrs: []Attr{Int("to", int64(Int32))}},
		{Name: pfx + "Shape", OpType: "Shape", Inputs: []string{"attention_mask"}, Outputs: []string{pfx + "mask_shape"}},
		{Name: pfx + "Gather", OpType: "Gather", Inputs: []string{pfx + "mask_shape", pfx + "one"}, Outputs: []string{pfx + "total64"}, Attrs: []Attr{Int("axis", 0)}},
		{Name: pfx + "total_sequence_length", OpType: "Cast", Inputs: []string{pfx + "total64"}, Outputs: []string{pfx + "total_sequence_length"}, Attrs: []Attr{Int("to", int64(Int32))}},
	}
	replace := map[int][]Node{} // node index -> nodes written in its place
	// Shapes of the float32 copies of a float16 cache: declared so that
	// ONNX Runtime's planner sees past and present differ in length and does
	// not run GroupQueryAttention in place on the past (which it allows).
	var valueInfos []ValueInfo
	floatLike := func(name, like string) {
		info := g.infos[like]
		valueInfos = append(valueInfos, ValueInfo{Name: name, Type: Float, Shape: info.Shape})
	}
	drop := map[int]bool{}
	toHalf := map[string]bool{} // cache inputs and outputs made float16 (HalfCache)
	if s.HalfOp != "" && s.Domain == "" {
		return nil, 0, errors.New("a float16-cache operator needs its own domain")
	}
	for mi, m := range matches {
		mha := g.nodes[m.mha]
		base := fmt.Sprintf("%slayers.%d/", pfx, m.k.layer)
		var nodes []Node
		if mi == 0 {
			nodes = append(nodes, shared...)
		}
		newK, newV, pastK, pastV := m.k.new, m.v.new, m.k.past, m.v.past
		presK, presV := m.k.present, m.v.present
		op := "GroupQueryAttention"
		if s.HalfOp != "" && (m.k.half || s.HalfCache) {
			// The operator rounds the new rows to float16 as it appends
			// them, as the export's Cast before its Concat does.
			op = s.HalfOp
			if !m.k.half {
				for _, x := range []string{pastK, pastV, presK, presV} {
					toHalf[x] = true
				}
			}
		} else if m.k.half {
			// Round the new rows through float16 as the original stores them,
			// attend in float32, store the present as float16.
			cast := func(in, out string, to DataType) {
				nodes = append(nodes, Node{Name: out, OpType: "Cast", Inputs: []string{in}, Outputs: []string{out}, Attrs: []Attr{Int("to", int64(to))}})
			}
			for _, x := range []*string{&newK, &newV} {
				h := base + "half/" + *x
				cast(*x, h, Float16)
				cast(h, base+"rounded/"+*x, Float)
				*x = base + "rounded/" + *x
			}
			for _, x := range []*string{&pastK, &pastV} {
				cast(*x, base+"float/"+*x, Float)
				floatLike(base+"float/"+*x, *x)
				*x = base + "float/" + *x
			}
			presK, presV = base+"present_key", base+"present_value"
			floatLike(presK, m.k.present)
			floatLike(presV, m.v.present)
		}
		attrs := []Attr{Int("num_heads", int64(s.Heads)), Int("kv_num_heads", int64(s.KVHeads))}
		if sc, ok := scaleAttr(mha.raw); ok {
			attrs = append(attrs, Flt("scale", sc))
		}
		nodes = append(nodes, Node{
			Name: base + "GroupQueryAttention", OpType: op, Domain: domain,
			Inputs:  []string{mha.inputs[0], newK, newV, pastK, pastV, pfx + "seqlens_k", pfx + "total_sequence_length"},
			Outputs: []string{mha.outputs[0], presK, presV},
			Attrs:   attrs,
		})
		if m.k.half && op == "GroupQueryAttention" {
			for _, x := range [][2]string{{presK, m.k.present}, {presV, m.v.present}} {
				nodes = append(nodes, Node{Name: base + "Cast/" + x[1], OpType: "Cast", Inputs: []string{x[0]}, Outputs: []string{x[1]}, Attrs: []Attr{Int("to", int64(Float16))}})
			}
		}
		replace[m.mha] = nodes
		drop[m.k.concat], drop[m.v.concat] = true, true
	}

	// The node list: originals (less the replaced), new ones in place of
	// the attention nodes; then only what the outputs need, in an order
	// where every node follows its inputs.
	var all []Node
	var raws [][]byte // raw bytes of kept original nodes, nil for new ones
	for i, n := range g.nodes {
		if drop[i] {
			continue
		}
		if r, ok := replace[i]; ok {
			for _, nn := range r {
				all = append(all, nn)
				raws = append(raws, nil)
			}
			continue
		}
		all = append(all, Node{Name: n.name, OpType: n.op, Domain: n.domain, Inputs: n.inputs, Outputs: n.outputs})
		raws = append(raws, n.raw)
	}
	order, err := liveOrder(all, g.outputs, g.inputs, g.inits, newInits)
	if err != nil {
		return nil, 0, err
	}

	newGraph := make([]byte, 0, len(graph)+4096)
	nodesWritten := false
	err = eachRaw(graph, func(num protowire.Number, typ protowire.Type, raw, v []byte) error {
		if (num == graphInput || num == graphOutput || num == graphValueInfo) && typ == protowire.BytesType && len(toHalf) > 0 {
			info, err := parseValueInfo(v)
			if err != nil {
				return err
			}
			if toHalf[info.Name] {
				if num == graphValueInfo {
					return nil // an intermediate's old type; the graph declares the new one
				}
				if info.Type != Float || len(info.Shape) != 4 {
					return fmt.Errorf("%s is %v %v, want a 4-D float to store it as float16", info.Name, info.Type, info.Shape)
				}
				info.Type = Float16
				newGraph = AppendMessage(newGraph, num, EncodeValueInfo(info))
				return nil
			}
		}
		if num == graphNode && typ == protowire.BytesType {
			if nodesWritten {
				return nil
			}
			nodesWritten = true
			for _, i := range order {
				b := raws[i]
				if b == nil {
					var err error
					if b, err = EncodeNode(all[i]); err != nil {
						return err
					}
				}
				newGraph = AppendMessage(newGraph, graphNode, b)
			}
			return nil
		}
		newGraph = append(newGraph, raw...)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	for _, v := range valueInfos {
		newGraph = AppendMessage(newGraph, graphValueInfo, EncodeValueInfo(v))
	}
	if newGraph, err = appendTensors(newGraph, newInits); err != nil {
		return nil, 0, err
	}
	out, err := withGraph(model, newGraph)
	if err != nil {
		return nil, 0, err
	}
	if domain != MicrosoftDomain {
		out = importOpset(out, domain)
	}
	return out, len(matches), nil
}

// indexGraph parses a serialized model's graph for the rewrites: its nodes,
// who makes and reads each value, initializers, inputs, outputs and the
// default-domain opset. It also returns the raw GraphProto.
func indexGraph(model []byte) (*gqaGraph, []byte, error) {
	graph, err := findField(model, modelGraph)
	if err != nil {
		return nil, nil, err
	}
	if graph == nil {
		return nil, nil, errors.New("no graph")
	}
	g := &gqaGraph{producer: map[string]int{}, readers: map[string]int{}, inits: map[string][]byte{}, inputs: map[string]bool{}, infos: map[string]ValueInfo{}}
	err = eachRaw(model, func(num protowire.Number, typ protowire.Type, _, v []byte) error {
		if num != modelOpsetImport || typ != protowire.BytesType {
			return nil
		}
		var dom string
		var ver int64
		err := eachField(v, func(num protowire.Number, typ protowire.Type, b []byte, x uint64) error {
			if num == opsetDomain && typ == protowire.BytesType {
				dom = string(b)
			} else if num == opsetVersion && typ == protowire.VarintType {
				ver = int64(x)
			}
			return nil
		})
		if dom == "" || dom == "ai.onnx" {
			g.opset = ver
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	err = eachRaw(graph, func(num protowire.Number, typ protowire.Type, _, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case graphNode:
			n, err := parseGNode(v)
			if err != nil {
				return err
			}
			for _, o := range n.outputs {
				if o != "" {
					g.producer[o] = len(g.nodes)
				}
			}
			for _, in := range n.inputs {
				g.readers[in]++
			}
			g.nodes = append(g.nodes, n)
		case graphInitializer:
			g.inits[nameOfTensor(v)] = v
		case graphInput:
			info, err := parseValueInfo(v)
			if err != nil {
				return err
			}
			g.inputs[info.Name] = true
			g.infos[info.Name] = info
		case graphOutput:
			info, err := parseValueInfo(v)
			if err != nil {
				return err
			}
			g.outputs = append(g.outputs, info.Name)
			g.infos[info.Name] = info
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return g, graph, nil
}

// scaleAttr reads a node's float attribute "scale".
func scaleAttr(node []byte) (float32, bool) {
	var f float32
	found := false
	_ = eachRaw(node, func(num protowire.Number, typ protowire.Type, _, v []byte) error {
		if num != nodeAttribute || typ != protowire.BytesType {
			return nil
		}
		var name string
		var val float32
		has := false
		_ = eachRaw(v, func(num protowire.Number, typ protowire.Type, raw, b []byte) error {
			switch {
			case num == attrName && typ == protowire.BytesType:
				name = string(b)
			case num == attrF && typ == protowire.Fixed32Type:
				x, _ := protowire.ConsumeFixed32(raw[protowire.SizeTag(num):])
				val, has = math.Float32frombits(x), true
			}
			return nil
		})
		if name == "scale" && has {
			f, found = val, true
		}
		return nil
	})
	return f, found
}

// liveOrder returns the indices of the nodes the graph outputs depend on,
// each after the nodes making its inputs, otherwise in list order.
func liveOrder(nodes []Node, outputs []string, inputs map[string]bool, inits map[string][]byte, extra []*Tensor) ([]int, error) {
	producer := map[string]int{}
	for i, n := range nodes {
		for _, o := range n.Outputs {
			if o != "" {
				producer[o] = i
			}
		}
	}
	avail := func(name string) bool {
		if name == "" || inputs[name] {
			return true
		}
		if _, ok := inits[name]; ok {
			return true
		}
		return slices.ContainsFunc(extra, func(t *Tensor) bool { return t.Name == name })
	}
	state := make([]int8, len(nodes)) // 0 new, 1 visiting, 2 done
	var order []int
	var visit func(i int) error
	visit = func(i int) error {
		switch state[i] {
		case 1:
			return fmt.Errorf("cycle through node %q", nodes[i].Name)
		case 2:
			return nil
		}
		state[i] = 1
		for _, in := range nodes[i].Inputs {
			if p, ok := producer[in]; ok {
				if err := visit(p); err != nil {
					return err
				}
			} else if !avail(in) {
				return fmt.Errorf("node %q reads %q, which nothing makes", nodes[i].Name, in)
			}
		}
		state[i] = 2
		order = append(order, i)
		return nil
	}
	// The live nodes, from the outputs back.
	live := make([]bool, len(nodes))
	var stack []int
	for _, o := range outputs {
		p, ok := producer[o]
		if !ok {
			if avail(o) {
				continue
			}
			return nil, fmt.Errorf("graph output %q is made by no node", o)
		}
		stack = append(stack, p)
	}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if live[i] {
			continue
		}
		live[i] = true
		for _, in := range nodes[i].Inputs {
			if p, ok := producer[in]; ok && !live[p] {
				stack = append(stack, p)
			}
		}
	}
	// Visiting them in list order keeps the original order where nothing
	// moved.
	for i := range nodes {
		if live[i] {
			if err := visit(i); err != nil {
				return nil, err
			}
		}
	}
	return order, nil
}
