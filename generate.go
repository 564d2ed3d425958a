package snapvlm

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/snapvlm/snapvlm/internal/decoder"
	"github.com/snapvlm/snapvlm/internal/embed"
	"github.com/snapvlm/snapvlm/internal/imageproc"
	"github.com/snapvlm/snapvlm/internal/prompt"
	"github.com/snapvlm/snapvlm/internal/sample"
	"github.com/snapvlm/snapvlm/internal/stop"
)

// Image is an encoded image file (JPEG, PNG, GIF, WebP) given to a message.
// The bytes are decoded when a request needs them; its features are cached
// by content, so asking again about the same image skips the vision encoder.
type Image struct {
	Name string // shown in errors
	Data []byte
}

// DefaultMaxImageBytes is the largest image file ImageFile reads: 100 MB.
const DefaultMaxImageBytes = imageproc.DefaultMaxBytes

// ErrImageTooLarge is returned (wrapped, naming the file) for an image file
// longer than the limit, or an endless one such as a device or a pipe.
var ErrImageTooLarge = imageproc.ErrTooLarge

// ImageFile reads an image file of at most DefaultMaxImageBytes.
func ImageFile(path string) (*Image, error) { return ImageFileLimit(path, 0) }

// ImageFileLimit reads an image file of at most maxBytes bytes (0 =
// DefaultMaxImageBytes); a longer or endless file is refused with
// ErrImageTooLarge after reading maxBytes+1 bytes.
func ImageFileLimit(path string, maxBytes int64) (*Image, error) {
	b, err := imageproc.ReadFile(path, maxBytes)
	if err != nil {
		return nil, err
	}
	return &Image{Name: path, Data: b}, nil
}

// Part is one item of a message: text, or an image.
type Part struct {
	Text  string
	Image *Image
}

// Role is the author of a message.
type Role = prompt.Role

// Message roles.
const (
	System    = prompt.RoleSystem
	User      = prompt.RoleUser
	Assistant = prompt.RoleAssistant
)

// Message is one turn of a conversation.
type Message struct {
	Role    Role
	Content []Part
}

// UserMessage is a user turn with the images first, then the text, as the
// model cards ask questions.
func UserMessage(text string, images ...*Image) Message {
	msg := Message{Role: User}
	for _, img := range images {
		msg.Content = append(msg.Content, Part{Image: img})
	}
	if text != "" {
		msg.Content = append(msg.Content, Part{Text: text})
	}
	return msg
}

// Request is one generation.
type Request struct {
	Messages []Message
	// MaxNewTokens caps the answer; 0 = 256.
	MaxNewTokens int
	// Sampling: Temperature 0 is greedy (the default).
	Temperature       float32
	TopK              int
	TopP              float32
	MinP              float32
	RepetitionPenalty float32
	// Seed makes sampling reproducible; 0 picks a random seed.
	Seed uint64
	// Stop strings end the answer (not included in it).
	Stop []string
	// NoSplit encodes each image as one tile (67 tokens on the 512-px
	// models instead of up to 1,127): faster, less detail.
	NoSplit bool
	// ImageSize overrides the longest edge images are resized to before
	// tiling (preprocessor_config.json size.longest_edge); 0 keeps it.
	ImageSize int
	// OnProgress, when set, is called as the vision encoder works through
	// the tiles of each image whose features are not cached.
	OnProgress func(Progress)
}

// Progress is the vision encoder's progress on one image of a request.
type Progress struct {
	Image, Images int // the image being encoded (1-based) and the request's images
	Done, Tiles   int // tiles of that image encoded so far, and in all
}

// Finish reasons.
const (
	FinishStop      = "stop"      // an end-of-sequence token or stop string
	FinishLength    = "length"    // MaxNewTokens reached, or the context is full
	FinishCancelled = "cancelled" // the context was cancelled
)

// Timings of one generation.
type Timings struct {
	Load       time.Duration `json:"load_ms"`
	Preprocess time.Duration `json:"preprocess_ms"`
	Vision     time.Duration `json:"vision_ms"`
	Prefill    time.Duration `json:"prefill_ms"`
	FirstToken time.Duration `json:"ttft_ms"` // request start to first token
	Decode     time.Duration `json:"decode_ms"`
	// DecodeTokensPerSec counts tokens after the first.
	DecodeTokensPerSec float64 `json:"decode_tokens_per_sec"`
}

// ImageInfo is how one image was tiled.
type ImageInfo struct {
	Rows   int  `json:"rows"`
	Cols   int  `json:"cols"`
	Frames int  `json:"frames"`
	Cached bool `json:"cached"` // features came from the cache
}

// Result is a finished generation.
type Result struct {
	Text         string
	Tokens       []int64 // generated ids, the end token included
	PromptTokens []int64
	ImageTokens  int // <image> tokens in the prompt
	ReusedTokens int // prompt tokens whose cache a Chat kept from earlier turns
	Tiles        int // vision frames over all images
	Images       []ImageInfo
	FinishReason string
	Timings      Timings
}

// Generate answers a conversation. onText, when not nil, receives the answer
// as it is decoded, in pieces that never split a UTF-8 character; an error
// from it stops generation and is returned. A cancelled ctx stops within one
// decoder step (or one ONNX Runtime run while images are encoded) and
// returns the partial Result with FinishReason "cancelled" and a nil error;
// the Model stays usable.
func (m *Model) Generate(ctx context.Context, req Request, onText func(string) error) (*Result, error) {
	return m.generate(ctx, req, onText, nil)
}

func (m *Model) generate(ctx context.Context, req Request, onText func(string) error, kv *kvCache) (*Result, error) {
	done, err := m.life.enter()
	if err != nil {
		return nil, err
	}
	defer done()
	start := time.Now()
	res := &Result{}
	res.Timings.Load = m.loadTime
	p, err := m.prepare(ctx, req, res)
	if err != nil {
		if ctx.Err() != nil {
			// Cancelled while encoding images or embedding: nothing generated.
			res.FinishReason = FinishCancelled
			return res, nil
		}
		return nil, err
	}
	if err := m.decode(ctx, req, p, res, start, onText, kv); err != nil {
		return nil, err
	}
	return res, nil
}

// kvCache is a decoder cache kept between the turns of a Chat, with what it
// holds: the token ids and the images whose features those tokens carry.
type kvCache struct {
	st     *decoder.State
	ids    []int64
	images [][32]byte
}

func (c *kvCache) drop() {
	if c.st != nil {
		c.st.Close()
	}
	*c = kvCache{}
}

// reusable returns how many leading prompt tokens of p the cache already
// holds, or 0 when it cannot serve p (other images, or too small).
func (c *kvCache) reusable(p *prepared) int {
	if c.st == nil || len(c.images) > len(p.imageKeys) {
		return 0
	}
	for i, k := range c.images {
		if p.imageKeys[i] != k {
			return 0
		}
	}
	n := 0
	for n < len(c.ids) && n < len(p.ids) && c.ids[n] == p.ids[n] {
		n++
	}
	// The last prompt token is always run to get the first logits.
	return min(n, len(p.ids)-1)
}

// prepared is a prompt ready for the decoder.
type prepared struct {
	ids       []int64
	embeds    []float32
	imageKeys [][32]byte // feature-cache keys of the images, in order
}

// prepare renders the conversation, encodes its images and embeds the prompt.
func (m *Model) prepare(ctx context.Context, req Request, res *Result) (*prepared, error) {
	var msgs []prompt.Message
	var images []*Image
	for _, msg := range req.Messages {
		pm := prompt.Message{Role: msg.Role}
		for _, part := range msg.Content {
			if part.Image != nil {
				pm.Content = append(pm.Content, prompt.Part{Type: prompt.PartImage})
				images = append(images, part.Image)
			} else {
				pm.Content = append(pm.Content, prompt.Part{Type: prompt.PartText, Text: part.Text})
			}
		}
		msgs = append(msgs, pm)
	}
	if len(msgs) == 0 {
		return nil, errors.New("generate: no messages")
	}
	text, err := m.tmpl.Render(msgs, true)
	if err != nil {
		return nil, err
	}
	feats, grids, keys, err := m.imageFeatures(ctx, images, req, res)
	if err != nil {
		return nil, err
	}
	text, err = prompt.Expander{ImageSeqLen: m.seqLen}.Expand(text, grids, nil)
	if err != nil {
		return nil, err
	}
	ids := m.tok.Encode(text)
	res.PromptTokens = ids
	embeds, err := m.emb.Embed(ctx, ids)
	if err != nil {
		return nil, err
	}
	if len(images) > 0 {
		if err := embed.Merge(embeds, ids, m.cfg.Config.ImageTokenID, feats, m.emb.Hidden()); err != nil {
			return nil, err
		}
	}
	res.ImageTokens = len(feats) / max(m.emb.Hidden(), 1)
	return &prepared{ids: ids, embeds: embeds, imageKeys: keys}, nil
}

// imageFeatures preprocesses and encodes every image (or takes its features
// from the cache) and returns the features in prompt order with the grids.
func (m *Model) imageFeatures(ctx context.Context, images []*Image, req Request, res *Result) ([]float32, []prompt.ImageGrid, [][32]byte, error) {
	if len(images) == 0 {
		return nil, nil, nil, nil
	}
	if m.vis == nil {
		return nil, nil, nil, errors.New("generate: the model was loaded text-only (Options.TextOnly) but the request has images")
	}
	opt := m.imageOptions(req)
	var all []float32
	grids := make([]prompt.ImageGrid, 0, len(images))
	keys := make([][32]byte, 0, len(images))
	for i, img := range images {
		var progress func(done, tiles int)
		if req.OnProgress != nil {
			progress = func(done, tiles int) {
				req.OnProgress(Progress{Image: i + 1, Images: len(images), Done: done, Tiles: tiles})
			}
		}
		ent, key, cached, err := m.imageFeature(ctx, img, opt, res, progress)
		if err != nil {
			return nil, nil, nil, err
		}
		keys = append(keys, key)
		all = append(all, ent.features...)
		grids = append(grids, ent.grid)
		res.Tiles += ent.frames
		res.Images = append(res.Images, ImageInfo{Rows: ent.grid.Rows, Cols: ent.grid.Cols, Frames: ent.frames, Cached: cached})
	}
	return all, grids, keys, nil
}

// PixelValues preprocesses the images of req's messages, in order, exactly
// as Generate does, into the vision encoder's pixel_values: float32 laid
// out as shape [1, frames, 3, M, M]. Useful to compare with other
// implementations fed the same pixels.
func (m *Model) PixelValues(ctx context.Context, req Request) ([]float32, []int64, error) {
	done, err := m.life.enter()
	if err != nil {
		return nil, nil, err
	}
	defer done()
	opt := m.imageOptions(req)
	var rgbs []*imageproc.RGB
	for _, msg := range req.Messages {
		for _, part := range msg.Content {
			if part.Image == nil {
				continue
			}
			rgb, err := imageproc.DecodeBytes(part.Image.Data, part.Image.Name, opt.MaxPixels)
			if err != nil {
				return nil, nil, err
			}
			rgbs = append(rgbs, rgb)
		}
	}
	if len(rgbs) == 0 {
		return nil, nil, errors.New("pixel values: the request has no images")
	}
	b, err := imageproc.Process(ctx, rgbs, opt)
	if err != nil {
		return nil, nil, err
	}
	return b.Pixels, b.Shape(), nil
}

// imageOptions are the model's preprocessing options with the request's
// overrides.
func (m *Model) imageOptions(req Request) imageproc.Options {
	opt := m.imgOpts
	if req.NoSplit {
		opt.Split = false
	}
	if req.ImageSize > 0 {
		opt.LongestEdge = req.ImageSize
	}
	return opt
}

func featureKey(img *Image, opt imageproc.Options) [32]byte {
	h := sha256.New()
	h.Write(img.Data)
	fmt.Fprintf(h, "|%d|%d|%t|%v|%v|%v", opt.LongestEdge, opt.TileSize, opt.Split, opt.Mean, opt.Std, opt.RescaleFactor)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// roomy is the capacity of a Chat's cache: room for later turns, so they can
// reuse it without reallocating, within the model's positions.
func roomy(need, limit int) int {
	if limit <= 0 {
		return 2 * need
	}
	return max(need, min(2*need, limit))
}

// decode prefills the prompt and generates the answer. With kv, the cache of
// an earlier turn is reused for the prompt prefix it already holds and kept
// for the next turn.
func (m *Model) decode(ctx context.Context, req Request, p *prepared, res *Result, start time.Time, onText func(string) error, kv *kvCache) (err error) {
	// The key/value cache is allocated for the prompt and the answer up to
	// the model's positions, so a request for more is refused rather than
	// sized from it.
	limit := m.cfg.Config.TextConfig.Positions()
	maxNew := req.MaxNewTokens
	switch {
	case maxNew < 0:
		return fmt.Errorf("MaxNewTokens is %d, want 0 (default 256) to %d", maxNew, limit)
	case maxNew > limit:
		return fmt.Errorf("MaxNewTokens is %d, more than the model's %d positions (prompt and answer together)", maxNew, limit)
	case maxNew == 0:
		maxNew = 256
	}
	sp := sample.Params{Temperature: req.Temperature, TopK: req.TopK, TopP: req.TopP, MinP: req.MinP, RepetitionPenalty: req.RepetitionPenalty, Seed: req.Seed}
	if err := sp.Validate(); err != nil {
		return err
	}
	if len(p.ids) >= limit {
		return fmt.Errorf("%w: %d tokens, more than the model's %d positions (max_position_embeddings); use fewer images, no splitting (Request.NoSplit) or a smaller Request.ImageSize", ErrPromptTooLong, len(p.ids), limit)
	}
	if len(p.ids)+maxNew > limit {
		maxNew = limit - len(p.ids)
	}
	need := len(p.ids) + maxNew
	skip := 0
	var st *decoder.State
	if kv != nil {
		if skip = kv.reusable(p); skip > 0 && kv.st.Truncate(skip) == nil && kv.st.Grow(roomy(need, limit)) == nil {
			st = kv.st
		} else {
			skip = 0
			kv.drop()
		}
	}
	if st == nil {
		capacity := need
		if kv != nil {
			capacity = roomy(need, limit)
		}
		if st, err = m.dec.NewState(capacity, m.chunk); err != nil {
			return err
		}
	}
	history := make([]int64, len(p.ids), len(p.ids)+maxNew)
	copy(history, p.ids)
	if kv == nil {
		defer st.Close()
	} else {
		defer func() {
			if err != nil || st.Len() > len(history) {
				kv.drop()
				return
			}
			*kv = kvCache{st: st, ids: history[:st.Len()], images: p.imageKeys}
		}()
	}
	res.ReusedTokens = skip
	step, err := m.emb.NewStep()
	if err != nil {
		return err
	}
	defer step.Close()

	t := time.Now()
	logits, err := st.Prefill(ctx, p.embeds[skip*m.emb.Hidden():])
	if err != nil {
		if ctx.Err() != nil {
			res.FinishReason = FinishCancelled
			if kv != nil {
				kv.drop()
			}
			return nil
		}
		return err
	}
	res.Timings.Prefill = time.Since(t)

	sampler := sample.New(sp)
	stream := m.tok.NewStreamDecoder(true)
	stops := stop.NewMatcher(req.Stop)
	var text []byte
	emit := func(s string) error {
		if s == "" {
			return nil
		}
		text = append(text, s...)
		if onText != nil {
			return onText(s)
		}
		return nil
	}
	var decodeStart time.Time
	res.FinishReason = FinishLength
	for n := 0; n < maxNew; n++ {
		id := sampler.Next(logits, history)
		history = append(history, id)
		res.Tokens = append(res.Tokens, id)
		if n == 0 {
			res.Timings.FirstToken = time.Since(start)
			decodeStart = time.Now()
		}
		if m.eos[id] {
			res.FinishReason = FinishStop
			break
		}
		piece, hit := stops.Push(stream.Add(id))
		if err := emit(piece); err != nil {
			return err
		}
		if hit {
			res.FinishReason = FinishStop
			break
		}
		if n == maxNew-1 {
			break
		}
		if err := step.Run(ctx, id); err != nil {
			if ctx.Err() != nil {
				res.FinishReason = FinishCancelled
				break
			}
			return err
		}
		if logits, err = st.Step(ctx, step.Out); err != nil {
			if ctx.Err() != nil {
				res.FinishReason = FinishCancelled
				break
			}
			return err
		}
	}
	// Text held back as a possible stop-string prefix is part of the answer
	// unless a stop string was hit (an end token or the length limit does
	// not make it one).
	if !stops.Stopped() {
		if piece, _ := stops.Push(stream.Flush()); piece != "" {
			if err := emit(piece); err != nil {
				return err
			}
		}
		if err := emit(stops.Flush()); err != nil {
			return err
		}
	}
	if !decodeStart.IsZero() {
		res.Timings.Decode = time.Since(decodeStart)
		if k := len(res.Tokens) - 1; k > 0 && res.Timings.Decode > 0 {
			res.Timings.DecodeTokensPerSec = float64(k) / res.Timings.Decode.Seconds()
		}
	}
	res.Text = string(text)
	return nil
}
