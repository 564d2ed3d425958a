package snapvlm

import (
	"context"
	"errors"
	"sync"
)

// Chat is a multi-turn conversation with a Model. Images given in a turn stay
// part of the conversation; their features are computed once and reused by
// later turns. A Chat is safe for concurrent use, but turns run one at a
// time; use one Chat per conversation and many Chats per Model.
//
// A Chat keeps the decoder's key/value cache of its last turn: the next turn
// only runs the tokens after the longest common prefix (the new question and
// the previous answer as the template renders it), not the whole history.
type Chat struct {
	m    *Model
	mu   sync.Mutex
	msgs []Message
	kv   kvCache // the decoder cache of the last turn, reused by the next
	// System, when set, is sent as the first message of every turn.
	System string
}

// NewChat starts an empty conversation.
func (m *Model) NewChat() *Chat { return &Chat{m: m} }

// Send adds a user turn (images first, then text, as UserMessage) and
// generates the answer with the sampling settings of opts (its Messages are
// ignored). The answer joins the history unless generation failed or was
// cancelled before any text. When the conversation no longer fits the
// model's context, its oldest turns are dropped from the history.
func (c *Chat) Send(ctx context.Context, text string, images []*Image, opts Request, onText func(string) error) (*Result, error) {
	if text == "" && len(images) == 0 {
		return nil, errors.New("chat: empty message")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	user := UserMessage(text, images...)
	req := opts
	// When the history outgrows the model's context, the oldest turns (a
	// question and its answer) are left out until the prompt fits; images
	// still in the history keep their cached features.
	for drop := 0; ; drop += 2 {
		req.Messages = nil
		if c.System != "" {
			req.Messages = append(req.Messages, Message{Role: System, Content: []Part{{Text: c.System}}})
		}
		req.Messages = append(req.Messages, c.msgs[drop:]...)
		req.Messages = append(req.Messages, user)
		res, err := c.m.generate(ctx, req, onText, &c.kv)
		if errors.Is(err, ErrPromptTooLong) && drop+2 <= len(c.msgs) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if res.FinishReason == FinishCancelled && res.Text == "" {
			return res, nil
		}
		c.msgs = append(c.msgs[drop:], user, Message{Role: Assistant, Content: []Part{{Text: res.Text}}})
		return res, nil
	}
}

// History returns a copy of the conversation so far.
func (c *Chat) History() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.msgs...)
}

// Reset forgets the conversation (the model's feature cache stays).
func (c *Chat) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = nil
	c.kv.drop()
}

// Close releases the conversation's cache. A closed Chat can still be used;
// its next turn starts a new cache.
func (c *Chat) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kv.drop()
}
