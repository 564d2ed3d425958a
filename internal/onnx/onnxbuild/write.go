package onnxbuild

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/snapvlm/snapvlm/internal/onnx"
)

// Field numbers from onnx.proto of the fields only a whole-model writer
// sets (the rest are written by package onnx's encoders).
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

	tensorRawData      = 9
	tensorExternalData = 13
	tensorDataLocation = 14
	dataLocationExt    = 1

	entryKey   = 1
	entryValue = 2

	defaultMinExtern  = 1024
	externalAlignment = 4096
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

// extRef says where a tensor's data lives in the external data file.
type extRef struct {
	location       string
	offset, length int64
}

// tensorHeader encodes everything of t except raw_data: with ext, the
// external_data entries and data_location.
func tensorHeader(t *onnx.Tensor, ext *extRef) []byte {
	b := onnx.EncodeTensorHeader(t)
	if ext != nil {
		for _, kv := range [][2]string{
			{"location", ext.location},
			{"offset", strconv.FormatInt(ext.offset, 10)},
			{"length", strconv.FormatInt(ext.length, 10)},
		} {
			var e []byte
			e = onnx.AppendString(e, entryKey, kv[0])
			e = onnx.AppendString(e, entryValue, kv[1])
			b = onnx.AppendMessage(b, tensorExternalData, e)
		}
		b = onnx.AppendVarint(b, tensorDataLocation, dataLocationExt)
	}
	return b
}

// modelPrefix encodes the model fields that precede the graph.
func modelPrefix(m *onnx.Model) []byte {
	var b []byte
	b = onnx.AppendVarint(b, modelIRVersion, uint64(m.IRVersion))
	if m.ProducerName != "" {
		b = onnx.AppendString(b, modelProducerName, m.ProducerName)
	}
	if m.ProducerVersion != "" {
		b = onnx.AppendString(b, modelProducerVersion, m.ProducerVersion)
	}
	for _, o := range m.Opsets {
		var ob []byte
		if o.Domain != "" {
			ob = onnx.AppendString(ob, opsetDomain, o.Domain)
		}
		ob = onnx.AppendVarint(ob, opsetVersion, uint64(o.Version))
		b = onnx.AppendMessage(b, modelOpsetImport, ob)
	}
	for _, kv := range m.Metadata {
		var e []byte
		e = onnx.AppendString(e, entryKey, kv[0])
		e = onnx.AppendString(e, entryValue, kv[1])
		b = onnx.AppendMessage(b, modelMetadataProps, e)
	}
	return b
}

// graphPrefix encodes the graph fields except the initializers.
func graphPrefix(g *onnx.Graph) ([]byte, error) {
	var b []byte
	if g.Name != "" {
		b = onnx.AppendString(b, graphName, g.Name)
	}
	for _, n := range g.Nodes {
		nb, err := onnx.EncodeNode(n)
		if err != nil {
			return nil, fmt.Errorf("graph %q: %w", g.Name, err)
		}
		b = onnx.AppendMessage(b, graphNode, nb)
	}
	for _, v := range g.Inputs {
		b = onnx.AppendMessage(b, graphInput, onnx.EncodeValueInfo(v))
	}
	for _, v := range g.Outputs {
		b = onnx.AppendMessage(b, graphOutput, onnx.EncodeValueInfo(v))
	}
	return b, nil
}

// Marshal returns the encoded model with all data inline.
func Marshal(m *onnx.Model) ([]byte, error) {
	var buf bytes.Buffer
	if err := write(m, &buf, nil); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteFile writes the model to path (and, with opt.ExternalData, its
// weights to path+"_data"). Initializer data is generated and written one
// tensor at a time.
func WriteFile(m *onnx.Model, path string, opt WriteOptions) (err error) {
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
	var ext map[*onnx.Tensor]*extRef
	if opt.ExternalData {
		ext, err = writeExternal(m, path, opt)
		if err != nil {
			return err
		}
	}
	if err := write(m, bw, ext); err != nil {
		return fmt.Errorf("onnx: writing %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("onnx: writing %s: %w", path, err)
	}
	return nil
}

// writeExternal writes the large initializers to path+"_data" and returns
// where each one went.
func writeExternal(m *onnx.Model, path string, opt WriteOptions) (refs map[*onnx.Tensor]*extRef, err error) {
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
	refs = map[*onnx.Tensor]*extRef{}
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
		data, err := onnx.TensorData(t, &buf)
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
func write(m *onnx.Model, w io.Writer, ext map[*onnx.Tensor]*extRef) error {
	if m.Graph == nil {
		return fmt.Errorf("onnx: model has no graph")
	}
	prefix, err := graphPrefix(m.Graph)
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
	b := modelPrefix(m)
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
		data, err := onnx.TensorData(t, &buf)
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
func tensorLen(t *onnx.Tensor, header []byte, r *extRef) int64 {
	n := int64(len(header))
	if r == nil && t.Bytes() > 0 {
		n += int64(protowire.SizeTag(tensorRawData)) + sizeBytes(t.Bytes())
	}
	return n
}

// sizeBytes is the size of a length-delimited field body of n bytes
// including its length prefix.
func sizeBytes(n int64) int64 { return int64(protowire.SizeVarint(uint64(n))) + n }

// InitializerBytes returns the total size of m's initializer data.
func InitializerBytes(m *onnx.Model) int64 {
	var n int64
	for _, t := range m.Graph.Initializers {
		n += t.Bytes()
	}
	return n
}
