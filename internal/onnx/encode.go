package onnx

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers from onnx.proto.
const (
	modelIRVersion       = 1
	modelProducerName    = 2
	modelProducerVersion = 3
	modelGraph           = 7
	modelOpsetImport     = 8
	modelMetadataProps   = 14

	opsetDomain  = 1
	opsetVersion = 2

	graphNode        = 1
	graphName        = 2
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

	entryKey   = 1
	entryValue = 2

	valueInfoName = 1
	valueInfoType = 2

	typeTensor       = 1
	tensorTypeElem   = 1
	tensorTypeShape  = 2
	shapeDim         = 1
	dimValue         = 1
	dimParam         = 2
	dataLocationExt  = 1
	defaultMinExtern = 1024
)

// WriteOptions controls WriteFile.
type WriteOptions struct {
	// ExternalData stores initializers of at least ExternalMinBytes bytes in
	// the file path+"_data" (ONNX external data, offsets aligned to 4 KiB)
	// instead of inside the model. ONNX Runtime then loads the model only
	// from a path, not from bytes.
	ExternalData bool
	// ExternalMinBytes is the smallest tensor moved to the data file;
	// 0 means 1024 (the onnx Python default).
	ExternalMinBytes int64
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

// extRef says where a tensor's data lives in the external data file.
type extRef struct {
	location       string
	offset, length int64
}

// tensorHeader encodes everything of t except raw_data.
func tensorHeader(t *Tensor, ext *extRef) []byte {
	var b []byte
	for _, d := range t.Dims {
		b = appendVarint(b, tensorDims, uint64(d))
	}
	b = appendVarint(b, tensorDataType, uint64(t.Type))
	if t.Name != "" {
		b = appendString(b, tensorName, t.Name)
	}
	if ext != nil {
		for _, kv := range [][2]string{
			{"location", ext.location},
			{"offset", strconv.FormatInt(ext.offset, 10)},
			{"length", strconv.FormatInt(ext.length, 10)},
		} {
			var e []byte
			e = appendString(e, entryKey, kv[0])
			e = appendString(e, entryValue, kv[1])
			b = appendMessage(b, tensorExternalData, e)
		}
		b = appendVarint(b, tensorDataLocation, dataLocationExt)
	}
	return b
}

// tensorData returns t's raw data, filling buf (grown as needed) when the
// tensor is lazy.
func tensorData(t *Tensor, buf *[]byte) ([]byte, error) {
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
	data, err := tensorData(t, &buf)
	if err != nil {
		return nil, err
	}
	b := tensorHeader(t, nil)
	if len(data) > 0 {
		b = protowire.AppendTag(b, tensorRawData, protowire.BytesType)
		b = protowire.AppendBytes(b, data)
	}
	return b, nil
}

func encodeAttr(a Attr) ([]byte, error) {
	var b []byte
	b = appendString(b, attrName, a.Name)
	switch a.Type {
	case AttrFloat:
		b = protowire.AppendTag(b, attrF, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, float32bits(a.F))
	case AttrInt:
		b = appendVarint(b, attrI, uint64(a.I))
	case AttrString:
		b = appendString(b, attrS, a.S)
	case AttrTensor:
		if a.T == nil {
			return nil, fmt.Errorf("attribute %q: nil tensor", a.Name)
		}
		t, err := encodeTensor(a.T)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", a.Name, err)
		}
		b = appendMessage(b, attrT, t)
	case AttrFloats:
		for _, f := range a.Floats {
			b = protowire.AppendTag(b, attrFloats, protowire.Fixed32Type)
			b = protowire.AppendFixed32(b, float32bits(f))
		}
	case AttrInts:
		for _, v := range a.Ints {
			b = appendVarint(b, attrInts, uint64(v))
		}
	case AttrStrings:
		for _, s := range a.Strings {
			b = appendString(b, attrStrings, s)
		}
	default:
		return nil, fmt.Errorf("attribute %q: unsupported type %d", a.Name, a.Type)
	}
	b = appendVarint(b, attrType, uint64(a.Type))
	return b, nil
}

func encodeNode(n Node) ([]byte, error) {
	var b []byte
	for _, in := range n.Inputs {
		b = appendString(b, nodeInput, in)
	}
	for _, out := range n.Outputs {
		b = appendString(b, nodeOutput, out)
	}
	if n.Name != "" {
		b = appendString(b, nodeName, n.Name)
	}
	b = appendString(b, nodeOpType, n.OpType)
	for _, a := range n.Attrs {
		ab, err := encodeAttr(a)
		if err != nil {
			return nil, fmt.Errorf("node %q (%s): %w", n.Name, n.OpType, err)
		}
		b = appendMessage(b, nodeAttribute, ab)
	}
	if n.Domain != "" {
		b = appendString(b, nodeDomain, n.Domain)
	}
	return b, nil
}

func encodeValueInfo(v ValueInfo) []byte {
	var shape []byte
	for _, d := range v.Shape {
		var db []byte
		if d.Param != "" {
			db = appendString(db, dimParam, d.Param)
		} else {
			db = appendVarint(db, dimValue, uint64(d.Value))
		}
		shape = appendMessage(shape, shapeDim, db)
	}
	var tt []byte
	tt = appendVarint(tt, tensorTypeElem, uint64(v.Type))
	tt = appendMessage(tt, tensorTypeShape, shape)
	var typ []byte
	typ = appendMessage(typ, typeTensor, tt)
	var b []byte
	b = appendString(b, valueInfoName, v.Name)
	b = appendMessage(b, valueInfoType, typ)
	return b
}

// modelPrefix encodes the model fields that precede the graph.
func (m *Model) modelPrefix() []byte {
	var b []byte
	b = appendVarint(b, modelIRVersion, uint64(m.IRVersion))
	if m.ProducerName != "" {
		b = appendString(b, modelProducerName, m.ProducerName)
	}
	if m.ProducerVersion != "" {
		b = appendString(b, modelProducerVersion, m.ProducerVersion)
	}
	for _, o := range m.Opsets {
		var ob []byte
		if o.Domain != "" {
			ob = appendString(ob, opsetDomain, o.Domain)
		}
		ob = appendVarint(ob, opsetVersion, uint64(o.Version))
		b = appendMessage(b, modelOpsetImport, ob)
	}
	for _, kv := range m.Metadata {
		var e []byte
		e = appendString(e, entryKey, kv[0])
		e = appendString(e, entryValue, kv[1])
		b = appendMessage(b, modelMetadataProps, e)
	}
	return b
}

// graphPrefix encodes the graph fields except the initializers.
func (g *Graph) graphPrefix() ([]byte, error) {
	var b []byte
	if g.Name != "" {
		b = appendString(b, graphName, g.Name)
	}
	for _, n := range g.Nodes {
		nb, err := encodeNode(n)
		if err != nil {
			return nil, fmt.Errorf("graph %q: %w", g.Name, err)
		}
		b = appendMessage(b, graphNode, nb)
	}
	for _, v := range g.Inputs {
		b = appendMessage(b, graphInput, encodeValueInfo(v))
	}
	for _, v := range g.Outputs {
		b = appendMessage(b, graphOutput, encodeValueInfo(v))
	}
	return b, nil
}

// Marshal returns the encoded model with all data inline.
func (m *Model) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	if err := m.write(&buf, nil); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteTo writes the encoded model with all data inline to w.
func (m *Model) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	err := m.write(cw, nil)
	return cw.n, err
}

// WriteFile writes the model to path (and, with opt.ExternalData, its
// weights to path+"_data"). Initializer data is generated and written one
// tensor at a time.
func (m *Model) WriteFile(path string, opt WriteOptions) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("onnx: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("onnx: %w", cerr)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	var ext map[*Tensor]*extRef
	if opt.ExternalData {
		ext, err = m.writeExternal(path, opt)
		if err != nil {
			return err
		}
	}
	if err := m.write(bw, ext); err != nil {
		return fmt.Errorf("onnx: writing %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("onnx: writing %s: %w", path, err)
	}
	return nil
}

// writeExternal writes the large initializers to path+"_data" and returns
// where each one went.
func (m *Model) writeExternal(path string, opt WriteOptions) (refs map[*Tensor]*extRef, err error) {
	min := opt.ExternalMinBytes
	if min <= 0 {
		min = defaultMinExtern
	}
	dataPath := path + "_data"
	f, err := os.Create(dataPath)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("onnx: %w", cerr)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	refs = map[*Tensor]*extRef{}
	var off int64
	var buf []byte
	pad := make([]byte, externalAlignment)
	for _, t := range m.Graph.Initializers {
		if t.Bytes() < min {
			continue
		}
		if r := off % externalAlignment; r != 0 {
			if _, err := bw.Write(pad[:externalAlignment-r]); err != nil {
				return nil, fmt.Errorf("onnx: writing %s: %w", dataPath, err)
			}
			off += externalAlignment - r
		}
		data, err := tensorData(t, &buf)
		if err != nil {
			return nil, fmt.Errorf("onnx: %w", err)
		}
		if _, err := bw.Write(data); err != nil {
			return nil, fmt.Errorf("onnx: writing %s: %w", dataPath, err)
		}
		refs[t] = &extRef{location: filepath.Base(dataPath), offset: off, length: int64(len(data))}
		off += int64(len(data))
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("onnx: writing %s: %w", dataPath, err)
	}
	return refs, nil
}

// write streams the model: model fields, then the graph with its
// initializers last, each initializer's data produced just before it is
// written. Message lengths are computed up front from the tensor sizes.
func (m *Model) write(w io.Writer, ext map[*Tensor]*extRef) error {
	if m.Graph == nil {
		return fmt.Errorf("onnx: model has no graph")
	}
	prefix, err := m.Graph.graphPrefix()
	if err != nil {
		return fmt.Errorf("onnx: %w", err)
	}
	headers := make([][]byte, len(m.Graph.Initializers))
	graphLen := int64(len(prefix))
	for i, t := range m.Graph.Initializers {
		if t.Type.Size() == 0 {
			return fmt.Errorf("onnx: tensor %q: unsupported data type %v", t.Name, t.Type)
		}
		r := ext[t]
		headers[i] = tensorHeader(t, r)
		graphLen += int64(protowire.SizeTag(graphInitializer)) + sizeBytes(tensorLen(t, headers[i], r))
	}
	b := m.modelPrefix()
	b = protowire.AppendTag(b, modelGraph, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(graphLen))
	b = append(b, prefix...)
	if _, err := w.Write(b); err != nil {
		return err
	}
	var buf []byte
	for i, t := range m.Graph.Initializers {
		r := ext[t]
		b = protowire.AppendTag(b[:0], graphInitializer, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(tensorLen(t, headers[i], r)))
		b = append(b, headers[i]...)
		if r != nil || t.Bytes() == 0 {
			if _, err := w.Write(b); err != nil {
				return err
			}
			continue
		}
		data, err := tensorData(t, &buf)
		if err != nil {
			return fmt.Errorf("onnx: %w", err)
		}
		b = protowire.AppendTag(b, tensorRawData, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(len(data)))
		if _, err := w.Write(b); err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
	return nil
}

// tensorLen is the encoded length of an initializer message.
func tensorLen(t *Tensor, header []byte, r *extRef) int64 {
	n := int64(len(header))
	if r == nil && t.Bytes() > 0 {
		n += int64(protowire.SizeTag(tensorRawData)) + sizeBytes(t.Bytes())
	}
	return n
}

// sizeBytes is the size of a length-delimited field body of n bytes
// including its length prefix.
func sizeBytes(n int64) int64 { return int64(protowire.SizeVarint(uint64(n))) + n }

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
