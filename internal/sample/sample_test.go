package sample

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	nan := float32(math.NaN())
	tests := []struct {
		name string
		p    Params
		want string // substring of the error; "" = valid
	}{
		{"zero value", Params{}, ""},
		{"typical", Params{Temperature: 0.7, TopK: 50, TopP: 0.9, MinP: 0.05, RepetitionPenalty: 1.1, Seed: 7}, ""},
		{"top_p 1 off", Params{Temperature: 1, TopP: 1}, ""},
		{"negative temperature", Params{Temperature: -1}, "temperature must be >= 0, got -1"},
		{"NaN temperature", Params{Temperature: nan}, "temperature must be >= 0, got NaN"},
		{"negative top_k", Params{TopK: -3}, "top_k must be >= 0, got -3"},
		{"top_p above 1", Params{TopP: 1.5}, "top_p must be in [0, 1], got 1.5"},
		{"negative min_p", Params{MinP: -0.1}, "min_p must be in [0, 1], got -0.1"},
		{"negative penalty", Params{RepetitionPenalty: -2}, "repetition_penalty must be >= 0 (0 or 1 = off), got -2"},
		{"infinite penalty", Params{RepetitionPenalty: float32(math.Inf(1))}, "repetition_penalty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Validate() = nil, want error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate() = %q, want it to contain %q", err, tt.want)
			}
		})
	}
	// Several bad fields are all reported.
	err := Params{Temperature: -1, TopK: -1}.Validate()
	if err == nil || !strings.Contains(err.Error(), "temperature") || !strings.Contains(err.Error(), "top_k") {
		t.Errorf("Validate() with two bad fields = %v, want both named", err)
	}
}

func TestGreedy(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	tests := []struct {
		name       string
		p          Params
		logits     []float32
		history    []int64
		want       int64
		wantLogits []float32 // after Next; nil = unchanged
	}{
		{"argmax", Params{}, []float32{0.1, 3, -2, 2.9}, nil, 1, nil},
		{"first of ties", Params{}, []float32{1, 5, 5, 5}, nil, 1, nil},
		{"single", Params{}, []float32{-7}, nil, 0, nil},
		{"NaN never wins", Params{}, []float32{nan, 1, nan, 2, nan}, nil, 3, nil},
		{"all -Inf", Params{}, []float32{-inf, -inf}, nil, 0, nil},
		{"all NaN", Params{}, []float32{nan, nan, nan}, nil, 0, nil},
		{"+Inf wins", Params{}, []float32{1, inf, 2, inf}, nil, 1, nil},
		{"filters ignored when greedy", Params{TopK: 1, TopP: 0.1, MinP: 0.9}, []float32{1, 2}, nil, 1, nil},
		// Penalty 2: 2 → 1 (divided), tie with token 0 → first wins.
		{"penalty divides positive", Params{RepetitionPenalty: 2}, []float32{1, 2, -0.5}, []int64{1},
			0, []float32{1, 1, -0.5}},
		// Negative logits are multiplied; id 0 repeated thrice is penalised once
		// (-1·2 = -2, not -8).
		{"penalty multiplies negative once", Params{RepetitionPenalty: 2}, []float32{-1, -1.5}, []int64{0, 0, 0},
			1, []float32{-2, -1.5}},
		{"penalty below 1 boosts", Params{RepetitionPenalty: 0.5}, []float32{1, 1.5, -4}, []int64{0, 2},
			0, []float32{2, 1.5, -2}},
		{"penalty ignores out-of-range ids", Params{RepetitionPenalty: 2}, []float32{4, 3}, []int64{-1, 2, 99},
			0, []float32{4, 3}},
		{"penalty 1 is off", Params{RepetitionPenalty: 1}, []float32{4, 3}, []int64{0, 1}, 0, []float32{4, 3}},
		{"penalty 0 is off", Params{RepetitionPenalty: 0}, []float32{4, 3}, []int64{0, 1}, 0, []float32{4, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logits := slices.Clone(tt.logits)
			if got := New(tt.p).Next(logits, tt.history); got != tt.want {
				t.Errorf("Next = %d, want %d", got, tt.want)
			}
			want := tt.wantLogits
			if want == nil {
				want = tt.logits
			}
			for i := range want {
				if math.Float32bits(logits[i]) != math.Float32bits(want[i]) {
					t.Errorf("logits after Next = %v, want %v", logits, want)
					break
				}
			}
		})
	}
	if got := New(Params{}).Next(nil, nil); got != -1 {
		t.Errorf("Next(empty) = %d, want -1", got)
	}
}

// A Sampler is reused across calls: the penalty must not remember ids from
// the previous call's history.
func TestPenaltyPerCall(t *testing.T) {
	s := New(Params{RepetitionPenalty: 4})
	first := []float32{8, 4}
	s.Next(first, []int64{0})
	second := []float32{8, 4}
	s.Next(second, []int64{1})
	if second[0] != 8 || second[1] != 1 {
		t.Errorf("second call logits = %v, want [8 1]", second)
	}
}

// ln returns natural logs, so that softmax(ln(p)) = p for p summing to 1.
func ln(p ...float64) []float32 {
	l := make([]float32, len(p))
	for i, v := range p {
		l[i] = float32(math.Log(v))
	}
	return l
}

// want returns the expected distribution: probabilities p raised to 1/T (the
// effect of dividing logits by T), restricted to the kept ids, renormalised.
func want(p []float64, temp float64, keep ...int) []float64 {
	out := make([]float64, len(p))
	sum := 0.0
	for _, i := range keep {
		out[i] = math.Pow(p[i], 1/temp)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// TestDistribution draws many tokens with a fixed seed and checks that only
// the tokens the definitions keep appear, with frequencies within 5 standard
// errors of their renormalised probabilities. Each kept set below was worked
// out by hand from p = [0.5, 0.25, 0.15, 0.07, 0.03].
func TestDistribution(t *testing.T) {
	p := []float64{0.5, 0.25, 0.15, 0.07, 0.03}
	tests := []struct {
		name   string
		params Params
		logits []float32
		want   []float64
	}{
		{"plain softmax", Params{Temperature: 1}, ln(p...), want(p, 1, 0, 1, 2, 3, 4)},
		// Logits not normalised: softmax is shift-invariant.
		{"shifted logits", Params{Temperature: 1}, []float32{3, 2, 1, 0}, []float64{
			1 / (1 + math.Exp(-1) + math.Exp(-2) + math.Exp(-3)),
			math.Exp(-1) / (1 + math.Exp(-1) + math.Exp(-2) + math.Exp(-3)),
			math.Exp(-2) / (1 + math.Exp(-1) + math.Exp(-2) + math.Exp(-3)),
			math.Exp(-3) / (1 + math.Exp(-1) + math.Exp(-2) + math.Exp(-3)),
		}},
		{"temperature 0.5 squares p", Params{Temperature: 0.5}, ln(p...), want(p, 0.5, 0, 1, 2, 3, 4)},
		{"temperature 2", Params{Temperature: 2}, ln(p...), want(p, 2, 0, 1, 2, 3, 4)},
		{"top_k 2", Params{Temperature: 1, TopK: 2}, ln(p...), want(p, 1, 0, 1)},
		{"top_k larger than vocab", Params{Temperature: 1, TopK: 9}, ln(p...), want(p, 1, 0, 1, 2, 3, 4)},
		// Mass before each token: 0, .5, .75, .9, .97. Keep while < top_p.
		{"top_p 0.8", Params{Temperature: 1, TopP: 0.8}, ln(p...), want(p, 1, 0, 1, 2)},
		{"top_p 0.7", Params{Temperature: 1, TopP: 0.7}, ln(p...), want(p, 1, 0, 1)},
		{"top_p 0.4 keeps one", Params{Temperature: 1, TopP: 0.4}, ln(p...), want(p, 1, 0)},
		{"top_p 0.95", Params{Temperature: 1, TopP: 0.95}, ln(p...), want(p, 1, 0, 1, 2, 3)},
		// min_p 0.2 · 0.5 = 0.1 floor; 0.4 · 0.5 = 0.2 floor.
		{"min_p 0.2", Params{Temperature: 1, MinP: 0.2}, ln(p...), want(p, 1, 0, 1, 2)},
		{"min_p 0.4", Params{Temperature: 1, MinP: 0.4}, ln(p...), want(p, 1, 0, 1)},
		// Top-k before top-p: after top_k 3 the mass is renormalised by 0.9, so
		// the mass before token 2 is .75/.9 = .833 ≥ .76 and it is dropped
		// (without top-k it would stay: .75 < .76).
		{"top_k then top_p", Params{Temperature: 1, TopK: 3, TopP: 0.76}, ln(p...), want(p, 1, 0, 1)},
		{"top_p 0.76 alone", Params{Temperature: 1, TopP: 0.76}, ln(p...), want(p, 1, 0, 1, 2)},
		// Temperature before top-p: with T = 0.5, p ∝ p² = [.7336 .1834 .0660 …];
		// mass before token 2 is .917 ≥ .8 → {0, 1} (it would be {0,1,2} at T=1).
		{"temperature then top_p", Params{Temperature: 0.5, TopP: 0.8}, ln(p...), want(p, 0.5, 0, 1)},
		// Temperature before min-p: T = 2 gives p ∝ √p; floor .3·√.5 = .212 keeps
		// √.07 = .265 and drops √.03 = .173 (at T = 1, .3·.5 = .15 would drop .07).
		{"temperature then min_p", Params{Temperature: 2, MinP: 0.3}, ln(p...), want(p, 2, 0, 1, 2, 3)},
		{"all filters", Params{Temperature: 1, TopK: 4, TopP: 0.95, MinP: 0.2}, ln(p...), want(p, 1, 0, 1, 2)},
		// Ties at the k-th logit are all kept (TopKLogitsWarper removes only
		// logits strictly below the k-th largest).
		{"top_k keeps ties", Params{Temperature: 1, TopK: 1}, []float32{1, 2, 2, 0}, []float64{0, 0.5, 0.5, 0}},
		{"-Inf logit never drawn", Params{Temperature: 1}, []float32{0, float32(math.Inf(-1)), 0}, []float64{0.5, 0, 0.5}},
		{"NaN logit never drawn", Params{Temperature: 1}, []float32{0, float32(math.NaN()), 0}, []float64{0.5, 0, 0.5}},
		{"all -Inf takes the first", Params{Temperature: 1}, []float32{float32(math.Inf(-1)), float32(math.Inf(-1))}, []float64{1, 0}},
	}
	const draws = 100000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.params.Seed = 12345
			counts := drawMany(New(tt.params), tt.logits, nil, draws)
			checkFrequencies(t, counts, tt.want, draws)
		})
	}
}

// TestDistributionWithPenalty: penalty 2 on id 0 of logits [ln .5, ln .5]
// gives logits [2·ln .5, ln .5] = [ln .25, ln .5], so p = [1/3, 2/3].
func TestDistributionWithPenalty(t *testing.T) {
	const draws = 100000
	s := New(Params{Temperature: 1, RepetitionPenalty: 2, Seed: 99})
	counts := drawMany(s, ln(0.5, 0.5), []int64{0, 0}, draws)
	checkFrequencies(t, counts, []float64{1.0 / 3, 2.0 / 3}, draws)
}

func drawMany(s *Sampler, logits []float32, history []int64, n int) []int {
	counts := make([]int, len(logits))
	buf := make([]float32, len(logits))
	for range n {
		copy(buf, logits) // Next changes its input
		counts[s.Next(buf, history)]++
	}
	return counts
}

func checkFrequencies(t *testing.T, counts []int, want []float64, n int) {
	t.Helper()
	for i, c := range counts {
		p := want[i]
		if p == 0 {
			if c != 0 {
				t.Errorf("token %d drawn %d times, want never (counts %v)", i, c, counts)
			}
			continue
		}
		got := float64(c) / float64(n)
		se := math.Sqrt(p * (1 - p) / float64(n))
		if math.Abs(got-p) > 5*se+1e-12 {
			t.Errorf("token %d frequency %.4f, want %.4f ± %.4f (counts %v)", i, got, p, 5*se, counts)
		}
	}
}

// TestTopPWideVocab exercises the top-p threshold search on a flat 1000-token
// distribution (the first, high threshold finds nothing): 1 token holds 0.5,
// 999 share the rest equally. top_p 0.6 needs the big token plus 0.1/(0.5/999)
// = 199.8 → 200 small ones (ties taken in id order: ids 1..200).
func TestTopPWideVocab(t *testing.T) {
	const n = 1000
	logits := make([]float32, n)
	small := math.Log(0.5 / (n - 1))
	for i := range logits {
		logits[i] = float32(small)
	}
	logits[0] = float32(math.Log(0.5))
	s := New(Params{Temperature: 1, TopP: 0.6, Seed: 3})
	const draws = 10000
	counts := drawMany(s, logits, nil, draws)
	maxID := 0
	for i, c := range counts {
		if c > 0 {
			maxID = i
		}
	}
	if maxID != 200 {
		t.Errorf("largest id drawn = %d, want 200 (nucleus = ids 0..200)", maxID)
	}
	// Id 0's share of the nucleus: .5 / (.5 + 200·.5/999).
	p0 := 0.5 / (0.5 + 200*0.5/999)
	checkFrequencies(t, counts[:1], []float64{p0}, draws)
}

func TestReproducible(t *testing.T) {
	p := Params{Temperature: 1, TopK: 40, TopP: 0.95, Seed: 42}
	logits := make([]float32, 500)
	for i := range logits {
		logits[i] = float32(math.Sin(float64(i))) * 3
	}
	run := func(p Params) []int64 {
		s := New(p)
		buf := make([]float32, len(logits))
		var out []int64
		for range 50 {
			copy(buf, logits)
			out = append(out, s.Next(buf, out))
		}
		return out
	}
	a, b := run(p), run(p)
	if !slices.Equal(a, b) {
		t.Errorf("same seed gave different tokens:\n%v\n%v", a, b)
	}
	p.Seed = 43
	if c := run(p); slices.Equal(a, c) {
		t.Errorf("seeds 42 and 43 gave the same 50 tokens: %v", a)
	}
	if s := New(Params{Seed: 42}); s.Seed() != 42 {
		t.Errorf("Seed() = %d, want 42", s.Seed())
	}
	// Seed 0 picks a random seed and reports it; replaying it repeats the run.
	s0 := New(Params{Temperature: 1})
	if s0.Seed() == 0 {
		t.Fatal("Seed() = 0 after a random pick")
	}
	p.Seed = s0.Seed()
	first := make([]int64, 0, 20)
	buf := make([]float32, len(logits))
	for range 20 {
		copy(buf, logits)
		first = append(first, s0.Next(buf, nil))
	}
	s1 := New(Params{Temperature: 1, Seed: p.Seed})
	for i := range 20 {
		copy(buf, logits)
		if got := s1.Next(buf, nil); got != first[i] {
			t.Fatalf("replay with Seed() differs at draw %d: %d vs %d", i, got, first[i])
		}
	}
}

const vocab = 49280 // SmolVLM vocabulary

// benchLogits are peaked like a language model's: a few tokens stand out over
// a broad tail.
func benchLogits() []float32 {
	l := make([]float32, vocab)
	x := uint32(7)
	for i := range l {
		x = x*1664525 + 1013904223
		l[i] = float32(x>>8)/float32(1<<24)*8 - 4
	}
	for i := 0; i < vocab; i += 997 {
		l[i] += 9
	}
	return l
}

func benchHistory() []int64 {
	h := make([]int64, 1200) // a prompt with an image plus some output
	for i := range h {
		h[i] = int64(i*37) % vocab
	}
	return h
}

// TestNoAllocs: once the buffers have grown, Next allocates nothing.
func TestNoAllocs(t *testing.T) {
	src, hist := benchLogits(), benchHistory()
	buf := make([]float32, vocab)
	for _, p := range []Params{
		{RepetitionPenalty: 1.2},
		{Temperature: 0.7, TopK: 50, TopP: 0.9, MinP: 0.05, RepetitionPenalty: 1.1, Seed: 1},
		{Temperature: 1, TopP: 0.9, Seed: 1},
		{Temperature: 1, Seed: 1},
	} {
		s := New(p)
		allocs := testing.AllocsPerRun(20, func() {
			copy(buf, src)
			s.Next(buf, hist)
		})
		if allocs != 0 {
			t.Errorf("%+v: %v allocations per Next, want 0", p, allocs)
		}
	}
}

func benchNext(b *testing.B, p Params, hist []int64) {
	src := benchLogits()
	buf := make([]float32, vocab)
	s := New(p)
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, src) // Next works in place; the copy (~3 µs) is included
		s.Next(buf, hist)
	}
}

func BenchmarkGreedy(b *testing.B) { benchNext(b, Params{}, nil) }
func BenchmarkGreedyPenalty(b *testing.B) {
	benchNext(b, Params{RepetitionPenalty: 1.2}, benchHistory())
}
func BenchmarkSamplePlain(b *testing.B) { benchNext(b, Params{Temperature: 1, Seed: 1}, nil) }
func BenchmarkSampleTopK50TopP(b *testing.B) {
	benchNext(b, Params{Temperature: 0.7, TopK: 50, TopP: 0.9, Seed: 1}, nil)
}
func BenchmarkSampleTopP(b *testing.B) {
	benchNext(b, Params{Temperature: 0.7, TopP: 0.9, Seed: 1}, nil)
}
func BenchmarkSampleMinP(b *testing.B) {
	benchNext(b, Params{Temperature: 1, MinP: 0.05, Seed: 1}, nil)
}
func BenchmarkSampleAll(b *testing.B) {
	benchNext(b, Params{Temperature: 0.7, TopK: 50, TopP: 0.9, MinP: 0.05, RepetitionPenalty: 1.1, Seed: 1}, benchHistory())
}
