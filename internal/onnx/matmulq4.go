package onnx

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// UseMatMulQ4 returns a copy of a serialized model in which the com.microsoft
// MatMulNBits nodes of the layout snapvlm's 4-bit kernel takes (bits 4,
// block_size 32, no zero points, group index or bias, float32 scales, inline
// or external uint8 weights [N, ceil(K/32), 16]) run as op in domain instead, with
// their weights and scales repacked for it (PackQ4) and their K and N. The
// kernel computes their product with the activations quantized to int8 per
// row and block of 32 (ort.MatMulQ4Op); other MatMulNBits nodes are left
// as they are. A Split that cuts a replaced node's output into outputs of
// multiples of 16 columns (FuseMatMulNBits' Split) goes into the node,
// which writes them itself (attributes N1, N2). The domain is imported at
// version 1. It returns the new model and the number of nodes replaced.
//
// dir, when not empty, is the directory of the model's file: weights in
// external data files are read from there (the new ones are inline).
func UseMatMulQ4(model []byte, domain, op, dir string) ([]byte, int, error) {
	g, graph, err := indexGraph(model)
	if err != nil {
		return nil, 0, fmt.Errorf("using the 4-bit kernel: %w", err)
	}
	replace := map[int][]Node{}
	drop := map[int]bool{}
	var inits []*Tensor
nodes:
	for i, n := range g.nodes {
		if n.op != "MatMulNBits" || n.domain != MicrosoftDomain || len(n.inputs) != 3 || len(n.outputs) != 1 {
			continue
		}
		for name := range n.ints {
			if !slices.Contains(nbitsAttrs, name) {
				continue nodes
			}
		}
		attr := func(name string) int64 {
			if v, ok := n.ints[name]; ok && len(v) == 1 {
				return v[0]
			}
			return -1
		}
		k, nn := attr("K"), attr("N")
		if attr("bits") != 4 || attr("block_size") != 32 || k <= 0 || nn <= 0 {
			continue
		}
		nblk := (k + 31) / 32
		b, ok := g.initFrom(n.inputs[1], dir)
		if !ok || b.dtype != Uint8 || !slices.Equal(b.dims, []int64{nn, nblk, 16}) || int64(len(b.data)) != nn*nblk*16 {
			continue
		}
		s, ok := g.initFrom(n.inputs[2], dir)
		if !ok || s.dtype != Float || int64(len(s.data)) != nn*nblk*4 {
			continue
		}
		pb, ps := PackQ4(b.data, s.data, int(nn), int(k))
		base := fmt.Sprintf("snapvlm_q4/%d/", len(replace))
		bT := &Tensor{Name: base + "B", Type: Uint8, Dims: []int64{(nn + 15) / 16, nblk, 8, 32}, Raw: pb}
		sT := &Tensor{Name: base + "scales", Type: Float, Dims: []int64{(nn + 15) / 16, nblk, 16}, Raw: ps}
		inits = append(inits, bT, sT)
		outs, attrs := n.outputs, []Attr{Int("K", k), Int("N", nn)}
		if si, widths, ok := g.splitAfter(n.outputs[0], nn); ok {
			// The kernel writes the Split's outputs itself (attributes N1, N2).
			outs = g.nodes[si].outputs
			for o, w := range widths[1:] {
				attrs = append(attrs, Int(fmt.Sprintf("N%d", o+1), w))
			}
			drop[si] = true
		}
		replace[i] = []Node{{Name: n.name, OpType: op, Domain: domain, Inputs: []string{n.inputs[0], bT.Name, sT.Name}, Outputs: outs, Attrs: attrs}}
		// The original weights go with the node when nothing else reads them.
		drop[i] = true
	}
	if len(replace) == 0 {
		return model, 0, nil
	}
	out, err := g.rewrite(model, graph, replace, drop, inits)
	if err != nil {
		return nil, 0, fmt.Errorf("using the 4-bit kernel: %w", err)
	}
	return importOpset(out, domain), len(replace), nil
}

// splitAfter finds the Split that alone reads value, the nn columns of a
// MatMulNBits (FuseMatMulNBits' fused query/key/value or gate/up), when it
// cuts them along the last axis into 2 or 3 outputs all but the last of
// which are a multiple of 16 columns wide: snapvlm's kernel writes such
// outputs itself: a node and a copy fewer. It returns the
// Split's index and the widths.
func (g *gqaGraph) splitAfter(value string, nn int64) (int, []int64, bool) {
	if g.readers[value] != 1 || slices.Contains(g.outputs, value) {
		return 0, nil, false
	}
	for i, s := range g.nodes {
		if s.op != "Split" || (s.domain != "" && s.domain != "ai.onnx") || len(s.inputs) != 2 || s.inputs[0] != value {
			continue
		}
		widths, ok := g.consts(s.inputs[1])
		if !slices.Equal(s.ints["axis"], []int64{-1}) || !ok || len(widths) < 2 || len(widths) > 3 || len(s.outputs) != len(widths) {
			return 0, nil, false
		}
		var sum int64
		for j, w := range widths {
			if w <= 0 || (j < len(widths)-1 && w%16 != 0) || s.outputs[j] == "" {
				return 0, nil, false
			}
			sum += w
		}
		if sum != nn {
			return 0, nil, false
		}
		return i, widths, true
	}
	return 0, nil, false
}

// PackQ4 repacks MatMulNBits' 4-bit weights ([n][ceil(k/32)][16] bytes, two
// values of k per byte, low nibble first) and float32 block scales
// ([n][ceil(k/32)], little-endian) for snapvlm's kernel: in groups of 16
// columns, per block of 32 and group of 8 values of k, 64 bytes
// ([n/16][block][k/8][16][4]) whose byte j of column c holds k+j in its
// low nibble and k+4+j in its high one, so that one 64-byte load holds 8
// values of k for 16 columns and a mask or a shift and a mask make a vector
// of 4 of them; and the scales per group and block ([n/16][block][16]).
// Columns past n in the last group are zero.
func PackQ4(b, scales []byte, n, k int) (packed, packedScales []byte) {
	nblk := (k + 31) / 32
	groups := (n + 15) / 16
	packed = make([]byte, groups*nblk*8*32)
	packedScales = make([]byte, groups*nblk*16*4)
	for c := range n {
		g, col := c/16, c%16
		for blk := range nblk {
			src := b[(c*nblk+blk)*16:]
			nib := func(k int) byte { return src[k/2] >> (4 * (k % 2)) & 15 }
			for p := range 4 {
				for j := range 4 {
					packed[((g*nblk+blk)*4+p)*64+col*4+j] = nib(8*p+j) | nib(8*p+4+j)<<4
				}
			}
			copy(packedScales[((g*nblk+blk)*16+col)*4:][:4], scales[(c*nblk+blk)*4:])
		}
	}
	return packed, packedScales
}

// initFrom returns the initializer name with its data, inline or, when dir
// is not empty, read from its external data file in dir.
func (g *gqaGraph) initFrom(name, dir string) (rawTensor, bool) {
	if t, ok := g.initData(name); ok || dir == "" {
		return t, ok
	}
	b, ok := g.inits[name]
	if !ok {
		return rawTensor{}, false
	}
	t, err := parseRawTensor(b)
	if err != nil {
		return rawTensor{}, false
	}
	var loc string
	var off, n int64 = 0, -1
	err = eachRaw(b, func(num protowire.Number, typ protowire.Type, _, v []byte) error {
		if num != tensorExternalData || typ != protowire.BytesType {
			return nil
		}
		var key, val string
		if err := eachField(v, func(num protowire.Number, _ protowire.Type, b []byte, _ uint64) error {
			switch num {
			case 1:
				key = string(b)
			case 2:
				val = string(b)
			}
			return nil
		}); err != nil {
			return err
		}
		var err error
		switch key {
		case "location":
			loc = val
		case "offset":
			off, err = strconv.ParseInt(val, 10, 64)
		case "length":
			n, err = strconv.ParseInt(val, 10, 64)
		}
		return err
	})
	if n < 0 { // no length: the tensor's size
		n = int64(t.dtype.Size())
		for _, d := range t.dims {
			n *= d
		}
	}
	// Only a plain file name beside the model: no path out of dir.
	if err != nil || loc == "" || loc != filepath.Base(loc) || off < 0 || n < 0 {
		return rawTensor{}, false
	}
	f, err := os.Open(filepath.Join(dir, loc))
	if err != nil {
		return rawTensor{}, false
	}
	defer f.Close()
	t.data = make([]byte, n)
	if _, err := f.ReadAt(t.data, off); err != nil {
		return rawTensor{}, false
	}
	return t, true
}
