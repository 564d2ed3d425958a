package snapvlm

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/snapvlm/snapvlm/internal/constrain"
)

// FormatJSON is the Request.Format that makes the answer a JSON object (the
// "JSON mode" of OpenAI's response_format {"type": "json_object"}).
const FormatJSON = "json"

// ErrStructuredOutput is wrapped by every error about a request's
// structured output (GenerateOptions.Format, Schema, Regex): an
// unsupported keyword, a schema nothing can match, a bad regular
// expression. A server can blame its response_format for it.
var ErrStructuredOutput = errors.New("structured output")

// CheckStructuredOutput compiles the structured-output constraint of o into
// the Model's cache of compiled schemas (Generate then finds it there) and
// returns what is wrong with it, wrapping ErrStructuredOutput. Generate
// makes the same check before any work; a server calls this to refuse a bad
// schema before it starts streaming.
func (m *Model) CheckStructuredOutput(o GenerateOptions) error {
	_, err := m.constraint(o)
	return err
}

// constraintCacheSize is how many compiled schemas a Model keeps (each
// holds at most about 14 MB of automaton with SmolVLM's vocabulary).
const constraintCacheSize = 16

// structured holds what a Model needs for structured output, built on the
// first request that asks for it: the vocabulary as byte strings (with its
// trie) and the compiled schemas.
type structured struct {
	once  sync.Once
	cache *constrain.Cache
	err   error
}

// constraintSpec returns the language o asks for, or false for free text.
func constraintSpec(o GenerateOptions) (constrain.Spec, bool, error) {
	var specs []constrain.Spec
	switch o.Format {
	case "":
	case FormatJSON:
		specs = append(specs, constrain.Spec{Kind: constrain.JSONObject})
	default:
		return constrain.Spec{}, false, fmt.Errorf("unsupported Format %q (only %q)", o.Format, FormatJSON)
	}
	if len(o.Schema) > 0 {
		if !json.Valid(o.Schema) {
			return constrain.Spec{}, false, errors.New("the Schema is not valid JSON")
		}
		specs = append(specs, constrain.Spec{Kind: constrain.Schema, Source: string(o.Schema)})
	}
	if o.Regex != "" {
		specs = append(specs, constrain.Spec{Kind: constrain.Regex, Source: o.Regex})
	}
	switch len(specs) {
	case 0:
		return constrain.Spec{}, false, nil
	case 1:
		if o.Logits != nil {
			return constrain.Spec{}, false, errors.New("a Logits processor cannot be combined with Format, Schema or Regex")
		}
		return specs[0], true, nil
	}
	return constrain.Spec{}, false, errors.New("give at most one of Format, Schema and Regex")
}

// constraint compiles (or finds in the cache) the language o asks for; nil
// for free text.
func (m *Model) constraint(o GenerateOptions) (*constrain.Constraint, error) {
	spec, ok, err := constraintSpec(o)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStructuredOutput, err)
	}
	if !ok {
		return nil, nil
	}
	s := &m.structured
	s.once.Do(func() {
		n := m.tok.VocabSize()
		tokens := make([][]byte, n)
		for id := range tokens {
			if b, added, ok := m.tok.TokenBytes(int64(id)); ok && !added {
				tokens[id] = b
			}
		}
		var end []int64
		for id := range m.eos {
			if id >= 0 && int(id) < n {
				end = append(end, id)
			}
		}
		var v *constrain.Vocab
		if v, s.err = constrain.NewVocab(tokens, end); s.err == nil {
			s.cache = constrain.NewCache(v, constraintCacheSize)
		}
	})
	if s.err != nil {
		return nil, s.err
	}
	c, err := s.cache.Get(spec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStructuredOutput, err)
	}
	return c, nil
}

// constraintProcessor returns the LogitsProcessor of o's structured
// output, or nil.
func (m *Model) constraintProcessor(o GenerateOptions) (*constraintProcessor, error) {
	c, err := m.constraint(o)
	if c == nil || err != nil {
		return nil, err
	}
	return &constraintProcessor{con: c, m: c.Matcher()}, nil
}

// constraintProcessor applies a constraint to the logits of one answer and
// counts the time it takes.
type constraintProcessor struct {
	con   *constrain.Constraint
	m     *constrain.Matcher
	spent time.Duration
}

// Mask sets the logits of the tokens the constraint forbids to -Inf.
func (p *constraintProcessor) Mask(logits []float32) error {
	t := time.Now()
	ok := p.m.Mask(logits)
	p.spent += time.Since(t)
	if !ok {
		return errNoToken
	}
	return nil
}

// Accept moves the constraint past the chosen token.
func (p *constraintProcessor) Accept(id int64) error {
	t := time.Now()
	err := p.m.Accept(id)
	p.spent += time.Since(t)
	if err != nil {
		return err
	}
	return nil
}

// Done reports that the answer is complete and nothing may follow.
func (p *constraintProcessor) Done() bool { return p.m.Done() }

// errNoToken is returned when a constraint leaves no token to choose, which
// the constraint's own checks make impossible for a byte-level vocabulary.
var errNoToken = errors.New("structured output: no token can continue the answer")
