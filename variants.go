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
// run with.
func dynamicallyQuantized(path string) (bool, error) {
	ops, err := onnx.ReadFileOpTypes(path)
	if err != nil {
		return false, err
	}
	return ops["DynamicQuantizeLinear"] > 0, nil
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

// refuseVariant turns ONNX Runtime's missing-kernel error for a graph file
// into one that names the operator and the variants to use instead; other
// errors are returned as they are.
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
	use := "no other variant of " + graph + " is present"
	if len(others) > 0 {
		use = fmt.Sprintf("use %s %s (variants present: %s)", dtypeFlag(graph), others[0], strings.Join(others, ", "))
	}
	return fmt.Errorf("model %s: %s variant of %s (%s) cannot run on ONNX Runtime %s with the %s provider: no kernel for operator %s (opset %s, node %q); %s: %w",
		dir, dtype, graph, filepath.Base(file), ortVersion, provider, m[1], m[2], m[3], use, err)
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

// dtypeFlag is the command-line flag choosing a graph's variant.
func dtypeFlag(graph string) string {
	switch graph {
	case GraphVision:
		return "--vision-dtype"
	case GraphEmbed:
		return "--embed-dtype"
	}
	return "--decoder-dtype"
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
		return fmt.Sprintf("asked for: %s %s", dtypeFlag(graph), dtype)
	}
	return "asked for: --dtype " + dtype
}
