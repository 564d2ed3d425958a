package modelconfig

import "slices"

// The graphs of a SmolVLM ONNX export, stored as onnx/<graph><suffix>.onnx.
const (
	GraphVision  = "vision_encoder"
	GraphEmbed   = "embed_tokens"
	GraphDecoder = "decoder_model_merged"
)

// dtypes are the variants of the Hugging Face exports (transformers.js'
// quantize.py names) with their file suffixes, in listing order.
var dtypes = [...]struct{ name, suffix string }{
	{"fp32", ""}, {"fp16", "_fp16"}, {"q4", "_q4"}, {"q4f16", "_q4f16"},
	{"int8", "_int8"}, {"uint8", "_uint8"}, {"quantized", "_quantized"}, {"bnb4", "_bnb4"},
}

// Graphs returns the three graph names in pipeline order.
func Graphs() []string { return []string{GraphVision, GraphEmbed, GraphDecoder} }

// IsGraph reports whether g names one of the three graphs.
func IsGraph(g string) bool { return slices.Contains(Graphs(), g) }

// Dtypes returns the variant names in a stable order.
func Dtypes() []string {
	out := make([]string, len(dtypes))
	for i, d := range dtypes {
		out[i] = d.name
	}
	return out
}

// DtypeSuffix returns the file-name suffix of a variant ("" for fp32) and
// whether the variant is known.
func DtypeSuffix(dtype string) (string, bool) {
	for _, d := range dtypes {
		if d.name == dtype {
			return d.suffix, true
		}
	}
	return "", false
}

// GraphPath is the slash-separated path of a graph variant inside a model
// directory or Hub repo, such as "onnx/decoder_model_merged_q4.onnx".
// dtype must be known (see DtypeSuffix).
func GraphPath(graph, dtype string) string {
	s, _ := DtypeSuffix(dtype)
	return "onnx/" + graph + s + ".onnx"
}
