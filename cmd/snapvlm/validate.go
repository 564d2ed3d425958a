package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/snapvlm/snapvlm"
)

// Flag checks: a bad value is refused naming the flag, the value and the
// allowed range, before anything is loaded.

// intRange checks an int flag against lo..hi (hi = math.MaxInt: no upper
// bound); note, when set, says what a special value means ("0: the default").
func intRange(name string, v, lo, hi int, note string) error {
	if v >= lo && v <= hi {
		return nil
	}
	return fmt.Errorf("--%s %d: want %s%s", name, v, rangeText(float64(lo), float64(hi), hi == math.MaxInt), noteText(note))
}

// floatRange checks a float flag against lo..hi (hi = +Inf: no upper bound).
func floatRange(name string, v, lo, hi float64, note string) error {
	if !math.IsNaN(v) && !math.IsInf(v, 0) && v >= lo && v <= hi {
		return nil
	}
	return fmt.Errorf("--%s %v: want %s%s", name, v, rangeText(lo, hi, math.IsInf(hi, 1)), noteText(note))
}

func rangeText(lo, hi float64, open bool) string {
	if open {
		return fmt.Sprintf("%v or more", lo)
	}
	return fmt.Sprintf("%v to %v", lo, hi)
}

func noteText(note string) string {
	if note == "" {
		return ""
	}
	return " (" + note + ")"
}

// maxThreads bounds --threads: far above any CPU's core count, low enough
// that a typo is caught.
const maxThreads = 1024

// validate checks the engine flags that need no model.
func (f *engineFlags) validate() error {
	errs := []error{
		f.videos.validate(),
		intRange("max-tokens", f.maxTokens, 1, math.MaxInt, ""),
		intRange("image-size", f.imageSize, 0, math.MaxInt, "0: the model's size"),
		intRange("vision-batch", f.visionBatch, 0, math.MaxInt, "0: the default, 2"),
		intRange("threads", f.threads, 0, maxThreads, "0: one per physical core"),
		floatRange("temperature", f.temperature, 0, math.Inf(1), "0: greedy"),
		intRange("top-k", f.topK, 0, math.MaxInt, "0: off"),
		floatRange("top-p", f.topP, 0, 1, "0 or 1: off"),
		floatRange("min-p", f.minP, 0, 1, "0: off"),
		floatRange("repetition-penalty", f.repPenalty, 0, math.Inf(1), "0 or 1: off"),
	}
	if f.maxImageBytes < 0 {
		errs = append(errs, fmt.Errorf("--max-image-bytes %d: want 0 or more (0: the default, %d)", f.maxImageBytes, snapvlm.DefaultMaxImageBytes))
	}
	for _, s := range f.stops {
		if s == "" {
			errs = append(errs, errors.New("--stop: the stop string is empty"))
		}
	}
	return errors.Join(errs...)
}

// modelLimits are the bounds a loaded model sets on the flags.
type modelLimits interface {
	ContextLength() int
	MaxImageSize() int
}

// validateFor checks the flags whose range depends on the model.
func (f *engineFlags) validateFor(m modelLimits) error {
	err := intRange("max-tokens", f.maxTokens, 1, m.ContextLength(), "the model's context length")
	if limit := m.MaxImageSize(); limit > 0 { // 0: loaded without the vision encoder
		err = errors.Join(err, intRange("image-size", f.imageSize, 0, limit, "0: the model's size; at most its size.longest_edge"))
	}
	return err
}

// maxQuestionBytes bounds a question read from a file or stdin (the longest
// context of the supported models is 16k tokens, ~64 KB of text).
const maxQuestionBytes = 16 << 20

// questionText is the question of run, prompt and tokenize: the positional
// arguments joined by spaces, or, when file is set, that file's text ("-" in
// either place reads stdin). One trailing newline is dropped, as a shell's
// $(cat file) would.
func questionText(args []string, file string, stdin io.Reader) (string, error) {
	var r io.Reader
	name := file
	switch {
	case file != "" && len(args) > 0:
		return "", fmt.Errorf("the question is given twice: as arguments %q and with --question-file %s", strings.Join(args, " "), file)
	case file == "-" || file == "" && len(args) == 1 && args[0] == "-":
		r, name = stdin, "stdin"
	case file != "":
		fh, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("--question-file: %w", err)
		}
		defer fh.Close()
		r = fh
	default:
		return strings.Join(args, " "), nil
	}
	b, err := io.ReadAll(io.LimitReader(r, maxQuestionBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading the question from %s: %w", name, err)
	}
	if len(b) > maxQuestionBytes {
		return "", fmt.Errorf("the question in %s is longer than %d bytes", name, maxQuestionBytes)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	return s, nil
}
