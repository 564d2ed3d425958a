// Package processor turns a conversation with images into what a SmolVLM
// model's graphs take, the way llama.cpp's mtmd processor does for its
// callers: the chat template renders the messages with media placeholders,
// each image's tile grid is planned from its size alone, the placeholders
// are expanded and the text tokenized. The prompt's length is therefore
// known, and checked against the model's context, before any pixel is
// resized or run through the vision encoder; pixel values are made
// afterwards, for the images that need encoding.
//
// The library (package snapvlm), the CLI and the server all use this one
// processor, so the prompt a command prints is the prompt generation runs.
//
// Videos have their place beside images: Input.Videos carries the sampled
// frames' timestamps for the <video> placeholders (prompt.Expander writes
// their text); their frames are images to the vision encoder.
package processor

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/snapvlm/snapvlm/internal/imageproc"
	"github.com/snapvlm/snapvlm/internal/modelconfig"
	"github.com/snapvlm/snapvlm/internal/prompt"
	"github.com/snapvlm/snapvlm/internal/tokenizer"
)

// Processor holds what prompt building needs from a model directory: the
// chat template, the tokenizer, the image preprocessing settings, the
// tokens per tile and the context length. Safe for concurrent use.
type Processor struct {
	Dir       string
	Config    *modelconfig.Model
	Tokenizer *tokenizer.Tokenizer
	Template  *prompt.Template
	// Image are the preprocessor_config.json settings; zero when the model
	// has no usable preprocessor config and Options.TextOnly was set.
	Image imageproc.Options
	// SeqLen is the number of <image> tokens per tile.
	SeqLen int
	// ImageTokenID is the id of <image>, whose embeddings the image
	// features replace.
	ImageTokenID int64
	// Positions is the model's context: prompt and answer together.
	Positions int
}

// Options configure Open.
type Options struct {
	// FallbackTemplate is used when the model ships no chat template.
	FallbackTemplate string
	// TextOnly skips the image settings (a model used without its vision
	// encoder).
	TextOnly bool
}

// Error is a problem with the model directory, naming the file and field.
type Error struct {
	File, Field string
	Err         error
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Open reads the configs and the tokenizer of a model directory.
func Open(dir string, opt Options) (*Processor, error) {
	cfg, err := modelconfig.Load(dir)
	if err != nil {
		return nil, &Error{File: modelconfig.ConfigFile, Err: err}
	}
	tok, err := tokenizer.Load(filepath.Join(dir, modelconfig.TokenizerFile))
	if err != nil {
		return nil, &Error{File: modelconfig.TokenizerFile, Err: err}
	}
	return New(cfg, tok, opt)
}

// New builds a processor from a loaded config and tokenizer.
func New(cfg *modelconfig.Model, tok *tokenizer.Tokenizer, opt Options) (*Processor, error) {
	p := &Processor{Dir: cfg.Dir, Config: cfg, Tokenizer: tok, ImageTokenID: cfg.Config.ImageTokenID, Positions: cfg.Config.TextConfig.Positions()}
	var err error
	if p.SeqLen = cfg.ImageSeqLen(); p.SeqLen <= 0 && !opt.TextOnly {
		return nil, &Error{File: modelconfig.ProcessorFile, Field: "image_seq_len",
			Err: fmt.Errorf("image_seq_len is neither in %s nor computable from %s vision_config", modelconfig.ProcessorFile, modelconfig.ConfigFile)}
	}
	if !opt.TextOnly {
		if p.Image, err = imageproc.OptionsFromConfig(cfg.Preprocessor); err != nil {
			return nil, &Error{File: modelconfig.PreprocessorFile, Err: err}
		}
	}
	if p.Template, err = prompt.FromModelOr(cfg, opt.FallbackTemplate); err != nil {
		return nil, &Error{File: modelconfig.TokenizerConfigFile, Field: "chat_template", Err: err}
	}
	return p, nil
}

// ImageOptions are the model's preprocessing settings with a request's
// overrides (see Override).
func (p *Processor) ImageOptions(noSplit bool, imageSize int) (imageproc.Options, error) {
	if p.Image.TileSize == 0 {
		return p.Image, errors.New("the model was loaded without its image settings (text only)")
	}
	return Override(p.Image, noSplit, imageSize)
}

// Override applies a request's image settings to a model's: noSplit
// encodes each image as one tile, imageSize (0 = the model's) is the
// longest edge before tiling, at most the model's own.
func Override(opt imageproc.Options, noSplit bool, imageSize int) (imageproc.Options, error) {
	if noSplit {
		opt.Split = false
	}
	switch limit := opt.LongestEdge; {
	case imageSize < 0:
		return opt, fmt.Errorf("ImageSize %d: must be positive (0 keeps the model's %d)", imageSize, limit)
	case imageSize > limit:
		return opt, fmt.Errorf("ImageSize %d: more than the model's maximum of %d (%s size.longest_edge)", imageSize, limit, modelconfig.PreprocessorFile)
	case imageSize > 0:
		opt.LongestEdge = imageSize
	}
	return opt, nil
}

// Grid is the tile grid of a w×h image under opt (see imageproc.Plan).
func Grid(w, h int, opt imageproc.Options) prompt.ImageGrid {
	info := imageproc.Plan(w, h, opt)
	return prompt.ImageGrid{Rows: info.Rows, Cols: info.Cols}
}

// Input is one prompt to build: the conversation, with one grid per image
// placeholder and one frame list per video placeholder, in order.
type Input struct {
	Messages []prompt.Message
	Grids    []prompt.ImageGrid
	Videos   []prompt.VideoFrames
	// NoGenerationPrompt leaves out the assistant turn's opening.
	NoGenerationPrompt bool
}

// Prompt is a rendered, expanded and tokenized prompt.
type Prompt struct {
	Text        string
	IDs         []int64
	Grids       []prompt.ImageGrid
	ImageTokens int // <image> tokens, each replaced by one feature vector
}

// TooLongError reports a prompt longer than the model's context.
type TooLongError struct {
	Tokens, ImageTokens, Limit int
}

func (e *TooLongError) Error() string {
	return fmt.Sprintf("the prompt has %d tokens (%d of them for images), more than the model's %d positions", e.Tokens, e.ImageTokens, e.Limit)
}

// Prompt renders, expands and tokenizes in; a prompt that leaves no room
// for an answer in the model's context is a *TooLongError.
func (p *Processor) Prompt(in Input) (*Prompt, error) {
	if len(in.Messages) == 0 {
		return nil, errors.New("prompt: no messages")
	}
	text, err := p.Template.Render(in.Messages, !in.NoGenerationPrompt)
	if err != nil {
		return nil, err
	}
	if len(in.Grids) > 0 || len(in.Videos) > 0 {
		if p.SeqLen <= 0 {
			return nil, &Error{File: modelconfig.ProcessorFile, Field: "image_seq_len", Err: errors.New("cannot tell the tokens per image: no image_seq_len")}
		}
		if text, err = (prompt.Expander{ImageSeqLen: p.SeqLen}).Expand(text, in.Grids, in.Videos); err != nil {
			return nil, err
		}
	}
	pr := &Prompt{Text: text, IDs: p.Tokenizer.Encode(text), Grids: in.Grids}
	for _, id := range pr.IDs {
		if id == p.ImageTokenID {
			pr.ImageTokens++
		}
	}
	if len(pr.IDs) >= p.Positions {
		return pr, &TooLongError{Tokens: len(pr.IDs), ImageTokens: pr.ImageTokens, Limit: p.Positions}
	}
	return pr, nil
}
