package bpetrain

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/tokenizer"
)

func TestTrainRoundTrip(t *testing.T) {
	texts := []string{
		"User: Can you describe this image?",
		"<|im_start|>User:<image>Can you describe this image?<end_of_utterance>\nAssistant:",
		"numbers 1234567890 and 3.14",
		"naïve café — 日本語 🙂 👩‍👩‍👧",
		"words never seen in the corpus: xylophone, quixotic",
		"  spaces\t\ttabs\r\nnewlines\n\n",
		"",
	}
	for _, vocabSize := range []int{MinVocabSize, 400, 512, 1000} {
		data, err := Train(Corpus, vocabSize)
		if err != nil {
			t.Fatalf("Train(Corpus, %d): %v", vocabSize, err)
		}
		tok, err := tokenizer.FromJSON(data)
		if err != nil {
			t.Fatalf("vocab %d: loading the trained tokenizer: %v", vocabSize, err)
		}
		if got, want := tok.VocabSize(), vocabSize+128; got != want {
			t.Errorf("vocab %d: VocabSize() = %d, want %d", vocabSize, got, want)
		}
		// Spec §1.2 layout: low specials 0..16, high specials after the base vocab.
		for i, s := range LowSpecialTokens() {
			if id, ok := tok.TokenToID(s); !ok || id != int64(i) || !tok.IsSpecial(id) {
				t.Errorf("vocab %d: %s has id %d (special %v), want %d", vocabSize, s, id, tok.IsSpecial(id), i)
			}
		}
		for _, c := range []struct {
			tok    string
			offset int
		}{{"<global-img>", 0}, {"<row_1_col_1>", 1}, {"<row_6_col_6>", 36}, {"<fake_token_around_image>", 37}, {"<image>", 38}, {"<|reserved_special_token_0|>", 39}, {"<end_of_utterance>", 127}} {
			if id, ok := tok.TokenToID(c.tok); !ok || id != int64(vocabSize+c.offset) || !tok.IsSpecial(id) {
				t.Errorf("vocab %d: %s has id %d, want %d", vocabSize, c.tok, id, vocabSize+c.offset)
			}
		}
		for _, s := range texts {
			ids := tok.Encode(s)
			if got := tok.Decode(ids, false); got != s {
				t.Errorf("vocab %d: Decode(Encode(%q)) = %q", vocabSize, s, got)
			}
		}
		// Merges must shorten text the corpus is made of.
		n := len(tok.Encode(Corpus))
		if vocabSize > MinVocabSize && n >= len(Corpus)*2/3 {
			t.Errorf("vocab %d: corpus of %d bytes encodes to %d tokens; merges are not effective", vocabSize, len(Corpus), n)
		}
		if vocabSize == MinVocabSize && n != len(Corpus)-strings.Count(Corpus, "<|im_start|>")*11 {
			// Without merges every byte is one token, except the one special
			// token in the corpus (12 bytes, 1 token).
			t.Errorf("vocab %d: %d tokens for %d bytes", vocabSize, n, len(Corpus))
		}
	}
}

func TestTrainDeterministic(t *testing.T) {
	a, err := Train(Corpus, 600)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Train(Corpus, 600)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("two runs of Train on the same corpus differ")
	}
}

// TestTinyFixture checks that the committed tiny tokenizer, which the HF
// golden data of internal/tokenizer was computed on, is what gentiny makes.
func TestTinyFixture(t *testing.T) {
	want, err := os.ReadFile("../tokenizer/testdata/tiny_tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Train(Corpus, 512)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("Train(Corpus, 512) differs from internal/tokenizer/testdata/tiny_tokenizer.json; run scripts/tokenizer-golden/regen.sh")
	}
}

func TestTrainErrors(t *testing.T) {
	tests := []struct {
		corpus    string
		vocabSize int
		want      string
	}{
		{Corpus, MinVocabSize - 1, "below the minimum"},
		{"ab ab", MinVocabSize + 10, "supports only"},
	}
	for _, tt := range tests {
		if _, err := Train(tt.corpus, tt.vocabSize); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Train(%q, %d) error = %v, want %q", tt.corpus, tt.vocabSize, err, tt.want)
		}
	}
}
