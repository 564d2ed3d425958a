package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/snapvlm/snapvlm"
)

// chatRequest is the body of POST /v1/chat/completions: OpenAI's
// parameters and snapvlm's extensions (top_k, min_p, repetition_penalty,
// no_split, image_size). Pointers tell "not sent" from zero.
type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	Seed                *int64          `json:"seed"`
	Stop                json.RawMessage `json:"stop"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	N              *int            `json:"n"`
	User           string          `json:"user"`
	ResponseFormat json.RawMessage `json:"response_format"`
	Tools          json.RawMessage `json:"tools"`
	Logprobs       bool            `json:"logprobs"`

	TopK              *int     `json:"top_k"`
	MinP              *float64 `json:"min_p"`
	RepetitionPenalty *float64 `json:"repetition_penalty"`
	NoSplit           *bool    `json:"no_split"`
	ImageSize         *int     `json:"image_size"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type contentPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url"`
	VideoURL *struct {
		URL string `json:"url"`
	} `json:"video_url"`
}

// decodeBody reads a JSON body into v, naming what is wrong.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return badRequest(te.Field, "invalid JSON body: field %q must be %s, got %s", te.Field, te.Type, te.Value)
		}
		return badRequest("", "invalid JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("", "invalid JSON body: more than one JSON value")
	}
	return nil
}

// toRequest checks the body and turns it into a snapvlm.Request over the
// server's defaults. Images are fetched and their headers checked.
func (s *Server) toRequest(ctx context.Context, cr *chatRequest) (snapvlm.Request, error) {
	req := snapvlm.Request{GenerateOptions: s.cfg.Defaults}
	req.Stop = append([]string(nil), s.cfg.Defaults.Stop...)
	if len(cr.Messages) == 0 {
		return req, badRequest("messages", "messages: at least one message is required")
	}
	if cr.N != nil && *cr.N != 1 {
		return req, badRequest("n", "n: only 1 choice per request is supported, got %d", *cr.N)
	}
	if len(cr.Tools) > 0 && string(cr.Tools) != "null" && string(cr.Tools) != "[]" {
		return req, badRequest("tools", "tools: function calling is not supported")
	}
	if cr.Logprobs {
		return req, badRequest("logprobs", "logprobs: not supported")
	}
	if err := s.responseFormat(cr.ResponseFormat, &req); err != nil {
		return req, err
	}
	switch {
	case cr.MaxCompletionTokens != nil:
		if *cr.MaxCompletionTokens < 1 {
			return req, badRequest("max_completion_tokens", "max_completion_tokens must be at least 1, got %d", *cr.MaxCompletionTokens)
		}
		req.MaxNewTokens = *cr.MaxCompletionTokens
	case cr.MaxTokens != nil:
		if *cr.MaxTokens < 1 {
			return req, badRequest("max_tokens", "max_tokens must be at least 1, got %d", *cr.MaxTokens)
		}
		req.MaxNewTokens = *cr.MaxTokens
	}
	if v := cr.Temperature; v != nil {
		if *v < 0 || *v > 2 || math.IsNaN(*v) {
			return req, badRequest("temperature", "temperature must be between 0 and 2, got %v", *v)
		}
		req.Temperature = float32(*v)
	}
	if v := cr.TopP; v != nil {
		if *v < 0 || *v > 1 || math.IsNaN(*v) {
			return req, badRequest("top_p", "top_p must be between 0 and 1, got %v", *v)
		}
		req.TopP = float32(*v)
	}
	if v := cr.MinP; v != nil {
		if *v < 0 || *v > 1 || math.IsNaN(*v) {
			return req, badRequest("min_p", "min_p must be between 0 and 1, got %v", *v)
		}
		req.MinP = float32(*v)
	}
	if v := cr.RepetitionPenalty; v != nil {
		if *v < 0 || *v > 10 || math.IsNaN(*v) {
			return req, badRequest("repetition_penalty", "repetition_penalty must be between 0 and 10 (1 or 0: off), got %v", *v)
		}
		req.RepetitionPenalty = float32(*v)
	}
	if v := cr.TopK; v != nil {
		if *v < 0 {
			return req, badRequest("top_k", "top_k must be 0 (off) or more, got %d", *v)
		}
		req.TopK = *v
	}
	if v := cr.Seed; v != nil {
		req.Seed = uint64(*v)
	}
	if v := cr.NoSplit; v != nil {
		req.NoSplit = *v
	}
	if v := cr.ImageSize; v != nil {
		if *v < 0 || *v > 8192 {
			return req, badRequest("image_size", "image_size must be 0 (model default) to 8192 pixels, got %d", *v)
		}
		req.ImageSize = *v
	}
	if len(cr.Stop) > 0 && string(cr.Stop) != "null" {
		var one string
		var many []string
		switch {
		case json.Unmarshal(cr.Stop, &one) == nil:
			many = []string{one}
		case json.Unmarshal(cr.Stop, &many) == nil:
		default:
			return req, badRequest("stop", "stop must be a string or a list of strings")
		}
		if len(many) > 16 {
			return req, badRequest("stop", "stop: at most 16 strings, got %d", len(many))
		}
		for _, st := range many {
			if st == "" {
				return req, badRequest("stop", "stop: empty strings are not allowed")
			}
		}
		req.Stop = many
	}
	for i, m := range cr.Messages {
		msg, err := s.message(ctx, i, m)
		if err != nil {
			return req, err
		}
		req.Messages = append(req.Messages, msg)
	}
	return req, nil
}

// responseFormat maps OpenAI's response_format onto the request's
// structured output: "text" (the default) is free text, {"type":
// "json_object"} is snapvlm.FormatJSON (any JSON object), and {"type":
// "json_schema", "json_schema": {"name", "schema", "strict"}} is
// GenerateOptions.Schema. The answer follows the schema whether strict is
// true or not (decoding is constrained either way); a schema the engine
// cannot enforce is refused with a 400 naming the keyword. The extension
// {"type": "regex", "regex": "..."} makes the answer match a regular
// expression (GenerateOptions.Regex).
func (s *Server) responseFormat(raw json.RawMessage, req *snapvlm.Request) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var rf struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Name   string          `json:"name"`
			Schema json.RawMessage `json:"schema"`
			Strict *bool           `json:"strict"`
		} `json:"json_schema"`
		Regex string `json:"regex"`
	}
	if err := json.Unmarshal(raw, &rf); err != nil {
		return badRequest("response_format", "response_format must be an object with a \"type\": %v", err)
	}
	switch rf.Type {
	case "text", "":
		return nil
	case "json_object":
		req.Format = snapvlm.FormatJSON
		return nil
	case "json_schema":
		if rf.JSONSchema == nil || len(rf.JSONSchema.Schema) == 0 || string(rf.JSONSchema.Schema) == "null" {
			return badRequest("response_format.json_schema.schema", "response_format json_schema needs json_schema.schema")
		}
		req.Schema = rf.JSONSchema.Schema
		return nil
	case "regex": // extension
		if rf.Regex == "" {
			return badRequest("response_format.regex", "response_format regex needs \"regex\"")
		}
		req.Regex = rf.Regex
		return nil
	}
	return badRequest("response_format", "response_format: unknown type %q (want text, json_object, json_schema or regex)", rf.Type)
}

func (s *Server) message(ctx context.Context, i int, m chatMessage) (snapvlm.Message, error) {
	var msg snapvlm.Message
	switch m.Role {
	case "system", "developer":
		msg.Role = snapvlm.System
	case "user":
		msg.Role = snapvlm.User
	case "assistant":
		msg.Role = snapvlm.Assistant
	default:
		return msg, badRequest(fmt.Sprintf("messages[%d].role", i), "messages[%d].role: want system, user or assistant, got %q", i, m.Role)
	}
	raw := bytes.TrimSpace(m.Content)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		if msg.Role != snapvlm.Assistant {
			return msg, badRequest(fmt.Sprintf("messages[%d].content", i), "messages[%d].content is missing", i)
		}
		return msg, nil
	case raw[0] == '"':
		var text string
		if err := json.Unmarshal(raw, &text); err != nil {
			return msg, badRequest(fmt.Sprintf("messages[%d].content", i), "messages[%d].content: %v", i, err)
		}
		msg.Content = []snapvlm.Part{{Text: text}}
		return msg, nil
	case raw[0] != '[':
		return msg, badRequest(fmt.Sprintf("messages[%d].content", i), "messages[%d].content must be a string or a list of parts", i)
	}
	var parts []contentPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return msg, badRequest(fmt.Sprintf("messages[%d].content", i), "messages[%d].content: %v", i, err)
	}
	for j, p := range parts {
		param := fmt.Sprintf("messages[%d].content[%d]", i, j)
		switch p.Type {
		case "text":
			msg.Content = append(msg.Content, snapvlm.Part{Text: p.Text})
		case "image_url":
			if p.ImageURL == nil || p.ImageURL.URL == "" {
				return msg, badRequest(param+".image_url.url", "%s.image_url.url is missing", param)
			}
			img, err := s.images.fetch(ctx, p.ImageURL.URL, param+".image_url.url")
			if err != nil {
				return msg, err
			}
			msg.Content = append(msg.Content, snapvlm.Part{Image: img})
		case "video_url":
			if p.VideoURL == nil || p.VideoURL.URL == "" {
				return msg, badRequest(param+".video_url.url", "%s.video_url.url is missing", param)
			}
			v, err := videoFromURL(p.VideoURL.URL, param+".video_url.url")
			if err != nil {
				return msg, err
			}
			msg.Content = append(msg.Content, snapvlm.Part{Video: v})
		default:
			return msg, badRequest(param+".type", "%s.type: want text, image_url or video_url, got %q", param, p.Type)
		}
	}
	return msg, nil
}

// Response objects (OpenAI's shapes, plus timings and token ids).

type usage struct {
	PromptTokens        int                 `json:"prompt_tokens"`
	CompletionTokens    int                 `json:"completion_tokens"`
	TotalTokens         int                 `json:"total_tokens"`
	PromptTokensDetails promptTokensDetails `json:"prompt_tokens_details"`
}

// promptTokensDetails is OpenAI's breakdown of the prompt tokens.
type promptTokensDetails struct {
	// CachedTokens were not prefilled: their decoder cache came from a kept
	// conversation or the model's prompt cache (timings.reused_tokens).
	CachedTokens int `json:"cached_tokens"`
}

// timings is the timings extension (milliseconds, like llama-server's).
type timings struct {
	PreprocessMS       float64 `json:"preprocess_ms"`
	VisionMS           float64 `json:"vision_ms"`
	PrefillMS          float64 `json:"prefill_ms"`
	TTFTMS             float64 `json:"ttft_ms"`
	DecodeMS           float64 `json:"decode_ms"`
	DecodeTokensPerSec float64 `json:"decode_tokens_per_sec"`
	PromptTokens       int     `json:"prompt_tokens"`
	ImageTokens        int     `json:"image_tokens"`
	Tiles              int     `json:"tiles"`
	CachedImages       int     `json:"cached_images"`
	// ReusedTokens are prompt tokens whose cache a kept conversation or the
	// model's prompt cache held (usage.prompt_tokens_details.cached_tokens).
	ReusedTokens int     `json:"reused_tokens"`
	QueueMS      float64 `json:"queue_ms"`
}

type chatMessageOut struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content"`
}

type choice struct {
	Index        int            `json:"index"`
	Message      chatMessageOut `json:"message"`
	FinishReason string         `json:"finish_reason"`
	Logprobs     *struct{}      `json:"logprobs"`
	// TokenIDs are the generated token ids (extension), the end token included.
	TokenIDs []int64 `json:"token_ids"`
}

type completion struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"`
	Created           int64    `json:"created"`
	Model             string   `json:"model"`
	SystemFingerprint string   `json:"system_fingerprint"`
	Choices           []choice `json:"choices"`
	Usage             usage    `json:"usage"`
	Timings           timings  `json:"timings"`
}

type delta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chunkChoice struct {
	Index        int       `json:"index"`
	Delta        delta     `json:"delta"`
	FinishReason *string   `json:"finish_reason"`
	Logprobs     *struct{} `json:"logprobs"`
	TokenIDs     []int64   `json:"token_ids,omitempty"`
}

type chunk struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"`
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	SystemFingerprint string        `json:"system_fingerprint"`
	Choices           []chunkChoice `json:"choices"`
	Usage             *usage        `json:"usage,omitempty"`
	Timings           *timings      `json:"timings,omitempty"`
}

func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())) / 1e3 }

func toTimings(res *snapvlm.Result, queued time.Duration) timings {
	t := res.Timings
	cached := 0
	for _, im := range res.Images {
		if im.Cached {
			cached++
		}
	}
	return timings{
		PreprocessMS: ms(t.Preprocess), VisionMS: ms(t.Vision), PrefillMS: ms(t.Prefill), TTFTMS: ms(t.FirstToken),
		DecodeMS: ms(t.Decode), DecodeTokensPerSec: math.Round(t.DecodeTokensPerSec*10) / 10,
		PromptTokens: len(res.PromptTokens), ImageTokens: res.ImageTokens, Tiles: res.Tiles, CachedImages: cached, ReusedTokens: res.ReusedTokens,
		QueueMS: ms(queued),
	}
}

// finishReason maps the engine's reason to OpenAI's ("cancelled" has no
// OpenAI name; it only reaches stream clients of a server shutting down).
func finishReason(r snapvlm.FinishReason) string {
	return string(r)
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) error {
	ri := info(r)
	var cr chatRequest
	if err := decodeBody(r, &cr); err != nil {
		return err
	}
	sv, err := s.model(cr.Model)
	if err != nil {
		return err
	}
	ri.model, ri.stream = sv.spec.ID, cr.Stream
	req, err := s.toRequest(r.Context(), &cr)
	if err != nil {
		return err
	}
	// A response_format the engine cannot enforce is refused before any
	// work (and before a stream starts).
	if err := sv.m.CheckStructuredOutput(req.GenerateOptions); err != nil {
		return s.generateError(err)
	}
	// The generation stops when the client goes away or the server cancels.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.genCtx, cancel)
	defer stop()

	queued := time.Now()
	release, err := s.lim.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	waited := time.Since(queued)

	id := newID("chatcmpl-")
	created := time.Now().Unix()
	if !cr.Stream {
		res, err := s.generate(ctx, sv, req, nil)
		if err != nil && (res == nil || res.FinishReason != snapvlm.FinishCancelled) {
			return s.generateError(err)
		}
		s.observe(sv, res, ri)
		if res.FinishReason == snapvlm.FinishCancelled {
			if r.Context().Err() != nil {
				return r.Context().Err() // the client is gone: nothing to send
			}
			return unavailable("the server is shutting down; the generation was cancelled")
		}
		writeJSON(w, http.StatusOK, completion{
			ID: id, Object: "chat.completion", Created: created, Model: sv.spec.ID, SystemFingerprint: fingerprint,
			Choices: []choice{{Message: chatMessageOut{Role: "assistant", Content: res.Text}, FinishReason: finishReason(res.FinishReason), TokenIDs: nonNil(res.Tokens)}},
			Usage:   usageOf(res),
			Timings: toTimings(res, waited),
		})
		return nil
	}

	sse := newSSE(w)
	base := chunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: sv.spec.ID, SystemFingerprint: fingerprint}
	first := base
	first.Choices = []chunkChoice{{Delta: delta{Role: "assistant", Content: ptr("")}}}
	if err := sse.send(first); err != nil {
		return err
	}
	res, err := s.generate(ctx, sv, req, func(tok snapvlm.Token) error {
		if tok.Text == "" {
			return nil
		}
		piece := tok.Text
		c := base
		c.Choices = []chunkChoice{{Delta: delta{Content: &piece}}}
		return sse.send(c)
	})
	// A generation cancelled by the server's shutdown (not the client) still
	// gets its last chunk, with finish_reason "cancelled".
	if err != nil && (res == nil || res.FinishReason != snapvlm.FinishCancelled || r.Context().Err() != nil) {
		if r.Context().Err() != nil || isCanceled(err) {
			// The client went away (a write failed or the context ended).
			ri.finish = string(snapvlm.FinishCancelled)
			s.met.cancellations.WithLabelValues(sv.spec.ID).Inc()
			return err
		}
		_ = sse.send(map[string]*apiError{"error": asAPIError(s.generateError(err))})
		return err
	}
	s.observe(sv, res, ri)
	if r.Context().Err() != nil {
		return r.Context().Err()
	}
	last := base
	fr := finishReason(res.FinishReason)
	tm := toTimings(res, waited)
	last.Choices = []chunkChoice{{Delta: delta{}, FinishReason: &fr, TokenIDs: nonNil(res.Tokens)}}
	last.Timings = &tm
	if err := sse.send(last); err != nil {
		return err
	}
	if cr.StreamOptions != nil && cr.StreamOptions.IncludeUsage {
		u := base
		us := usageOf(res)
		u.Choices = []chunkChoice{}
		u.Usage = &us
		if err := sse.send(u); err != nil {
			return err
		}
	}
	return sse.done()
}

// fingerprint identifies the server build in responses.
const fingerprint = "snapvlm-" + snapvlm.Version

func ptr[T any](v T) *T { return &v }

func nonNil(ids []int64) []int64 {
	if ids == nil {
		return []int64{}
	}
	return ids
}

func usageOf(res *snapvlm.Result) usage {
	p, c := len(res.PromptTokens), len(res.Tokens)
	return usage{PromptTokens: p, CompletionTokens: c, TotalTokens: p + c, PromptTokensDetails: promptTokensDetails{CachedTokens: res.ReusedTokens}}
}

// generateError classifies an engine error: a closed model is 503, an
// image over the limits 413, a prompt over the context or an unreadable
// image 400. The engine's other refusals (MaxNewTokens or ImageSize beyond
// what the model allows) are the request's doing too, so 400; images are
// checked before generation, so what fails there is rarely the engine.
func (s *Server) generateError(err error) error {
	switch {
	case isCanceled(err):
		return err
	case errors.Is(err, snapvlm.ErrClosed):
		return unavailable("the model is closed (the server is shutting down)")
	case errors.Is(err, snapvlm.ErrImageTooLarge):
		return tooLarge("messages", err.Error())
	case errors.Is(err, snapvlm.ErrPromptTooLong), errors.Is(err, snapvlm.ErrImage):
		return badRequest("messages", "%v", err)
	case errors.Is(err, snapvlm.ErrStructuredOutput):
		return badRequest("response_format", "%v", err)
	case errors.Is(err, snapvlm.ErrNoFFmpeg):
		return internal(fmt.Errorf("this server cannot read videos: %w", err))
	}
	return badRequest("", "%v", err)
}

// observe records a finished generation in the metrics and the log line.
func (s *Server) observe(sv *served, res *snapvlm.Result, ri *reqInfo) {
	id := sv.spec.ID
	ri.promptTokens, ri.completionTokens, ri.ttft, ri.finish = len(res.PromptTokens), len(res.Tokens), res.Timings.FirstToken, string(res.FinishReason)
	s.met.promptTokens.WithLabelValues(id).Add(float64(len(res.PromptTokens)))
	s.met.cachedTokens.WithLabelValues(id).Add(float64(res.ReusedTokens))
	s.met.completion.WithLabelValues(id).Add(float64(len(res.Tokens)))
	if len(res.Tokens) > 0 {
		s.met.ttft.WithLabelValues(id).Observe(res.Timings.FirstToken.Seconds())
	}
	if res.Timings.DecodeTokensPerSec > 0 {
		s.met.decodeRate.WithLabelValues(id).Observe(res.Timings.DecodeTokensPerSec)
	}
	if v := res.Timings.Vision + res.Timings.Preprocess; v > 0 {
		s.met.vision.WithLabelValues(id).Observe(v.Seconds())
	}
	for _, im := range res.Images {
		if im.Cached {
			s.met.cacheHits.WithLabelValues(id).Inc()
		} else {
			s.met.cacheMisses.WithLabelValues(id).Inc()
		}
	}
	if res.FinishReason == snapvlm.FinishCancelled {
		s.met.cancellations.WithLabelValues(id).Inc()
	}
}

// sse writes Server-Sent Events, flushing each.
type sse struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func newSSE(w http.ResponseWriter) *sse { return &sse{w: w, rc: http.NewResponseController(w)} }

func (e *sse) start() {
	if e.started {
		return
	}
	e.started = true
	h := e.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	e.w.WriteHeader(http.StatusOK)
}

func (e *sse) send(v any) error {
	e.start()
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(e.w, "data: %s\n\n", b); err != nil {
		return err
	}
	return e.rc.Flush()
}

func (e *sse) done() error {
	e.start()
	if _, err := e.w.Write([]byte("data: [DONE]\n\n")); err != nil {
		return err
	}
	return e.rc.Flush()
}
