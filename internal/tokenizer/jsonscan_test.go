package tokenizer

import (
	"encoding/json"
	"testing"
)

// TestScannerStrings compares the scanner's string decoding with
// encoding/json's on escapes tokenizer.json files contain.
func TestScannerStrings(t *testing.T) {
	tests := []string{
		`"plain"`, `""`, `"Ġhello"`, `"\""`, `"\\"`, `"a\/b"`, `"\n\t\r\b\f"`,
		`"\u0120x"`, `"\u00e9\u65e5"`, `"\ud83d\ude42"`, `"\ud83d"`, `"\ude42x"`, `"\ud83dx"`,
		`"mixed \"quote\" and \\ backslash"`,
	}
	for _, in := range tests {
		var want string
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatalf("encoding/json %s: %v", in, err)
		}
		s := &scanner{src: in}
		got, err := s.str()
		if err != nil || got != want {
			t.Errorf("scanner.str(%s) = %q, %v; want %q", in, got, err, want)
		}
		if s.pos != len(in) {
			t.Errorf("scanner.str(%s) stopped at %d, want %d", in, s.pos, len(in))
		}
	}
	for _, bad := range []string{`"abc`, `"\x"`, `"\u12"`, "\"a\x01\"", `abc`} {
		s := &scanner{src: bad}
		if got, err := s.str(); err == nil {
			t.Errorf("scanner.str(%q) = %q, want an error", bad, got)
		}
	}
}
