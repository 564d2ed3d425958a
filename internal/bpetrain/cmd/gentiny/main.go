// Command gentiny writes the tiny test tokenizer.json that
// internal/tokenizer's golden tests use: bpetrain.Train over
// bpetrain.Corpus.
//
//	go run ./internal/bpetrain/cmd/gentiny -out internal/tokenizer/testdata/tiny_tokenizer.json
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/snapvlm/snapvlm/internal/bpetrain"
)

func main() {
	out := flag.String("out", "", "file to write (default: standard output)")
	vocab := flag.Int("vocab", 512, "base vocabulary size (17 special + 256 byte tokens + merges)")
	flag.Parse()
	data, err := bpetrain.Train(bpetrain.Corpus, *vocab)
	if err == nil {
		if *out == "" {
			_, err = os.Stdout.Write(data)
		} else {
			err = os.WriteFile(*out, data, 0o644)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gentiny:", err)
		os.Exit(1)
	}
}
