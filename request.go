package snapvlm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"math"
	"time"

	"github.com/snapvlm/snapvlm/internal/imageproc"
)

// Image is an image given to a message: an encoded file (JPEG, PNG, GIF,
// WebP) read by ImageFile or ImageReader, or an image.Image wrapped by
// ImageFromImage. It is decoded when a request needs its pixels; its
// features are cached by content, so asking again about the same image skips
// the vision encoder.
type Image struct {
	// Name is shown in errors (a file name, a URL).
	Name string
	// Data is the encoded file.
	Data []byte
	// img is set instead of Data by ImageFromImage.
	img image.Image
}

// DefaultMaxImageBytes is the largest image file ImageFile and ImageReader
// read: 100 MB.
const DefaultMaxImageBytes = imageproc.DefaultMaxBytes

// DefaultMaxImagePixels is the most pixels (width × height) an image may
// have; larger ones are refused before their pixels are decoded
// (ProcessOptions.MaxPixels sets another limit for Processor.Process).
const DefaultMaxImagePixels = imageproc.DefaultMaxPixels

// ErrImageTooLarge is returned (wrapped, naming the file) for an image file
// longer than the limit, or an endless one such as a device or a pipe. It
// is also an ErrImage.
var ErrImageTooLarge = imageproc.ErrTooLarge

// ImageFile reads an image file of at most DefaultMaxImageBytes.
func ImageFile(path string) (*Image, error) { return ImageFileLimit(path, 0) }

// ImageFileLimit reads an image file of at most maxBytes bytes (0 =
// DefaultMaxImageBytes); a longer or endless file is refused with
// ErrImageTooLarge after reading maxBytes+1 bytes.
func ImageFileLimit(path string, maxBytes int64) (*Image, error) {
	b, err := imageproc.ReadFile(path, maxBytes)
	if err != nil {
		return nil, imageErr(path, err)
	}
	return &Image{Name: path, Data: b}, nil
}

// ImageReader reads an encoded image (JPEG, PNG, GIF, WebP) from r, at most
// DefaultMaxImageBytes (more is ErrImageTooLarge). name is shown in errors.
func ImageReader(name string, r io.Reader) (*Image, error) {
	b, err := io.ReadAll(io.LimitReader(r, DefaultMaxImageBytes+1))
	if err != nil {
		return nil, imageErr(name, err)
	}
	if len(b) > DefaultMaxImageBytes {
		return nil, imageErr(name, fmt.Errorf("%w: more than the limit of %d bytes", ErrImageTooLarge, DefaultMaxImageBytes))
	}
	return &Image{Name: name, Data: b}, nil
}

// ImageFromImage wraps an image already decoded (for example by the image
// package). Its colours are taken as they are stored, alpha is dropped and
// no EXIF orientation is applied. name is shown in errors. The image must
// not change while a request uses it.
func ImageFromImage(name string, img image.Image) *Image {
	return &Image{Name: name, img: img}
}

// Check decodes the image as a request will and returns the ErrImage a
// request would fail with, so that a program can refuse a bad image when it
// is given rather than when it is used.
func (img *Image) Check() error {
	_, err := img.rgb(DefaultMaxImagePixels)
	return err
}

// Part is one item of a message: text, an image or a video (set one).
type Part struct {
	Text  string // the text, when Image and Video are nil
	Image *Image // an image, or nil
	Video *Video // a video, or nil
}

// Role is the author of a message.
type Role string

// Message roles, as the chat templates name them.
const (
	System    Role = "system"
	User      Role = "user"
	Assistant Role = "assistant"
)

// Message is one turn of a conversation.
type Message struct {
	Role    Role   // who wrote it
	Content []Part // its text and images, in order
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

// TextMessage is a turn of one text part, e.g. TextMessage(System, "Answer
// in French.").
func TextMessage(role Role, text string) Message {
	return Message{Role: role, Content: []Part{{Text: text}}}
}

// GenerateOptions are the settings of one answer: its length, sampling,
// stop strings and how images are tiled. The zero value is greedy decoding
// of up to 256 tokens with the model's image settings.
type GenerateOptions struct {
	// MaxNewTokens caps the answer; 0 = 256. The answer also ends where
	// the model's context (max_position_embeddings) is full.
	MaxNewTokens int
	// Temperature 0 is greedy decoding (the default); above 0 samples.
	Temperature float32
	// TopK keeps the TopK most likely tokens when sampling; 0 = off.
	TopK int
	// TopP is the nucleus mass in (0, 1) when sampling; 0 or 1 = off.
	TopP float32
	// MinP drops tokens below MinP times the top probability; 0 = off.
	MinP float32
	// RepetitionPenalty > 1 discourages repeating prompt and answer
	// tokens; 0 or 1 = off.
	RepetitionPenalty float32
	// Seed makes sampling reproducible; 0 picks a random seed.
	Seed uint64
	// Stop strings end the answer (not included in it).
	Stop []string
	// NoSplit encodes each image as one tile (67 tokens on the 512-px
	// models instead of up to 1,127): faster, less detail.
	NoSplit bool
	// ImageSize overrides the longest edge images are resized to before
	// tiling (preprocessor_config.json size.longest_edge); 0 keeps it. It
	// must not exceed Model.MaxImageSize.
	ImageSize int
	// MaxFrames and VideoFPS override the model's video_sampling
	// max_frames and fps: how many frames are sampled from a video (at
	// most MaxFrames, VideoFPS per second of video); 0 keeps them.
	MaxFrames int
	VideoFPS  float64
	// Logits, when not nil, constrains every step (structured output): it
	// masks the logits before sampling and is told each chosen token. A
	// LogitsProcessor holds the state of one answer: use a new one per call.
	// It cannot be combined with Format, Schema or Regex.
	Logits LogitsProcessor
	// OnProgress, when set, is called as the vision encoder works through
	// the tiles of each image (the frames of each video) whose features are
	// not cached.
	OnProgress func(Progress)

	// Structured output: at most one of Format, Schema and Regex. Decoding
	// is constrained so that only tokens keeping the answer a valid prefix
	// can be chosen, and the end token only where the answer is complete;
	// Result.Incomplete reports an answer cut short (by MaxNewTokens, a
	// stop string or cancellation). Whitespace between JSON tokens and the
	// digits of numbers are bounded (see the README's Structured output).
	// Compiled schemas are cached by the Model.

	// Format FormatJSON ("json") makes the answer a JSON object: OpenAI's
	// response_format {"type": "json_object"}.
	Format string
	// Schema makes the answer a JSON text valid against this JSON Schema:
	// OpenAI's response_format {"type": "json_schema", "json_schema":
	// {"schema": ...}}. The supported keywords are OpenAI's
	// structured-outputs subset; any other keyword is an error naming it.
	Schema json.RawMessage
	// Regex makes the whole answer match this regular expression (RE2
	// syntax, without word boundaries).
	Regex string
}

// Progress is the vision encoder's progress on one image or video of a
// request.
type Progress struct {
	Image, Images int // the image or video being encoded (1-based) and the request's images and videos
	Done, Tiles   int // tiles (video frames) of that one encoded so far, and in all
}

// LogitsProcessor constrains generation, e.g. to a grammar. For every new
// token the generator calls Mask with the logits (it sets forbidden tokens
// to negative infinity), samples from them, then calls Accept with the
// chosen id. When Done reports true after an Accept the answer ends with
// FinishStop. An error from Mask or Accept ends generation and is returned.
type LogitsProcessor interface {
	Mask(logits []float32) error
	Accept(id int64) error
	Done() bool
}

// Request is one generation: the conversation and the settings of the
// answer.
type Request struct {
	Messages        []Message // the conversation, oldest first; the answer follows the last
	GenerateOptions           // the settings of the answer
}

// Token is one generated token as the streaming callback receives it. Text
// is the answer text the token completes: it may be empty while the bytes
// of a UTF-8 character or the start of a possible stop string are held
// back, and it holds the held-back text once it is released. The callback
// receives every generated token in order, the end token included (with
// empty Text); the concatenated Text equals Result.Text.
//
// When generation is cancelled while text is held back, a last Token with
// ID NoToken carries that text.
type Token struct {
	ID   int64  // the token id (NoToken for released text only)
	Text string // the answer text this token completes, possibly empty
}

// NoToken is the ID of a Token that only releases held-back text.
const NoToken int64 = -1

// FinishReason says why generation ended.
type FinishReason string

// Finish reasons.
const (
	FinishStop      FinishReason = "stop"      // an end-of-sequence token, a stop string, or the LogitsProcessor was done
	FinishLength    FinishReason = "length"    // MaxNewTokens reached, or the context is full
	FinishCancelled FinishReason = "cancelled" // the context was cancelled
)

// Timings of one generation. JSON gives each duration in milliseconds
// (a float, e.g. "prefill_ms": 166.4).
type Timings struct {
	Load       time.Duration // Load of the model
	Preprocess time.Duration // decoding and tiling images
	// VideoDecode is the time spent sampling, decoding (ffmpeg) and
	// resizing video frames.
	VideoDecode time.Duration
	Vision      time.Duration // the vision encoder
	Prefill     time.Duration // the decoder over the prompt
	FirstToken  time.Duration // request start to first token
	Decode      time.Duration // first token to the last
	// DecodeTokensPerSec counts tokens after the first.
	DecodeTokensPerSec float64
	// Constraint is the time spent masking tokens for structured output
	// (GenerateOptions.Format, Schema, Regex), over all steps.
	Constraint time.Duration
}

type timingsJSON struct {
	Load               float64 `json:"load_ms"`
	Preprocess         float64 `json:"preprocess_ms"`
	Vision             float64 `json:"vision_ms"`
	Prefill            float64 `json:"prefill_ms"`
	FirstToken         float64 `json:"ttft_ms"`
	Decode             float64 `json:"decode_ms"`
	DecodeTokensPerSec float64 `json:"decode_tokens_per_sec"`
	Constraint         float64 `json:"constraint_ms,omitempty"`
	VideoDecode        float64 `json:"video_decode_ms,omitempty"`
}

// ms is d in milliseconds, to the microsecond.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

func fromMS(v float64) time.Duration { return time.Duration(math.Round(v * 1e6)) }

// MarshalJSON writes the durations as milliseconds: load_ms, preprocess_ms,
// vision_ms, prefill_ms, ttft_ms, decode_ms, decode_tokens_per_sec,
// constraint_ms for structured output and video_decode_ms for videos.
func (t Timings) MarshalJSON() ([]byte, error) {
	return json.Marshal(timingsJSON{ms(t.Load), ms(t.Preprocess), ms(t.Vision), ms(t.Prefill), ms(t.FirstToken), ms(t.Decode), t.DecodeTokensPerSec, ms(t.Constraint), ms(t.VideoDecode)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (t *Timings) UnmarshalJSON(b []byte) error {
	var j timingsJSON
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&j); err != nil {
		return err
	}
	*t = Timings{Load: fromMS(j.Load), Preprocess: fromMS(j.Preprocess), VideoDecode: fromMS(j.VideoDecode), Vision: fromMS(j.Vision),
		Prefill: fromMS(j.Prefill), FirstToken: fromMS(j.FirstToken), Decode: fromMS(j.Decode), DecodeTokensPerSec: j.DecodeTokensPerSec,
		Constraint: fromMS(j.Constraint)}
	return nil
}

// ImageInfo is how one image was tiled.
type ImageInfo struct {
	Rows   int  `json:"rows"`   // tile rows (0 when not split)
	Cols   int  `json:"cols"`   // tile columns (0 when not split)
	Frames int  `json:"frames"` // vision-encoder frames: tiles plus the global view
	Cached bool `json:"cached"` // features came from the cache
}

// Result is a finished (or cancelled) generation.
type Result struct {
	Text         string       `json:"text"`             // the answer, without end token or stop string
	Tokens       []int64      `json:"tokens"`           // generated ids, the end token included
	PromptTokens []int64      `json:"prompt_tokens"`    // the prompt's ids, images expanded
	ImageTokens  int          `json:"image_tokens"`     // <image> tokens in the prompt
	ReusedTokens int          `json:"reused_tokens"`    // prompt tokens not prefilled: their cache came from a Chat's earlier turn or the prompt cache (Options.PromptCacheMB)
	Tiles        int          `json:"tiles"`            // vision frames over all images and videos
	Images       []ImageInfo  `json:"images"`           // how each image was tiled, in prompt order
	Videos       []VideoInfo  `json:"videos,omitempty"` // what was sampled of each video
	FinishReason FinishReason `json:"finish_reason"`    // why the answer ended
	// Incomplete is set for structured output (GenerateOptions.Format,
	// Schema, Regex) when the answer stopped before it was complete:
	// FinishReason "length", a stop string, or cancellation.
	Incomplete bool    `json:"incomplete,omitempty"`
	Timings    Timings `json:"timings"` // where the time went
}
