package snapvlm

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
// (continuous batching): each generation prefills its prompt in its own
// cache, a chunk at a time, takes a seat in the batch (its cache is copied
// into a slot once), and from then on every decoder step runs for all
// seated generations at once, each with its own length and position, so
// that the decoder's weights are read once per step for all of them. A
// finished or cancelled generation leaves between two steps; a new one
// joins between two steps. Batch steps and prefill chunks take turns (gate),
// so a joining prompt holds the others up for one chunk at most.
//
// The loop goroutine owns the decoder.Batch; generations talk to it
// through ops.
type batcher struct {
	dec   *decoder.Decoder
	vocab int
	seats chan struct{} // one token per free slot
	ops   chan batchOp
	gate  sync.Mutex // held by a batch step or a prefill chunk
	// prefills is held by a prefill chunk waiting for the gate: prefills
	// take turns among themselves, so that a step waits for one chunk at
	// most (sync.Mutex hands the gate to a waiter of over 1 ms in turn).
	prefills sync.Mutex
	stop     chan struct{}
	done     chan struct{}
	// steps and rows count the batch steps and the generations they ran;
	// freed counts the empty batches freed after idle.
	steps, rows, freed atomic.Int64
	idle               time.Duration // batchIdle; shorter in tests
	wait               time.Duration // batchWait; longer in tests
}

type batchKind int

const (
	opJoin batchKind = iota
	opStep
	opLeave
)

// batchOp is a request to the loop. Join and leave are answered on the
// seat's ctl channel, steps on its step channel.
type batchOp struct {
	kind  batchKind
	seat  *seat
	ctx   context.Context // a step's: one given up on is not run
	st    *decoder.State  // join: the cache to copy in; leave: where to copy it back (nil: dropped)
	need  int             // join: the tokens the seat will hold at most
	embed []float32       // step: the token's embedding
}

// seat is one generation's place in the batch.
type seat struct {
	b      *batcher
	slot   int       // written by the loop only
	logits []float32 // a step's logits, written by the loop before it answers
	step   chan error
	ctl    chan error
}

// newBatcher starts the loop of a batch of slots generations; steps of
// fewer than minRows generations run them one by one (decoder.Batch.SetMinRows).
func newBatcher(dec *decoder.Decoder, slots, minRows int) *batcher {
	b := &batcher{dec: dec, vocab: dec.Vocab(),
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

// prefill runs embeds into st a chunk at a time, taking turns with the
// batch steps, and returns the logits of the last token.
func (b *batcher) prefill(ctx context.Context, st *decoder.State, chunk, hidden int, embeds []float32) ([]float32, error) {
	var last []float32
	for off := 0; off < len(embeds); off += chunk * hidden {
		end := min(len(embeds), off+chunk*hidden)
		b.prefills.Lock()
		b.gate.Lock()
		l, err := st.Prefill(ctx, embeds[off:end])
		b.gate.Unlock()
		b.prefills.Unlock()
		if err != nil {
			return nil, err
		}
		last = l
	}
	return last, nil
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

// next runs the seat's next token (its embedding) with the other seats'
// and returns its logits, valid until the next call. A cancelled ctx
// returns at once; the seat must then leave.
func (s *seat) next(ctx context.Context, embed []float32) ([]float32, error) {
	select {
	case s.b.ops <- batchOp{kind: opStep, seat: s, ctx: ctx, embed: embed}:
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

// loop owns the batch: it seats and unseats generations and runs a step
// whenever every seated generation has asked for one (or the wait after
// the first asked).
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
	npending, nseated := 0, 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	waiting := false
	var lastStep time.Duration
	var slotsBuf []int
	var embeds [][]float32
	for {
		if npending > 0 && (npending == nseated || !waiting) {
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
			b.gate.Lock()
			t := time.Now()
			out, err := batch.Step(ctx, slotsBuf, embeds)
			lastStep = time.Since(t)
			b.gate.Unlock()
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
			case opStep:
				s := op.seat.slot
				if op.ctx.Err() != nil {
					op.seat.step <- op.ctx.Err()
					continue
				}
				ops[s] = op
				pending[s] = &ops[s]
				npending++
				if npending == 1 && npending < nseated {
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
					break
				}
				op.seat.ctl <- err
			}
		}
	}
}
