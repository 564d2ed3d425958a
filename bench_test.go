package snapvlm

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/snapvlm/snapvlm/internal/decoder"
	"github.com/snapvlm/snapvlm/internal/embed"
)

// benchModel is SNAPVLM_BENCH_MODEL (for example a real256m test model or a
// downloaded SmolVLM) or the generated tiny512.
func benchModel(b *testing.B) *Model {
	b.Helper()
	return benchModelWith(b, Options{})
}

// benchModelWith loads the benchmark model with opts (its Dtype from
// SNAPVLM_BENCH_DTYPE).
func benchModelWith(b *testing.B, opts Options) *Model {
	b.Helper()
	dir := os.Getenv("SNAPVLM_BENCH_MODEL")
	if dir == "" {
		dir = modelDir(b, "tiny512")
	}
	opts.Dtype = os.Getenv("SNAPVLM_BENCH_DTYPE")
	opts.DecoderInt8 = opts.DecoderInt8 || os.Getenv("SNAPVLM_BENCH_DECODER_INT8") == "1"
	if n, err := strconv.Atoi(os.Getenv("SNAPVLM_BENCH_THREADS")); err == nil {
		opts.Threads = n
	}
	m, err := Load(context.Background(), dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}

// benchPrompt embeds n synthetic text tokens.
func benchPrompt(b *testing.B, m *Model, n int) ([]int64, []float32) {
	b.Helper()
	ids := make([]int64, n)
	span := max(1, min(1000, m.dec.Vocab()-100)) // within the tiny models' vocabulary too
	for i := range ids {
		ids[i] = int64(100 + i%span)
	}
	embeds, err := m.emb.Embed(context.Background(), ids)
	if err != nil {
		b.Fatal(err)
	}
	return ids, embeds
}

// BenchmarkDecodeStep measures one decoder step (embed the token, run the
// decoder with the cache, read the last logits row) at a fixed context of
// 81 tokens (a short prompt) and 876 (a photo split into 3×4 tiles), with
// the decoder's attention as exported (plain) and rewritten to attend on
// the kv heads, with ONNX Runtime's kernel (gqa-ort) and snapvlm's (gqa);
// allocs/op shows nothing grows with the sequence.
func BenchmarkDecodeStep(b *testing.B) {
	attns := []string{"plain", "gqa-ort", "gqa"}
	models := map[string]*Model{}
	for _, attn := range attns {
		models[attn] = benchModelWith(b, Options{PlainAttention: attn == "plain", OrtAttention: attn == "gqa-ort"})
	}
	for _, n := range []int{81, 876} {
		for _, attn := range attns {
			b.Run(fmt.Sprintf("context=%d/attention=%s", n, attn), func(b *testing.B) {
				benchDecodeStep(b, models[attn], n)
			})
		}
	}
}

// benchState prefills n synthetic tokens into a new decoder state with room
// for one more, and returns it with an embedding step for the next token;
// both are closed when the benchmark ends.
func benchState(b *testing.B, m *Model, n int) (*decoder.State, *embed.Step) {
	b.Helper()
	_, embeds := benchPrompt(b, m, n)
	st, err := m.dec.NewState(n+1, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if _, err := st.Prefill(context.Background(), embeds); err != nil {
		b.Fatal(err)
	}
	step, err := m.emb.NewStep()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(step.Close)
	return st, step
}

func benchDecodeStep(b *testing.B, m *Model, n int) {
	ctx := context.Background()
	st, step := benchState(b, m, n)
	b.ReportAllocs()
	b.ResetTimer()
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		c0, _ := processCPU()
		if err := step.Run(ctx, 42); err != nil {
			b.Fatal(err)
		}
		if _, err := st.Step(ctx, step.Out); err != nil {
			b.Fatal(err)
		}
		c1, _ := processCPU()
		cpu += c1 - c0
		b.StopTimer()
		if err := st.Truncate(n); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
	// With SNAPVLM_BENCH_THREADS=1 (no spinning worker threads) the CPU
	// time per step measures the step's work on a loaded machine too.
	if _, ok := processCPU(); ok {
		b.ReportMetric(cpu.Seconds()*1e3/float64(b.N), "cpu-ms/op")
	}
}

// BenchmarkFusedDecodeStep compares a decode step of the rewritten decoder
// with its matmuls fused (the default: onnx.FuseIntegerMatMuls,
// onnx.FuseMatMulNBits) and without, alternating one step of each, so the
// drift of a shared machine falls on both alike; it reports each one's ms
// per step and their ratio. Run it with SNAPVLM_BENCH_THREADS=1: with more
// threads the idle session's workers spin while the other runs, and on a
// small machine that contention, not the graphs, sets the times.
func BenchmarkFusedDecodeStep(b *testing.B) {
	alternateSteps(b, [2]*Model{benchModelWith(b, Options{}), benchModelWith(b, Options{unfused: true})}, [2]string{"fused", "unfused"})
}

// BenchmarkKVCacheDecodeStep compares a decode step with a float16 cache
// and with a float32 one (Options.KVCache) the way BenchmarkFusedDecodeStep
// compares fusions, one step of each in turn.
func BenchmarkKVCacheDecodeStep(b *testing.B) {
	alternateSteps(b, [2]*Model{benchModelWith(b, Options{KVCache: "f16"}), benchModelWith(b, Options{KVCache: "f32"})}, [2]string{"f16", "f32"})
}

// alternateSteps times decode steps of two models at 81 and 876 tokens of
// context, one step of each in turn, so the drift of a shared machine
// falls on both alike; it reports each one's ms per step and their ratio.
func alternateSteps(b *testing.B, models [2]*Model, names [2]string) {
	ctx := context.Background()
	for _, n := range []int{81, 876} {
		b.Run(fmt.Sprintf("context=%d", n), func(b *testing.B) {
			type run struct {
				st   *decoder.State
				step *embed.Step
				took time.Duration
			}
			runs := make([]*run, len(models))
			for k, m := range models {
				st, step := benchState(b, m, n)
				runs[k] = &run{st: st, step: step}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, r := range runs {
					t0 := time.Now()
					if err := r.step.Run(ctx, 42); err != nil {
						b.Fatal(err)
					}
					if _, err := r.st.Step(ctx, r.step.Out); err != nil {
						b.Fatal(err)
					}
					r.took += time.Since(t0)
					if err := r.st.Truncate(n); err != nil {
						b.Fatal(err)
					}
				}
			}
			ms := func(r *run) float64 { return r.took.Seconds() * 1e3 / float64(b.N) }
			b.ReportMetric(ms(runs[0]), names[0]+"-ms/step")
			b.ReportMetric(ms(runs[1]), names[1]+"-ms/step")
			b.ReportMetric(ms(runs[0])/ms(runs[1]), names[0]+"/"+names[1])
		})
	}
}

// BenchmarkGenerateText is a whole text-only answer of 32 tokens; it
// reports time to first token and decode speed.
func BenchmarkGenerateText(b *testing.B) {
	m := benchModel(b)
	req := Request{Messages: []Message{UserMessage("Write a short poem about the sea.")}, GenerateOptions: GenerateOptions{MaxNewTokens: 32}}
	var ttft, tps float64
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		res, err := m.Generate(context.Background(), req, nil)
		if err != nil {
			b.Fatal(err)
		}
		ttft += res.Timings.FirstToken.Seconds() * 1e3
		tps += res.Timings.DecodeTokensPerSec
	}
	b.ReportMetric(ttft/float64(b.N), "ttft-ms")
	b.ReportMetric(tps/float64(b.N), "decode-tok/s")
}

// BenchmarkPrefill runs a 1,024-token prefill in chunks of several sizes
// with ONNX Runtime's attention kernel (gqa-ort) and snapvlm's (gqa); the
// chunk bounds the logits buffer (chunk x vocab floats).
func BenchmarkPrefill(b *testing.B) {
	for _, attn := range []string{"gqa-ort", "gqa"} {
		m := benchModelWith(b, Options{OrtAttention: attn == "gqa-ort"})
		ctx := context.Background()
		ids, embeds := benchPrompt(b, m, 1024)
		for _, chunk := range []int{128, 256, 512, 1024} {
			b.Run(fmt.Sprintf("attention=%s/chunk%d", attn, chunk), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					st, err := m.dec.NewState(len(ids), chunk)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := st.Prefill(ctx, embeds); err != nil {
						b.Fatal(err)
					}
					st.Close()
				}
				b.ReportMetric(float64(len(ids)*b.N)/b.Elapsed().Seconds(), "tokens/s")
			})
		}
	}
}

// BenchmarkStructured compares a 64-token answer without a constraint, in
// JSON mode and with examples/receipt.schema.json (nested objects, enums,
// a pattern, a date): decode speed, the decoder's time per step and the
// constraint's time per token. Each iteration samples with its own seed,
// so the schema's automaton is partly cold, as for a new request.
func BenchmarkStructured(b *testing.B) {
	m := benchModel(b)
	schema, err := os.ReadFile("examples/receipt.schema.json")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		format string
		schema []byte
	}{{"free", "", nil}, {"json", FormatJSON, nil}, {"schema", "", schema}} {
		b.Run(bc.name, func(b *testing.B) {
			var tps, stepMS, conUS, tokens float64
			seed := uint64(0)
			for b.Loop() {
				seed++
				req := Request{Messages: []Message{UserMessage("Read the receipt and answer in JSON.")},
					GenerateOptions: GenerateOptions{MaxNewTokens: 64, Temperature: 1, Seed: seed, Format: bc.format, Schema: bc.schema}}
				res, err := m.Generate(context.Background(), req, nil)
				if err != nil {
					b.Fatal(err)
				}
				n := float64(len(res.Tokens))
				tokens += n
				tps += res.Timings.DecodeTokensPerSec
				stepMS += (res.Timings.Decode - res.Timings.Constraint).Seconds() * 1e3 / max(n-1, 1)
				conUS += res.Timings.Constraint.Seconds() * 1e6 / n
			}
			b.ReportMetric(tps/float64(b.N), "decode-tok/s")
			b.ReportMetric(stepMS/float64(b.N), "decoder-ms/step")
			b.ReportMetric(conUS/float64(b.N), "constraint-µs/token")
			b.ReportMetric(tokens/float64(b.N), "tokens")
		})
	}
}

// BenchmarkConcurrentStreams runs 1, 2 and 4 text answers of 64 tokens at
// once (greedy, each its own short prompt), each decoding alone and
// decoded together in one batch (Options.Parallel 4), and reports the
// tokens all streams generated per second of wall time, prefill included,
// the decode rate the streams saw each, and how many streams' tokens
// differ from the same prompt's answered alone, one at a time.
func BenchmarkConcurrentStreams(b *testing.B) {
	alone := benchModelWith(b, Options{})
	batched := benchModelWith(b, Options{Parallel: 4})
	if batched.batch == nil {
		b.Fatalf("no batch: %s", batched.FileReasons()[GraphDecoder])
	}
	const streams = 4
	want := make([][]int64, streams)
	for s := range streams {
		res, err := alone.Generate(context.Background(), streamRequest(s), nil)
		if err != nil {
			b.Fatal(err)
		}
		want[s] = res.Tokens
	}
	for _, mode := range []string{"alone", "batched"} {
		m := map[string]*Model{"alone": alone, "batched": batched}[mode]
		for _, n := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("%s/streams=%d", mode, n), func(b *testing.B) { benchStreams(b, m, want[:n]) })
		}
	}
}

func streamRequest(s int) Request {
	return Request{Messages: []Message{UserMessage(fmt.Sprintf("Stream %d: write a long story about the sea.", s))},
		GenerateOptions: GenerateOptions{MaxNewTokens: 64}}
}

func benchStreams(b *testing.B, m *Model, want [][]int64) {
	streams := len(want)
	var tokens, tps, differ float64
	c0, _ := processCPU()
	for b.Loop() {
		var wg sync.WaitGroup
		errs := make([]error, streams)
		res := make([]*Result, streams)
		for s := range streams {
			wg.Go(func() { res[s], errs[s] = m.Generate(context.Background(), streamRequest(s), nil) })
		}
		wg.Wait()
		for s := range streams {
			if errs[s] != nil {
				b.Fatal(errs[s])
			}
			tokens += float64(len(res[s].Tokens))
			tps += res[s].Timings.DecodeTokensPerSec / float64(streams)
			if !slices.Equal(res[s].Tokens, want[s]) {
				differ++
			}
		}
	}
	b.ReportMetric(tokens/b.Elapsed().Seconds(), "total-tok/s")
	b.ReportMetric(tps/float64(b.N), "stream-decode-tok/s")
	b.ReportMetric(tokens/float64(b.N*streams), "tokens/stream")
	b.ReportMetric(differ/float64(b.N), "streams-differing")
	// With SNAPVLM_BENCH_THREADS=1 the tokens per CPU second measure the
	// work per token on a loaded machine too.
	if c1, ok := processCPU(); ok {
		b.ReportMetric(tokens/(c1-c0).Seconds(), "tok/cpu-s")
	}
}

// BenchmarkBatchStep measures one batched decoder step (the decoder only)
// for 1 to 8 sequences of an 81-token and an 876-token context decoded
// together, and reports the tokens per second all rows make.
func BenchmarkBatchStep(b *testing.B) {
	m := benchModel(b)
	ctx := context.Background()
	h := m.emb.Hidden()
	for _, n := range []int{81, 876} {
		_, embeds := benchPrompt(b, m, n)
		for _, rows := range []int{1, 2, 3, 4, 8} {
			b.Run(fmt.Sprintf("context=%d/rows=%d", n, rows), func(b *testing.B) {
				st, err := m.dec.NewState(n, 0)
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				if _, err := st.Prefill(ctx, embeds); err != nil {
					b.Fatal(err)
				}
				batch, err := m.dec.NewBatch(rows, n+1)
				if err != nil {
					b.Fatal(err)
				}
				defer batch.Close()
				slots := make([]int, rows)
				in := make([][]float32, rows)
				for i := range rows {
					if slots[i], err = batch.Join(st); err != nil {
						b.Fatal(err)
					}
					in[i] = embeds[i*h : (i+1)*h]
				}
				b.ReportAllocs()
				b.ResetTimer()
				var cpu time.Duration
				for i := 0; i < b.N; i++ {
					c0, _ := processCPU()
					if _, err := batch.Step(ctx, slots, in); err != nil {
						b.Fatal(err)
					}
					c1, _ := processCPU()
					cpu += c1 - c0
					b.StopTimer()
					for _, s := range slots {
						if err := batch.Leave(s, nil); err != nil {
							b.Fatal(err)
						}
						if _, err := batch.Join(st); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
				}
				b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "tok/s")
				// With SNAPVLM_BENCH_THREADS=1 the CPU time measures the work on
				// a loaded machine too.
				if _, ok := processCPU(); ok {
					b.ReportMetric(cpu.Seconds()*1e3/float64(b.N), "cpu-ms/op")
					b.ReportMetric(float64(b.N*rows)/cpu.Seconds(), "tok/cpu-s")
				}
			})
		}
	}
}

// BenchmarkLoad measures Load of the benchmark model: cold (an empty user
// cache dir, as on the first run ever: the attention rewrite and its probe,
// and ONNX Runtime optimising every graph and saving it), warm (the
// optimised graphs an earlier load saved, loaded without optimising, their
// weights mapped) and uncached (NoGraphCache: every graph optimised again
// from its file). The model files themselves are in the page cache in all
// three. cpu-ms/op is the process's CPU time per load.
func BenchmarkLoad(b *testing.B) {
	dir := os.Getenv("SNAPVLM_BENCH_MODEL")
	if dir == "" {
		dir = modelDir(b, "tiny512")
	}
	opts := Options{Dtype: os.Getenv("SNAPVLM_BENCH_DTYPE")}
	if n, err := strconv.Atoi(os.Getenv("SNAPVLM_BENCH_THREADS")); err == nil {
		opts.Threads = n
	}
	// load loads and closes the model (untimed), returning the CPU time
	// the load took.
	load := func(b *testing.B, o Options) time.Duration {
		c0, _ := processCPU()
		m, err := Load(context.Background(), dir, o)
		if err != nil {
			b.Fatal(err)
		}
		c1, _ := processCPU()
		b.StopTimer()
		m.Close()
		b.StartTimer()
		return c1 - c0
	}
	for _, c := range []struct {
		name         string
		cold, cached bool
	}{{"cold", true, true}, {"warm", false, true}, {"uncached", false, false}} {
		b.Run(c.name, func(b *testing.B) {
			cache := b.TempDir()
			b.Setenv("XDG_CACHE_HOME", cache)
			o := opts
			o.NoGraphCache = !c.cached
			if !c.cold {
				load(b, o) // fills the cache: the attention rewrite, the optimised graphs
			}
			var cpu time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if c.cold {
					b.StopTimer()
					if err := os.RemoveAll(cache); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				cpu += load(b, o)
			}
			b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/load")
			if _, ok := processCPU(); ok {
				b.ReportMetric(cpu.Seconds()*1e3/float64(b.N), "cpu-ms/op")
			}
		})
	}
}
