package constrain

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/snapvlm/snapvlm/internal/bpetrain"
	"github.com/snapvlm/snapvlm/internal/testtok"
	"github.com/snapvlm/snapvlm/internal/tokenizer"
)

// testVocab is a tokenizer with its Vocab.
type testVocab struct {
	name string
	tok  *tokenizer.Tokenizer
	v    *Vocab
	end  int64
	byID map[string]int64 // token bytes → id
}

func vocabOf(t testing.TB, name string, tok *tokenizer.Tokenizer) *testVocab {
	t.Helper()
	end, ok := tok.TokenToID("<end_of_utterance>")
	if !ok {
		t.Fatal("no <end_of_utterance>")
	}
	tokens := make([][]byte, tok.VocabSize())
	byID := map[string]int64{}
	for id := range tokens {
		b, added, ok := tok.TokenBytes(int64(id))
		if ok && !added {
			tokens[id] = b
			byID[string(b)] = int64(id)
		}
	}
	v, err := NewVocab(tokens, []int64{end})
	if err != nil {
		t.Fatal(err)
	}
	return &testVocab{name: name, tok: tok, v: v, end: end, byID: byID}
}

var (
	genOnce sync.Once
	genTok  *tokenizer.Tokenizer
	genErr  error
)

// vocabs returns the generated tokenizer (always) and the real one (when
// present).
func vocabs(t *testing.T) []*testVocab {
	t.Helper()
	genOnce.Do(func() {
		var data []byte
		if data, genErr = bpetrain.Train(bpetrain.Corpus, 512); genErr == nil {
			genTok, genErr = tokenizer.FromJSON(data)
		}
	})
	if genErr != nil {
		t.Fatal(genErr)
	}
	out := []*testVocab{vocabOf(t, "generated", genTok)}
	if real := realVocab(t, false); real != nil {
		out = append(out, real)
	}
	return out
}

var (
	realOnce sync.Once
	realV    *testVocab
)

// realVocab returns the real SmolVLM vocabulary; without it the test is
// skipped if must, else nil is returned (testtok decides for CI).
func realVocab(t testing.TB, must bool) *testVocab {
	t.Helper()
	if _, err := testtok.Find(); err != nil && !must && !testtok.Required() {
		t.Logf("real tokenizer absent, testing the generated one only: %v", err)
		return nil
	}
	p := testtok.Path(t)
	realOnce.Do(func() {
		tok, err := tokenizer.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		realV = vocabOf(t, "real", tok)
	})
	return realV
}

func compile(t testing.TB, s Spec, v *Vocab) *Constraint {
	t.Helper()
	c, err := Compile(s, v)
	if err != nil {
		t.Fatalf("%v %q: %v", s.Kind, s.Source, err)
	}
	return c
}

// feed accepts text token by token (the tokenizer's own encoding) and
// reports whether every token was allowed.
func feed(tv *testVocab, m *Matcher, text string) bool {
	for _, id := range tv.tok.Encode(text) {
		if !m.Allowed(id) {
			return false
		}
		if err := m.Accept(id); err != nil {
			return false
		}
	}
	return true
}

// TestTokens checks single tokens that span several JSON syntax elements,
// escapes and numbers against the JSON grammar (RFC 8259). With the real
// vocabulary the candidate is one token where the vocabulary has it (the
// test logs which); otherwise it is the tokenizer's own encoding.
func TestTokens(t *testing.T) {
	obj := Spec{Kind: JSONObject}
	val := Spec{Kind: JSONValue}
	cases := []struct {
		spec       Spec
		prefix     string
		next       string
		ok         bool
		singleReal bool // the real vocabulary has next as one token
	}{
		{obj, `{"a`, `":`, true, true},
		{obj, `{"a`, `",`, false, true},
		{obj, `{"a":1`, `},`, false, true},
		{obj, `{"a":[1`, `]}`, true, true},
		{obj, `{"a":"x`, `"}`, true, true},
		{obj, `{"a":"x`, `\"`, true, true},
		{obj, `{"a":"x`, `\\`, true, true},
		{obj, `{"a":"x`, `\n`, true, false}, // backslash n: an escape
		{obj, `{"a":"x`, "\n", false, true}, // a raw newline in a string
		{obj, `{"a":"x`, `\u`, true, false},
		{obj, `{"a":"x\u`, `00e9`, true, false},
		{obj, `{"a":"x\u`, `d800`, false, false}, // surrogates are written as UTF-8
		{obj, `{"a":"x\u00`, `g`, false, true},
		{obj, `{"a":"x`, `\q`, false, false},
		{obj, `{"a":"x`, `é`, true, false},
		{obj, `{"a":"x`, "\xe6", true, true},  // the first byte of 日: partial UTF-8
		{obj, `{"a":"x`, "\x97", false, true}, // a lone continuation byte
		{obj, `{"a":`, "\xe6", false, true},   // outside a string
		{obj, ``, `[`, false, true},           // JSON object mode: no arrays at the top
		{obj, ``, ` {"`, true, true},
		{obj, `{`, `}`, true, true},
		{obj, `{"a":`, `-0`, true, false},
		{obj, `{"a":`, `01`, false, false},
		{obj, `{"a":0`, `1`, false, true},
		{obj, `{"a":1`, `e5`, true, false},
		{obj, `{"a":1`, `.`, true, true},
		{obj, `{"a":1.`, `}`, false, true},
		{obj, `{"a":`, `.5`, false, false},
		{obj, `{"a":`, `+1`, false, false},
		{obj, `{"a":1e`, `+5`, true, false},
		{obj, `{"a":`, `tru`, true, false},
		{obj, `{"a":`, `True`, false, true},
		{obj, `{"a":1`, `,"`, true, true},
		{obj, `{"a":1,`, `}`, false, true}, // no trailing comma
		{obj, `{"a":1`, `  `, false, true}, // at most one space
		{obj, `{"a":1`, "\n    ", true, true},
		{val, ``, `-0`, true, false},
		{val, ``, `"\u00e9"`, true, false},
		{val, `[`, `]`, true, true},
		{val, `[1`, `,]`, false, false},
	}
	for _, tv := range vocabs(t) {
		cache := map[Spec]*Constraint{}
		for _, tc := range cases {
			c := cache[tc.spec]
			if c == nil {
				c = compile(t, tc.spec, tv.v)
				cache[tc.spec] = c
			}
			m := c.Matcher()
			if !feed(tv, m, tc.prefix) {
				t.Fatalf("%s: prefix %q rejected", tv.name, tc.prefix)
			}
			var got bool
			if id, ok := tv.byID[tc.next]; ok {
				got = m.Allowed(id)
				// Allowed must agree with the mask.
				logits := make([]float32, tv.v.Size())
				m.Mask(logits)
				if masked := !math.IsInf(float64(logits[id]), -1); masked != got {
					t.Errorf("%s: %q after %q: Allowed %v but mask %v", tv.name, tc.next, tc.prefix, got, masked)
				}
			} else {
				if tv.name == "real" && tc.singleReal {
					t.Errorf("real vocabulary has no single token %q", tc.next)
				}
				got = feed(tv, m, tc.next)
			}
			if got != tc.ok {
				t.Errorf("%s: %q after %q: allowed %v, want %v", tv.name, tc.next, tc.prefix, got, tc.ok)
			}
		}
	}
}

// TestEndOnlyWhenComplete checks that the end token is allowed exactly
// after complete JSON texts; encoding/json is the reference.
func TestEndOnlyWhenComplete(t *testing.T) {
	texts := []string{
		`{}`, `{`, `{"a":1}`, `{"a":1`, `{"a":-0}`, `{"a":1e5}`, `{"a":1E+05}`, `{"a":"x\"}`,
		`{"a":"x\\"}`, `{"a":"\u00e9"}`, `{"a":[1,2,{"b":null}]}`, `{"a":[1,2,{"b":null}]`,
		`{"a":true,"b":false}`, `{"a":tru`, ` {"a":{}}`, `{"a":"é日本"}`, `{"a":0.5}`,
	}
	for _, tv := range vocabs(t) {
		c := compile(t, Spec{Kind: JSONObject}, tv.v)
		for _, text := range texts {
			m := c.Matcher()
			if !feed(tv, m, text) {
				t.Errorf("%s: %q rejected as a prefix", tv.name, text)
				continue
			}
			want := json.Valid([]byte(text))
			if got := m.Allowed(tv.end); got != want {
				t.Errorf("%s: end after %q allowed %v, want %v (json.Valid)", tv.name, text, got, want)
			}
			if m.Complete() != want {
				t.Errorf("%s: Complete(%q) = %v, want %v", tv.name, text, m.Complete(), want)
			}
			if c.Matches([]byte(text)) != want {
				t.Errorf("%s: Matches(%q) = %v, want %v", tv.name, text, !want, want)
			}
		}
	}
}

// TestDone checks that generation may stop without an end token exactly
// where nothing else could follow.
func TestDone(t *testing.T) {
	tv := vocabs(t)[0]
	cases := []struct {
		spec Spec
		text string
		done bool
	}{
		{Spec{Kind: JSONObject}, `{"a":1}`, true},
		{Spec{Kind: JSONObject}, `{"a":1`, false},
		{Spec{Kind: JSONValue}, `12`, false}, // more digits may follow
		{Spec{Kind: JSONValue}, `"x"`, true},
		{Spec{Kind: Schema, Source: `{"enum":["a","ab"]}`}, `"a"`, true},
		{Spec{Kind: Regex, Source: `ab?`}, `a`, false},
		{Spec{Kind: Regex, Source: `ab?`}, `ab`, true},
	}
	for _, tc := range cases {
		m := compile(t, tc.spec, tv.v).Matcher()
		if !feedBytes(tv, m, []byte(tc.text)) {
			t.Fatalf("%q rejected", tc.text)
		}
		if m.Done() != tc.done {
			t.Errorf("%v %q: Done %v, want %v", tc.spec.Kind, tc.text, m.Done(), tc.done)
		}
	}
}

// TestJSONAgainstEncodingJSON compares whole-text acceptance with
// encoding/json on texts inside the whitespace and digit bounds.
func TestJSONAgainstEncodingJSON(t *testing.T) {
	texts := []string{
		`0`, `-0`, `01`, `-01`, `1.5`, `1.`, `.5`, `1e5`, `1e+5`, `1e-5`, `1e`, `-`, `--1`, `+1`,
		`"a"`, `"a`, `"\"`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\x"`, `"\u12"`, `"\u12g4"`, `"\u00E9"`,
		"\"tab\there\"", `[]`, `[1,]`, `[,1]`, `[1 ,2]`, `{"a" : 1}`, `{"a":1,}`, `{1:2}`, `{"a"}`,
		`true`, `tru`, `null`, `nul`, `false`, `[true,false,null]`, `[[[]]]`, `{"a":{"b":{"c":[]}}}`,
		"\"\xff\"", "\"\xc3\xa9\"", "\"\xed\xa0\x80\"", `"日本語"`, "[\n  1,\n  2\n]",
	}
	for _, tv := range vocabs(t) {
		c := compile(t, Spec{Kind: JSONValue}, tv.v)
		for _, text := range texts {
			m := c.Matcher()
			got := feedBytes(tv, m, []byte(text)) && m.Complete()
			// RFC 8259 texts are UTF-8; json.Valid does not check that.
			if want := json.Valid([]byte(text)) && utf8.ValidString(text); got != want {
				t.Errorf("%s: %q accepted %v, encoding/json says valid %v", tv.name, text, got, want)
			}
		}
	}
}

// feedBytes accepts b one single-byte token at a time (every byte-level
// vocabulary has them), so that invalid UTF-8 can be tested too.
func feedBytes(tv *testVocab, m *Matcher, b []byte) bool {
	for _, c := range b {
		id, ok := tv.byID[string([]byte{c})]
		if !ok || m.Accept(id) != nil {
			return false
		}
	}
	return true
}

// testSchemas are the schemas of testdata/schemas: all but "recursive"
// are bounded (every output is at most a few hundred bytes), so random
// generation always completes. The root package's model tests use them too.
func testSchemas(t testing.TB) []struct{ name, schema string } {
	t.Helper()
	files, err := filepath.Glob("testdata/schemas/*.json")
	if err != nil || len(files) < 10 {
		t.Fatalf("testdata/schemas: %d files, %v", len(files), err)
	}
	var out []struct{ name, schema string }
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, struct{ name, schema string }{strings.TrimSuffix(filepath.Base(f), ".json"), string(b)})
	}
	return out
}

// validator compiles schema with the library validator, format assertions
// on.
func validator(t testing.TB, schema string) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("test.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("test.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// walk generates one output by drawing uniformly among the allowed tokens
// (a model that knows nothing), up to limit tokens. It returns the text and
// whether the end token was drawn.
func walk(t testing.TB, tv *testVocab, c *Constraint, rng *rand.Rand, limit int) (string, bool) {
	t.Helper()
	m := c.Matcher()
	logits := make([]float32, tv.v.Size()+7) // a decoder may pad its logits
	var allowed []int64
	for range limit {
		clear(logits)
		if !m.Mask(logits) {
			t.Fatalf("%s: no token allowed after %q", tv.name, m.Output())
		}
		allowed = allowed[:0]
		for id, l := range logits {
			if !math.IsInf(float64(l), -1) {
				allowed = append(allowed, int64(id))
			}
		}
		// Prefer ending or short tokens half of the time so that walks
		// finish; the rest is uniform over everything allowed.
		id := allowed[rng.IntN(len(allowed))]
		if rng.IntN(2) == 0 {
			for _, a := range allowed {
				if a == tv.end {
					id = a
				}
			}
		}
		if err := m.Accept(id); err != nil {
			t.Fatalf("%s: %v", tv.name, err)
		}
		if id == tv.end {
			return string(m.Output()), true
		}
	}
	return string(m.Output()), false
}

// TestRandomWalksValidate draws outputs uniformly among the allowed tokens
// for every test schema and checks each with the library validator.
func TestRandomWalksValidate(t *testing.T) {
	for _, tv := range vocabs(t) {
		for _, ts := range testSchemas(t) {
			t.Run(tv.name+"/"+ts.name, func(t *testing.T) {
				c := compile(t, Spec{Kind: Schema, Source: ts.schema}, tv.v)
				val := validator(t, ts.schema)
				maxLen, bounded := c.MaxBytes()
				if !bounded && ts.name != "recursive" {
					t.Fatalf("schema %s is unbounded", ts.name)
				}
				limit := 2000
				if bounded {
					limit = maxLen + 1 // every token has at least one byte
				}
				rng := rand.New(rand.NewPCG(1, uint64(len(ts.name))))
				for i := range 30 {
					text, done := walk(t, tv, c, rng, limit)
					if !done {
						t.Fatalf("walk %d did not finish in %d tokens: %q", i, limit, text)
					}
					inst, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
					if err != nil {
						t.Fatalf("walk %d: %q does not parse: %v", i, text, err)
					}
					if err := val.Validate(inst); err != nil {
						t.Fatalf("walk %d: %q does not validate: %v", i, text, err)
					}
				}
			})
		}
	}
}

// TestRandomWalksJSON checks JSON mode: finished outputs parse, cut ones
// are reported incomplete.
func TestRandomWalksJSON(t *testing.T) {
	for _, tv := range vocabs(t) {
		for _, kind := range []Kind{JSONObject, JSONValue} {
			c := compile(t, Spec{Kind: kind}, tv.v)
			rng := rand.New(rand.NewPCG(2, uint64(kind)))
			finished := 0
			for range 40 {
				text, done := walk(t, tv, c, rng, 60)
				var v any
				err := json.Unmarshal([]byte(text), &v)
				if done {
					finished++
					if err != nil {
						t.Errorf("%s %v: finished output %q does not parse: %v", tv.name, kind, text, err)
					}
					if _, isObj := v.(map[string]any); kind == JSONObject && !isObj {
						t.Errorf("%s: %q is not an object", tv.name, text)
					}
				} else if json.Valid([]byte(text)) {
					m := c.Matcher()
					feedBytes(tv, m, []byte(text))
					if !m.Complete() {
						t.Errorf("%s: %q parses but the matcher says incomplete", tv.name, text)
					}
				}
			}
			t.Logf("%s %v: %d/40 finished within 60 tokens", tv.name, kind, finished)
		}
	}
}

func TestRegex(t *testing.T) {
	for _, tv := range vocabs(t) {
		for _, re := range []string{`[0-9]{3}-[A-Z][a-z]{1,5}`, `(yes|no|maybe)`, `^\d+(\.\d\d)?$`, `(?i)hello`, `[^a-z]{2}`, `é{2}|日本`} {
			c := compile(t, Spec{Kind: Regex, Source: re}, tv.v)
			anchored := regexp.MustCompile(`^(?:` + strings.TrimSuffix(strings.TrimPrefix(re, "^"), "$") + `)$`)
			rng := rand.New(rand.NewPCG(3, 4))
			for range 20 {
				text, done := walk(t, tv, c, rng, 40)
				if re == `^\d+(\.\d\d)?$` && !done {
					continue // unbounded
				}
				if !done || !anchored.MatchString(text) {
					t.Errorf("%s: %q: output %q (finished %v) does not match", tv.name, re, text, done)
				}
			}
		}
	}
}

func TestSchemaErrors(t *testing.T) {
	tv := vocabs(t)[0]
	cases := []struct{ schema, want string }{
		{`{"type":"string","minLength":3,"maxLength":2}`, "nothing can match"},
		{`{"type":"object","properties":{"a":{"type":"string"}},"patternProperties":{"x":{}}}`, `"patternProperties"`},
		{`{"oneOf":[{"type":"string"}]}`, `"oneOf"`},
		{`{"type":"number","minimum":0}`, `"minimum" on numbers`},
		{`{"type":"string","format":"ipv4"}`, `format "ipv4"`},
		{`{"type":"string","pattern":"\\bword"}`, "word boundaries"},
		{`{"type":"string","pattern":"(?=x)"}`, "regex"},
		{`{"$ref":"#/$defs/missing"}`, "missing"},
		{`{"$defs":{"a":{"type":"object","properties":{"a":{"$ref":"#/$defs/a"}},"required":["a"]}},"$ref":"#/$defs/a"}`, "never be completed"},
		{`{"type":"object","required":["x"]}`, `required property "x"`},
		{`{"enum":[1,2],"type":"string"}`, "no enum/const value"},
		{`{"type":"integer","minimum":5,"maximum":4}`, "no integer"},
		{`false`, "nothing can match"},
		{`{"type":"strin"}`, "json schema"},
		{`{"type":"string","maxLength":1000000}`, "not supported"},
	}
	for _, tc := range cases {
		_, err := Compile(Spec{Kind: Schema, Source: tc.schema}, tv.v)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.schema, err, tc.want)
		}
	}
}

// TestIntRange checks the integer-range grammar on every integer near the
// bounds against arithmetic.
func TestIntRange(t *testing.T) {
	tv := vocabs(t)[0]
	for _, r := range [][2]int64{{0, 0}, {0, 9}, {1, 10}, {-5, 5}, {-120, -7}, {7, 1234}, {-1000, 99999}, {19, 91}, {100, 100}} {
		c := compile(t, Spec{Kind: Schema, Source: fmt.Sprintf(`{"type":"integer","minimum":%d,"maximum":%d}`, r[0], r[1])}, tv.v)
		for x := r[0] - 30; x <= r[1]+30; x++ {
			for _, text := range []string{fmt.Sprint(x), "0" + fmt.Sprint(x), "+" + fmt.Sprint(x)} {
				m := c.Matcher()
				got := feedBytes(tv, m, []byte(text)) && m.Complete()
				want := text == fmt.Sprint(x) && x >= r[0] && x <= r[1]
				if got != want {
					t.Errorf("range %v: %q accepted %v, want %v", r, text, got, want)
				}
			}
		}
	}
}

// TestCacheConcurrent runs walks over one cached Constraint from several
// goroutines (run with -race).
func TestCacheConcurrent(t *testing.T) {
	tv := vocabs(t)[0]
	cache := NewCache(tv.v, 2)
	schemas := testSchemas(t)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := cache.Get(Spec{Kind: Schema, Source: schemas[g%2].schema})
			if err != nil {
				t.Error(err)
				return
			}
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for range 5 {
				walk(t, tv, c, rng, 500)
			}
		}()
	}
	wg.Wait()
	a, _ := cache.Get(Spec{Kind: Schema, Source: schemas[0].schema})
	b, _ := cache.Get(Spec{Kind: Schema, Source: schemas[0].schema})
	if a != b {
		t.Error("the cache compiled the same schema twice")
	}
}

// TestReset lowers the automaton's limits so that it is dropped and rebuilt
// many times during walks, which must still validate.
func TestReset(t *testing.T) {
	tv := vocabs(t)[0]
	schemas := testSchemas(t)
	for _, ts := range schemas[:3] {
		c := compile(t, Spec{Kind: Schema, Source: ts.schema}, tv.v)
		c.maxStates, c.maxMasks = 20, 2
		val := validator(t, ts.schema)
		rng := rand.New(rand.NewPCG(5, 6))
		for range 5 {
			text, done := walk(t, tv, c, rng, 2000)
			inst, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
			if !done || err != nil || val.Validate(inst) != nil {
				t.Fatalf("%s: %q (finished %v)", ts.name, text, done)
			}
		}
		if c.gen == 0 {
			t.Errorf("%s: the automaton was never reset", ts.name)
		}
	}
}
