package tokenizer

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// checkDecoder accepts the decoders whose output is the byte-level decoding
// of the concatenated tokens: ByteLevel, alone or in a Sequence.
func checkDecoder(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return fmt.Errorf("decoder null is not supported (tokens would be joined with spaces)")
	}
	var d struct {
		Type     string            `json:"type"`
		Decoders []json.RawMessage `json:"decoders"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("decoder: %w", err)
	}
	switch d.Type {
	case "ByteLevel":
		return nil
	case "Sequence":
		if len(d.Decoders) != 1 {
			return fmt.Errorf("decoder Sequence of %d decoders is not supported (only [ByteLevel])", len(d.Decoders))
		}
		return checkDecoder(d.Decoders[0])
	}
	return fmt.Errorf("decoder type %q is not supported", d.Type)
}

// appendTokenBytes appends the bytes a token decodes to under the ByteLevel
// decoder: each character mapped back to its byte, or the token's own UTF-8
// bytes if any character is outside the byte-level alphabet.
func appendTokenBytes(dst []byte, tok string) []byte {
	start := len(dst)
	for _, r := range tok {
		b, ok := runeToByte[r]
		if !ok {
			return append(dst[:start], tok...)
		}
		dst = append(dst, b)
	}
	return dst
}

// invalidLen reports how many bytes at the start of b form an invalid UTF-8
// sequence that Rust's String::from_utf8_lossy replaces with one U+FFFD (the
// maximal prefix of a well-formed sequence, at least one byte), or 0 if b
// starts with a complete valid rune. incomplete is true when b ends before a
// well-formed prefix could be completed.
func invalidLen(b []byte) (n int, incomplete bool) {
	c := b[0]
	if c < utf8.RuneSelf {
		return 0, false
	}
	var width int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		width = 2
	case c == 0xE0:
		width, lo = 3, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		width = 3
	case c == 0xED:
		width, hi = 3, 0x9F
	case c == 0xF0:
		width, lo = 4, 0x90
	case c >= 0xF1 && c <= 0xF3:
		width = 4
	case c == 0xF4:
		width, hi = 4, 0x8F
	default:
		return 1, false
	}
	for i := 1; i < width; i++ {
		if i >= len(b) {
			return i, true
		}
		if b[i] < lo || b[i] > hi {
			return i, false
		}
		lo, hi = 0x80, 0xBF
	}
	return 0, false
}

// appendLossy appends b to dst as valid UTF-8 the way from_utf8_lossy does.
// If final is false, a trailing sequence that may still be completed is not
// consumed; the number of bytes consumed is returned.
func appendLossy(dst []byte, b []byte, final bool) ([]byte, int) {
	i := 0
	for i < len(b) {
		n, incomplete := invalidLen(b[i:])
		if n == 0 {
			_, w := utf8.DecodeRune(b[i:])
			dst = append(dst, b[i:i+w]...)
			i += w
			continue
		}
		if incomplete && !final {
			break
		}
		dst = append(dst, "\uFFFD"...)
		i += n
	}
	return dst, i
}

// StreamDecoder turns ids into text one at a time, as they are generated.
// The concatenation of everything Add and Flush return equals Decode of all
// the ids, and no returned string ends inside a UTF-8 sequence. A
// StreamDecoder is not safe for concurrent use.
type StreamDecoder struct {
	t           *Tokenizer
	skipSpecial bool
	pending     []byte // bytes of an incomplete UTF-8 sequence (at most 3)
	out         []byte
}

// NewStreamDecoder returns a decoder for one stream of ids.
func (t *Tokenizer) NewStreamDecoder(skipSpecial bool) *StreamDecoder {
	return &StreamDecoder{t: t, skipSpecial: skipSpecial}
}

// Add decodes one more id and returns the text it completes, which may be
// empty while a multi-byte character is still incomplete.
func (d *StreamDecoder) Add(id int64) string {
	tok, ok := d.t.decodable(id, d.skipSpecial)
	if !ok {
		return ""
	}
	d.pending = appendTokenBytes(d.pending, tok)
	var n int
	d.out, n = appendLossy(d.out[:0], d.pending, false)
	d.pending = append(d.pending[:0], d.pending[n:]...)
	return string(d.out)
}

// Flush returns whatever is still held back (an incomplete character
// becomes U+FFFD, as Decode renders it) and resets the decoder.
func (d *StreamDecoder) Flush() string {
	d.out, _ = appendLossy(d.out[:0], d.pending, true)
	d.pending = d.pending[:0]
	return string(d.out)
}

func isValidUTF8(b []byte) bool { return utf8.Valid(b) }
