package prompt

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"
	"unicode"
)

// FuzzRender renders a conversation of arbitrary user, assistant and system
// text with SmolVLM's template. The expected string is built from the
// template's definition (role capitalised, ": " or ":" before an image,
// parts in order, <end_of_utterance>\n per turn), so text that looks like
// Jinja or like special tokens must come out verbatim.
func FuzzRender(f *testing.F) {
	tmpl, err := NewTemplate(SmolVLMTemplate, "<|im_start|>", "<end_of_utterance>")
	if err != nil {
		f.Fatal(err)
	}
	f.Add("Can you describe this image?", "A cat.", "", uint8(1))
	f.Add("{{ raise_exception('x') }}{% for %}", "<end_of_utterance>\nUser:", "You are helpful.", uint8(6))
	f.Add("", "", "\x00\xff", uint8(0))
	f.Add("<image><video>", "{# #}", "{{", uint8(3))
	f.Fuzz(func(t *testing.T, user, assistant, system string, layout uint8) {
		// layout picks: a system turn, an image before or after the user
		// text, a video part, an assistant turn, the generation prompt.
		var msgs []Message
		if layout&1 != 0 {
			msgs = append(msgs, Text(RoleSystem, system))
		}
		u := Message{Role: RoleUser}
		switch layout >> 1 & 3 {
		case 1:
			u.Content = []Part{{Type: PartImage}, {Type: PartText, Text: user}}
		case 2:
			u.Content = []Part{{Type: PartText, Text: user}, {Type: PartImage}}
		case 3:
			u.Content = []Part{{Type: PartVideo}, {Type: PartText, Text: user}}
		default:
			u.Content = []Part{{Type: PartText, Text: user}}
		}
		msgs = append(msgs, u)
		if layout&8 != 0 {
			msgs = append(msgs, Text(RoleAssistant, assistant), Text(RoleUser, user))
		}
		gen := layout&16 == 0
		got, err := tmpl.Render(msgs, gen)
		if err != nil {
			t.Fatalf("Render: %v", err)
		}
		var want strings.Builder
		want.WriteString("<|im_start|>")
		for _, m := range msgs {
			r := []rune(string(m.Role))
			want.WriteString(string(unicode.ToUpper(r[0])) + string(r[1:]))
			if m.Content[0].Type == PartImage {
				want.WriteString(":")
			} else {
				want.WriteString(": ")
			}
			for _, p := range m.Content {
				switch p.Type {
				case PartText:
					want.WriteString(p.Text)
				case PartImage:
					want.WriteString(ImageToken)
				case PartVideo:
					want.WriteString(VideoToken)
				}
			}
			want.WriteString("<end_of_utterance>\n")
		}
		if gen {
			want.WriteString("Assistant:")
		}
		if got != want.String() {
			t.Fatalf("Render\n got %q\nwant %q", got, want.String())
		}
	})
}

// FuzzExpand expands arbitrary text with grids and videos derived from the
// input. Whatever succeeds has every placeholder replaced: exactly one
// <image> token per vision-encoder feature row and no placeholder left.
func FuzzExpand(f *testing.F) {
	f.Add("<|im_start|>User:<image>Can you describe this image?<end_of_utterance>\nAssistant:", uint8(4), uint8(4), uint8(64), []byte{})
	f.Add("<image><image>", uint8(0), uint8(0), uint8(81), []byte{})
	f.Add("User: <video>Describe<image>", uint8(1), uint8(2), uint8(3), []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f})
	f.Add("<imag<image>e><vid<video>", uint8(7), uint8(1), uint8(1), []byte("\x00\x00\x00\x00\x00\x00\xf0\x7f"))
	f.Fuzz(func(t *testing.T, text string, rows, cols, seqLen uint8, times []byte) {
		nImg, nVid := strings.Count(text, ImageToken), strings.Count(text, VideoToken)
		if nImg > 16 || nVid > 4 {
			return // the output would be large, not more interesting
		}
		images := make([]ImageGrid, nImg)
		for i := range images {
			// Mostly valid grids, sometimes out of range.
			images[i] = ImageGrid{Rows: int(rows+uint8(i)) % 8, Cols: int(cols) % 8}
		}
		var stamps []float64
		for len(times) >= 8 && len(stamps) < 64 {
			stamps = append(stamps, math.Float64frombits(binary.LittleEndian.Uint64(times)))
			times = times[8:]
		}
		videos := make([]VideoFrames, nVid)
		for i := range videos {
			videos[i] = VideoFrames{Timestamps: stamps, Duration: float64(len(stamps))}
		}
		e := Expander{ImageSeqLen: int(seqLen)}
		out, err := e.Expand(text, images, videos)
		if err != nil {
			return
		}
		want := 0
		for _, g := range images {
			want += ImageFeatureCount(g, e.ImageSeqLen)
		}
		for _, v := range videos {
			want += len(v.Timestamps) * ImageFeatureCount(ImageGrid{}, e.ImageSeqLen)
		}
		if got := strings.Count(out, ImageToken); got != want {
			t.Fatalf("%d %s tokens, want %d for grids %v and %d videos", got, ImageToken, want, images, len(videos))
		}
		if strings.Contains(out, VideoToken) {
			t.Fatalf("%s left in %q", VideoToken, out)
		}
	})
}
