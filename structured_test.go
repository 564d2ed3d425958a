package snapvlm

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemaFiles are the constrain package's test schemas (all but
// "recursive" bounded).
func schemaFiles(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("internal/constrain/testdata/schemas/*.json")
	if err != nil || len(files) < 10 {
		t.Fatalf("schemas: %d files, %v", len(files), err)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = string(b)
	}
	return out
}

// libValidator compiles a schema with the library validator, format
// assertions on.
func libValidator(t *testing.T, schema string) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("s.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("s.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// structuredSeeds is the sampling side of the test matrix: seed 0 is
// greedy, seeds 1..20 sample at temperature 1.5 so that the random model
// wanders as far as it can.
const structuredSeeds = 20

func structuredRequest(seed int) Request {
	req := Request{Messages: []Message{UserMessage("Answer in JSON.")}}
	if seed > 0 {
		req.Temperature, req.Seed = 1.5, uint64(seed)
	}
	return req
}

// TestStructuredSchemas is the random-weight matrix: for every bounded
// schema, greedy and 20 sampled answers finish within the longest output
// the schema allows and validate with the library validator.
func TestStructuredSchemas(t *testing.T) {
	m := loadModel(t, "tiny512", Options{TextOnly: true})
	start := time.Now()
	n := 0
	for name, schema := range schemaFiles(t) {
		if name == "recursive" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			val := libValidator(t, schema)
			req := structuredRequest(0)
			req.Schema = json.RawMessage(schema)
			c, err := m.constraint(req.GenerateOptions)
			if err != nil {
				t.Fatal(err)
			}
			maxBytes, ok := c.MaxBytes()
			if !ok {
				t.Fatal("schema is unbounded")
			}
			for seed := 0; seed <= structuredSeeds; seed++ {
				req := structuredRequest(seed)
				req.Schema = json.RawMessage(schema)
				// Every token has at least one byte; one more for the end.
				req.MaxNewTokens = maxBytes + 1
				res, err := m.Generate(context.Background(), req, nil)
				if err != nil {
					t.Fatal(err)
				}
				n++
				if res.FinishReason != FinishStop || res.Incomplete {
					t.Fatalf("seed %d: finish %s, incomplete %v after %d tokens: %q", seed, res.FinishReason, res.Incomplete, len(res.Tokens), res.Text)
				}
				inst, err := jsonschema.UnmarshalJSON(strings.NewReader(res.Text))
				if err != nil {
					t.Fatalf("seed %d: %q does not parse: %v", seed, res.Text, err)
				}
				if err := val.Validate(inst); err != nil {
					t.Fatalf("seed %d: %q does not validate: %v", seed, res.Text, err)
				}
			}
		})
	}
	t.Logf("%d generations in %v", n, time.Since(start).Round(time.Millisecond))
}

// TestStructuredUnbounded covers JSON mode and schemas with unbounded
// strings or recursion: an answer that finishes parses (and validates),
// one cut by MaxNewTokens is reported as incomplete.
func TestStructuredUnbounded(t *testing.T) {
	m := loadModel(t, "tiny512", Options{TextOnly: true})
	files := schemaFiles(t)
	cases := []struct {
		name   string
		format string
		schema string
	}{
		{"json mode", FormatJSON, ""},
		{"unbounded strings", "", `{"type":"object","properties":{"title":{"type":"string"},"notes":{"type":"array","items":{"type":"string"}}},"required":["title","notes"]}`},
		{"recursive", "", files["recursive"]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var val *jsonschema.Schema
			if tc.schema != "" {
				val = libValidator(t, tc.schema)
			}
			finished, cut := 0, 0
			for seed := 0; seed <= structuredSeeds; seed++ {
				req := structuredRequest(seed)
				req.Format, req.Schema, req.MaxNewTokens = tc.format, json.RawMessage(tc.schema), 48
				if tc.schema == "" {
					req.Schema = nil
				}
				res, err := m.Generate(context.Background(), req, nil)
				if err != nil {
					t.Fatal(err)
				}
				var v any
				parseErr := json.Unmarshal([]byte(res.Text), &v)
				switch res.FinishReason {
				case FinishStop:
					finished++
					if res.Incomplete || parseErr != nil {
						t.Fatalf("seed %d: finished but incomplete %v / parse error %v: %q", seed, res.Incomplete, parseErr, res.Text)
					}
					if _, ok := v.(map[string]any); !ok {
						t.Fatalf("seed %d: %q is not an object", seed, res.Text)
					}
					if val != nil {
						inst, _ := jsonschema.UnmarshalJSON(strings.NewReader(res.Text))
						if err := val.Validate(inst); err != nil {
							t.Fatalf("seed %d: %q does not validate: %v", seed, res.Text, err)
						}
					}
				case FinishLength:
					cut++
					// An object is complete only at its closing brace, where
					// generation stops; a cut answer never parses.
					if !res.Incomplete || parseErr == nil {
						t.Fatalf("seed %d: cut at %d tokens but incomplete %v, parses %v: %q", seed, len(res.Tokens), res.Incomplete, parseErr == nil, res.Text)
					}
				default:
					t.Fatalf("seed %d: finish %s", seed, res.FinishReason)
				}
			}
			t.Logf("%d finished, %d cut at 48 tokens", finished, cut)
		})
	}
}

// TestStructuredComposes checks stop strings, regexes and errors with
// structured output.
func TestStructuredComposes(t *testing.T) {
	m := loadModel(t, "tiny512", Options{TextOnly: true})
	ctx := context.Background()

	// A stop string cuts the JSON: the answer stops there and is reported
	// incomplete.
	req := structuredRequest(0)
	req.Format, req.Stop, req.MaxNewTokens = FormatJSON, []string{`"`}, 64
	res, err := m.Generate(ctx, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.FinishReason != FinishStop || !res.Incomplete || strings.Contains(res.Text, `"`) {
		t.Errorf("stop string: finish %s, incomplete %v, text %q", res.FinishReason, res.Incomplete, res.Text)
	}

	// A regular expression over the whole answer.
	re := `[A-Z]{2}-[0-9]{3}( [a-z]{1,4})?`
	for seed := 0; seed <= 5; seed++ {
		req := structuredRequest(seed)
		req.Regex, req.MaxNewTokens = re, 32
		res, err := m.Generate(ctx, req, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^(?:`+re+`)$`).MatchString(res.Text) || res.Incomplete {
			t.Errorf("regex seed %d: %q (incomplete %v)", seed, res.Text, res.Incomplete)
		}
	}

	// Streaming gives the same text.
	req = structuredRequest(3)
	req.Format, req.MaxNewTokens = FormatJSON, 40
	var streamed strings.Builder
	res, err = m.Generate(ctx, req, func(tok Token) error { streamed.WriteString(tok.Text); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if streamed.String() != res.Text {
		t.Errorf("streamed %q, result %q", streamed.String(), res.Text)
	}

	for _, tc := range []struct {
		o    GenerateOptions
		want string
	}{
		{GenerateOptions{Format: "yaml"}, `unsupported Format "yaml"`},
		{GenerateOptions{Format: FormatJSON, Regex: "a"}, "at most one"},
		{GenerateOptions{Schema: json.RawMessage(`{"type":"object","properties":{"a":{"type":"string"}},"patternProperties":{}}`)}, `"patternProperties"`},
		{GenerateOptions{Schema: json.RawMessage(`{"type":`)}, "not valid JSON"},
		{GenerateOptions{Regex: `a\bb`}, "word boundaries"},
		{GenerateOptions{Format: FormatJSON, Logits: &constraintProcessor{}}, "cannot be combined"},
	} {
		req := Request{Messages: []Message{UserMessage("x")}, GenerateOptions: tc.o}
		if _, err := m.Generate(ctx, req, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.o, err, tc.want)
		}
	}
}

// TestStructuredConcurrent runs answers with the same schema at once: they
// share the Model's compiled schema (run with -race) and each validates.
func TestStructuredConcurrent(t *testing.T) {
	m := loadModel(t, "tiny512", Options{TextOnly: true})
	schema := schemaFiles(t)["enum"]
	val := libValidator(t, schema)
	c, err := m.constraint(GenerateOptions{Schema: json.RawMessage(schema)})
	if err != nil {
		t.Fatal(err)
	}
	maxBytes, _ := c.MaxBytes()
	errs := make(chan error, 4)
	texts := make(chan string, 4)
	for seed := 1; seed <= 4; seed++ {
		go func() {
			req := structuredRequest(seed)
			req.Schema, req.MaxNewTokens = json.RawMessage(schema), maxBytes+1
			res, err := m.Generate(context.Background(), req, nil)
			if err == nil {
				texts <- res.Text
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		text := <-texts
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
		if err != nil || val.Validate(inst) != nil {
			t.Errorf("%q does not validate", text)
		}
	}
}
