package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/snapvlm/snapvlm"
	"github.com/snapvlm/snapvlm/internal/modelconfig"
)

// decodeJSON reads a JSON object into v, rejecting unknown fields and
// trailing data; "" means {}.
func decodeJSON(what, s string, v any) error {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid("%s: %v", what, err)
	}
	if dec.More() {
		return invalid("%s: data after the JSON object", what)
	}
	return nil
}

// openOptions is snapvlm_model_open's options_json.
type openOptions struct {
	Dtype            string `json:"dtype"`
	VisionDtype      string `json:"vision_dtype"`
	EmbedDtype       string `json:"embed_dtype"`
	DecoderDtype     string `json:"decoder_dtype"`
	Threads          int    `json:"threads"`
	Provider         string `json:"provider"`
	OptLevel         string `json:"opt_level"`
	ORTLib           string `json:"ort_lib"`
	VisionBatch      int    `json:"vision_batch"`
	PrefillChunk     int    `json:"prefill_chunk"`
	DecoderInt8      bool   `json:"decoder_int8"`
	KVCache          string `json:"kv_cache"`
	Parallel         int    `json:"parallel"`
	FeatureCacheSize int    `json:"feature_cache_size"`
	TextOnly         bool   `json:"text_only"`
	CacheDir         string `json:"cache_dir"`
}

func (o openOptions) engine() (snapvlm.Options, error) {
	if o.Threads < 0 || o.VisionBatch < 0 || o.PrefillChunk < 0 || o.Parallel < 0 {
		return snapvlm.Options{}, invalid("options: threads, vision_batch, prefill_chunk and parallel must not be negative")
	}
	for _, d := range []struct{ name, value string }{{"dtype", o.Dtype}, {"vision_dtype", o.VisionDtype}, {"embed_dtype", o.EmbedDtype}, {"decoder_dtype", o.DecoderDtype}} {
		if _, ok := modelconfig.DtypeSuffix(d.value); d.value != "" && d.value != "auto" && !ok {
			return snapvlm.Options{}, invalid("options: %s %q: want one of %s", d.name, d.value, strings.Join(modelconfig.Dtypes(), ", "))
		}
	}
	switch strings.ToLower(o.KVCache) {
	case "", "auto", "f16", "float16", "f32", "float32":
	default:
		return snapvlm.Options{}, invalid("options: kv_cache %q: want f16, f32 or auto", o.KVCache)
	}
	return snapvlm.Options{
		ORTLib: o.ORTLib, Dtype: o.Dtype, VisionDtype: o.VisionDtype, EmbedDtype: o.EmbedDtype, DecoderDtype: o.DecoderDtype,
		Threads: o.Threads, Provider: o.Provider, OptLevel: o.OptLevel, TextOnly: o.TextOnly, PrefillChunk: o.PrefillChunk,
		VisionBatch: o.VisionBatch, DecoderInt8: o.DecoderInt8, KVCache: o.KVCache, FeatureCacheSize: o.FeatureCacheSize, Parallel: o.Parallel,
	}, nil
}

// imageOptions is snapvlm_image_encode's options_json.
type imageOptions struct {
	NoSplit   bool   `json:"no_split"`
	ImageSize int    `json:"image_size"`
	Name      string `json:"name"`
}

// requestJSON is snapvlm_generate's request_json.
type requestJSON struct {
	Question          string        `json:"question"`
	Messages          []messageJSON `json:"messages"`
	MaxNewTokens      int           `json:"max_new_tokens"`
	Temperature       float32       `json:"temperature"`
	TopK              int           `json:"top_k"`
	TopP              float32       `json:"top_p"`
	MinP              float32       `json:"min_p"`
	RepetitionPenalty float32       `json:"repetition_penalty"`
	Seed              uint64        `json:"seed"`
	Stop              []string      `json:"stop"`
}

type messageJSON struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type partJSON struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Image *int   `json:"image"`
}

// request builds the engine request from request_json and the image handles.
func (r *requestJSON) request(images []*image) (snapvlm.Request, error) {
	req := snapvlm.Request{GenerateOptions: snapvlm.GenerateOptions{
		MaxNewTokens: r.MaxNewTokens, Temperature: r.Temperature, TopK: r.TopK, TopP: r.TopP, MinP: r.MinP,
		RepetitionPenalty: r.RepetitionPenalty, Seed: r.Seed, Stop: r.Stop,
	}}
	if r.MaxNewTokens < 0 {
		return req, invalid("request: max_new_tokens must not be negative")
	}
	for i, img := range images {
		if i > 0 && (img.noSplit != images[0].noSplit || img.imageSize != images[0].imageSize) {
			return req, invalid("request: images 0 and %d were encoded with different no_split/image_size; one request uses one setting", i)
		}
		req.NoSplit, req.ImageSize = img.noSplit, img.imageSize
	}
	switch {
	case r.Question != "" && r.Messages != nil:
		return req, invalid(`request: give "question" or "messages", not both`)
	case r.Question != "":
		imgs := make([]*snapvlm.Image, len(images))
		for i, img := range images {
			imgs[i] = img.img
		}
		req.Messages = []snapvlm.Message{snapvlm.UserMessage(r.Question, imgs...)}
		return req, nil
	case len(r.Messages) == 0:
		return req, invalid(`request: no "question" and no "messages"`)
	}
	used := make([]bool, len(images))
	for i, m := range r.Messages {
		msg := snapvlm.Message{Role: snapvlm.Role(m.Role)}
		switch m.Role {
		case string(snapvlm.System), string(snapvlm.User), string(snapvlm.Assistant):
		default:
			return req, invalid("request: messages[%d].role %q: want system, user or assistant", i, m.Role)
		}
		c := bytes.TrimSpace(m.Content)
		if len(c) > 0 && c[0] == '"' {
			var s string
			if err := json.Unmarshal(c, &s); err != nil {
				return req, invalid("request: messages[%d].content: %v", i, err)
			}
			msg.Content = []snapvlm.Part{{Text: s}}
			req.Messages = append(req.Messages, msg)
			continue
		}
		var parts []partJSON
		dec := json.NewDecoder(bytes.NewReader(c))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&parts); err != nil {
			return req, invalid("request: messages[%d].content: want a string or a list of parts: %v", i, err)
		}
		for j, p := range parts {
			switch p.Type {
			case "text":
				msg.Content = append(msg.Content, snapvlm.Part{Text: p.Text})
			case "image":
				if p.Image == nil {
					return req, invalid("request: messages[%d].content[%d]: an image part needs \"image\": the index of an image handle", i, j)
				}
				if *p.Image < 0 || *p.Image >= len(images) {
					return req, invalid("request: messages[%d].content[%d]: image %d is out of range: %d image handles given", i, j, *p.Image, len(images))
				}
				used[*p.Image] = true
				msg.Content = append(msg.Content, snapvlm.Part{Image: images[*p.Image].img})
			default:
				return req, invalid("request: messages[%d].content[%d].type %q: want text or image", i, j, p.Type)
			}
		}
		req.Messages = append(req.Messages, msg)
	}
	for i, u := range used {
		if !u {
			return req, invalid("request: image %d is not used by any message", i)
		}
	}
	return req, nil
}

// ms is a duration in milliseconds.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

type resultJSON struct {
	Text         string              `json:"text"`
	Tokens       []int64             `json:"tokens"`
	PromptTokens int                 `json:"prompt_tokens"`
	ImageTokens  int                 `json:"image_tokens"`
	Tiles        int                 `json:"tiles"`
	Images       []snapvlm.ImageInfo `json:"images"`
	FinishReason string              `json:"finish_reason"`
	Timings      snapvlm.Timings     `json:"timings"` // milliseconds, as snapvlm.Timings marshals
}

func resultOf(res *snapvlm.Result) resultJSON {
	out := resultJSON{
		Text: res.Text, Tokens: res.Tokens, PromptTokens: len(res.PromptTokens), ImageTokens: res.ImageTokens,
		Tiles: res.Tiles, Images: res.Images, FinishReason: string(res.FinishReason),
		Timings: res.Timings,
	}
	if out.Tokens == nil {
		out.Tokens = []int64{}
	}
	if out.Images == nil {
		out.Images = []snapvlm.ImageInfo{}
	}
	return out
}

// marshal encodes v; the types here always encode.
func marshal(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encoding the result: %w", err)
	}
	return string(b), nil
}
