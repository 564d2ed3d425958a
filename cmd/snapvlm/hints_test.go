package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm"
)

// TestFlagHints: the library's errors name its options; the CLI adds the
// flags that do the same.
func TestFlagHints(t *testing.T) {
	ortErr := errors.New("Could not find an implementation for ConvInteger(10) node with name 'n'")
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"runtime missing", fmt.Errorf("%w: looked in ...", snapvlm.ErrRuntimeMissing), "pass --ort-lib FILE"},
		{"variant missing", &snapvlm.ModelError{Dir: "d", Err: fmt.Errorf("%w: no fp16 variant", snapvlm.ErrVariantMissing)}, "--dtype"},
		{"prompt too long", &snapvlm.PromptTooLongError{Tokens: 9000, ImageTokens: 8000, Limit: 8192}, "--no-split"},
		{"unsupported vision variant", &snapvlm.ModelError{Dir: "d", Err: &snapvlm.UnsupportedVariantError{
			Graph: snapvlm.GraphVision, Dtype: "int8", File: "d/onnx/vision_encoder_int8.onnx", Runtime: "1.30.0", Provider: "cpu",
			Op: "ConvInteger", Opset: "10", Node: "n", Alternatives: []string{"fp32", "uint8"}, Err: ortErr}},
			"use Options.VisionDtype fp32 (variants present: fp32, uint8)"},
		{"unsupported vision variant, flag", &snapvlm.ModelError{Dir: "d", Err: &snapvlm.UnsupportedVariantError{
			Graph: snapvlm.GraphVision, Dtype: "int8", Alternatives: []string{"fp32", "uint8"}, Err: ortErr}}, "(pass --vision-dtype fp32)"},
		{"unsupported decoder variant, flag", &snapvlm.UnsupportedVariantError{
			Graph: snapvlm.GraphDecoder, Dtype: "int8", Alternatives: []string{"q4"}, Err: ortErr}, "(pass --decoder-dtype q4)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := withFlagHints(c.err)
			if !strings.Contains(got.Error(), c.want) {
				t.Errorf("%q lacks %q", got, c.want)
			}
			if !errors.Is(got, c.err) {
				t.Error("the engine's error is not wrapped")
			}
			if strings.Contains(c.err.Error(), "--") {
				t.Errorf("the library's message %q names a flag", c.err)
			}
		})
	}
}
