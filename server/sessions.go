package server

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"sync"

	"github.com/snapvlm/snapvlm"
)

// sessions keeps the decoder caches of recent conversations (as
// snapvlm.Chat values), keyed by everything their cache holds: the model,
// the preprocessing options and the messages so far. A follow-up request
// that sends the conversation back with one more user turn continues the
// Chat, so only the new tokens are prefilled instead of the whole history
// (images included). The server stays stateless to its clients: a request
// that matches no session is answered from scratch, with the same result.
type sessions struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *session, front = most recent
	items map[[32]byte]*list.Element
}

type session struct {
	key  [32]byte
	chat *snapvlm.Chat
}

func newSessions(max int) *sessions {
	return &sessions{max: max, order: list.New(), items: map[[32]byte]*list.Element{}}
}

// take removes and returns the session with key, or nil. A taken session
// belongs to one request until it is put back.
func (ss *sessions) take(key [32]byte) *snapvlm.Chat {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	e, ok := ss.items[key]
	if !ok {
		return nil
	}
	ss.order.Remove(e)
	delete(ss.items, key)
	return e.Value.(*session).chat
}

// put keeps chat under key, closing the least recently used sessions
// beyond the limit.
func (ss *sessions) put(key [32]byte, chat *snapvlm.Chat) {
	ss.mu.Lock()
	if old, ok := ss.items[key]; ok {
		ss.order.Remove(old)
		old.Value.(*session).chat.Close()
	}
	ss.items[key] = ss.order.PushFront(&session{key: key, chat: chat})
	var evicted []*snapvlm.Chat
	for ss.order.Len() > ss.max {
		e := ss.order.Back()
		s := e.Value.(*session)
		ss.order.Remove(e)
		delete(ss.items, s.key)
		evicted = append(evicted, s.chat)
	}
	ss.mu.Unlock()
	for _, c := range evicted {
		c.Close()
	}
}

func (ss *sessions) closeAll() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for e := ss.order.Front(); e != nil; e = e.Next() {
		e.Value.(*session).chat.Close()
	}
	ss.order.Init()
	clear(ss.items)
}

// turn is a request split into what a Chat holds and the new user turn.
type turn struct {
	system  string
	history []snapvlm.Message
	text    string
	images  []*snapvlm.Image
}

// splitTurn splits req for a Chat: an optional leading system message, the
// history, and a last user message of images followed by at most one text
// (the order Chat.Send renders). ok is false when a Chat would render the
// request differently; such requests are answered without a session.
func splitTurn(req snapvlm.Request) (t turn, ok bool) {
	msgs := req.Messages
	if len(msgs) > 0 && msgs[0].Role == snapvlm.System {
		if len(msgs[0].Content) != 1 || msgs[0].Content[0].Image != nil || msgs[0].Content[0].Text == "" {
			return t, false
		}
		t.system = msgs[0].Content[0].Text
		msgs = msgs[1:]
	}
	if len(msgs) == 0 || msgs[len(msgs)-1].Role != snapvlm.User {
		return t, false
	}
	for _, m := range msgs {
		if m.Role == snapvlm.System {
			return t, false
		}
	}
	last := msgs[len(msgs)-1]
	for i, p := range last.Content {
		switch {
		case p.Image != nil && t.text == "":
			t.images = append(t.images, p.Image)
		case p.Image == nil && t.text == "" && p.Text != "" && i == len(last.Content)-1:
			t.text = p.Text
		default:
			return t, false
		}
	}
	if t.text == "" && len(t.images) == 0 {
		return t, false
	}
	t.history = msgs[:len(msgs)-1]
	return t, true
}

// sessionKey identifies a conversation state: model, preprocessing, system
// prompt and messages (images by content).
func sessionKey(model string, req snapvlm.Request, system string, history []snapvlm.Message) [32]byte {
	h := sha256.New()
	str := func(s string) {
		binary.Write(h, binary.LittleEndian, uint64(len(s)))
		h.Write([]byte(s))
	}
	str(model)
	str(system)
	binary.Write(h, binary.LittleEndian, req.NoSplit)
	binary.Write(h, binary.LittleEndian, int64(req.ImageSize))
	for _, m := range history {
		str(string(m.Role))
		binary.Write(h, binary.LittleEndian, uint64(len(m.Content)))
		for _, p := range m.Content {
			if p.Image != nil {
				sum := sha256.Sum256(p.Image.Data)
				str("image")
				h.Write(sum[:])
			} else {
				str("text")
				str(p.Text)
			}
		}
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// generate answers req, continuing a kept conversation when one matches
// (and keeping the new state for the next turn), else from scratch.
func (s *Server) generate(ctx context.Context, sv *served, req snapvlm.Request, fn func(snapvlm.Token) error) (*snapvlm.Result, error) {
	t, ok := splitTurn(req)
	if s.sessions == nil || !ok {
		return sv.m.Generate(ctx, req, fn)
	}
	chat := s.sessions.take(sessionKey(sv.spec.ID, req, t.system, t.history))
	if chat == nil {
		if len(t.history) > 0 {
			// A conversation this server has not seen (or has dropped).
			return sv.m.Generate(ctx, req, fn)
		}
		chat = sv.m.NewChat()
		chat.SetSystem(t.system)
	}
	res, err := chat.Send(ctx, snapvlm.UserMessage(t.text, t.images...), req.GenerateOptions, fn)
	// A cancelled answer with some text joins the conversation (the page
	// keeps a stopped answer too), so the chat stays usable.
	if err != nil && (res == nil || res.Text == "" || ctx.Err() == nil) {
		chat.Close()
		return res, err
	}
	s.sessions.put(sessionKey(sv.spec.ID, req, t.system, chat.History()), chat)
	return res, err
}
