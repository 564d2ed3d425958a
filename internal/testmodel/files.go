package testmodel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/snapvlm/snapvlm/internal/bpetrain"
	"github.com/snapvlm/snapvlm/internal/prompt"
)

// Special token strings (spec §1.2).
const (
	tokEndOfText   = "<|endoftext|>"
	tokIMStart     = "<|im_start|>"
	tokIMEnd       = "<|im_end|>"
	tokFake        = "<fake_token_around_image>"
	tokImage       = "<image>"
	tokGlobal      = "<global-img>"
	tokEndOfUtter  = "<end_of_utterance>"
	generatedVocab = 512 // base vocabulary of a generated tokenizer
)

// tokenizerInfo is what the configs need from a tokenizer.json.
type tokenizerInfo struct {
	data []byte
	// vocabSize is one more than the largest id (vocab and added tokens).
	vocabSize int
	added     []addedToken
	ids       map[string]int64
	source    string // path, or "generated"
}

type addedToken struct {
	ID         int64  `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

func parseTokenizer(data []byte, source string) (*tokenizerInfo, error) {
	var tj struct {
		AddedTokens []addedToken `json:"added_tokens"`
		Model       struct {
			Vocab map[string]int64 `json:"vocab"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &tj); err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", source, err)
	}
	ti := &tokenizerInfo{data: data, added: tj.AddedTokens, ids: map[string]int64{}, source: source}
	maxID := int64(-1)
	for tok, id := range tj.Model.Vocab {
		ti.ids[tok] = id
		maxID = max(maxID, id)
	}
	for _, a := range tj.AddedTokens {
		ti.ids[a.Content] = a.ID
		maxID = max(maxID, a.ID)
	}
	ti.vocabSize = int(maxID + 1)
	for _, tok := range []string{tokEndOfText, tokIMStart, tokIMEnd, tokFake, tokImage, tokGlobal, tokEndOfUtter, "<row_1_col_1>"} {
		if _, ok := ti.ids[tok]; !ok {
			return nil, fmt.Errorf("tokenizer %s: special token %s missing", source, tok)
		}
	}
	return ti, nil
}

// loadTokenizer reads the tokenizer chosen by opt, or trains a small one.
// The generator never looks outside what it was given: without
// TokenizerPath it ships the generated tokenizer.
func loadTokenizer(opt Options) (*tokenizerInfo, error) {
	if opt.TokenizerPath != "" && !opt.GenerateTokenizer {
		data, err := os.ReadFile(opt.TokenizerPath)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		return parseTokenizer(data, opt.TokenizerPath)
	}
	data, err := bpetrain.Train(bpetrain.Corpus, generatedVocab)
	if err != nil {
		return nil, fmt.Errorf("generating tokenizer: %w", err)
	}
	return parseTokenizer(data, "generated")
}

// writeJSON writes v like transformers does: sorted keys (maps), two-space
// indent, no HTML escaping, trailing newline.
func writeJSON(dir, name string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encoding %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

type obj = map[string]any

func tokenObj(content string) obj {
	return obj{"content": content, "lstrip": false, "normalized": false, "rstrip": false, "single_word": false}
}

// writeConfigs writes the JSON files and tokenizer.json of the model.
func writeConfigs(dir string, p preset, tok *tokenizerInfo) error {
	id := func(s string) int64 { return tok.ids[s] }
	vocab := tok.vocabSize
	text := obj{
		"_flash_attn_2_enabled":   true,
		"architectures":           []string{"VLlama3ForCausalLM"},
		"attention_bias":          false,
		"attention_dropout":       0.0,
		"bos_token_id":            id(tokIMStart),
		"eos_token_id":            id(tokIMEnd),
		"head_dim":                p.headDim,
		"hidden_act":              "silu",
		"hidden_size":             p.hidden,
		"initializer_range":       0.02,
		"intermediate_size":       p.mlp,
		"max_position_embeddings": p.maxPos,
		"mlp_bias":                false,
		"model_type":              "llama",
		"num_attention_heads":     p.heads,
		"num_hidden_layers":       p.layers,
		"num_key_value_heads":     p.kvHeads,
		"pad_token_id":            id(tokIMEnd),
		"pretraining_tp":          1,
		"rms_norm_eps":            1e-05,
		"rope_scaling":            nil,
		"rope_theta":              p.ropeTheta,
		"tie_word_embeddings":     false,
		"torch_dtype":             "float32",
		"use_cache":               true,
		"vocab_size":              vocab,
	}
	vision := obj{
		"hidden_act":          "gelu_pytorch_tanh",
		"hidden_size":         p.vHidden,
		"image_size":          p.tile,
		"initializer_range":   0.02,
		"intermediate_size":   p.vMLP,
		"layer_norm_eps":      1e-06,
		"max_image_size":      obj{"longest_edge": p.tile},
		"model_type":          "smolvlm_vision",
		"num_attention_heads": p.vHeads,
		"num_channels":        3,
		"num_hidden_layers":   p.vLayers,
		"patch_size":          p.patch,
		"size":                obj{"longest_edge": p.longestEdge},
		"tie_word_embeddings": false,
		"torch_dtype":         "float32",
		"use_base_siglip":     false,
	}
	config := obj{
		"architectures":          []string{"SmolVLMForConditionalGeneration"},
		"image_token_id":         id(tokImage),
		"model_type":             "smolvlm",
		"pad_token_id":           id(tokIMEnd),
		"scale_factor":           p.scale,
		"text_config":            text,
		"tie_word_embeddings":    false,
		"torch_dtype":            "float32",
		"transformers.js_config": obj{"kv_cache_dtype": obj{"fp16": "float16", "q4f16": "float16"}},
		"transformers_version":   "4.50.0.dev0",
		"use_cache":              true,
		"vision_config":          vision,
		"vocab_size":             vocab,
	}
	pre := obj{
		"do_convert_rgb":       true,
		"do_image_splitting":   true,
		"do_normalize":         true,
		"do_pad":               true,
		"do_rescale":           true,
		"do_resize":            true,
		"image_mean":           []float64{0.5, 0.5, 0.5},
		"image_processor_type": "SmolVLMImageProcessor",
		"image_std":            []float64{0.5, 0.5, 0.5},
		"max_image_size":       obj{"longest_edge": p.tile},
		"processor_class":      "SmolVLMProcessor",
		"resample":             1,
		"rescale_factor":       0.00392156862745098,
		"size":                 obj{"longest_edge": p.longestEdge},
		"video_sampling":       obj{"fps": 1, "max_frames": 64, "video_size": obj{"longest_edge": p.tile}},
	}
	proc := obj{"image_seq_len": p.imageSeqLen(), "processor_class": "SmolVLMProcessor"}
	gen := obj{
		"_from_model_config":   true,
		"bos_token_id":         id(tokEndOfText),
		"eos_token_id":         id(tokEndOfUtter),
		"pad_token_id":         id(tokIMEnd),
		"transformers_version": "4.50.0.dev0",
	}
	addedDec := obj{}
	for _, a := range tok.added {
		addedDec[fmt.Sprint(a.ID)] = obj{"content": a.Content, "lstrip": a.LStrip, "normalized": a.Normalized,
			"rstrip": a.RStrip, "single_word": a.SingleWord, "special": a.Special}
	}
	extra := []string{tokFake, tokImage, tokEndOfUtter}
	tokCfg := obj{
		"add_prefix_space":             false,
		"added_tokens_decoder":         addedDec,
		"additional_special_tokens":    extra,
		"bos_token":                    tokIMStart,
		"chat_template":                prompt.SmolVLMTemplate,
		"clean_up_tokenization_spaces": false,
		"end_of_utterance_token":       tokEndOfUtter,
		"eos_token":                    tokEndOfUtter,
		"extra_special_tokens": obj{
			"end_of_utterance_token": tokEndOfUtter, "fake_image_token": tokFake,
			"global_image_token": tokGlobal, "image_token": tokImage,
		},
		"fake_image_token":   tokFake,
		"global_image_token": tokGlobal,
		"image_token":        tokImage,
		"legacy":             false,
		"model_max_length":   p.maxPos,
		"pad_token":          tokIMEnd,
		"processor_class":    "SmolVLMProcessor",
		"tokenizer_class":    "GPT2Tokenizer",
		"truncation_side":    "left",
		"unk_token":          tokEndOfText,
		"vocab_size":         vocab,
	}
	extraObjs := make([]obj, len(extra))
	for i, e := range extra {
		extraObjs[i] = tokenObj(e)
	}
	special := obj{
		"additional_special_tokens": extraObjs,
		"bos_token":                 tokenObj(tokIMStart),
		"eos_token":                 tokenObj(tokEndOfUtter),
		"pad_token":                 tokenObj(tokIMEnd),
		"unk_token":                 tokenObj(tokEndOfText),
	}
	for _, f := range []struct {
		name string
		v    any
	}{
		{"config.json", config},
		{"preprocessor_config.json", pre},
		{"processor_config.json", proc},
		{"generation_config.json", gen},
		{"tokenizer_config.json", tokCfg},
		{"special_tokens_map.json", special},
	} {
		if err := writeJSON(dir, f.name, f.v); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), tok.data, 0o644); err != nil {
		return fmt.Errorf("writing tokenizer.json: %w", err)
	}
	return nil
}

// removeStale deletes an old external data file that a new inline write
// would leave behind.
func removeStale(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing stale %s: %w", path, err)
	}
	return nil
}
