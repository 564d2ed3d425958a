package snapvlm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapvlm/snapvlm/internal/ort"
)

// batchRequests are answers of different lengths (so generations leave the
// batch at different steps and others join between them), greedy but for
// one sampled one.
func batchRequests() []Request {
	var reqs []Request
	for i := range 7 {
		o := GenerateOptions{MaxNewTokens: 6 + 7*i}
		if i == 3 {
			o.Temperature, o.Seed = 0.8, 42
		}
		reqs = append(reqs, Request{Messages: []Message{UserMessage(fmt.Sprintf("Question %d: %s", i, strings.Repeat("why is the sea blue? ", i)))}, GenerateOptions: o})
	}
	return reqs
}

// TestBatchedMatchesAlone: concurrent generations decoded in one batch
// (Options.Parallel) give each the tokens it gets decoding alone, for more
// generations than the batch has places (the rest wait and join as others
// leave), for the float32 and the 4-bit decoder, the latter also with int8
// activations (whose steps of fewer than 3 generations are not run one by
// one).
func TestBatchedMatchesAlone(t *testing.T) {
	for _, variant := range []struct {
		name string
		opts Options
		half bool // the cache is float16
	}{
		{"fp32", Options{Dtype: "fp32"}, false},
		{"q4", Options{Dtype: "q4"}, false},
		{"q4 int8", Options{Dtype: "q4", DecoderInt8: true}, false},
		// A float16 cache: the fp16 export's own, and a float32 one stored
		// as float16.
		{"fp16", Options{Dtype: "fp16"}, true},
		{"q4 int8 f16 cache", Options{Dtype: "q4", DecoderInt8: true, KVCache: "f16"}, true},
	} {
		t.Run(variant.name, func(t *testing.T) {
			opts := variant.opts
			opts.TextOnly = true
			alone := loadModel(t, "tiny512", opts)
			// With a prompt cache, the second round starts from the first's
			// caches, copied back out of the batch.
			opts.Parallel, opts.PromptCacheMB = 4, 64
			batched := loadModel(t, "tiny512", opts)
			if batched.batch == nil {
				t.Fatalf("no batch: %s", batched.FileReasons()[GraphDecoder])
			}
			if half := batched.dec.KVType() == ort.Float16; half != variant.half {
				t.Fatalf("float16 cache %v, want %v: %s", half, variant.half, batched.FileReasons()[GraphDecoder])
			}
			// Steps wait for every seat, however loaded the machine.
			batched.batch.wait = time.Minute
			ctx := context.Background()
			reqs := batchRequests()
			want := make([]*Result, len(reqs))
			for i, r := range reqs {
				res, err := alone.Generate(ctx, r, nil)
				if err != nil {
					t.Fatal(err)
				}
				want[i] = res
			}
			for round := range 2 {
				got := make([]*Result, len(reqs))
				errs := make([]error, len(reqs))
				// The first four generations to reach their second token
				// (by then they are seated) wait there until every seat is
				// taken, so that they decode together even when the machine
				// runs one goroutine's whole answer before starting the next
				// (seen on loaded machines: 256 steps of one row, when they
				// waited at their first token, before taking a seat). While
				// one waits, the others' steps wait for it, but they join.
				together := int32(min(4, len(reqs)))
				var arrived atomic.Int32
				var wg sync.WaitGroup
				for i, r := range reqs {
					n := 0
					wg.Go(func() {
						got[i], errs[i] = batched.Generate(ctx, r, func(Token) error {
							if n++; n == 2 && arrived.Add(1) <= together {
								for end := time.Now().Add(10 * time.Second); len(batched.batch.seats) > 0 && time.Now().Before(end); {
									time.Sleep(time.Millisecond)
								}
							}
							return nil
						})
					})
				}
				wg.Wait()
				reused := 0
				for i := range reqs {
					if errs[i] != nil {
						t.Fatalf("round %d, request %d: %v", round, i, errs[i])
					}
					reused += got[i].ReusedTokens
					if !slices.Equal(got[i].Tokens, want[i].Tokens) || got[i].Text != want[i].Text || got[i].FinishReason != want[i].FinishReason {
						t.Errorf("round %d, request %d: batched %v %q (%s), alone %v %q (%s)", round, i, got[i].Tokens, got[i].Text, got[i].FinishReason, want[i].Tokens, want[i].Text, want[i].FinishReason)
					}
				}
				if round == 1 && reused == 0 {
					t.Error("the second round reused no cached prompt")
				}
			}
			steps, rows := batched.batch.steps.Load(), batched.batch.rows.Load()
			t.Logf("%d batch steps of %.2f generations on average; %d prefill runs of %.2f prompts", steps, float64(rows)/float64(steps),
				batched.batch.prefillRuns.Load(), float64(batched.batch.prefillRows.Load())/float64(max(1, batched.batch.prefillRuns.Load())))
			if rows <= steps {
				t.Errorf("%d batch steps ran %d rows: the generations never decoded together", steps, rows)
			}
		})
	}
}

// TestBatchedChatAndCancel: a chat's turns decoded in the batch beside
// other generations are the turns it has alone (its cache leaves the batch
// with the answer in it and serves the next turn), and a generation
// cancelled in the batch stops with FinishCancelled while the others go on
// unchanged.
func TestBatchedChatAndCancel(t *testing.T) {
	alone := loadModel(t, "tiny512", Options{TextOnly: true})
	batched := loadModel(t, "tiny512", Options{TextOnly: true, Parallel: 3})
	ctx := context.Background()
	turns := []string{"Tell me about the sea.", "And about the sky?", "Which one is bigger?"}
	o := GenerateOptions{MaxNewTokens: 12}
	var want []*Result
	c := alone.NewChat()
	for _, q := range turns {
		res, err := c.Send(ctx, UserMessage(q), o, nil)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, res)
	}
	c.Close()
	other := batchRequests()[5]
	wantOther, err := alone.Generate(ctx, other, nil)
	if err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	// A long generation beside the chat, and one cancelled after 3 tokens.
	var gotOther, cancelled *Result
	var errOther, errCancelled error
	wg.Go(func() { gotOther, errOther = batched.Generate(ctx, other, nil) })
	wg.Go(func() {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		n := 0
		cancelled, errCancelled = batched.Generate(cctx, Request{Messages: []Message{UserMessage("Count to one hundred.")}, GenerateOptions: GenerateOptions{MaxNewTokens: 200}}, func(Token) error {
			if n++; n == 3 {
				cancel()
			}
			return nil
		})
	})
	c = batched.NewChat()
	defer c.Close()
	for i, q := range turns {
		res, err := c.Send(ctx, UserMessage(q), o, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Tokens, want[i].Tokens) {
			t.Errorf("turn %d: batched %v, alone %v", i, res.Tokens, want[i].Tokens)
		}
		if i > 0 && res.ReusedTokens == 0 {
			t.Errorf("turn %d reused no cached tokens", i)
		}
	}
	wg.Wait()
	if errOther != nil || !slices.Equal(gotOther.Tokens, wantOther.Tokens) {
		t.Errorf("beside the chat and the cancelled one: %v, %v; alone %v", errOther, gotOther, wantOther.Tokens)
	}
	if !errors.Is(errCancelled, context.Canceled) || cancelled == nil || cancelled.FinishReason != FinishCancelled || len(cancelled.Tokens) > 4 {
		t.Errorf("cancelled generation: %v, %+v", errCancelled, cancelled)
	}
	// The batch is usable after the cancellation, and after it was freed
	// for being empty.
	res, err := batched.Generate(ctx, other, nil)
	if err != nil || !slices.Equal(res.Tokens, wantOther.Tokens) {
		t.Errorf("after the cancellation: %v, %v; alone %v", err, res, wantOther.Tokens)
	}
	batched.batch.idle = time.Millisecond
	if _, err := batched.Generate(ctx, Request{Messages: []Message{UserMessage("Hi.")}, GenerateOptions: GenerateOptions{MaxNewTokens: 3, Logits: noEnd{batched.eos}}}, nil); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); batched.batch.freed.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the empty batch was not freed")
		}
	}
	res, err = batched.Generate(ctx, other, nil)
	if err != nil || !slices.Equal(res.Tokens, wantOther.Tokens) {
		t.Errorf("after the batch was freed: %v, %v; alone %v", err, res, wantOther.Tokens)
	}
}

// noEnd keeps a generation from ending before its length: it masks the
// end tokens.
type noEnd struct{ eos map[int64]bool }

func (p noEnd) Mask(logits []float32) error {
	for id := range p.eos {
		logits[id] = float32(math.Inf(-1))
	}
	return nil
}
func (noEnd) Accept(int64) error { return nil }
func (noEnd) Done() bool         { return false }

// TestBatchedPrefillInterleaves: a long prompt joining the batch prefills a
// chunk at a time between the batch's steps, so a generation already in
// the batch keeps getting tokens while it does.
func TestBatchedPrefillInterleaves(t *testing.T) {
	m := loadModel(t, "tiny512", Options{TextOnly: true, Parallel: 2, PrefillChunk: 4})
	ctx := context.Background()
	var mu sync.Mutex
	var times []time.Time // of the running generation's tokens
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err := m.Generate(ctx, Request{Messages: []Message{UserMessage("Count.")}, GenerateOptions: GenerateOptions{MaxNewTokens: 1500, Logits: noEnd{m.eos}}}, func(Token) error {
			mu.Lock()
			defer mu.Unlock()
			if times = append(times, time.Now()); len(times) == 5 {
				close(started)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	})
	<-started
	var first time.Time
	long := Request{Messages: []Message{UserMessage(strings.Repeat("The sea is wide and deep. ", 60))}, GenerateOptions: GenerateOptions{MaxNewTokens: 2}}
	res, err := m.Generate(ctx, long, func(Token) error {
		if first.IsZero() {
			first = time.Now()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	chunks := (len(res.PromptTokens) + 3) / 4
	from := first.Add(-res.Timings.Prefill)
	during := 0
	for _, at := range times {
		if at.After(from) && at.Before(first) {
			during++
		}
	}
	t.Logf("%d tokens of the running generation during the %d chunks of the joining prompt's prefill (%s)", during, chunks, res.Timings.Prefill)
	if len(times) < 1500 {
		t.Fatalf("the running generation made %d tokens, want 1500", len(times))
	}
	// Turn for turn it would make a token per chunk; a slow caller (the
	// race detector, a loaded machine) makes fewer, as the batch goes on
	// without a seat that is not ready. A prefill holding the batch for
	// its whole length leaves about none.
	if want := max(3, chunks/20); during < want {
		t.Errorf("the running generation made %d tokens during a prefill of %d chunks, want at least %d: it waited for the prefill", during, chunks, want)
	}
}

// TestBatchedNotPerTensorInt8: a decoder that quantizes its activations
// with one scale per tensor (the int8, uint8 and quantized files) is not
// batched, since a row's logits would depend on the other rows; q4 is.
func TestBatchedNotPerTensorInt8(t *testing.T) {
	for _, c := range []struct {
		dtype   string
		batched bool
	}{{"int8", false}, {"uint8", false}, {"quantized", false}, {"q4", true}} {
		m := loadModel(t, "tiny512+all", Options{Dtype: c.dtype, TextOnly: true, Parallel: 3})
		if got := m.batch != nil; got != c.batched {
			t.Errorf("%s: batched %v, want %v (reason %q)", c.dtype, got, c.batched, m.FileReasons()[GraphDecoder])
		}
		if !c.batched && !strings.Contains(m.FileReasons()[GraphDecoder], "one scale for all rows") {
			t.Errorf("%s: reason %q does not name the per-tensor scale", c.dtype, m.FileReasons()[GraphDecoder])
		}
	}
}
