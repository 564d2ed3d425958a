package snapvlm

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/snapvlm/snapvlm/internal/modelconfig"
	"github.com/snapvlm/snapvlm/internal/onnx"
	"github.com/snapvlm/snapvlm/internal/ort"
)

// dynamicallyQuantized reports whether a graph quantizes its activations at
// run time (DynamicQuantizeLinear, in the int8, uint8 and quantized
// variants and in the int8 vision rewrite). Such a graph computes one scale
// per activation tensor, so a tile's features depend on the tiles it is
// run with, and a decoder row's logits on the other rows of a batch.
func dynamicallyQuantized(path string) (bool, error) {
	ops, err := onnx.ReadFileOpTypes(path)
	if err != nil {
		return false, err
	}
	// DynamicQuantizeMatMul is ONNX Runtime's fusion of the same thing.
	return ops["DynamicQuantizeLinear"]+ops["DynamicQuantizeMatMul"] > 0, nil
}

// defaultVisionBatch is the number of tiles per vision-encoder run when
// Options.VisionBatch is 0: 2 (README, Speed), or 1 for a dynamically
// quantized encoder, so that an image's features do not depend on the
// other tiles and images of the request. (transformers.js runs all tiles
// at once; Options.VisionBatch above the tile count does the same.)
func defaultVisionBatch(path string) (int, error) {
	dq, err := dynamicallyQuantized(path)
	if err != nil {
		return 0, err
	}
	if dq {
		return 1, nil
	}
	return 2, nil
}

// missingKernel matches ONNX Runtime's session-creation error for an
// operator its execution provider has no kernel for (types included), such
// as "Could not find an implementation for ConvInteger(10) node with name
// '/embeddings/patch_embedding/Conv_quant'".
var missingKernel = regexp.MustCompile(`Could not find an implementation for ([A-Za-z0-9_.]+)\((\d+)\) node with name '([^']*)'`)

// UnsupportedVariantError reports a graph file variant that ONNX Runtime
// cannot run with the chosen execution provider: it has no kernel for one of
// the graph's operators (such as ConvInteger in some int8 exports). Load
// returns it inside a *ModelError; loading again with another variant of
// Graph (Alternatives[0], through Options.VisionDtype, EmbedDtype or
// DecoderDtype) avoids it.
type UnsupportedVariantError struct {
	Graph        string   // GraphVision, GraphEmbed or GraphDecoder
	Dtype        string   // the variant refused
	File         string   // its file
	Runtime      string   // the ONNX Runtime version
	Provider     string   // the execution provider ("cpu" for the default)
	Op, Opset    string   // the operator without a kernel and its opset, e.g. ConvInteger, 10
	Node         string   // the graph node using it
	Alternatives []string // the other variants present, in the default order
	Err          error    // ONNX Runtime's error
}

// Error names the variant, the operator and the option that picks another
// variant.
func (e *UnsupportedVariantError) Error() string {
	use := "no other variant of " + e.Graph + " is present"
	if len(e.Alternatives) > 0 {
		use = fmt.Sprintf("use %s %s (variants present: %s)", dtypeOption(e.Graph), e.Alternatives[0], strings.Join(e.Alternatives, ", "))
	}
	return fmt.Sprintf("%s variant of %s (%s) cannot run on ONNX Runtime %s with the %s provider: no kernel for operator %s (opset %s, node %q); %s: %v",
		e.Dtype, e.Graph, filepath.Base(e.File), e.Runtime, e.Provider, e.Op, e.Opset, e.Node, use, e.Err)
}

// Unwrap returns ONNX Runtime's error.
func (e *UnsupportedVariantError) Unwrap() error { return e.Err }

// refuseVariant turns ONNX Runtime's missing-kernel error for a graph file
// into an *UnsupportedVariantError (naming the runtime, the provider and
// the variants to use instead); other errors are returned as they are.
func refuseVariant(err error, dir, graph, file, ortVersion, provider string) error {
	m := missingKernel.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	dtype := dtypeOfFile(file, graph)
	var others []string
	for _, d := range defaultOrder(graph) {
		if d != dtype && slices.Contains(Variants(dir, graph), d) {
			others = append(others, d)
		}
	}
	if provider == "" {
		provider = "cpu"
	}
	return &UnsupportedVariantError{Graph: graph, Dtype: dtype, File: file, Runtime: ortVersion, Provider: provider,
		Op: m[1], Opset: m[2], Node: m[3], Alternatives: others, Err: err}
}

// dtypeOfFile is the variant of a graph file, from its suffix.
func dtypeOfFile(file, graph string) string {
	base := strings.TrimSuffix(ort.SourceBase(file), ".onnx")
	for _, d := range modelconfig.Dtypes() {
		if s, _ := modelconfig.DtypeSuffix(d); base == graph+s {
			return d
		}
	}
	return "fp32"
}

// dtypeOption is the Options field choosing a graph's variant.
func dtypeOption(graph string) string {
	switch graph {
	case GraphVision:
		return "Options.VisionDtype"
	case GraphEmbed:
		return "Options.EmbedDtype"
	}
	return "Options.DecoderDtype"
}

// fileReason says why file was chosen for graph: the option that asked for
// its variant, or the default order.
func fileReason(graph, dtype string, opts Options) string {
	switch {
	case dtype == "":
		return fmt.Sprintf("default: first present of %s", strings.Join(defaultOrder(graph), ", "))
	case graph == GraphVision && firstNonEmpty(opts.VisionDtype) != "",
		graph == GraphEmbed && firstNonEmpty(opts.EmbedDtype) != "",
		graph == GraphDecoder && firstNonEmpty(opts.DecoderDtype) != "":
		return fmt.Sprintf("asked for: %s %s", dtypeOption(graph), dtype)
	}
	return "asked for: Options.Dtype " + dtype
}
