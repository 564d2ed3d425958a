package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/snapvlm/snapvlm"
)

// cmdTokenize prints the token ids (and token strings) of a text, encoded
// with DIR/tokenizer.json exactly as the model sees it.
func cmdTokenize(ctx context.Context, args []string) error {
	return runTokenizeIO(args, os.Stdin, os.Stdout)
}

func runTokenize(args []string, w io.Writer) error { return runTokenizeIO(args, os.Stdin, w) }

func runTokenizeIO(args []string, stdin io.Reader, w io.Writer) error {
	fs := flag.NewFlagSet("tokenize", flag.ContinueOnError)
	model := fs.String("model", "", "model `DIR` containing tokenizer.json")
	asJSON := fs.Bool("json", false, `print {"ids": [...], "tokens": [...]}`)
	qfile := fs.String("question-file", "", "read TEXT from this file (- for stdin)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: snapvlm tokenize --model DIR [--json] TEXT|-\n\n"+
			"Prints the token ids of TEXT on one line and the tokens on the next.\n"+
			"Special tokens such as <image> in TEXT encode to their single ids.\n\n")
		fs.PrintDefaults()
	}
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if *model == "" {
		return errors.New("--model DIR is required")
	}
	if len(rest) != 1 && *qfile == "" {
		return fmt.Errorf("want exactly one TEXT argument, got %d (quote the text, or use - / --question-file FILE)", len(rest))
	}
	text, err := questionText(rest, *qfile, stdin)
	if err != nil {
		return err
	}
	tok, err := snapvlm.LoadTokenizer(*model)
	if err != nil {
		return err
	}
	ids := tok.Tokenize(text)
	tokens := make([]string, len(ids))
	for i, id := range ids {
		tokens[i], _ = tok.TokenString(id)
	}
	if *asJSON {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		return enc.Encode(struct {
			IDs    []int64  `json:"ids"`
			Tokens []string `json:"tokens"`
		}{ids, tokens})
	}
	idStrs := make([]string, len(ids))
	for i, id := range ids {
		idStrs[i] = strconv.FormatInt(id, 10)
	}
	// Tokens are quoted so that spaces and control characters stay visible.
	quoted := make([]string, len(tokens))
	for i, t := range tokens {
		quoted[i] = strconv.Quote(t)
	}
	_, err = fmt.Fprintf(w, "%s\n%s\n", strings.Join(idStrs, " "), strings.Join(quoted, " "))
	return err
}
