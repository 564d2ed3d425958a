package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// QuantizeMatMulsInt8 returns a copy of a serialized model in which every
// default-domain MatMul whose second input is a 2-D float32 initializer
// runs on 8-bit integers: the activation is quantized at run time
// (DynamicQuantizeLinear: uint8, one scale per tensor, shared by all the
// MatMuls that read it), the weight ahead of time (int8, symmetric, one
// scale per output column: max|w|/127), and MatMulInteger → Cast → Mul by
// the two scales gives the float result. This is the unsigned × signed
// product ONNX Runtime's CPU provider runs with VNNI / AVX2 integer dot
// products (and fuses into DynamicQuantizeMatMul), the structure of
// onnxruntime's quantize_dynamic with per-channel int8 weights.
//
// MatMuls of two activations, other nodes and weights read by other nodes
// are kept as they are. It returns the new model and the number of MatMuls
// replaced. The model's weights must be inline (not external data).
func QuantizeMatMulsInt8(model []byte) ([]byte, int, error) {
	graph, err := findField(model, modelGraph)
	if err != nil {
		return nil, 0, fmt.Errorf("quantizing ONNX model: %w", err)
	}
	if graph == nil {
		return nil, 0, errors.New("quantizing ONNX model: no graph")
	}
	// Pass 1: float 2-D initializers and how many nodes read each name.
	inits := map[string]rawTensor{}
	readers := map[string]int{}
	var nodes []nodeRef
	err = eachRaw(graph, func(num protowire.Number, typ protowire.Type, _, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case graphInitializer:
			t, err := parseRawTensor(v)
			if err != nil {
				return err
			}
			if t.dtype == Float && len(t.dims) == 2 && t.data != nil {
				inits[t.name] = t
			}
		case graphNode:
			n, err := parseNodeRef(v)
			if err != nil {
				return err
			}
			for _, in := range n.inputs {
				readers[in]++
			}
			nodes = append(nodes, n)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("quantizing ONNX model: %w", err)
	}
	isTarget := func(n nodeRef) bool {
		if n.op != "MatMul" || (n.domain != "" && n.domain != "ai.onnx") || len(n.inputs) != 2 || len(n.outputs) != 1 {
			return false
		}
		_, ok := inits[n.inputs[1]]
		return ok
	}
	// Weights read only by target MatMuls lose their float copy.
	targetReads := map[string]int{}
	for _, n := range nodes {
		if isTarget(n) {
			targetReads[n.inputs[1]]++
		}
	}

	// Pass 2: rewrite.
	const pfx = "snapvlm_int8/"
	newGraph := make([]byte, 0, len(graph)/3)
	quantizedW := map[string]bool{}
	quantizedX := map[string]bool{}
	var extraInits [][]byte
	replaced, nodeIdx := 0, 0
	err = eachRaw(graph, func(num protowire.Number, typ protowire.Type, raw, v []byte) error {
		if typ == protowire.BytesType && num == graphInitializer {
			if t, ok := inits[nameOfTensor(v)]; ok && targetReads[t.name] > 0 && targetReads[t.name] == readers[t.name] {
				return nil // replaced by its int8 form
			}
		}
		if typ != protowire.BytesType || num != graphNode {
			newGraph = append(newGraph, raw...)
			return nil
		}
		n := nodes[nodeIdx]
		nodeIdx++
		if !isTarget(n) {
			newGraph = append(newGraph, raw...)
			return nil
		}
		x, w := n.inputs[0], n.inputs[1]
		wq, ws := pfx+w+"/quantized", pfx+w+"/scale"
		if !quantizedW[w] {
			quantizedW[w] = true
			q, s, err := quantizeColumnsInt8(inits[w])
			if err != nil {
				return err
			}
			for _, t := range []*Tensor{{Name: wq, Type: Int8, Dims: inits[w].dims, Raw: q}, FloatTensor(ws, []int64{inits[w].dims[1]}, s)} {
				b, err := encodeTensor(t)
				if err != nil {
					return err
				}
				extraInits = append(extraInits, b)
			}
		}
		xq, xs, xz := pfx+x+"/quantized", pfx+x+"/scale", pfx+x+"/zero_point"
		base := pfx + n.name + fmt.Sprint("#", nodeIdx)
		newNodes := []Node{}
		if !quantizedX[x] {
			quantizedX[x] = true
			newNodes = append(newNodes, Node{Name: pfx + x + "/DynamicQuantizeLinear", OpType: "DynamicQuantizeLinear", Inputs: []string{x}, Outputs: []string{xq, xs, xz}})
		}
		acc, accF, scale := base+"/MatMulInteger", base+"/Cast", base+"/scales"
		newNodes = append(newNodes,
			Node{Name: acc, OpType: "MatMulInteger", Inputs: []string{xq, wq, xz}, Outputs: []string{acc}},
			Node{Name: accF, OpType: "Cast", Inputs: []string{acc}, Outputs: []string{accF}, Attrs: []Attr{Int("to", int64(Float))}},
			Node{Name: scale, OpType: "Mul", Inputs: []string{xs, ws}, Outputs: []string{scale}},
			Node{Name: base + "/Mul", OpType: "Mul", Inputs: []string{accF, scale}, Outputs: []string{n.outputs[0]}},
		)
		for _, nn := range newNodes {
			b, err := EncodeNode(nn)
			if err != nil {
				return err
			}
			newGraph = AppendMessage(newGraph, graphNode, b)
		}
		replaced++
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("quantizing ONNX model: %w", err)
	}
	for _, b := range extraInits {
		newGraph = AppendMessage(newGraph, graphInitializer, b)
	}
	out, err := withGraph(model, newGraph)
	if err != nil {
		return nil, 0, fmt.Errorf("quantizing ONNX model: %w", err)
	}
	return out, replaced, nil
}

// rawTensor is an initializer as stored: float data in raw_data or
// float_data (nil when external or of another layout).
type rawTensor struct {
	name  string
	dtype DataType
	dims  []int64
	data  []byte // little-endian values (raw_data, or float_data of a float32 tensor)
}

func nameOfTensor(b []byte) string {
	n, _ := findField(b, tensorName)
	return string(n)
}

// tensorFloatData is TensorProto.float_data (field 4).
const tensorFloatData = 4

func parseRawTensor(b []byte) (rawTensor, error) {
	var t rawTensor
	var floats []byte
	external := false
	err := eachRaw(b, func(num protowire.Number, typ protowire.Type, raw, v []byte) error {
		switch {
		case num == tensorDims && typ == protowire.VarintType:
			x, _ := protowire.ConsumeVarint(raw[protowire.SizeTag(num):])
			t.dims = append(t.dims, int64(x))
		case num == tensorDims && typ == protowire.BytesType:
			for len(v) > 0 {
				x, n := protowire.ConsumeVarint(v)
				if n < 0 {
					return errors.New("bad packed dims")
				}
				t.dims = append(t.dims, int64(x))
				v = v[n:]
			}
		case num == tensorDataType && typ == protowire.VarintType:
			x, _ := protowire.ConsumeVarint(raw[protowire.SizeTag(num):])
			t.dtype = DataType(x)
		case num == tensorName && typ == protowire.BytesType:
			t.name = string(v)
		case num == tensorRawData && typ == protowire.BytesType:
			t.data = v
		case num == tensorFloatData && typ == protowire.BytesType:
			floats = v
		case num == tensorDataLocation && typ == protowire.VarintType:
			x, _ := protowire.ConsumeVarint(raw[protowire.SizeTag(num):])
			external = x == dataLocationExt
		}
		return nil
	})
	if err != nil {
		return t, fmt.Errorf("reading initializer %q: %w", t.name, err)
	}
	if t.data == nil && floats != nil {
		t.data = floats
	}
	n := int64(t.dtype.Size())
	for _, d := range t.dims {
		n *= d
	}
	if external || n == 0 || int64(len(t.data)) != n {
		t.data = nil
	}
	return t, nil
}

// nodeRef is what the rewrite needs of a NodeProto.
type nodeRef struct {
	name, op, domain string
	inputs, outputs  []string
}

func parseNodeRef(b []byte) (nodeRef, error) {
	var n nodeRef
	err := eachRaw(b, func(num protowire.Number, typ protowire.Type, _, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case nodeInput:
			n.inputs = append(n.inputs, string(v))
		case nodeOutput:
			n.outputs = append(n.outputs, string(v))
		case nodeName:
			n.name = string(v)
		case nodeOpType:
			n.op = string(v)
		case nodeDomain:
			n.domain = string(v)
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("reading node: %w", err)
	}
	return n, nil
}

// quantizeColumnsInt8 quantizes a [K, N] float32 matrix per column:
// scale[n] = max_k |w[k, n]| / 127 (1 for an all-zero column), q =
// round-half-even(w / scale) in [-127, 127].
func quantizeColumnsInt8(t rawTensor) (q []byte, scales []float32, err error) {
	k, n := int(t.dims[0]), int(t.dims[1])
	if k*n*4 != len(t.data) {
		return nil, nil, fmt.Errorf("initializer %q: %d bytes for dims %v", t.name, len(t.data), t.dims)
	}
	w := func(i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(t.data[4*i:])) }
	scales = make([]float32, n)
	for r := 0; r < k; r++ {
		for c := 0; c < n; c++ {
			scales[c] = max(scales[c], float32(math.Abs(float64(w(r*n+c)))))
		}
	}
	inv := make([]float32, n)
	for c := range scales {
		if scales[c] == 0 {
			scales[c] = 1
		} else {
			scales[c] /= 127
		}
		inv[c] = 1 / scales[c]
	}
	q = make([]byte, k*n)
	for r := 0; r < k; r++ {
		for c := 0; c < n; c++ {
			v := math.RoundToEven(float64(w(r*n+c) * inv[c]))
			q[r*n+c] = byte(int8(max(-127, min(127, v))))
		}
	}
	return q, scales, nil
}
