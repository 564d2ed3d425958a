// Package modelconfig reads the JSON files of a SmolVLM model directory in the
// Hugging Face layout (config.json, preprocessor_config.json,
// processor_config.json, generation_config.json, tokenizer_config.json,
// chat_template.json) into typed values.
//
// Every size the pipeline needs comes from here; nothing is assumed for one
// model. Fields absent from the files keep the zero value; callers that need a
// field validate it (see Config.Validate).
package modelconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File names inside a model directory.
const (
	ConfigFile          = "config.json"
	PreprocessorFile    = "preprocessor_config.json"
	ProcessorFile       = "processor_config.json"
	GenerationFile      = "generation_config.json"
	TokenizerFile       = "tokenizer.json"
	TokenizerConfigFile = "tokenizer_config.json"
	ChatTemplateFile    = "chat_template.json"
	SpecialTokensFile   = "special_tokens_map.json"
)

// Config is config.json.
type Config struct {
	ModelType     string       `json:"model_type"`
	Architectures []string     `json:"architectures,omitempty"`
	ImageTokenID  int64        `json:"image_token_id"`
	ScaleFactor   int          `json:"scale_factor"`
	TieEmbeddings bool         `json:"tie_word_embeddings"`
	VocabSize     int          `json:"vocab_size,omitempty"`
	TextConfig    TextConfig   `json:"text_config"`
	VisionConfig  VisionConfig `json:"vision_config"`
}

// TextConfig is config.json's text_config (the Llama-style decoder).
type TextConfig struct {
	ModelType             string   `json:"model_type,omitempty"`
	HiddenSize            int      `json:"hidden_size"`
	IntermediateSize      int      `json:"intermediate_size"`
	NumHiddenLayers       int      `json:"num_hidden_layers"`
	NumAttentionHeads     int      `json:"num_attention_heads"`
	NumKeyValueHeads      int      `json:"num_key_value_heads"`
	HeadDim               int      `json:"head_dim,omitempty"`
	VocabSize             int      `json:"vocab_size"`
	RMSNormEps            float64  `json:"rms_norm_eps"`
	RopeTheta             float64  `json:"rope_theta"`
	MaxPositionEmbeddings int      `json:"max_position_embeddings"`
	BOSTokenID            *int64   `json:"bos_token_id,omitempty"`
	EOSTokenID            IDList   `json:"eos_token_id,omitempty"`
	PadTokenID            *int64   `json:"pad_token_id,omitempty"`
	Architectures         []string `json:"architectures,omitempty"`
}

// DefaultMaxPositionEmbeddings is max_position_embeddings of transformers'
// LlamaConfig, the value a text_config that leaves the field out has.
const DefaultMaxPositionEmbeddings = 2048

// Positions is the most tokens, prompt and answer together, the decoder
// takes: max_position_embeddings, or DefaultMaxPositionEmbeddings when the
// file leaves it out (as transformers reads such a config).
func (t TextConfig) Positions() int {
	if t.MaxPositionEmbeddings > 0 {
		return t.MaxPositionEmbeddings
	}
	return DefaultMaxPositionEmbeddings
}

// HeadDimension returns head_dim, or hidden_size / num_attention_heads when
// the file leaves it out (as Llama configs may).
func (t TextConfig) HeadDimension() int {
	if t.HeadDim > 0 {
		return t.HeadDim
	}
	if t.NumAttentionHeads > 0 {
		return t.HiddenSize / t.NumAttentionHeads
	}
	return 0
}

// VisionConfig is config.json's vision_config (the SigLIP tower).
type VisionConfig struct {
	ModelType         string  `json:"model_type,omitempty"`
	HiddenSize        int     `json:"hidden_size"`
	IntermediateSize  int     `json:"intermediate_size,omitempty"`
	NumHiddenLayers   int     `json:"num_hidden_layers,omitempty"`
	NumAttentionHeads int     `json:"num_attention_heads,omitempty"`
	ImageSize         int     `json:"image_size"`
	PatchSize         int     `json:"patch_size"`
	LayerNormEps      float64 `json:"layer_norm_eps,omitempty"`
	NumChannels       int     `json:"num_channels,omitempty"`
}

// LongestEdge is the {"longest_edge": N} object used by the processor configs.
type LongestEdge struct {
	LongestEdge int `json:"longest_edge"`
}

// VideoSampling is preprocessor_config.json's video_sampling.
type VideoSampling struct {
	FPS       float64     `json:"fps"`
	MaxFrames int         `json:"max_frames"`
	VideoSize LongestEdge `json:"video_size"`
}

// Preprocessor is preprocessor_config.json (SmolVLMImageProcessor /
// Idefics3ImageProcessor).
type Preprocessor struct {
	ImageProcessorType string         `json:"image_processor_type,omitempty"`
	ProcessorClass     string         `json:"processor_class,omitempty"`
	DoConvertRGB       *bool          `json:"do_convert_rgb,omitempty"`
	DoImageSplitting   *bool          `json:"do_image_splitting,omitempty"`
	DoNormalize        *bool          `json:"do_normalize,omitempty"`
	DoPad              *bool          `json:"do_pad,omitempty"`
	DoRescale          *bool          `json:"do_rescale,omitempty"`
	DoResize           *bool          `json:"do_resize,omitempty"`
	ImageMean          []float64      `json:"image_mean,omitempty"`
	ImageStd           []float64      `json:"image_std,omitempty"`
	MaxImageSize       LongestEdge    `json:"max_image_size"`
	Size               LongestEdge    `json:"size"`
	Resample           *int           `json:"resample,omitempty"`
	RescaleFactor      float64        `json:"rescale_factor,omitempty"`
	VideoSampling      *VideoSampling `json:"video_sampling,omitempty"`
}

// Processor is processor_config.json.
type Processor struct {
	ImageSeqLen    int    `json:"image_seq_len"`
	ProcessorClass string `json:"processor_class,omitempty"`
	ChatTemplate   string `json:"chat_template,omitempty"`
}

// Generation is generation_config.json.
type Generation struct {
	BOSTokenID        *int64   `json:"bos_token_id,omitempty"`
	EOSTokenID        IDList   `json:"eos_token_id,omitempty"`
	PadTokenID        *int64   `json:"pad_token_id,omitempty"`
	DoSample          *bool    `json:"do_sample,omitempty"`
	Temperature       *float64 `json:"temperature,omitempty"`
	TopK              *int     `json:"top_k,omitempty"`
	TopP              *float64 `json:"top_p,omitempty"`
	RepetitionPenalty *float64 `json:"repetition_penalty,omitempty"`
	MaxNewTokens      *int     `json:"max_new_tokens,omitempty"`
}

// TokenizerConfig is the part of tokenizer_config.json the pipeline reads.
// Special tokens may be strings or AddedToken objects; both decode to the
// content string.
type TokenizerConfig struct {
	ChatTemplate ChatTemplate `json:"chat_template,omitempty"`
	BOSToken     TokenString  `json:"bos_token,omitempty"`
	EOSToken     TokenString  `json:"eos_token,omitempty"`
	PadToken     TokenString  `json:"pad_token,omitempty"`
	UnkToken     TokenString  `json:"unk_token,omitempty"`
	ModelMaxLen  float64      `json:"model_max_length,omitempty"`
}

// IDList is a token id field that the Hugging Face files write either as one
// integer or as a list of integers.
type IDList []int64

// UnmarshalJSON accepts an integer, a list of integers or null.
func (l *IDList) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*l = nil
		return nil
	}
	var one int64
	if err := json.Unmarshal(b, &one); err == nil {
		*l = IDList{one}
		return nil
	}
	var many []int64
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("token id: want an integer or a list of integers, got %s", b)
	}
	*l = many
	return nil
}

// MarshalJSON writes a single id as an integer, several as a list.
func (l IDList) MarshalJSON() ([]byte, error) {
	if len(l) == 1 {
		return json.Marshal(l[0])
	}
	return json.Marshal([]int64(l))
}

// TokenString is a special token written as a string or as an AddedToken
// object {"content": "...", ...}.
type TokenString string

// UnmarshalJSON accepts a string, an object with "content", or null.
func (s *TokenString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = ""
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = TokenString(str)
		return nil
	}
	var obj struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("special token: want a string or an object with content, got %s", b)
	}
	*s = TokenString(obj.Content)
	return nil
}

// ChatTemplate is a chat_template field: one template string, or (in newer
// tokenizer configs) a list of {"name", "template"} where "default" is used.
type ChatTemplate string

// UnmarshalJSON accepts a string or a list of named templates.
func (c *ChatTemplate) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*c = ""
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*c = ChatTemplate(str)
		return nil
	}
	var list []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("chat_template: want a string or a list of named templates, got %.60s", b)
	}
	for _, t := range list {
		if t.Name == "default" {
			*c = ChatTemplate(t.Template)
			return nil
		}
	}
	if len(list) > 0 {
		*c = ChatTemplate(list[0].Template)
	}
	return nil
}

// Model is everything read from one model directory.
type Model struct {
	Dir          string
	Config       Config
	Preprocessor Preprocessor
	Processor    Processor
	Generation   Generation
	Tokenizer    TokenizerConfig
	// ChatTemplate is the template transformers would use: chat_template.json,
	// else tokenizer_config.json, else processor_config.json. Empty when the
	// model ships none.
	ChatTemplate string
}

// Load reads a model directory. config.json is required; the other files are
// optional here and validated by the stage that needs them.
func Load(dir string) (*Model, error) {
	m := &Model{Dir: dir}
	if err := readJSON(dir, ConfigFile, &m.Config, true); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		v    any
	}{
		{PreprocessorFile, &m.Preprocessor},
		{ProcessorFile, &m.Processor},
		{GenerationFile, &m.Generation},
		{TokenizerConfigFile, &m.Tokenizer},
	} {
		if err := readJSON(dir, f.name, f.v, false); err != nil {
			return nil, err
		}
	}
	var ct struct {
		ChatTemplate ChatTemplate `json:"chat_template"`
	}
	if err := readJSON(dir, ChatTemplateFile, &ct, false); err != nil {
		return nil, err
	}
	switch {
	case ct.ChatTemplate != "":
		m.ChatTemplate = string(ct.ChatTemplate)
	case m.Tokenizer.ChatTemplate != "":
		m.ChatTemplate = string(m.Tokenizer.ChatTemplate)
	default:
		m.ChatTemplate = m.Processor.ChatTemplate
	}
	return m, nil
}

func readJSON(dir, name string, v any, required bool) error {
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if err != nil {
		if !required && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("model config: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("model config %s: %w", path, err)
	}
	return nil
}

// ImageSeqLen returns the number of tokens one tile becomes: processor_config's
// image_seq_len, else computed from the vision config as
// (image_size/patch_size)^2 / scale_factor^2. It is 0 when the files do not
// give a positive length (sizes missing, negative, or too large to square).
func (m *Model) ImageSeqLen() int {
	if m.Processor.ImageSeqLen > 0 {
		return m.Processor.ImageSeqLen
	}
	v := m.Config.VisionConfig
	sf := m.Config.ScaleFactor
	if v.PatchSize <= 0 || sf <= 0 {
		return 0
	}
	p := v.ImageSize / v.PatchSize
	// p <= 2^31 keeps p*p and sf*sf (sf <= p) from overflowing.
	if p <= 0 || p > 1<<31 || sf > p {
		return 0
	}
	return p * p / (sf * sf)
}

// EOSTokenIDs returns the ids that end generation: generation_config's
// eos_token_id, then config.json text_config's, without duplicates.
// Callers add the id of <end_of_utterance> from the tokenizer.
func (m *Model) EOSTokenIDs() []int64 {
	var ids []int64
	seen := map[int64]bool{}
	for _, l := range []IDList{m.Generation.EOSTokenID, m.Config.TextConfig.EOSTokenID} {
		for _, id := range l {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// Validate checks the fields the pipeline cannot run without and names the
// file and field that is wrong.
func (m *Model) Validate() error {
	t := m.Config.TextConfig
	checks := []struct {
		ok    bool
		field string
	}{
		{t.HiddenSize > 0, "text_config.hidden_size"},
		{t.NumHiddenLayers > 0, "text_config.num_hidden_layers"},
		{t.NumKeyValueHeads > 0, "text_config.num_key_value_heads"},
		{t.HeadDimension() > 0, "text_config.head_dim"},
		{m.Config.ImageTokenID > 0, "image_token_id"},
		{t.MaxPositionEmbeddings >= 0, "text_config.max_position_embeddings"},
	}
	for _, c := range checks {
		if !c.ok {
			return fmt.Errorf("model config %s: field %s is missing or not positive",
				filepath.Join(m.Dir, ConfigFile), c.field)
		}
	}
	return nil
}
