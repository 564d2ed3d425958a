package snapvlm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestCommonPrefix(t *testing.T) {
	const img = 9 // the image token id
	a, b, c := [32]byte{1}, [32]byte{2}, [32]byte{3}
	// Two images of 3 and 2 rows between text tokens.
	prompt := held{ids: []int64{1, 2, img, img, img, 5, img, img, 6}, imageKeys: [][32]byte{a, b}, imageRows: []int{3, 2}}
	cases := []struct {
		name string
		x    held
		want int
	}{
		{"itself", prompt, 9},
		{"answer after it", held{ids: []int64{1, 2, img, img, img, 5, img, img, 6, 7, 8}, imageKeys: prompt.imageKeys, imageRows: prompt.imageRows}, 9},
		{"other question", held{ids: []int64{1, 2, img, img, img, 5, img, img, 4}, imageKeys: prompt.imageKeys, imageRows: prompt.imageRows}, 8},
		{"other first image", held{ids: prompt.ids, imageKeys: [][32]byte{c, b}, imageRows: prompt.imageRows}, 2},
		{"other second image", held{ids: prompt.ids, imageKeys: [][32]byte{a, c}, imageRows: prompt.imageRows}, 6},
		{"no second image", held{ids: prompt.ids[:6], imageKeys: [][32]byte{a}, imageRows: []int{3}}, 6},
		{"ends inside the first image", held{ids: prompt.ids[:4], imageKeys: [][32]byte{a}, imageRows: []int{3}}, 4},
		{"same key, other rows", held{ids: prompt.ids, imageKeys: prompt.imageKeys, imageRows: []int{2, 3}}, 2},
		{"image tokens without images", held{ids: prompt.ids}, 2},
		{"images without their rows", held{ids: prompt.ids, imageKeys: prompt.imageKeys}, 2},
		{"other text first", held{ids: []int64{1, 3}}, 1},
		{"empty", held{}, 0},
		// An <image> token the model generated has no image: the prefix
		// ends there even when the ids go on alike.
		{"generated image token", held{ids: []int64{1, 2, img, img, img, 5, img, img, 6, img}, imageKeys: prompt.imageKeys, imageRows: prompt.imageRows}, 9},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := common(prompt, tc.x, img); got != tc.want {
				t.Errorf("common(prompt, x) = %d, want %d", got, tc.want)
			}
			if got := common(tc.x, prompt, img); got != tc.want {
				t.Errorf("common(x, prompt) = %d, want %d", got, tc.want)
			}
		})
	}
	// A prompt that continues with the model's <image> token (typed in the
	// text) shares only the tokens before it with an answer that did too.
	gen := held{ids: []int64{1, 2, img, img, img, 5, img, img, 6, img, 4}, imageKeys: prompt.imageKeys, imageRows: prompt.imageRows}
	if got := common(gen, gen, img); got != 9 {
		t.Errorf("common of a held with a generated image token and itself = %d, want 9", got)
	}
}

// kvBytesPerToken is the decoder cache per token from the model's
// config.json: layers × (key and value) × key/value heads × head size ×
// 4 bytes (the test models' float32 cache).
func kvBytesPerToken(m *Model) int64 {
	t := m.cfg.Config.TextConfig
	return int64(t.NumHiddenLayers * 2 * t.NumKeyValueHeads * t.HeadDimension() * 4)
}

// cachedTokens is how many tokens a generation leaves in its decoder
// cache: the prompt and the answer but its last token, never run.
func cachedTokens(r *Result) int { return len(r.PromptTokens) + len(r.Tokens) - 1 }

// TestPromptCacheMatchesUncached: requests that start like an earlier one
// (the same system prompt and photo, the conversation sent back, the same
// request again, another photo) reuse the cached prefix, prefill only the
// rest, and answer exactly as a model without the cache does.
func TestPromptCacheMatchesUncached(t *testing.T) {
	for _, dtype := range []string{"q4", "fp32"} {
		t.Run(dtype, func(t *testing.T) {
			on := loadModel(t, "tiny512", Options{Dtype: dtype, PromptCacheMB: 64})
			off := loadModel(t, "tiny512", Options{Dtype: dtype})
			photo := pngImage(t, 300, 200, 0, false)
			other := pngImage(t, 300, 200, 1, false)
			sys := TextMessage(System, "You answer about photos in one short sentence.")
			opts := GenerateOptions{MaxNewTokens: 8}
			first := Request{Messages: []Message{sys, UserMessage("What is in this photo?", photo)}, GenerateOptions: opts}
			res := greedy(t, on, first)
			if res.ReusedTokens != 0 {
				t.Fatalf("first request reused %d tokens from an empty cache", res.ReusedTokens)
			}
			if n, _ := on.prompts.stats(); n != 1 {
				t.Fatalf("%d entries after one request, want 1", n)
			}
			imageAt := slices.Index(res.PromptTokens, on.cfg.Config.ImageTokenID)
			convo := []Message{sys, UserMessage("What is in this photo?", photo), TextMessage(Assistant, res.Text), UserMessage("Why?")}
			cases := []struct {
				name string
				req  Request
				// minimum reused tokens: up to the question's text, or a
				// known position
				reused int
			}{
				{"same photo, other question", Request{Messages: []Message{sys, UserMessage("Which colours are there?", photo)}, GenerateOptions: opts}, imageAt + res.ImageTokens},
				{"the conversation sent back", Request{Messages: convo, GenerateOptions: opts}, len(res.PromptTokens)},
				{"the same request again", first, len(res.PromptTokens) - 1},
				{"other photo", Request{Messages: []Message{sys, UserMessage("What is in this photo?", other)}, GenerateOptions: opts}, imageAt},
				// Split, the photo starts with its first tile's row and
				// column; as one tile, with the global view's marker.
				{"the photo as one tile", Request{Messages: []Message{sys, UserMessage("Describe it.", photo)}, GenerateOptions: GenerateOptions{MaxNewTokens: 8, NoSplit: true}}, imageAt - 1},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					got := greedy(t, on, c.req)
					want := greedy(t, off, c.req)
					if !slices.Equal(got.Tokens, want.Tokens) || !slices.Equal(got.PromptTokens, want.PromptTokens) {
						t.Fatalf("with the prompt cache %v, without %v", got.Tokens, want.Tokens)
					}
					if got.ReusedTokens < c.reused || got.ReusedTokens >= len(got.PromptTokens) {
						t.Errorf("reused %d of %d prompt tokens, want at least %d", got.ReusedTokens, len(got.PromptTokens), c.reused)
					}
					if want.ReusedTokens != 0 {
						t.Errorf("without the prompt cache: reused %d tokens", want.ReusedTokens)
					}
				})
			}
		})
	}
}

// TestPromptCacheInsideImage: an entry whose tokens end inside an image's
// tokens serves its first rows; the rest of the image is prefilled.
func TestPromptCacheInsideImage(t *testing.T) {
	m := loadModel(t, "tiny512", Options{PromptCacheMB: 64})
	off := loadModel(t, "tiny512", Options{})
	req := Request{Messages: []Message{UserMessage("What is it?", pngImage(t, 300, 200, 0, false))}, GenerateOptions: GenerateOptions{MaxNewTokens: 8}}
	ctx := context.Background()
	p, err := m.prepare(ctx, req, &Result{})
	if err != nil {
		t.Fatal(err)
	}
	cut := slices.Index(p.ids, m.cfg.Config.ImageTokenID) + m.seqLen/2
	st, err := m.dec.NewState(cut, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Prefill(ctx, p.embeds[:cut*m.emb.Hidden()]); err != nil {
		t.Fatal(err)
	}
	kv := &kvCache{st: st, held: held{ids: p.ids[:cut], imageKeys: p.imageKeys, imageRows: p.imageRows}}
	if err := m.prompts.add(kv, m.cfg.Config.ImageTokenID); err != nil {
		t.Fatal(err)
	}
	kv.drop()
	got, want := greedy(t, m, req), greedy(t, off, req)
	if got.ReusedTokens != cut {
		t.Errorf("reused %d tokens, want the %d the entry holds", got.ReusedTokens, cut)
	}
	if !slices.Equal(got.Tokens, want.Tokens) {
		t.Errorf("from a prefix inside the image %v, without the cache %v", got.Tokens, want.Tokens)
	}
}

// TestPromptCacheBudget: entries are counted by the bytes of their cache
// rows, the least recently used go first when the budget is passed, an
// entry larger than the budget is not kept, and Close empties the cache.
func TestPromptCacheBudget(t *testing.T) {
	m := loadModel(t, "tiny512", Options{PromptCacheMB: 1})
	per := kvBytesPerToken(m)
	ask := func(q string, images ...*Image) Request {
		return Request{Messages: []Message{UserMessage(q, images...)}, GenerateOptions: GenerateOptions{MaxNewTokens: 4}}
	}
	// A split photo fills most of 1 MiB on this model; two do not fit.
	a, b := ask("First?", pngImage(t, 1600, 1600, 0, false)), ask("Second?", pngImage(t, 1600, 1600, 1, false))
	ra := greedy(t, m, a)
	if size := int64(cachedTokens(ra)) * per; size <= 1<<19 || size > 1<<20 {
		t.Fatalf("the split photo's entry takes %d bytes: the test wants more than half of the 1 MiB budget", size)
	}
	n, used := m.prompts.stats()
	if n != 1 || used != int64(cachedTokens(ra))*per {
		t.Fatalf("after one request: %d entries of %d bytes, want 1 of %d (%d tokens × %d bytes)", n, used, int64(cachedTokens(ra))*per, cachedTokens(ra), per)
	}
	rb := greedy(t, m, b)
	n, used = m.prompts.stats()
	if n != 1 || used != int64(cachedTokens(rb))*per {
		t.Fatalf("after a second split photo: %d entries of %d bytes, want only the newer one (%d bytes)", n, used, int64(cachedTokens(rb))*per)
	}
	// The older photo was evicted: asking again reuses only the template
	// before its image; the newer one is still there.
	imageAt := slices.Index(ra.PromptTokens, m.cfg.Config.ImageTokenID)
	if again := greedy(t, m, b); again.ReusedTokens != len(rb.PromptTokens)-1 {
		t.Errorf("the most recent entry served %d of %d prompt tokens", again.ReusedTokens, len(rb.PromptTokens))
	}
	if again := greedy(t, m, a); again.ReusedTokens > imageAt {
		t.Errorf("the evicted entry still served %d tokens (its image starts at %d)", again.ReusedTokens, imageAt)
	}
	// Small entries share the budget with the split photo, least recently
	// used out first.
	small := []Request{ask("One?"), ask("Two?"), ask("Three?")}
	for _, r := range small {
		greedy(t, m, r)
	}
	n, used = m.prompts.stats()
	if n != 4 || used > 1<<20 {
		t.Errorf("after a split photo and three questions: %d entries of %d bytes, want 4 within 1 MiB", n, used)
	}
	// An entry larger than the budget is not kept, and leaves the others.
	big := greedy(t, m, ask("Both?", pngImage(t, 1600, 1600, 0, false), pngImage(t, 1600, 1600, 1, false)))
	if int64(cachedTokens(big))*per <= 1<<20 {
		t.Fatalf("two split photos take only %d bytes", int64(cachedTokens(big))*per)
	}
	if n2, used2 := m.prompts.stats(); n2 != n || used2 != used {
		t.Errorf("after a request larger than the budget: %d entries of %d bytes, want %d of %d", n2, used2, n, used)
	}
	m.Close()
	if n, used := m.prompts.stats(); n != 0 || used != 0 {
		t.Errorf("after Close: %d entries of %d bytes", n, used)
	}
}

// TestPromptCacheFailures: a generation that fails, or is cancelled before
// its prompt is in the cache, leaves nothing; one cancelled while decoding
// leaves what it holds, and that answers like a fresh cache.
func TestPromptCacheFailures(t *testing.T) {
	m := loadModel(t, "tiny512", Options{PromptCacheMB: 64})
	off := loadModel(t, "tiny512", Options{})
	req := Request{Messages: []Message{UserMessage("Tell me a story.", pngImage(t, 300, 200, 0, false))}, GenerateOptions: GenerateOptions{MaxNewTokens: 12}}
	boom := errors.New("client went away")
	if _, err := m.Generate(context.Background(), req, func(Token) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("callback error: %v", err)
	}
	if n, _ := m.prompts.stats(); n != 0 {
		t.Fatalf("a failed generation left %d entries", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Generate(ctx, req, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled before the prompt: %v", err)
	}
	if n, _ := m.prompts.stats(); n != 0 {
		t.Fatalf("a generation cancelled before its prompt left %d entries", n)
	}
	ctx, cancel = context.WithCancel(context.Background())
	seen := 0
	part, err := m.Generate(ctx, req, func(Token) error {
		if seen++; seen == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled while decoding: %v", err)
	}
	if n, used := m.prompts.stats(); n != 1 || used != int64(cachedTokens(part))*kvBytesPerToken(m) {
		t.Fatalf("cancelled after %d tokens: %d entries of %d bytes, want its %d tokens", len(part.Tokens), n, used, cachedTokens(part))
	}
	got, want := greedy(t, m, req), greedy(t, off, req)
	if !slices.Equal(got.Tokens, want.Tokens) || got.ReusedTokens != len(got.PromptTokens)-1 {
		t.Errorf("after a cancelled generation: %v (reused %d), without the cache %v", got.Tokens, got.ReusedTokens, want.Tokens)
	}
}

// TestPromptCacheConcurrent (run it with -race): requests that share a
// cached prefix run at once, each on its own copy, and each answers as
// alone; a Chat starts from the cache and gives its cache back on Close.
func TestPromptCacheConcurrent(t *testing.T) {
	m := loadModel(t, "tiny512", Options{PromptCacheMB: 64})
	off := loadModel(t, "tiny512", Options{})
	photo := pngImage(t, 300, 200, 0, false)
	sys := TextMessage(System, "Be brief.")
	reqs := []Request{
		{Messages: []Message{sys, UserMessage("What is it?", photo)}, GenerateOptions: GenerateOptions{MaxNewTokens: 10}},
		{Messages: []Message{sys, UserMessage("Where is it?", photo)}, GenerateOptions: GenerateOptions{MaxNewTokens: 10}},
		{Messages: []Message{sys, UserMessage("Why is it?", photo)}, GenerateOptions: GenerateOptions{MaxNewTokens: 10}},
		{Messages: []Message{sys, UserMessage("Who is it?", photo)}, GenerateOptions: GenerateOptions{MaxNewTokens: 10}},
	}
	want := make([][]int64, len(reqs))
	for i, r := range reqs {
		want[i] = greedy(t, off, r).Tokens
	}
	warm := greedy(t, m, Request{Messages: []Message{sys, UserMessage("Hm?", photo)}})
	prefix := slices.Index(warm.PromptTokens, m.cfg.Config.ImageTokenID) + warm.ImageTokens
	for round := range 2 {
		var wg sync.WaitGroup
		got := make([]*Result, len(reqs))
		errs := make([]error, len(reqs))
		for i, r := range reqs {
			wg.Go(func() { got[i], errs[i] = m.Generate(context.Background(), r, nil) })
		}
		wg.Wait()
		for i := range reqs {
			if errs[i] != nil {
				t.Fatalf("round %d request %d: %v", round, i, errs[i])
			}
			if !slices.Equal(got[i].Tokens, want[i]) {
				t.Errorf("round %d request %d: %v concurrently from the cache, %v alone without", round, i, got[i].Tokens, want[i])
			}
			if got[i].ReusedTokens < prefix {
				t.Errorf("round %d request %d reused %d tokens, want the %d up to the question", round, i, got[i].ReusedTokens, prefix)
			}
		}
	}
	chat := m.NewChat()
	chat.SetSystem("Be brief.")
	r, err := chat.Send(context.Background(), UserMessage("What is it?", photo), GenerateOptions{MaxNewTokens: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Tokens, want[0]) || r.ReusedTokens != len(r.PromptTokens)-1 {
		t.Errorf("a Chat's first turn: %v reusing %d of %d prompt tokens, want %v from the cache", r.Tokens, r.ReusedTokens, len(r.PromptTokens), want[0])
	}
	follow := Request{Messages: append(chat.History(), UserMessage("And then?")), GenerateOptions: GenerateOptions{MaxNewTokens: 10}}
	follow.Messages = append([]Message{sys}, follow.Messages...)
	chat.Close()
	got := greedy(t, m, follow)
	if fresh := greedy(t, off, follow); !slices.Equal(got.Tokens, fresh.Tokens) || got.ReusedTokens < len(r.PromptTokens) {
		t.Errorf("after the Chat closed, its follow-up: %v reusing %d tokens; without the cache %v", got.Tokens, got.ReusedTokens, fresh.Tokens)
	}
}

// BenchmarkFollowUp is the time to first token of a follow-up question
// about a one-tile photo whose features are cached, with and without the
// prompt cache: another question with the same system prompt and photo,
// and the conversation sent back with one more question (its first turn,
// 16 tokens, is not timed). SNAPVLM_BENCH_MODEL picks the model.
func BenchmarkFollowUp(b *testing.B) {
	photo := pngImage(b, 640, 480, 0, false)
	sys := TextMessage(System, "You are a helpful assistant that answers questions about photos accurately and briefly.")
	ask := func(i int) Message {
		return UserMessage(fmt.Sprintf("Question %d: what is in the middle of this photo?", i), photo)
	}
	for _, mb := range []int{0, 256} {
		m := benchModelWith(b, Options{PromptCacheMB: mb})
		greedyB := func(b *testing.B, msgs []Message, n int) *Result {
			res, err := m.Generate(context.Background(), Request{Messages: msgs, GenerateOptions: GenerateOptions{MaxNewTokens: n, NoSplit: true}}, nil)
			if err != nil {
				b.Fatal(err)
			}
			return res
		}
		greedyB(b, []Message{sys, ask(-1)}, 1) // the photo's features
		name := "cache=off"
		if mb > 0 {
			name = fmt.Sprintf("cache=%dMB", mb)
		}
		report := func(b *testing.B, ttft, prefill time.Duration, reused, prompt int) {
			n := float64(b.N)
			b.ReportMetric(float64(ttft.Microseconds())/1e3/n, "ttft-ms")
			b.ReportMetric(float64(prefill.Microseconds())/1e3/n, "prefill-ms")
			b.ReportMetric(float64(reused)/n, "reused-tokens")
			b.ReportMetric(float64(prompt)/n, "prompt-tokens")
		}
		b.Run(name+"/other-question", func(b *testing.B) {
			var ttft, prefill time.Duration
			reused, prompt := 0, 0
			for i := 0; i < b.N; i++ {
				res := greedyB(b, []Message{sys, ask(i)}, 1)
				ttft += res.Timings.FirstToken
				prefill += res.Timings.Prefill
				reused += res.ReusedTokens
				prompt += len(res.PromptTokens)
			}
			report(b, ttft, prefill, reused, prompt)
		})
		b.Run(name+"/conversation", func(b *testing.B) {
			var ttft, prefill time.Duration
			reused, prompt := 0, 0
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				first := greedyB(b, []Message{sys, ask(1000 + i)}, 16)
				b.StartTimer()
				res := greedyB(b, []Message{sys, ask(1000 + i), TextMessage(Assistant, first.Text), UserMessage("And why?")}, 1)
				ttft += res.Timings.FirstToken
				prefill += res.Timings.Prefill
				reused += res.ReusedTokens
				prompt += len(res.PromptTokens)
			}
			report(b, ttft, prefill, reused, prompt)
		})
	}
}
