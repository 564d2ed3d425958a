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
	m      *Model
	mu     sync.Mutex
	system string
	msgs   []Message
	kv     *kvCache // the decoder cache of the last turn, reused by the next
}

// NewChat starts an empty conversation.
func (m *Model) NewChat() *Chat { return &Chat{m: m} }

// SetSystem sets the system message sent before the conversation in every
// later turn ("" removes it).
func (c *Chat) SetSystem(text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.system = text
}

// Send adds msg (a user turn, e.g. UserMessage(text, images...)) to the
// conversation and generates the answer with opts, streaming it to fn as
// Model.Generate does.
//
// The turn and its answer join the history when generation succeeds, and
// when it is cancelled after some text (the partial answer joins; Send then
// returns the Result and ctx.Err()). A turn that fails, or is cancelled
// before any text, leaves the history as it was. When the conversation no
// longer fits the model's context, its oldest turns are dropped from the
// history.
func (c *Chat) Send(ctx context.Context, msg Message, opts GenerateOptions, fn func(Token) error) (*Result, error) {
	if len(msg.Content) == 0 {
		return nil, errors.New("chat: empty message")
	}
	if msg.Role == "" {
		msg.Role = User
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// When the history outgrows the model's context, the oldest turns (a
	// question and its answer) are left out until the prompt fits; images
	// still in the history keep their cached features.
	for drop := 0; ; drop += 2 {
		req := Request{GenerateOptions: opts}
		if c.system != "" {
			req.Messages = append(req.Messages, TextMessage(System, c.system))
		}
		req.Messages = append(req.Messages, c.msgs[drop:]...)
		req.Messages = append(req.Messages, msg)
		res, kv, err := c.m.generate(ctx, req, fn, c.kv, true)
		c.kv = nil
		if errors.Is(err, ErrPromptTooLong) && drop+2 <= len(c.msgs) {
			continue
		}
		cancelled := err != nil && ctx.Err() != nil
		// The cache serves the next turn when it holds this turn as the
		// history will: after success or a cancellation during decoding.
		if kv != nil && (err == nil || cancelled) {
			c.kv = kv
		} else {
			kv.drop()
		}
		if err != nil && (!cancelled || res == nil || res.Text == "") {
			return res, err
		}
		c.msgs = append(c.msgs[drop:], msg, TextMessage(Assistant, res.Text))
		return res, err
	}
}

// History returns a copy of the conversation so far (without the system
// message).
func (c *Chat) History() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.msgs...)
}

// Reset forgets the conversation (the system message and the model's
// feature cache stay).
func (c *Chat) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = nil
	c.release()
}

// release hands the conversation's cache to the Model's prompt cache (a
// later request or Chat may start the same way) and lets it go.
func (c *Chat) release() {
	c.m.prompts.add(c.kv, c.m.cfg.Config.ImageTokenID)
	c.kv.drop()
	c.kv = nil
}

// Close releases the conversation's cache (to the Model's prompt cache,
// when it has one). A closed Chat can still be used; its next turn starts a
// new cache.
func (c *Chat) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.release()
}
