package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/snapvlm/snapvlm"
)

func client(base string, opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{option.WithBaseURL(base + "/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0)}, opts...)...)
}

// TestOpenAIClient: the official client, non-stream and stream, gets the
// same text and token ids as Model.Generate for the same request: text
// only, a data-URL photo, and a multi-turn conversation about it.
func TestOpenAIClient(t *testing.T) {
	_, hs := startServer(t, Config{Parallel: 1, Queue: 4, Sessions: 4})
	m := testModel(t)
	url, img := sampleDataURL(t)
	c := client(hs.URL)
	ctx := context.Background()

	tests := []struct {
		name   string
		params openai.ChatCompletionNewParams
		extra  []option.RequestOption
		want   snapvlm.Request
	}{
		{
			name: "text",
			params: openai.ChatCompletionNewParams{Model: testModelID, MaxTokens: openai.Int(12),
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say something.")}},
			want: snapvlm.Request{GenerateOptions: snapvlm.GenerateOptions{MaxNewTokens: 12}, Messages: []snapvlm.Message{snapvlm.UserMessage("Say something.")}},
		},
		{
			name: "image data URL, no split, sampled with a seed",
			params: openai.ChatCompletionNewParams{Model: "tiny-alias", MaxCompletionTokens: openai.Int(10), Temperature: openai.Float(0.8), Seed: openai.Int(7), TopP: openai.Float(0.9),
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
					openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: url}),
					openai.TextContentPart("What is in this picture?"),
				})}},
			extra: []option.RequestOption{option.WithJSONSet("no_split", true), option.WithJSONSet("top_k", 40)},
			want: snapvlm.Request{GenerateOptions: snapvlm.GenerateOptions{MaxNewTokens: 10, Temperature: 0.8, Seed: 7, TopP: 0.9, TopK: 40, NoSplit: true},
				Messages: []snapvlm.Message{snapvlm.UserMessage("What is in this picture?", img)}},
		},
		{
			name: "multi-turn with a system prompt and the split photo",
			params: openai.ChatCompletionNewParams{Model: testModelID, MaxTokens: openai.Int(8), Stop: openai.ChatCompletionNewParamsStopUnion{OfStringArray: []string{"zzzz"}},
				Messages: []openai.ChatCompletionMessageParamUnion{
					openai.SystemMessage("Answer briefly."),
					openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
						openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: url}),
						openai.TextContentPart("What is it?"),
					}),
					openai.AssistantMessage("A photo."),
					openai.UserMessage("And the colours?"),
				}},
			want: snapvlm.Request{GenerateOptions: snapvlm.GenerateOptions{MaxNewTokens: 8, Stop: []string{"zzzz"}}, Messages: []snapvlm.Message{
				{Role: snapvlm.System, Content: []snapvlm.Part{{Text: "Answer briefly."}}},
				snapvlm.UserMessage("What is it?", img),
				{Role: snapvlm.Assistant, Content: []snapvlm.Part{{Text: "A photo."}}},
				snapvlm.UserMessage("And the colours?"),
			}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := m.Generate(ctx, tc.want, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want.Text == "" {
				t.Fatalf("the reference answer is empty; pick a prompt that produces text")
			}

			// Non-stream.
			res, err := c.Chat.Completions.New(ctx, tc.params, tc.extra...)
			if err != nil {
				t.Fatal(err)
			}
			if res.Object != "chat.completion" || !strings.HasPrefix(res.ID, "chatcmpl-") || res.Model != testModelID || len(res.Choices) != 1 {
				t.Fatalf("response object: %+v", res)
			}
			ch := res.Choices[0]
			if ch.Message.Content != want.Text || string(ch.FinishReason) != string(want.FinishReason) {
				t.Errorf("non-stream: %q (%s), Generate: %q (%s)", ch.Message.Content, ch.FinishReason, want.Text, want.FinishReason)
			}
			if ids := tokenIDs(t, ch.JSON.ExtraFields["token_ids"].Raw()); !slices.Equal(ids, want.Tokens) {
				t.Errorf("non-stream token_ids %v, Generate %v", ids, want.Tokens)
			}
			if res.Usage.PromptTokens != int64(len(want.PromptTokens)) || res.Usage.CompletionTokens != int64(len(want.Tokens)) ||
				res.Usage.TotalTokens != res.Usage.PromptTokens+res.Usage.CompletionTokens {
				t.Errorf("usage %+v, want prompt %d completion %d", res.Usage, len(want.PromptTokens), len(want.Tokens))
			}
			var tm timings
			if err := json.Unmarshal([]byte(res.JSON.ExtraFields["timings"].Raw()), &tm); err != nil || tm.TTFTMS <= 0 || tm.PromptTokens != len(want.PromptTokens) || tm.Tiles != want.Tiles {
				t.Errorf("timings %+v (%v), want ttft > 0, %d prompt tokens, %d tiles", tm, err, len(want.PromptTokens), want.Tiles)
			}

			// Stream, with usage.
			sp := tc.params
			sp.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			stream := c.Chat.Completions.NewStreaming(ctx, sp, tc.extra...)
			var text strings.Builder
			var ids []int64
			var finish string
			var roleFirst, sawUsage bool
			n := 0
			for stream.Next() {
				chunk := stream.Current()
				if chunk.Object != "chat.completion.chunk" || (n > 0 && chunk.ID == "") {
					t.Errorf("chunk %d: %s", n, chunk.RawJSON())
				}
				if n == 0 {
					roleFirst = len(chunk.Choices) == 1 && chunk.Choices[0].Delta.Role == "assistant"
				}
				n++
				if len(chunk.Choices) == 0 {
					sawUsage = chunk.Usage.TotalTokens == int64(len(want.PromptTokens)+len(want.Tokens))
					continue
				}
				if sawUsage {
					t.Errorf("a choice after the usage chunk")
				}
				cc := chunk.Choices[0]
				text.WriteString(cc.Delta.Content)
				if cc.FinishReason != "" {
					finish = cc.FinishReason
					ids = tokenIDs(t, cc.JSON.ExtraFields["token_ids"].Raw())
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if !roleFirst {
				t.Errorf("the first chunk does not carry role assistant")
			}
			if text.String() != want.Text || finish != string(want.FinishReason) || !slices.Equal(ids, want.Tokens) {
				t.Errorf("stream: %q (%s) %v; Generate: %q (%s) %v", text.String(), finish, ids, want.Text, want.FinishReason, want.Tokens)
			}
			if !sawUsage {
				t.Errorf("no usage chunk with the right totals")
			}
		})
	}
}

func tokenIDs(t *testing.T, raw string) []int64 {
	t.Helper()
	var ids []int64
	if err := json.Unmarshal([]byte(raw), &ids); err != nil {
		t.Errorf("token_ids %q: %v", raw, err)
	}
	return ids
}

// TestOpenAIErrors: the client sees typed errors with OpenAI's fields and
// the right status codes.
func TestOpenAIErrors(t *testing.T) {
	url, _ := sampleDataURL(t)
	ctx := context.Background()
	user := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")}
	openSrv, open := startServer(t, Config{Parallel: 1, Queue: -1, MaxBody: 16 << 10})
	_, keyed := startServer(t, Config{APIKey: "sesame"})

	tests := []struct {
		name       string
		base       string
		opts       []option.RequestOption
		params     openai.ChatCompletionNewParams
		status     int
		param      string
		code, kind string
	}{
		{"n=2", open.URL, nil, openai.ChatCompletionNewParams{Model: testModelID, Messages: user, N: openai.Int(2)}, 400, "n", "", "invalid_request_error"},
		{"temperature", open.URL, nil, openai.ChatCompletionNewParams{Model: testModelID, Messages: user, Temperature: openai.Float(3)}, 400, "temperature", "", "invalid_request_error"},
		{"no messages", open.URL, nil, openai.ChatCompletionNewParams{Model: testModelID}, 400, "messages", "", "invalid_request_error"},
		{"not an image", open.URL, nil, openai.ChatCompletionNewParams{Model: testModelID, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
			openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: "data:image/png;base64,aGVsbG8="})})}}, 400, "messages[0].content[0].image_url.url", "", "invalid_request_error"},
		{"remote image not allowed", open.URL, nil, openai.ChatCompletionNewParams{Model: testModelID, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
			openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: "http://169.254.169.254/latest"})})}}, 400, "messages[0].content[0].image_url.url", "", "invalid_request_error"},
		{"json_schema keyword not supported", open.URL, nil, openai.ChatCompletionNewParams{Model: testModelID, Messages: user, ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &openai.ResponseFormatJSONSchemaParam{
			JSONSchema: openai.ResponseFormatJSONSchemaJSONSchemaParam{Name: "x", Schema: map[string]any{"oneOf": []any{map[string]any{"type": "string"}}}}}}}, 400, "response_format", "", "invalid_request_error"},
		{"json_schema without schema", open.URL, nil, openai.ChatCompletionNewParams{Model: testModelID, Messages: user, ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &openai.ResponseFormatJSONSchemaParam{
			JSONSchema: openai.ResponseFormatJSONSchemaJSONSchemaParam{Name: "x"}}}}, 400, "response_format.json_schema.schema", "", "invalid_request_error"},
		{"response_format type", open.URL, []option.RequestOption{option.WithJSONSet("response_format", map[string]any{"type": "yaml"})}, openai.ChatCompletionNewParams{Model: testModelID, Messages: user}, 400, "response_format", "", "invalid_request_error"},
		{"wrong key", keyed.URL, []option.RequestOption{option.WithAPIKey("open sesame")}, openai.ChatCompletionNewParams{Model: testModelID, Messages: user}, 401, "", "invalid_api_key", "invalid_request_error"},
		{"unknown model", open.URL, nil, openai.ChatCompletionNewParams{Model: "gpt-5", Messages: user}, 404, "model", "model_not_found", "invalid_request_error"},
		{"body over the limit", open.URL, nil, openai.ChatCompletionNewParams{Model: testModelID, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
			openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: url})})}}, 413, "", "request_too_large", "invalid_request_error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := client(tc.base, tc.opts...)
			_, err := c.Chat.Completions.New(ctx, tc.params)
			checkAPIError(t, err, tc.status, tc.param, tc.code, tc.kind)
		})
	}

	t.Run("right key", func(t *testing.T) {
		c := client(keyed.URL, option.WithAPIKey("sesame"))
		if _, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: testModelID, Messages: user, MaxTokens: openai.Int(2)}); err != nil {
			t.Fatal(err)
		}
		if resp, err := http.Get(keyed.URL + "/health"); err != nil || resp.StatusCode != 200 {
			t.Errorf("/health needs no key: %v %v", resp, err)
		}
	})

	t.Run("queue full", func(t *testing.T) {
		// One slot, no queue: take the slot, then ask.
		c := client(open.URL)
		release, err := openSrv.lim.acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: testModelID, Messages: user, MaxTokens: openai.Int(2)})
		apiErr := checkAPIError(t, err, 429, "", "queue_full", "rate_limit_error")
		if apiErr != nil && apiErr.Response.Header.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After")
		}
		release()
		if _, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: testModelID, Messages: user, MaxTokens: openai.Int(2)}); err != nil {
			t.Errorf("after the slot is free: %v", err)
		}
	})
}

func checkAPIError(t *testing.T, err error, status int, param, code, kind string) *openai.Error {
	t.Helper()
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("err %v (%T), want *openai.Error %d", err, err, status)
	}
	if apiErr.StatusCode != status || apiErr.Param != param || apiErr.Code != code || apiErr.Type != kind || apiErr.Message == "" {
		t.Errorf("got %d param %q code %q type %q (%s), want %d param %q code %q type %q",
			apiErr.StatusCode, apiErr.Param, apiErr.Code, apiErr.Type, apiErr.Message, status, param, code, kind)
	}
	return apiErr
}

// TestFollowUpContinuesConversation: a follow-up request that sends the
// conversation back continues the kept decoder cache (reused_tokens > 0:
// only the new turn is prefilled) and answers exactly as Model.Generate does
// over the whole conversation; a conversation the server does not know is
// answered from scratch, also exactly.
func TestFollowUpContinuesConversation(t *testing.T) {
	_, hs := startServer(t, Config{Parallel: 1, Queue: 4, Sessions: 2})
	m := testModel(t)
	url, img := sampleDataURL(t)
	c := client(hs.URL)
	ctx := context.Background()
	extra := option.WithJSONSet("no_split", true)
	first := openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
		openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: url}),
		openai.TextContentPart("What is in this picture?"),
	})
	ask := func(msgs ...openai.ChatCompletionMessageParamUnion) (string, timings) {
		t.Helper()
		res, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: testModelID, MaxTokens: openai.Int(12), Messages: msgs}, extra)
		if err != nil {
			t.Fatal(err)
		}
		var tm timings
		if err := json.Unmarshal([]byte(res.JSON.ExtraFields["timings"].Raw()), &tm); err != nil {
			t.Fatal(err)
		}
		return res.Choices[0].Message.Content, tm
	}
	a1, t1 := ask(openai.SystemMessage("Be brief."), first)
	if t1.ReusedTokens != 0 {
		t.Errorf("first turn reused %d tokens", t1.ReusedTokens)
	}
	a2, t2 := ask(openai.SystemMessage("Be brief."), first, openai.AssistantMessage(a1), openai.UserMessage("And the colours?"))
	if t2.ReusedTokens < t1.PromptTokens || t2.CachedImages != 1 || t2.VisionMS != 0 {
		t.Errorf("follow-up: %+v, want at least the first prompt's %d tokens reused", t2, t1.PromptTokens)
	}
	req := snapvlm.Request{GenerateOptions: snapvlm.GenerateOptions{MaxNewTokens: 12, NoSplit: true}, Messages: []snapvlm.Message{
		{Role: snapvlm.System, Content: []snapvlm.Part{{Text: "Be brief."}}},
		snapvlm.UserMessage("What is in this picture?", img),
		{Role: snapvlm.Assistant, Content: []snapvlm.Part{{Text: a1}}},
		snapvlm.UserMessage("And the colours?"),
	}}
	want, err := m.Generate(ctx, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a2 != want.Text {
		t.Errorf("follow-up with the kept cache %q, Generate over the conversation %q", a2, want.Text)
	}
	// The same follow-up again: its session moved on, so it is answered
	// from scratch, identically.
	a2again, t3 := ask(openai.SystemMessage("Be brief."), first, openai.AssistantMessage(a1), openai.UserMessage("And the colours?"))
	if a2again != a2 || t3.ReusedTokens != 0 {
		t.Errorf("repeated follow-up %q (reused %d), first time %q", a2again, t3.ReusedTokens, a2)
	}
}

// TestPromptCacheUsage: with a model that keeps a prompt cache, a request
// with the same system prompt and photo as an earlier one and another
// question (no kept conversation matches it) prefills only what follows
// the shared prefix; the OpenAI client reads that count as
// usage.prompt_tokens_details.cached_tokens, streamed and not, and the
// answer is Model.Generate's without the cache.
func TestPromptCacheUsage(t *testing.T) {
	plain := testModel(t)
	m, err := snapvlm.Load(context.Background(), plain.Dir(), snapvlm.Options{PromptCacheMB: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	s, err := New(Config{Models: []Model{{ID: testModelID, Load: func(context.Context) (*snapvlm.Model, error) { return m, nil }}}, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Cancel)
	hs := newServer(t, s)
	url, img := sampleDataURL(t)
	c := client(hs.URL)
	ctx := context.Background()
	params := func(q string) openai.ChatCompletionNewParams {
		return openai.ChatCompletionNewParams{Model: testModelID, MaxTokens: openai.Int(8), Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage("Be brief."),
			openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
				openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: url}),
				openai.TextContentPart(q),
			}),
		}}
	}
	want := func(q string) *snapvlm.Result {
		t.Helper()
		res, err := plain.Generate(ctx, snapvlm.Request{GenerateOptions: snapvlm.GenerateOptions{MaxNewTokens: 8}, Messages: []snapvlm.Message{
			{Role: snapvlm.System, Content: []snapvlm.Part{{Text: "Be brief."}}}, snapvlm.UserMessage(q, img)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first, err := c.Chat.Completions.New(ctx, params("What is in this picture?"))
	if err != nil {
		t.Fatal(err)
	}
	if got := first.Usage.PromptTokensDetails.CachedTokens; got != 0 {
		t.Errorf("first request: %d cached tokens", got)
	}
	w := want("Which colours?")
	// The prefix shared with the first request ends where the questions
	// differ: at least the system prompt and the photo.
	wFirst := want("What is in this picture?")
	shared := 0
	for shared < len(w.PromptTokens) && shared < len(wFirst.PromptTokens) && w.PromptTokens[shared] == wFirst.PromptTokens[shared] {
		shared++
	}
	second, err := c.Chat.Completions.New(ctx, params("Which colours?"))
	if err != nil {
		t.Fatal(err)
	}
	if got := second.Usage.PromptTokensDetails.CachedTokens; got != int64(shared) || second.Choices[0].Message.Content != w.Text {
		t.Errorf("second request: %d cached tokens, want %d (the shared prefix); answer %q, want %q", got, shared, second.Choices[0].Message.Content, w.Text)
	}
	var tm timings
	if err := json.Unmarshal([]byte(second.JSON.ExtraFields["timings"].Raw()), &tm); err != nil {
		t.Fatal(err)
	}
	if tm.ReusedTokens != shared {
		t.Errorf("timings.reused_tokens %d, want %d", tm.ReusedTokens, shared)
	}
	sp := params("Which colours?")
	sp.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := c.Chat.Completions.NewStreaming(ctx, sp)
	var cached int64 = -1
	var text strings.Builder
	for stream.Next() {
		ch := stream.Current()
		if len(ch.Choices) > 0 {
			text.WriteString(ch.Choices[0].Delta.Content)
		}
		if ch.Usage.TotalTokens > 0 {
			cached = ch.Usage.PromptTokensDetails.CachedTokens
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	// The same request again reuses all of its prompt but the last token.
	if cached != int64(len(w.PromptTokens)-1) || text.String() != w.Text {
		t.Errorf("streamed again: %d cached tokens, want %d; answer %q, want %q", cached, len(w.PromptTokens)-1, text.String(), w.Text)
	}
	if got, want := metric(t, hs.URL, `snapvlm_prompt_tokens_cached_total{model="tiny"}`), float64(shared+len(w.PromptTokens)-1); got != want {
		t.Errorf("snapvlm_prompt_tokens_cached_total %g, want %g", got, want)
	}
}

// TestOpenAIResponseFormat: response_format json_object and json_schema
// through the OpenAI client, streamed and not. The random-weight model
// answers in shape only because decoding is constrained; the answers are
// checked with encoding/json and the jsonschema library.
func TestOpenAIResponseFormat(t *testing.T) {
	_, srv := startServer(t, Config{Parallel: 1, Queue: 4})
	c := client(srv.URL)
	ctx := context.Background()
	user := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Is there a person? Answer in JSON.")}
	schema := map[string]any{
		"type": "object",
		"properties": map[string]any{
			"person": map[string]any{"type": "boolean"},
			"count":  map[string]any{"type": "integer", "minimum": 0, "maximum": 10},
			"label":  map[string]any{"enum": []any{"adult", "child", "none"}},
		},
		"required":             []any{"person", "count", "label"},
		"additionalProperties": false,
	}
	raw, _ := json.Marshal(schema)
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	jc := jsonschema.NewCompiler()
	if err := jc.AddResource("s.json", doc); err != nil {
		t.Fatal(err)
	}
	val, err := jc.Compile("s.json")
	if err != nil {
		t.Fatal(err)
	}
	jsonSchema := openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &openai.ResponseFormatJSONSchemaParam{
		JSONSchema: openai.ResponseFormatJSONSchemaJSONSchemaParam{Name: "person", Schema: schema, Strict: openai.Bool(true)}}}
	jsonObject := openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &openai.ResponseFormatJSONObjectParam{}}
	validate := func(t *testing.T, text string) {
		t.Helper()
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
		if err != nil {
			t.Fatalf("%q does not parse: %v", text, err)
		}
		if err := val.Validate(inst); err != nil {
			t.Fatalf("%q does not validate: %v", text, err)
		}
	}
	for seed := range int64(4) {
		params := openai.ChatCompletionNewParams{Model: testModelID, Messages: user, ResponseFormat: jsonSchema,
			MaxTokens: openai.Int(200), Seed: openai.Int(seed + 1), Temperature: openai.Float(1)}
		got, err := c.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if got.Choices[0].FinishReason != "stop" {
			t.Fatalf("finish %q: %q", got.Choices[0].FinishReason, got.Choices[0].Message.Content)
		}
		validate(t, got.Choices[0].Message.Content)

		stream := c.Chat.Completions.NewStreaming(ctx, params)
		var acc openai.ChatCompletionAccumulator
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if s := acc.Choices[0].Message.Content; s != got.Choices[0].Message.Content {
			t.Errorf("seed %d: streamed %q, not streamed %q", seed, s, got.Choices[0].Message.Content)
		}
	}

	// JSON mode: an object; cut by max_tokens: finish_reason length and
	// no complete JSON.
	got, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: testModelID, Messages: user, ResponseFormat: jsonObject, MaxTokens: openai.Int(3)})
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if got.Choices[0].FinishReason != "length" || json.Unmarshal([]byte(got.Choices[0].Message.Content), &v) == nil {
		t.Errorf("cut JSON: finish %q, content %q", got.Choices[0].FinishReason, got.Choices[0].Message.Content)
	}
}
