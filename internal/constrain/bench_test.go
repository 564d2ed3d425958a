package constrain

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time: on a shared machine it
// is steadier than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchText is an answer to the receipt schema, tokenized as a model would
// write it.
const benchText = `{"merchant": "Café de la Gare", "date": "2024-03-15", "currency": "EUR", "items": [{"name": "Croissant", "quantity": 2, "price": 1.8}, {"name": "Grand crème", "quantity": 1, "price": 3.5}], "total": 7.1, "payment": "card", "receipt_number": "A-10293"}`

// BenchmarkStep measures the constraint's cost per generated token (Mask
// over the whole vocabulary, then Accept) along benchText with the real
// vocabulary. "cold" compiles a new Constraint each iteration (first use of
// a schema); "warm" reuses one, as a cached schema is.
func BenchmarkStep(b *testing.B) {
	tv := realVocab(b, true)
	schema, err := os.ReadFile("../../examples/receipt.schema.json")
	if err != nil {
		b.Fatal(err)
	}
	ids := tv.tok.Encode(benchText)
	logits := make([]float32, tv.v.Size())
	for _, sc := range []struct {
		name string
		spec Spec
	}{{"json", Spec{Kind: JSONObject}}, {"schema", Spec{Kind: Schema, Source: string(schema)}}} {
		run := func(b *testing.B, c *Constraint) {
			m := c.Matcher()
			for _, id := range ids {
				m.Mask(logits)
				if err := m.Accept(id); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.Run(sc.name+"/cold", func(b *testing.B) {
			cpu := cpuTime()
			for b.Loop() {
				run(b, compile(b, sc.spec, tv.v))
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ids))/1e3, "µs/token")
			b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N*len(ids))/1e3, "cpu-µs/token")
		})
		b.Run(sc.name+"/warm", func(b *testing.B) {
			c := compile(b, sc.spec, tv.v)
			run(b, c)
			cpu := cpuTime()
			for b.Loop() {
				run(b, c)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ids))/1e3, "µs/token")
			b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N*len(ids))/1e3, "cpu-µs/token")
		})
	}
}
