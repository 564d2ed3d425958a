package snapvlm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/snapvlm/snapvlm/internal/imageproc"
	"github.com/snapvlm/snapvlm/internal/modelconfig"
	"github.com/snapvlm/snapvlm/internal/processor"
	"github.com/snapvlm/snapvlm/internal/prompt"
	"github.com/snapvlm/snapvlm/internal/tokenizer"
	"github.com/snapvlm/snapvlm/internal/video"
)

// Processor turns a request into what the model's graphs take, as
// Generate does before it runs them: the chat template renders the
// messages, each image's tile grid is planned from its size and each
// video's frames are picked, the placeholders are expanded, the prompt is
// tokenized and, when asked, the images and frames become pixel values.
// It needs the model directory's config files and tokenizer only, not ONNX
// Runtime (OpenProcessor); a loaded Model has one too (Model.Processor).
// Safe for concurrent use.
type Processor struct {
	proc    *processor.Processor
	vidOpts video.Options
	vidErr  error // why the model takes no videos, or nil
}

// ProcessorOptions configure OpenProcessor.
type ProcessorOptions struct {
	// DefaultTemplate renders with the built-in SmolVLM chat template when
	// the model ships none.
	DefaultTemplate bool
	// TextOnly reads no image settings, for a model directory without a
	// usable preprocessor_config.json: images then need
	// ProcessOptions.Grids.
	TextOnly bool
}

// OpenProcessor reads the configs and the tokenizer of a model directory.
// Errors about the directory are *ModelError.
func OpenProcessor(dir string, opts ProcessorOptions) (*Processor, error) {
	cfg, err := modelconfig.Load(dir)
	if err != nil {
		return nil, &ModelError{Dir: dir, File: modelconfig.ConfigFile, Err: err}
	}
	tok, err := LoadTokenizer(dir)
	if err != nil {
		return nil, err
	}
	popts := processor.Options{TextOnly: opts.TextOnly}
	if opts.DefaultTemplate {
		popts.FallbackTemplate = prompt.SmolVLMTemplate
	}
	return newProcessor(cfg, tok.tok, popts)
}

// ErrNoTemplate is returned (inside a *ModelError) for a model that ships
// no chat template; ProcessorOptions.DefaultTemplate uses SmolVLM's.
var ErrNoTemplate = prompt.ErrNoTemplate

// newProcessor is the Processor of a loaded config and tokenizer.
func newProcessor(cfg *modelconfig.Model, tok *tokenizer.Tokenizer, opts processor.Options) (*Processor, error) {
	proc, err := processor.New(cfg, tok, opts)
	if err != nil {
		var pe *processor.Error
		if errors.As(err, &pe) {
			return nil, &ModelError{Dir: cfg.Dir, File: pe.File, Field: pe.Field, Err: pe.Err}
		}
		return nil, &ModelError{Dir: cfg.Dir, Err: err}
	}
	p := &Processor{proc: proc}
	p.vidOpts, p.vidErr = video.OptionsFromConfig(cfg.Preprocessor)
	return p, nil
}

// Processor is the model's request processor.
func (m *Model) Processor() *Processor { return m.processor }

// Dir is the model directory.
func (p *Processor) Dir() string { return p.proc.Dir }

// ImageSeqLen is the number of image tokens per tile.
func (p *Processor) ImageSeqLen() int { return p.proc.SeqLen }

// MaxImageSize is the longest edge images are resized to before tiling
// (preprocessor_config.json size.longest_edge), the largest
// GenerateOptions.ImageSize; 0 when the model has none.
func (p *Processor) MaxImageSize() int { return p.proc.Config.Preprocessor.Size.LongestEdge }

// ContextLength is the most tokens, prompt and answer together, the model
// takes (see Model.ContextLength).
func (p *Processor) ContextLength() int { return p.proc.Positions }

// Tokenizer is the model's tokenizer.
func (p *Processor) Tokenizer() *Tokenizer { return &Tokenizer{p.proc.Tokenizer} }

// Tokenizer is a model's tokenizer alone (tokenizer.json), to count and
// inspect tokens without the rest of the model. Safe for concurrent use.
type Tokenizer struct{ tok *tokenizer.Tokenizer }

// LoadTokenizer reads dir/tokenizer.json. Errors are *ModelError.
func LoadTokenizer(dir string) (*Tokenizer, error) {
	tok, err := tokenizer.Load(filepath.Join(dir, modelconfig.TokenizerFile))
	if err != nil {
		return nil, &ModelError{Dir: dir, File: modelconfig.TokenizerFile, Err: err}
	}
	return &Tokenizer{tok}, nil
}

// Tokenize encodes text as the prompt is encoded (see Model.Tokenize).
func (t *Tokenizer) Tokenize(text string) []int64 { return t.tok.Encode(text) }

// Detokenize decodes ids as answers are decoded (see Model.Detokenize).
func (t *Tokenizer) Detokenize(ids []int64, skipSpecial bool) string {
	return t.tok.Decode(ids, skipSpecial)
}

// TokenString returns the vocabulary entry of id (see Model.TokenString),
// false for an unknown id.
func (t *Tokenizer) TokenString(id int64) (string, bool) { return t.tok.IDToToken(id) }

// TileGrid is the tile grid of an image: Rows×Cols tiles plus a global
// view, or one tile when both are 0.
type TileGrid struct {
	Rows, Cols int // tile rows and columns
}

// ProcessOptions configure Process.
type ProcessOptions struct {
	// Grids, when not nil, is the tile grid of each image of the request,
	// in order, instead of the grid planned from its size: the images are
	// not read (an Image with no data stands for one). It cannot be
	// combined with PixelValues.
	Grids []TileGrid
	// PixelValues decodes and tiles the images and decodes the videos'
	// sampled frames into Processed.PixelValues.
	PixelValues bool
	// MaxPixels refuses images with more pixels than this; 0 =
	// DefaultMaxImagePixels.
	MaxPixels int64
}

// Processed is a request made ready for the graphs: the prompt and, when
// asked, the pixel values.
type Processed struct {
	Text        string      // the rendered prompt, image and video placeholders expanded
	IDs         []int64     // its token ids
	ImageTokens int         // <image> tokens, each replaced by one feature vector
	Images      []ImageInfo // the tile grid of each image, in order
	Videos      []VideoInfo // the frames sampled of each video, in order
	// PixelValues (ProcessOptions.PixelValues) are the vision encoder's
	// input for the images and videos in prompt order, float32 laid out as
	// Shape: [1, frames, 3, M, M].
	PixelValues []float32
	Shape       []int64 // [1, frames, 3, M, M]
	// Timings: Preprocess (decoding and tiling images) and VideoDecode.
	Timings Timings
}

// Process renders, plans and tokenizes req as Generate would (its
// GenerateOptions NoSplit, ImageSize, MaxFrames and VideoFPS apply) and,
// with opts.PixelValues, makes the pixel values. Videos are sampled with
// ffprobe; their frames are decoded only for pixel values. A prompt longer
// than the model's context is returned together with a
// *PromptTooLongError.
func (p *Processor) Process(ctx context.Context, req Request, opts ProcessOptions) (*Processed, error) {
	msgs, media, err := promptMessages(req.Messages)
	if err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, errors.New("process: no messages")
	}
	if opts.Grids != nil && opts.PixelValues {
		return nil, errors.New("process: ProcessOptions.Grids and PixelValues exclude each other (pixel values need the images)")
	}
	out := &Processed{}
	items, err := p.planMedia(ctx, media, req.GenerateOptions, opts, out)
	if err != nil {
		return nil, err
	}
	in := processor.Input{Messages: msgs, Videos: promptVideos(out.Videos)}
	for _, it := range items {
		if it.vid == nil {
			in.Grids = append(in.Grids, it.grid)
		}
	}
	pr, err := p.proc.Prompt(in)
	var long *processor.TooLongError
	if err != nil && !errors.As(err, &long) {
		return nil, err
	}
	out.Text, out.IDs, out.ImageTokens = pr.Text, pr.IDs, pr.ImageTokens
	if err := p.videoTokens(out, in.Videos); err != nil {
		return nil, err
	}
	if opts.PixelValues {
		if err := p.pixelValues(ctx, items, out); err != nil {
			return nil, err
		}
	}
	if long != nil {
		return out, &PromptTooLongError{Tokens: long.Tokens, ImageTokens: long.ImageTokens, Limit: long.Limit}
	}
	return out, nil
}

// WriteNPY writes PixelValues as a NumPy .npy file (float32, shape
// Shape), to compare with other implementations in Python.
func (pr *Processed) WriteNPY(w io.Writer) error {
	if len(pr.Shape) != 5 {
		return errors.New("write npy: no pixel values (ProcessOptions.PixelValues)")
	}
	b := imageproc.Batch{Pixels: pr.PixelValues, Frames: int(pr.Shape[1]), Size: int(pr.Shape[3])}
	return b.WriteNPY(w)
}

// mediaItem is one image or video of a request as Process plans it.
type mediaItem struct {
	img  *Image
	rgb  *imageproc.RGB // decoded, for pixel values
	opt  imageproc.Options
	grid prompt.ImageGrid
	vid  *video.Video // sampled (frames decoded for pixel values)
	vopt video.Options
}

// planMedia plans the tiles of every image and samples every video, adding
// their ImageInfo and VideoInfo to out.
func (p *Processor) planMedia(ctx context.Context, media []Part, o GenerateOptions, opts ProcessOptions, out *Processed) ([]mediaItem, error) {
	nImages := 0
	for _, part := range media {
		if part.Video == nil {
			nImages++
		}
	}
	if opts.Grids != nil && len(opts.Grids) != nImages {
		return nil, fmt.Errorf("process: %d grids for %d images", len(opts.Grids), nImages)
	}
	var imgOpt imageproc.Options
	var vidOpt video.Options
	var err error
	if nImages > 0 && opts.Grids == nil {
		if imgOpt, err = p.imageOptions(o); err != nil {
			return nil, err
		}
		if opts.MaxPixels > 0 {
			imgOpt.MaxPixels = opts.MaxPixels
		}
	}
	if nImages < len(media) {
		if vidOpt, err = p.videoOptions(o); err != nil {
			return nil, err
		}
	}
	items := make([]mediaItem, 0, len(media))
	for _, part := range media {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if part.Video != nil {
			vid, err := sampleVideo(ctx, part.Video, vidOpt, opts.PixelValues)
			if err != nil {
				return nil, err
			}
			out.Videos = append(out.Videos, newVideoInfo(vid))
			out.Timings.VideoDecode += vid.Decode
			items = append(items, mediaItem{vid: vid, vopt: vidOpt})
			continue
		}
		it, err := planImage(part.Image, imgOpt, opts, len(out.Images), out)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, nil
}

// planImage plans the tiles of the i-th image (from opts.Grids, or its
// size, decoding it when pixel values are asked for) and adds its
// ImageInfo to out.
func planImage(img *Image, opt imageproc.Options, opts ProcessOptions, i int, out *Processed) (mediaItem, error) {
	it := mediaItem{img: img, opt: opt}
	var info imageproc.ImageInfo
	switch {
	case opts.Grids != nil:
		g := opts.Grids[i]
		info = imageproc.ImageInfo{Rows: g.Rows, Cols: g.Cols, Frames: 1}
		if g.Rows*g.Cols > 0 {
			info.Frames += g.Rows * g.Cols
		}
	case opts.PixelValues:
		t := time.Now()
		var err error
		if it.rgb, err = img.rgb(opt.MaxPixels); err != nil {
			return it, err
		}
		out.Timings.Preprocess += time.Since(t)
		info = imageproc.Plan(it.rgb.W, it.rgb.H, opt)
	default:
		w, h, err := img.dimensions(opt.MaxPixels)
		if err != nil {
			return it, err
		}
		info = imageproc.Plan(w, h, opt)
	}
	it.grid = prompt.ImageGrid{Rows: info.Rows, Cols: info.Cols}
	out.Images = append(out.Images, ImageInfo{Rows: info.Rows, Cols: info.Cols, Frames: info.Frames})
	return it, nil
}

// pixelValues tiles the decoded images and resizes the decoded video
// frames of items, in order, into out.PixelValues.
func (p *Processor) pixelValues(ctx context.Context, items []mediaItem, out *Processed) error {
	frames, size := 0, 0
	for _, it := range items {
		if it.vid != nil {
			out.PixelValues = append(out.PixelValues, it.vid.Pixels(it.vopt)...)
			frames += len(it.vid.Frames)
			size = it.vopt.FrameSize
			continue
		}
		t := time.Now()
		b, err := imageproc.Process(ctx, []*imageproc.RGB{it.rgb}, it.opt)
		if err != nil {
			return imageErr(it.img.Name, err)
		}
		out.Timings.Preprocess += time.Since(t)
		out.PixelValues = append(out.PixelValues, b.Pixels...)
		frames += b.Frames
		size = it.opt.TileSize
	}
	if frames == 0 {
		return errors.New("pixel values: the request has no images or videos")
	}
	out.Shape = []int64{1, int64(frames), 3, int64(size), int64(size)}
	return nil
}

// videoTokens sets each video's Tokens: the prompt tokens its placeholder
// expands to.
func (p *Processor) videoTokens(out *Processed, frames []prompt.VideoFrames) error {
	for i := range out.Videos {
		text, err := prompt.Expander{ImageSeqLen: p.proc.SeqLen}.Expand(prompt.VideoToken, nil, frames[i:i+1])
		if err != nil {
			return err
		}
		out.Videos[i].Tokens = len(p.proc.Tokenizer.Encode(text))
	}
	return nil
}

// imageOptions are the model's preprocessing options with the request's
// overrides.
func (p *Processor) imageOptions(o GenerateOptions) (imageproc.Options, error) {
	return p.proc.ImageOptions(o.NoSplit, o.ImageSize)
}

// videoOptions are the model's video options with the request's overrides.
func (p *Processor) videoOptions(o GenerateOptions) (video.Options, error) {
	if p.vidErr != nil {
		return video.Options{}, fmt.Errorf("model %s: %w", p.proc.Dir, p.vidErr)
	}
	opt := p.vidOpts
	if o.MaxFrames < 0 || o.VideoFPS < 0 {
		return opt, fmt.Errorf("MaxFrames %d / VideoFPS %v: want 0 (the model's video_sampling) or more", o.MaxFrames, o.VideoFPS)
	}
	if o.MaxFrames > 0 {
		opt.Sampling.MaxFrames = o.MaxFrames
	}
	if o.VideoFPS > 0 {
		opt.Sampling.FPS = o.VideoFPS
	}
	return opt, nil
}
