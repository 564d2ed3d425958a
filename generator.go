package snapvlm

import (
	"context"
	"fmt"
	"time"

	"github.com/snapvlm/snapvlm/internal/decoder"
	"github.com/snapvlm/snapvlm/internal/sample"
	"github.com/snapvlm/snapvlm/internal/stop"
	"github.com/snapvlm/snapvlm/internal/tokenizer"
)

// defaultMaxNewTokens is the answer length when GenerateOptions.MaxNewTokens is 0.
const defaultMaxNewTokens = 256

// Generate answers a conversation. fn, when not nil, receives every
// generated token with the text it completes (see Token); an error from it
// stops generation and is returned with the partial Result.
//
// A cancelled ctx stops generation within one decoder step (or one ONNX
// Runtime run while images are encoded) and returns the partial Result, with
// FinishReason FinishCancelled, together with ctx.Err(), so
// errors.Is(err, context.Canceled) tells a cancellation apart. The Model
// stays usable.
//
// Generate fails before running the vision encoder when the prompt, images
// included, does not fit the model's context (*PromptTooLongError).
func (m *Model) Generate(ctx context.Context, req Request, fn func(Token) error) (*Result, error) {
	res, kv, err := m.generate(ctx, req, fn, nil, false)
	kv.drop()
	return res, err
}

// generate prepares req's prompt and generates its answer. prev is the
// cache of an earlier turn, reused for the prompt prefix it holds (it is
// consumed either way). With keep the cache is sized for later turns. The
// returned cache holds the prompt and answer whenever the decoder's state is
// consistent (also after a cancellation during decoding); the caller decides
// whether to keep it.
func (m *Model) generate(ctx context.Context, req Request, fn func(Token) error, prev *kvCache, keep bool) (*Result, *kvCache, error) {
	done, err := m.life.enter()
	if err != nil {
		prev.drop()
		return nil, nil, err
	}
	defer done()
	start := time.Now()
	res := &Result{}
	res.Timings.Load = m.loadTime
	// A bad schema is reported before any image is encoded.
	o := req.GenerateOptions
	proc, err := m.constraintProcessor(o)
	if err != nil {
		prev.drop()
		return nil, nil, err
	}
	if proc != nil {
		o.Logits = proc
		defer func() {
			res.Incomplete = !proc.con.Matches([]byte(res.Text))
			res.Timings.Constraint = proc.spent
		}()
	}
	p, err := m.prepare(ctx, req, res)
	if err != nil {
		prev.drop()
		if ctx.Err() != nil {
			// Cancelled while encoding images or embedding: nothing generated.
			res.FinishReason = FinishCancelled
			return res, nil, ctx.Err()
		}
		return nil, nil, err
	}
	kv, err := m.answer(ctx, o, p, res, start, fn, prev, keep)
	if !keep {
		// A Generate call leaves its cache to the Model's prompt cache
		// when it holds the prompt and answer as they are: after success
		// or a cancellation during decoding (not after an error, which
		// may have come from the decoder).
		if kv != nil && (err == nil || res.FinishReason == FinishCancelled) {
			m.prompts.add(kv, m.cfg.Config.ImageTokenID)
		}
		kv.drop()
		kv = nil
	}
	if err != nil && res.FinishReason != FinishCancelled && len(res.Tokens) == 0 {
		return nil, kv, err
	}
	return res, kv, err
}

// answer generates the answer to the prepared prompt p into res.
func (m *Model) answer(ctx context.Context, o GenerateOptions, p *prepared, res *Result, start time.Time, fn func(Token) error, prev *kvCache, keep bool) (*kvCache, error) {
	maxNew, err := m.answerLength(len(p.ids), res.ImageTokens, o.MaxNewTokens)
	if err != nil {
		prev.drop()
		return nil, err
	}
	seq, err := m.newSequence(o, p.ids, maxNew, res)
	if err != nil {
		prev.drop()
		return nil, err
	}
	kv, err := m.cacheFor(p, len(p.ids)+maxNew, prev, keep)
	if err != nil {
		return nil, err
	}
	res.ReusedTokens = kv.st.Len()
	// A batched answer's cache comes back out of the batch when it is
	// wanted with the answer: for the next turn, or the prompt cache.
	err = m.run(ctx, kv.st, p.embeds[kv.st.Len()*m.emb.Hidden():], seq, start, fn, keep || m.prompts != nil)
	if kv.st.Len() < len(p.ids) || kv.st.Len() > len(seq.history) {
		// The prefill did not complete: the cache holds nothing usable.
		kv.drop()
		kv = nil
	} else {
		kv.ids = seq.history[:kv.st.Len()]
	}
	if err != nil && ctx.Err() != nil {
		res.FinishReason = FinishCancelled
		return kv, ctx.Err()
	}
	return kv, err
}

// answerLength is how many new tokens the answer may have: MaxNewTokens
// (default 256) within the model's positions. A prompt that leaves no room
// is a *PromptTooLongError. The key/value cache is allocated for the prompt
// and the answer, so a request for more than the model's positions is
// refused rather than sized from it.
func (m *Model) answerLength(promptLen, imageTokens, maxNew int) (int, error) {
	limit := m.cfg.Config.TextConfig.Positions()
	switch {
	case maxNew < 0:
		return 0, fmt.Errorf("MaxNewTokens is %d, want 0 (default %d) to %d", maxNew, defaultMaxNewTokens, limit)
	case maxNew > limit:
		return 0, fmt.Errorf("MaxNewTokens is %d, more than the model's %d positions (prompt and answer together)", maxNew, limit)
	case maxNew == 0:
		maxNew = defaultMaxNewTokens
	}
	if promptLen >= limit {
		return 0, &PromptTooLongError{Tokens: promptLen, ImageTokens: imageTokens, Limit: limit}
	}
	return min(maxNew, limit-promptLen), nil
}

// kvCache is a decoder cache with what it holds: the token ids and the
// images whose features those tokens carry. A Chat keeps one between turns.
type kvCache struct {
	st *decoder.State
	held
}

// drop releases the cache; a nil cache is a no-op.
func (c *kvCache) drop() {
	if c != nil && c.st != nil {
		c.st.Close()
		c.st = nil
	}
}

// reusable returns how many leading prompt tokens of p the cache already
// holds (the same ids, and the same images' features at image tokens).
func (c *kvCache) reusable(p *prepared, imageTok int64) int {
	if c == nil || c.st == nil || len(p.ids) == 0 {
		return 0
	}
	// The last prompt token is always run to get the first logits.
	return min(common(c.held, p.held, imageTok), c.st.Len(), len(p.ids)-1)
}

// cacheFor returns a cache for p that can hold need tokens: the longest
// prefix of p that prev or the Model's prompt cache holds (prev truncated
// to it, or a copy of the prompt cache's entry), or a new one. prev is
// consumed. A cache meant to be kept gets room for later turns.
func (m *Model) cacheFor(p *prepared, need int, prev *kvCache, keep bool) (*kvCache, error) {
	capacity := need
	if keep {
		capacity = m.chatCapacity(need)
	}
	tok := m.cfg.Config.ImageTokenID
	skip := prev.reusable(p, tok)
	if snap, n := m.prompts.best(p.held, tok); n > skip {
		prev.drop()
		st, err := m.dec.Restore(snap, n, capacity, m.chunk)
		if err != nil {
			return nil, err
		}
		return &kvCache{st: st, held: held{imageKeys: p.imageKeys, imageRows: p.imageRows}}, nil
	}
	if skip > 0 && prev.st.Truncate(skip) == nil && prev.st.Grow(capacity) == nil {
		return &kvCache{st: prev.st, held: held{imageKeys: p.imageKeys, imageRows: p.imageRows}}, nil
	}
	prev.drop()
	st, err := m.dec.NewState(capacity, m.chunk)
	if err != nil {
		return nil, err
	}
	return &kvCache{st: st, held: held{imageKeys: p.imageKeys, imageRows: p.imageRows}}, nil
}

// chatCapacity is the size of a cache a Chat keeps: twice what this turn
// needs, so that later turns can reuse it without reallocating, but no
// more than the model's positions.
func (m *Model) chatCapacity(need int) int {
	return max(need, min(2*need, m.cfg.Config.TextConfig.Positions()))
}

// run prefills embeds (the prompt tokens st does not hold yet) and decodes
// seq's answer, one token per decoder step, passing every token to fn.
// With batching on, the prompt and the steps run in the batch; st then
// holds the prompt and the answer at the end if back, else what it held.
func (m *Model) run(ctx context.Context, st *decoder.State, embeds []float32, seq *sequence, start time.Time, fn func(Token) error, back bool) (err error) {
	res := seq.res
	emit := func(t Token) error {
		if fn == nil {
			return nil
		}
		return fn(t)
	}
	t := time.Now()
	next := st.Step
	var seat *seat
	defer func() {
		if seat == nil {
			return
		}
		to := st
		if !back {
			to = nil
		}
		if lerr := seat.leave(to); lerr != nil && err == nil {
			err = lerr
		}
	}()
	var logits []float32
	if m.batch != nil {
		// Seated first, with the prefix st holds; the prompt is prefilled
		// in the seat, with the prompts of others joining then. Room for
		// the prompt and the answer (a chat's cache may have more).
		need := min(st.Cap(), st.Len()+len(embeds)/m.emb.Hidden()+seq.maxNew)
		if seat, err = m.batch.join(ctx, st, need); err != nil {
			return err
		}
		next = seat.next
		logits, err = seat.prefill(ctx, embeds)
	} else {
		logits, err = st.Prefill(ctx, embeds)
	}
	if err != nil {
		return err
	}
	res.Timings.Prefill = time.Since(t)
	step, err := m.emb.NewStep()
	if err != nil {
		return err
	}
	defer step.Close()
	var decodeStart time.Time
	defer func() {
		res.Text = string(seq.text)
		if decodeStart.IsZero() {
			return
		}
		res.Timings.Decode = time.Since(decodeStart)
		if k := len(res.Tokens) - 1; k > 0 && res.Timings.Decode > 0 {
			res.Timings.DecodeTokensPerSec = float64(k) / res.Timings.Decode.Seconds()
		}
	}()
	for {
		tok, done, err := seq.step(logits)
		if decodeStart.IsZero() && len(res.Tokens) > 0 {
			res.Timings.FirstToken = time.Since(start)
			decodeStart = time.Now()
		}
		if err != nil {
			return err
		}
		if err := emit(tok); err != nil {
			return err
		}
		if done {
			return nil
		}
		err = step.Run(ctx, tok.ID)
		if err == nil {
			logits, err = next(ctx, step.Out)
		}
		if err != nil {
			if ctx.Err() != nil {
				// Text held back as a possible stop-string prefix is part
				// of the answer.
				if s := seq.flush(); s != "" {
					if err := emit(Token{ID: NoToken, Text: s}); err != nil {
						return err
					}
				}
				return ctx.Err()
			}
			return err
		}
	}
}

// sequence chooses the tokens of one answer from the decoder's logits: the
// sampler, the logits processor, end tokens, stop strings and the streaming
// detokenizer. It does not run the decoder, so one driver can run the
// decoder for several sequences at once and hand each its row of logits.
type sequence struct {
	sampler *sample.Sampler
	proc    LogitsProcessor
	stops   *stop.Matcher
	stream  *tokenizer.StreamDecoder
	eos     map[int64]bool
	history []int64 // prompt and answer ids (the repetition penalty's window)
	maxNew  int
	res     *Result // Tokens, Text and FinishReason are written as tokens come
	text    []byte
}

func (m *Model) newSequence(o GenerateOptions, prompt []int64, maxNew int, res *Result) (*sequence, error) {
	sp := sample.Params{Temperature: o.Temperature, TopK: o.TopK, TopP: o.TopP, MinP: o.MinP, RepetitionPenalty: o.RepetitionPenalty, Seed: o.Seed}
	if err := sp.Validate(); err != nil {
		return nil, fmt.Errorf("sampling settings: %w", err)
	}
	history := make([]int64, len(prompt), len(prompt)+maxNew)
	copy(history, prompt)
	return &sequence{
		sampler: sample.New(sp), proc: o.Logits, stops: stop.NewMatcher(o.Stop),
		stream: m.tok.NewStreamDecoder(true), eos: m.eos, history: history, maxNew: maxNew, res: res,
	}, nil
}

// step picks the next token from logits (which it may modify) and returns
// it with the text it completes. done reports the end of the answer, with
// res.FinishReason set and held-back text released.
func (s *sequence) step(logits []float32) (tok Token, done bool, err error) {
	if s.proc != nil {
		if err := s.proc.Mask(logits); err != nil {
			return Token{ID: NoToken}, true, fmt.Errorf("logits processor: %w", err)
		}
	}
	id := s.sampler.Next(logits, s.history)
	s.history = append(s.history, id)
	s.res.Tokens = append(s.res.Tokens, id)
	tok = Token{ID: id}
	if s.proc != nil {
		if err := s.proc.Accept(id); err != nil {
			return tok, true, fmt.Errorf("logits processor: token %d: %w", id, err)
		}
	}
	hit := false
	if s.eos[id] {
		s.res.FinishReason = FinishStop
		done = true
	} else {
		tok.Text, hit = s.stops.Push(s.stream.Add(id))
		switch {
		case hit, s.proc != nil && s.proc.Done():
			s.res.FinishReason, done = FinishStop, true
		case len(s.res.Tokens) >= s.maxNew:
			s.res.FinishReason, done = FinishLength, true
		}
	}
	s.text = append(s.text, tok.Text...)
	if done {
		// Text held back as a possible stop-string prefix is part of the
		// answer unless a stop string was hit (an end token or the length
		// limit does not make it one).
		tok.Text += s.flush()
	}
	return tok, done, nil
}

// flush releases (and adds to the answer) the text held back by the
// detokenizer and the stop matcher, unless a stop string was hit.
func (s *sequence) flush() string {
	if s.stops.Stopped() {
		return ""
	}
	piece, _ := s.stops.Push(s.stream.Flush())
	rest := piece + s.stops.Flush()
	s.text = append(s.text, rest...)
	return rest
}
