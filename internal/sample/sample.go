// Package sample picks the next token from one row of logits the way Hugging
// Face transformers' generate (and transformers.js) does.
//
// The steps run in transformers' order:
//
//  1. repetition penalty (RepetitionPenaltyLogitsProcessor): every distinct id
//     in the history has its logit divided by the penalty if it is positive
//     or multiplied by it if it is negative;
//  2. greedy decoding if Temperature is 0: argmax, the first index on ties;
//     the other settings are then ignored, as with do_sample=false;
//  3. otherwise the sampling warpers, in the order _get_logits_processor
//     appends them: temperature (logits / T), top-k, top-p, min-p;
//  4. a multinomial draw from the softmax of what is left.
//
// Top-k keeps every token whose logit is at least the k-th largest, so ties
// at the boundary can keep more than k tokens (TopKLogitsWarper compares with
// "<"). Top-p keeps a token while the probability mass of the tokens strictly
// more likely than it is below TopP, i.e. the smallest set reaching TopP,
// never fewer than one token; tokens of equal probability are ordered by id.
// Min-p drops tokens whose probability is below MinP times the largest one.
package sample

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Params are the sampling settings of one generation. The zero value is
// greedy decoding without a repetition penalty.
type Params struct {
	Temperature       float32 // 0 = greedy (argmax); > 0 divides the logits
	TopK              int     // keep the TopK most likely tokens; 0 = off
	TopP              float32 // nucleus mass in (0, 1); 0 or 1 = off
	MinP              float32 // relative probability floor in (0, 1]; 0 = off
	RepetitionPenalty float32 // > 0; 0 or 1 = off
	// Seed makes sampling reproducible: the same seed, settings and logits
	// give the same tokens. 0 means "pick a random seed"; Sampler.Seed reports
	// the one picked so that a run can be repeated.
	Seed uint64
}

// Validate reports settings outside their ranges.
func (p Params) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	finite := func(f float32) bool { return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) }
	check(finite(p.Temperature) && p.Temperature >= 0, "temperature must be >= 0, got %v", p.Temperature)
	check(p.TopK >= 0, "top_k must be >= 0, got %d", p.TopK)
	check(finite(p.TopP) && p.TopP >= 0 && p.TopP <= 1, "top_p must be in [0, 1], got %v", p.TopP)
	check(finite(p.MinP) && p.MinP >= 0 && p.MinP <= 1, "min_p must be in [0, 1], got %v", p.MinP)
	check(finite(p.RepetitionPenalty) && p.RepetitionPenalty >= 0,
		"repetition_penalty must be >= 0 (0 or 1 = off), got %v", p.RepetitionPenalty)
	return errors.Join(errs...)
}

// Greedy reports whether p selects tokens by argmax (Temperature 0).
func (p Params) Greedy() bool { return p.Temperature == 0 }

// cand is a token still in the running, with its weight exp(logit - max).
type cand struct {
	id int32
	w  float64
}

// Sampler holds the state of one generation: the random number generator and
// buffers reused between calls so that Next does not allocate once they have
// grown to the vocabulary size. A Sampler must not be used by several
// goroutines at once.
type Sampler struct {
	p    Params
	seed uint64
	rng  *rand.Rand

	seen  []uint32 // seen[id] == stamp: id already penalised in this call
	stamp uint32
	heap  []float32 // top-k min-heap of logits
	cands []cand
}

// New returns a Sampler for p. Params are not checked here: call
// p.Validate first; out-of-range values behave as documented on Next.
func New(p Params) *Sampler {
	seed := p.Seed
	for seed == 0 {
		seed = rand.Uint64() // randomly seeded by the runtime
	}
	return &Sampler{p: p, seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Seed returns the seed in use: Params.Seed, or the random one picked when
// that was 0.
func (s *Sampler) Seed() uint64 { return s.seed }

// Next returns the index of the chosen token in logits. It modifies logits in
// place (penalty and temperature are applied to it). history holds the ids
// seen so far (prompt and generated) for the repetition penalty; ids outside
// [0, len(logits)) are ignored. Next returns -1 only if logits is empty.
//
// Settings beyond their documented ranges are treated as off (TopK < 0,
// TopP <= 0 or >= 1, MinP <= 0, RepetitionPenalty <= 0); a MinP above 1 keeps
// only the most likely tokens. A negative Temperature is treated as greedy.
func (s *Sampler) Next(logits []float32, history []int64) int64 {
	if len(logits) == 0 {
		return -1
	}
	if rp := s.p.RepetitionPenalty; rp > 0 && rp != 1 {
		s.penalize(logits, history, rp)
	}
	if s.p.Temperature <= 0 {
		return argmax(logits)
	}
	return s.sample(logits)
}

// penalize applies the repetition penalty once per distinct id in history.
func (s *Sampler) penalize(logits []float32, history []int64, rp float32) {
	if len(s.seen) < len(logits) {
		s.seen = make([]uint32, len(logits))
		s.stamp = 0
	}
	s.stamp++
	if s.stamp == 0 { // wrapped: old marks could collide, start over
		clear(s.seen)
		s.stamp = 1
	}
	n := int64(len(logits))
	for _, id := range history {
		if id < 0 || id >= n || s.seen[id] == s.stamp {
			continue
		}
		s.seen[id] = s.stamp
		if l := logits[id]; l < 0 {
			logits[id] = l * rp
		} else {
			logits[id] = l / rp
		}
	}
}

// argmax returns the first index of the largest value. NaNs never win unless
// every value is NaN (then 0).
func argmax(x []float32) int64 {
	start := 0
	for start < len(x)-1 && x[start] != x[start] {
		start++ // skip leading NaNs so that best is a number
	}
	best, bi := x[start], start
	for i := start + 1; i < len(x); i++ {
		if v := x[i]; v > best { // false for NaN
			best, bi = v, i
		}
	}
	if best != best {
		return 0
	}
	return int64(bi)
}

// sample runs temperature, top-k, top-p and min-p, then draws a token.
func (s *Sampler) sample(logits []float32) int64 {
	// Temperature (skipped at 1, like transformers) and the maximum in one
	// pass. NaN logits become -Inf so that no later comparison sees them.
	maxL := float32(math.Inf(-1))
	t := s.p.Temperature
	for i, l := range logits {
		if t != 1 {
			l /= t
			logits[i] = l
		}
		if l != l {
			l = float32(math.Inf(-1))
			logits[i] = l
		}
		if l > maxL {
			maxL = l
		}
	}
	if math.IsInf(float64(maxL), 0) {
		// -Inf: nothing has positive probability; +Inf: those tokens take all
		// of it. Either way there is no finite distribution: take the argmax.
		return argmax(logits)
	}

	// Top-k: everything at or above the k-th largest logit stays.
	floor := float32(math.Inf(-1))
	if k := s.p.TopK; k > 0 && k < len(logits) {
		floor = s.kthLargest(logits, k)
	}

	// Min-p: p_i < min_p · p_max ⇔ exp(l_i - max) < min_p, so the cut needs
	// no normalisation and commutes with top-p.
	minW := 0.0
	if mp := s.p.MinP; mp > 0 {
		minW = min(float64(mp), 1) // the most likely token (w = 1) always stays
	}

	topP := float64(s.p.TopP)
	if topP <= 0 || topP >= 1 {
		s.collect(logits, floor, maxL, minW)
		return s.draw()
	}

	// Top-p normalises over everything top-k left (before min-p).
	z := 0.0
	for _, l := range logits {
		if l >= floor {
			z += math.Exp(float64(l - maxL))
		}
	}
	// The nucleus holds the most likely tokens, so it lies inside any set
	// {w >= thr} whose mass reaches topP·z. Try a high threshold first to keep
	// the sort short; the fallback's left-out mass is below n·thr =
	// (1-topP)·z/2, so it always reaches topP·z.
	need := topP * z
	thr := max(minW, (1-topP)*z/64)
	if mass := s.collect(logits, floor, maxL, thr); mass < need && thr > minW {
		s.collect(logits, floor, maxL, max(minW, (1-topP)*z/float64(2*len(logits))))
	}
	slices.SortFunc(s.cands, func(a, b cand) int {
		switch {
		case a.w > b.w:
			return -1
		case a.w < b.w:
			return 1
		}
		return int(a.id - b.id)
	})
	cum := 0.0
	for i, c := range s.cands {
		if cum >= need {
			s.cands = s.cands[:i]
			break
		}
		cum += c.w
	}
	return s.draw()
}

// collect fills s.cands with the tokens whose logit is >= floor and whose
// weight exp(l - maxL) is >= minW, and returns their total weight.
func (s *Sampler) collect(logits []float32, floor, maxL float32, minW float64) float64 {
	s.cands = s.cands[:0]
	// exp(l - maxL) >= minW ⇔ l >= maxL + ln(minW); screen cheaply in float32
	// (with slack for rounding) before computing exp.
	screen := floor
	if minW > 0 {
		screen = max(floor, maxL+float32(math.Log(minW))-1e-3)
	}
	mass := 0.0
	for i, l := range logits {
		if l < screen {
			continue
		}
		w := math.Exp(float64(l - maxL))
		if !(w >= minW) || w == 0 {
			continue
		}
		s.cands = append(s.cands, cand{id: int32(i), w: w})
		mass += w
	}
	return mass
}

// kthLargest returns the k-th largest value of x (1 <= k < len(x)) with a
// size-k min-heap: one pass, and most values fail the first comparison.
func (s *Sampler) kthLargest(x []float32, k int) float32 {
	h := append(s.heap[:0], x[:k]...)
	for i := k/2 - 1; i >= 0; i-- {
		siftDown(h, i)
	}
	for _, v := range x[k:] {
		if v > h[0] {
			h[0] = v
			siftDown(h, 0)
		}
	}
	s.heap = h
	return h[0]
}

// siftDown restores the min-heap property below index i.
func siftDown(h []float32, i int) {
	n := len(h)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if c+1 < n && h[c+1] < h[c] {
			c++
		}
		if !(h[c] < h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// draw picks one of s.cands with probability proportional to its weight.
func (s *Sampler) draw() int64 {
	total := 0.0
	for _, c := range s.cands {
		total += c.w
	}
	u := s.rng.Float64() * total
	for _, c := range s.cands {
		u -= c.w
		if u < 0 {
			return int64(c.id)
		}
	}
	// Rounding left u >= 0 after the last subtraction: take the last one.
	return int64(s.cands[len(s.cands)-1].id)
}
