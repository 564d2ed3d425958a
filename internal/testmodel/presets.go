package testmodel

import "sort"

// preset holds the dimensions of one test model family.
type preset struct {
	name string
	// Text decoder (SmolLM2 / Llama).
	hidden, layers, heads, kvHeads, headDim, mlp int
	ropeTheta                                    float64
	maxPos                                       int
	// Vision tower (SigLIP) and connector.
	vHidden, vLayers, vHeads, vMLP int
	patch, tile, scale             int
	longestEdge                    int // preprocessor size.longest_edge
	// realVocab is the vocabulary the real model has, used to count
	// parameters when no tokenizer is at hand.
	realVocab int
	// gains tune the random weights (see weights.go and the package doc).
	tiny bool
}

var presets = map[string]preset{
	// 512-px family (SmolVLM2-256M/500M layout), tiny widths.
	"tiny512": {
		name: "tiny512", hidden: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, mlp: 128,
		ropeTheta: 100000, maxPos: 8192,
		vHidden: 32, vLayers: 2, vHeads: 2, vMLP: 64, patch: 16, tile: 512, scale: 4,
		longestEdge: 2048, realVocab: 49280, tiny: true,
	},
	// 384-px family (SmolVLM2-2.2B layout), tiny widths.
	"tiny384": {
		name: "tiny384", hidden: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, mlp: 128,
		ropeTheta: 273768, maxPos: 8192,
		vHidden: 32, vLayers: 2, vHeads: 2, vMLP: 64, patch: 14, tile: 384, scale: 3,
		longestEdge: 1536, realVocab: 49280, tiny: true,
	},
	// tiny384 with as many key/value heads as query heads, as
	// SmolVLM2-2.2B has (32 on 32): no attention to regroup.
	"tiny384mha": {
		name: "tiny384mha", hidden: 64, layers: 2, heads: 4, kvHeads: 4, headDim: 16, mlp: 128,
		ropeTheta: 273768, maxPos: 8192,
		vHidden: 32, vLayers: 2, vHeads: 2, vMLP: 64, patch: 14, tile: 384, scale: 3,
		longestEdge: 1536, realVocab: 49280, tiny: true,
	},
	// Real dimensions of SmolVLM2-256M-Video-Instruct.
	"real256m": {
		name: "real256m", hidden: 576, layers: 30, heads: 9, kvHeads: 3, headDim: 64, mlp: 1536,
		ropeTheta: 100000, maxPos: 8192,
		vHidden: 768, vLayers: 12, vHeads: 12, vMLP: 3072, patch: 16, tile: 512, scale: 4,
		longestEdge: 2048, realVocab: 49280,
	},
	// Real dimensions of SmolVLM2-500M-Video-Instruct.
	"real500m": {
		name: "real500m", hidden: 960, layers: 32, heads: 15, kvHeads: 5, headDim: 64, mlp: 2560,
		ropeTheta: 100000, maxPos: 8192,
		vHidden: 768, vLayers: 12, vHeads: 12, vMLP: 3072, patch: 16, tile: 512, scale: 4,
		longestEdge: 2048, realVocab: 49280,
	},
}

// Presets returns the preset names Generate accepts, sorted.
func Presets() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// gridSide is the number of patches along one side of a tile.
func (p preset) gridSide() int { return p.tile / p.patch }

// imageSeqLen is the number of tokens one tile becomes.
func (p preset) imageSeqLen() int {
	g := p.gridSide() / p.scale
	return g * g
}
