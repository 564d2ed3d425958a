package snapvlm

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/snapvlm/snapvlm/internal/decoder"
)

// batchWait is how long a batch step waits at least for a seat that has
// not asked for its next step yet (it is sampling, or its caller is slow to
// take the token) before the others step without it; it waits up to the
// last step's duration when that is longer, so that seats which fell out
// of step on a loaded machine fall back in (a slow caller costs the others
// at most every other step).
const batchWait = 2 * time.Millisecond

// batchIdle is how long an empty batch keeps its memory for the next
// generation before it is freed (the next join allocates it again, sized
// for that generation).
const batchIdle = 30 * time.Second

// errSeatLeft answers a step a seat gave up on.
var errSeatLeft = errors.New("the generation left the batch")

// batcher decodes the answers of concurrent generations together
// (continuous batching): each generation takes a seat in the batch (the
// prefix its cache already holds is copied into a slot once), its prompt
// is prefilled in its slot a chunk at a time, together with the prompts of
// the other generations joining then (decoder.Batch.Prefill), and from then
// on every decoder step runs for all seated generations at once, each with
// its own length and position, so that the decoder's weights are read once
// per step for all of them. A finished or cancelled generation leaves
// between two steps; a new one joins between two steps. Batch steps and
// prefill chunks take turns, so a joining prompt holds the others up for
// one chunk at most.
//
// The loop goroutine owns the decoder.Batch; generations talk to it
// through ops.
type batcher struct {
	dec    *decoder.Decoder
	vocab  int
	hidden int
	chunk  int           // prefill tokens per run
	seats  chan struct{} // one token per free slot
	ops    chan batchOp
	stop   chan struct{}
	done   chan struct{}
	// steps and rows count the batch steps and the generations they ran;
	// freed counts the empty batches freed after idle.
	steps, rows, freed atomic.Int64
	// prefillRuns and prefillRows count the prefill runs and the prompts
	// they ran.
	prefillRuns, prefillRows atomic.Int64
	idle                     time.Duration // batchIdle; shorter in tests
	wait                     time.Duration // batchWait; longer in tests
}

type batchKind int

const (
	opJoin batchKind = iota
	opPrefill
	opStep
	opLeave
)

// batchOp is a request to the loop. Join and leave are answered on the
// seat's ctl channel, prefills and steps on its step channel.
type batchOp struct {
	kind  batchKind
	seat  *seat
	ctx   context.Context // a prefill's or step's: one given up on is not run
	st    *decoder.State  // join: the cache to copy in; leave: where to copy it back (nil: dropped)
	need  int             // join: the tokens the seat will hold at most
	embed []float32       // prefill: the prompt's embeddings; step: the token's
	done  int             // prefill: the values of embed prefilled so far
}

// seat is one generation's place in the batch.
type seat struct {
	b      *batcher
	slot   int       // written by the loop only
	logits []float32 // a step's logits, written by the loop before it answers
	step   chan error
	ctl    chan error
}

// newBatcher starts the loop of a batch of slots generations, prefilling
// chunk tokens per run; steps of fewer than minRows generations run them
// one by one (decoder.Batch.SetMinRows).
func newBatcher(dec *decoder.Decoder, slots, minRows, hidden, chunk int) *batcher {
	b := &batcher{dec: dec, vocab: dec.Vocab(), hidden: hidden, chunk: max(chunk, 1),
		seats: make(chan struct{}, slots), ops: make(chan batchOp),
		stop: make(chan struct{}), done: make(chan struct{}), idle: batchIdle, wait: batchWait}
	for range slots {
		b.seats <- struct{}{}
	}
	go b.loop(slots, minRows)
	return b
}

// close stops the loop (no generation may be using the batch).
func (b *batcher) close() {
	close(b.stop)
	<-b.done
}

// join waits for a free slot and seats the generation whose cache is st
// and will hold need tokens at most.
func (b *batcher) join(ctx context.Context, st *decoder.State, need int) (*seat, error) {
	select {
	case <-b.seats:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s := &seat{b: b, logits: make([]float32, b.vocab), step: make(chan error, 1), ctl: make(chan error, 1)}
	if err := s.call(batchOp{kind: opJoin, seat: s, st: st, need: need}); err != nil {
		b.seats <- struct{}{}
		return nil, err
	}
	return s, nil
}

// call sends a join or leave and waits for its answer (the loop answers
// them between two steps, whatever the callers' contexts).
func (s *seat) call(op batchOp) error {
	select {
	case s.b.ops <- op:
	case <-s.b.done:
		return errors.New("the model is closed")
	}
	return <-s.ctl
}

// prefill runs the seat's prompt (embeds, whole rows) in its slot, a chunk
// at a time with the other seats' prompts and taking turns with the steps,
// and returns the logits of its last token, valid until the next call. A
// cancelled ctx returns at once; the seat must then leave.
func (s *seat) prefill(ctx context.Context, embeds []float32) ([]float32, error) {
	if len(embeds) == 0 || len(embeds)%s.b.hidden != 0 {
		return nil, fmt.Errorf("batch prefill of %d embedding values, want whole rows of %d", len(embeds), s.b.hidden)
	}
	return s.compute(ctx, batchOp{kind: opPrefill, seat: s, ctx: ctx, embed: embeds})
}

// next runs the seat's next token (its embedding) with the other seats'
// and returns its logits, valid until the next call. A cancelled ctx
// returns at once; the seat must then leave.
func (s *seat) next(ctx context.Context, embed []float32) ([]float32, error) {
	return s.compute(ctx, batchOp{kind: opStep, seat: s, ctx: ctx, embed: embed})
}

// compute sends a prefill or a step and waits for its logits.
func (s *seat) compute(ctx context.Context, op batchOp) ([]float32, error) {
	select {
	case s.b.ops <- op:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.b.done:
		return nil, errors.New("the model is closed")
	}
	select {
	case err := <-s.step:
		if err != nil {
			return nil, err
		}
		return s.logits, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.b.done:
		return nil, errors.New("the model is closed")
	}
}

// leave gives the slot back; with st not nil the seat's cache is copied
// back into st.
func (s *seat) leave(st *decoder.State) error {
	err := s.call(batchOp{kind: opLeave, seat: s, st: st})
	s.b.seats <- struct{}{}
	return err
}

// loop owns the batch: it seats and unseats generations, prefills the
// prompts of those that asked, and runs a step whenever every seated
// generation that is not prefilling has asked for one (or the wait after
// the first asked). Prefill runs and steps take turns.
func (b *batcher) loop(slots, minRows int) {
	defer close(b.done)
	var batch *decoder.Batch
	defer func() {
		if batch != nil {
			batch.Close()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seated := make([]*seat, slots)     // by slot
	pending := make([]*batchOp, slots) // step asked for, by slot
	ops := make([]batchOp, slots)
	prefills := make([]*batchOp, slots) // prompt being prefilled, by slot
	pre := make([]batchOp, slots)
	npending, nseated, nprefill := 0, 0, 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	// After a prefill run the next turn is the steps': the loop waits for
	// them (as a step waits for its seats) before prefilling again.
	turn := time.NewTimer(time.Hour)
	turn.Stop()
	waiting, prefillTurn, stepTurn := false, false, false
	var lastStep time.Duration
	var slotsBuf []int
	var embeds [][]float32
	for {
		stepReady := npending > 0 && (npending == nseated-nprefill || !waiting)
		if nprefill > 0 && (prefillTurn || !stepReady && (!stepTurn || nseated == nprefill)) {
			prefillTurn = false
			if nseated > nprefill {
				stepTurn = true
				turn.Reset(max(b.wait, lastStep))
			}
			// The prompts' next tokens, as many as every one of them still
			// has, up to a chunk.
			slotsBuf, embeds = slotsBuf[:0], embeds[:0]
			c := b.chunk
			for s, op := range prefills {
				if op == nil {
					continue
				}
				if op.ctx.Err() != nil {
					op.seat.step <- op.ctx.Err()
					prefills[s] = nil
					nprefill--
					continue
				}
				slotsBuf = append(slotsBuf, s)
				c = min(c, (len(op.embed)-op.done)/b.hidden)
			}
			if len(slotsBuf) == 0 {
				continue
			}
			for _, s := range slotsBuf {
				op := prefills[s]
				embeds = append(embeds, op.embed[op.done:op.done+c*b.hidden])
			}
			out, err := batch.Prefill(ctx, slotsBuf, embeds)
			b.prefillRuns.Add(1)
			b.prefillRows.Add(int64(len(slotsBuf)))
			for i, s := range slotsBuf {
				op := prefills[s]
				if err == nil {
					if op.done += c * b.hidden; op.done < len(op.embed) {
						continue
					}
					copy(op.seat.logits, out[i])
				}
				op.seat.step <- err
				prefills[s] = nil
				nprefill--
			}
			continue
		}
		if stepReady {
			prefillTurn, stepTurn = true, false
			turn.Stop()
			if waiting {
				timer.Stop()
				waiting = false
			}
			slotsBuf, embeds = slotsBuf[:0], embeds[:0]
			for s, op := range pending {
				if op != nil {
					slotsBuf, embeds = append(slotsBuf, s), append(embeds, op.embed)
				}
			}
			t := time.Now()
			out, err := batch.Step(ctx, slotsBuf, embeds)
			lastStep = time.Since(t)
			b.steps.Add(1)
			b.rows.Add(int64(len(slotsBuf)))
			for i, s := range slotsBuf {
				seat := pending[s].seat
				if err == nil {
					copy(seat.logits, out[i])
				}
				seat.step <- err
				pending[s] = nil
			}
			npending = 0
			continue
		}
		select {
		case <-b.stop:
			return
		case <-timer.C:
			waiting = false
			continue
		case <-turn.C:
			stepTurn = false
			continue
		case <-idle.C:
			if nseated == 0 && batch != nil {
				batch.Close()
				batch = nil
				b.freed.Add(1)
			}
			continue
		case op := <-b.ops:
			switch op.kind {
			case opJoin:
				err := func() error {
					var err error
					if batch == nil {
						if batch, err = b.dec.NewBatch(slots, op.need); err == nil {
							batch.SetMinRows(minRows)
						}
					} else {
						err = batch.Grow(op.need)
					}
					if err != nil {
						return err
					}
					slot, err := batch.Join(op.st)
					if err != nil {
						return err
					}
					op.seat.slot, seated[slot] = slot, op.seat
					nseated++
					idle.Stop()
					return nil
				}()
				op.seat.ctl <- err
			case opPrefill:
				s := op.seat.slot
				pre[s] = op
				prefills[s] = &pre[s]
				nprefill++
			case opStep:
				s := op.seat.slot
				if op.ctx.Err() != nil {
					op.seat.step <- op.ctx.Err()
					continue
				}
				ops[s] = op
				pending[s] = &ops[s]
				npending++
				if npending == 1 && npending < nseated-nprefill {
					timer.Reset(max(b.wait, lastStep))
					waiting = true
				}
			case opLeave:
				s := op.seat.slot
				if pending[s] != nil {
					pending[s].seat.step <- errSeatLeft
					pending[s] = nil
					npending--
				}
				if prefills[s] != nil {
					prefills[s].seat.step <- errSeatLeft
					prefills[s] = nil
					nprefill--
				}
				err := batch.Leave(s, op.st)
				seated[s] = nil
				if nseated--; nseated == 0 {
					idle.Reset(b.idle)
				}
				// Keep the seats at the front: the highest seat moves into the
				// hole, so steps run no padding rows.
				for last := slots - 1; last > s && err == nil; last-- {
					if seated[last] == nil {
						continue
					}
					if err = batch.Move(last, s); err != nil {
						err = fmt.Errorf("moving batch slot %d to %d: %w", last, s, err)
						break
					}
					seated[s], seated[last] = seated[last], nil
					seated[s].slot = s
					if pending[last] != nil {
						ops[s] = ops[last]
						pending[s], pending[last] = &ops[s], nil
					}
					if prefills[last] != nil {
						pre[s] = pre[last]
						prefills[s], prefills[last] = &pre[s], nil
					}
					break
				}
				op.seat.ctl <- err
			}
		}
	}
}
