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

// TestBatchPrefillMatchesState: prompts of different lengths prefilled
// together in a Batch, in runs of the tokens all of them still have (one
// after a prefix its State held before joining, one in an empty State),
// get the logits and the cache a State prefilled alone gets.
func TestBatchPrefillMatchesState(t *testing.T) {
	prompts, held := []int{5, 11, 8}, []int{0, 3, 0} // tokens; tokens prefilled before joining
	// own: snapvlm's attention kernel, which runs the slots together;
	// com.microsoft's runs them one by one. keep: the graph computes the
	// last position's logits only; without, every position's.
	for _, variant := range []string{"fp32 keep", "fp32 own", "q4 own keep"} {
		t.Run(variant, func(t *testing.T) {
			_, d, h := loadBoth(t, variant, true)
			if d.LastLogitsOnly() != strings.HasSuffix(variant, " keep") {
				t.Fatalf("last logits only %v", d.LastLogitsOnly())
			}
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(7, 8))
			embeds := make([][]float32, len(prompts))
			want := make([][2][]float32, len(prompts)) // the prompt's logits, then a step's
			for i, n := range prompts {
				embeds[i] = make([]float32, (n+1)*h)
				for j := range embeds[i] {
					embeds[i][j] = rng.Float32()*2 - 1
				}
				st, err := d.NewState(n+1, 0)
				if err != nil {
					t.Fatal(err)
				}
				l, err := st.Prefill(ctx, embeds[i][:n*h])
				if err != nil {
					t.Fatal(err)
				}
				want[i][0] = slices.Clone(l)
				if l, err = st.Step(ctx, embeds[i][n*h:]); err != nil {
					t.Fatal(err)
				}
				want[i][1] = slices.Clone(l)
				st.Close()
			}
			b, err := d.NewBatch(len(prompts), 12)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			done := make([]int, len(prompts))
			for i := range prompts {
				st, err := d.NewState(12, 0)
				if err != nil {
					t.Fatal(err)
				}
				if held[i] > 0 {
					if _, err := st.Prefill(ctx, embeds[i][:held[i]*h]); err != nil {
						t.Fatal(err)
					}
				}
				if s, err := b.Join(st); err != nil || s != i {
					t.Fatalf("join %d: slot %d, %v", i, s, err)
				}
				done[i] = held[i]
				st.Close()
			}
			same := func(what string, i int, got, want []float32) {
				t.Helper()
				for j := range got {
					if d := math.Abs(float64(got[j] - want[j])); d > 1e-4 {
						t.Fatalf("sequence %d, %s: logit %d differs by %.3g from alone", i, what, j, d)
					}
				}
			}
			for {
				var slots []int
				c := 0
				for i, n := range prompts {
					if done[i] < n {
						slots = append(slots, i)
						if c == 0 || n-done[i] < c {
							c = n - done[i]
						}
					}
				}
				if len(slots) == 0 {
					break
				}
				in := make([][]float32, len(slots))
				for k, i := range slots {
					in[k] = embeds[i][done[i]*h : (done[i]+c)*h]
				}
				out, err := b.Prefill(ctx, slots, in)
				if err != nil {
					t.Fatal(err)
				}
				for k, i := range slots {
					if done[i] += c; done[i] == prompts[i] {
						same("prompt", i, out[k], want[i][0])
					}
				}
			}
			slots := []int{0, 1, 2}
			in := make([][]float32, len(slots))
			for i, n := range prompts {
				in[i] = embeds[i][n*h:]
			}
			out, err := b.Step(ctx, slots, in)
			if err != nil {
				t.Fatal(err)
			}
			for i := range prompts {
				same("step", i, out[i], want[i][1])
				if b.Len(i) != prompts[i]+1 {
					t.Errorf("slot %d holds %d tokens, want %d", i, b.Len(i), prompts[i]+1)
				}
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
		{"prefill unused slot", func() error { _, err := b.Prefill(ctx, []int{1}, [][]float32{make([]float32, h)}); return err }, "not in use"},
		{"prefill partial row", func() error { _, err := b.Prefill(ctx, []int{0}, [][]float32{make([]float32, h+1)}); return err }, "batch prefill of 1 slots"},
		{"prefill past the cache", func() error { _, err := b.Prefill(ctx, []int{0}, [][]float32{make([]float32, 3*h)}); return err }, "exceed"},
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
