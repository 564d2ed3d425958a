package server

import (
	"context"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/snapvlm/snapvlm"
)

// TestSeveralModels: GET /v1/models lists every model; a request picks one
// by id or alias (the answer names the id); no model means the first.
func TestSeveralModels(t *testing.T) {
	m := testModel(t)
	load := func(context.Context) (*snapvlm.Model, error) { return m, nil }
	s, err := New(Config{Logger: discardLogger(), Models: []Model{
		{ID: "org/first", Aliases: []string{"first"}, Load: load},
		{ID: "/models/second", Aliases: []string{"second", "2nd"}, Load: load},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	hs := newServer(t, s)
	c := client(hs.URL)
	ctx := context.Background()
	page, err := c.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, mo := range page.Data {
		ids = append(ids, mo.ID)
	}
	if len(ids) != 2 || ids[0] != "org/first" || ids[1] != "/models/second" {
		t.Errorf("models %v", ids)
	}
	for name, want := range map[string]string{"": "org/first", "first": "org/first", "2nd": "/models/second", "/models/second": "/models/second"} {
		res, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: name, MaxTokens: openai.Int(2),
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")}})
		if err != nil {
			t.Fatalf("model %q: %v", name, err)
		}
		if res.Model != want {
			t.Errorf("model %q answered as %q, want %q", name, res.Model, want)
		}
	}
	if _, err := New(Config{Models: []Model{{ID: "a", Load: load}, {ID: "b", Aliases: []string{"a"}, Load: load}}}); err == nil {
		t.Errorf("a name used twice was accepted")
	}
}
