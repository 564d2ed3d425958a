package decoder

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// batchSeq is one sequence of TestBatchMatchesAlone: its prompt length,
// the step at which it joins, how many steps it runs in the batch, and the
// steps it sits out while in the batch (a padding row then).
type batchSeq struct {
	prompt, join, steps int
	idle                []int
}

// TestBatchMatchesAlone: sequences decoded together in a Batch, joining and
// leaving at different steps, with rows of other lengths and padding rows
// beside them, get the logits each gets decoding alone, and a cache copied
// back out of the batch continues like one that never joined.
func TestBatchMatchesAlone(t *testing.T) {
	seqs := []batchSeq{
		{prompt: 5, join: 0, steps: 9, idle: []int{5}},
		{prompt: 9, join: 0, steps: 3},
		{prompt: 3, join: 2, steps: 5},
		{prompt: 12, join: 4, steps: 4},
	}
	for _, variant := range []string{"fp32", "q4", "q4 int8", "q4 min3"} {
		t.Run(variant, func(t *testing.T) {
			// min3: steps of fewer than 3 sequences run them one by one.
			variant, min3 := strings.CutSuffix(variant, " min3")
			_, d, h := loadBoth(t, variant, true)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(3, 4))
			// embeds[i] holds sequence i's prompt, then one embedding per step
			// and one more for the step after it leaves.
			embeds := make([][]float32, len(seqs))
			for i, s := range seqs {
				embeds[i] = make([]float32, (s.prompt+s.steps+1)*h)
				for j := range embeds[i] {
					embeds[i][j] = rng.Float32()*2 - 1
				}
			}
			// Alone: each sequence in its own State.
			want := make([][][]float32, len(seqs))
			for i, s := range seqs {
				st, err := d.NewState(s.prompt+s.steps+1, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := st.Prefill(ctx, embeds[i][:s.prompt*h]); err != nil {
					t.Fatal(err)
				}
				for k := range s.steps + 1 {
					l, err := st.Step(ctx, embeds[i][(s.prompt+k)*h:(s.prompt+k+1)*h])
					if err != nil {
						t.Fatal(err)
					}
					want[i] = append(want[i], slices.Clone(l))
				}
				st.Close()
			}

			b, err := d.NewBatch(3, 8)
			if err != nil {
				t.Fatal(err)
			}
			if min3 {
				b.SetMinRows(3)
			}
			defer b.Close()
			states := make([]*State, len(seqs))
			slot := make([]int, len(seqs))
			done := make([]int, len(seqs)) // steps run in the batch
			var maxDelta float64
			check := func(i, k int, got []float32) {
				t.Helper()
				if a, w := argmaxOf(got), argmaxOf(want[i][k]); a != w {
					t.Errorf("sequence %d step %d: greedy token %d in the batch, %d alone", i, k, a, w)
				}
				for j := range got {
					maxDelta = max(maxDelta, math.Abs(float64(got[j]-want[i][k][j])))
				}
			}
			for step := 0; ; step++ {
				for i, s := range seqs {
					if s.join != step {
						continue
					}
					st, err := d.NewState(s.prompt+1, 0)
					if err != nil {
						t.Fatal(err)
					}
					defer st.Close()
					if _, err := st.Prefill(ctx, embeds[i][:s.prompt*h]); err != nil {
						t.Fatal(err)
					}
					// The batch grows for the longest prompt.
					if err := b.Grow(s.prompt + s.steps); err != nil {
						t.Fatal(err)
					}
					states[i] = st
					if slot[i], err = b.Join(st); err != nil {
						t.Fatal(err)
					}
				}
				var slots []int
				var in [][]float32
				var who []int
				for i, s := range seqs {
					if states[i] == nil || done[i] == s.steps || slices.Contains(s.idle, step-s.join) {
						continue
					}
					k := s.prompt + done[i]
					slots, who = append(slots, slot[i]), append(who, i)
					in = append(in, embeds[i][k*h:(k+1)*h])
				}
				if len(slots) == 0 {
					break
				}
				out, err := b.Step(ctx, slots, in)
				if err != nil {
					t.Fatal(err)
				}
				for j, i := range who {
					check(i, done[i], out[j])
					done[i]++
					if done[i] == seqs[i].steps {
						// Leave, and continue alone from the copied-back cache.
						if err := states[i].Grow(seqs[i].prompt + seqs[i].steps + 1); err != nil {
							t.Fatal(err)
						}
						if err := b.Leave(slot[i], states[i]); err != nil {
							t.Fatal(err)
						}
						if n := states[i].Len(); n != seqs[i].prompt+seqs[i].steps {
							t.Fatalf("sequence %d has %d tokens after leaving, want %d", i, n, seqs[i].prompt+seqs[i].steps)
						}
						k := seqs[i].prompt + done[i]
						l, err := states[i].Step(ctx, embeds[i][k*h:(k+1)*h])
						if err != nil {
							t.Fatal(err)
						}
						check(i, done[i], l)
						// Keep the slots in use at the front, as a scheduler does.
						for o := range seqs {
							if states[o] != nil && done[o] < seqs[o].steps && slot[o] > slot[i] {
								if err := b.Move(slot[o], slot[i]); err != nil {
									t.Fatal(err)
								}
								slot[o], slot[i] = slot[i], -1
								break
							}
						}
					}
				}
			}
			t.Logf("%s: max |Δlogit| batch vs alone %.3g", variant, maxDelta)
			if maxDelta > 1e-4 {
				t.Errorf("%s: logits in the batch differ from alone by up to %.3g", variant, maxDelta)
			}
		})
	}
}

func argmaxOf(l []float32) int {
	best := 0
	for i, x := range l {
		if x > l[best] {
			best = i
		}
	}
	return best
}

func TestBatchErrors(t *testing.T) {
	_, d, h := loadBoth(t, "fp32", true)
	plain, _ := load(t, "fp32")
	ctx := context.Background()
	b, err := d.NewBatch(1, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st, err := d.NewState(4, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Prefill(ctx, make([]float32, 2*h)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		run  func() error
		want string
	}{
		{"plain attention", func() error { _, err := plain.NewBatch(2, 4); return err }, "GroupQueryAttention"},
		{"no slots", func() error { _, err := d.NewBatch(0, 4); return err }, "want both positive"},
		{"step unused slot", func() error { _, err := b.Step(ctx, []int{0}, [][]float32{make([]float32, h)}); return err }, "not in use"},
		{"leave unused slot", func() error { return b.Leave(0, nil) }, "not in use"},
		{"move unused slot", func() error { return b.Move(0, 0) }, "not in use"},
		{"join", func() error { _, err := b.Join(st); return err }, ""},
		{"join full", func() error { _, err := b.Join(st); return err }, "every batch slot"},
		{"move to used slot", func() error { return b.Move(0, 0) }, "not free"},
		{"step width", func() error { _, err := b.Step(ctx, []int{0}, [][]float32{make([]float32, h-1)}); return err }, "want"},
		{"step", func() error { _, err := b.Step(ctx, []int{0}, [][]float32{make([]float32, h)}); return err }, ""},
		{"step", func() error { _, err := b.Step(ctx, []int{0}, [][]float32{make([]float32, h)}); return err }, ""},
		{"step full", func() error { _, err := b.Step(ctx, []int{0}, [][]float32{make([]float32, h)}); return err }, "is full"},
	}
	for _, c := range cases {
		err := c.run()
		switch {
		case c.want == "" && err != nil:
			t.Fatalf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Fatalf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}
