package prompt

import (
	"regexp"
	"strings"
	"testing"
)

// unabbrev expands the spec's "<image>*N" shorthand (spec §3.2).
func unabbrev(s string) string {
	return regexp.MustCompile(`<image>\*(\d+)`).ReplaceAllStringFunc(s, func(m string) string {
		n := 0
		for _, c := range m[len("<image>*"):] {
			n = n*10 + int(c-'0')
		}
		return strings.Repeat("<image>", n)
	})
}

// Literal of spec §3.2 (2×4 grid, N = 64).
const spec2x4 = "<fake_token_around_image><row_1_col_1><image>*64<fake_token_around_image><row_1_col_2><image>*64<fake_token_around_image><row_1_col_3><image>*64<fake_token_around_image><row_1_col_4><image>*64\n<fake_token_around_image><row_2_col_1><image>*64<fake_token_around_image><row_2_col_2><image>*64<fake_token_around_image><row_2_col_3><image>*64<fake_token_around_image><row_2_col_4><image>*64\n\n<fake_token_around_image><global-img><image>*64<fake_token_around_image>"

// Single form of spec §3.2: F + G + I×N + F.
const specSingle64 = "<fake_token_around_image><global-img><image>*64<fake_token_around_image>"

// 1×1 grid written out from the grid-form prose of spec §3.2 (N = 2, as in
// the Python processor test with image_seq_len 2).
const spec1x1N2 = "<fake_token_around_image><row_1_col_1><image><image>\n\n<fake_token_around_image><global-img><image><image><fake_token_around_image>"

func TestExpandStrings(t *testing.T) {
	cases := []struct {
		name   string
		seqLen int
		text   string
		images []ImageGrid
		want   string
	}{
		{"2x4 grid", 64, "<image>", []ImageGrid{{2, 4}}, unabbrev(spec2x4)},
		{"single form", 64, "<image>", []ImageGrid{{}}, unabbrev(specSingle64)},
		{"text around", 64, "a<image>b", []ImageGrid{{}}, "a" + unabbrev(specSingle64) + "b"},
		{"two images in order", 2, "<image>x<image>", []ImageGrid{{1, 1}, {}},
			spec1x1N2 + "x<fake_token_around_image><global-img><image><image><fake_token_around_image>"},
		{"python test: no split, N=2", 2, "<image>In this image, we see", []ImageGrid{{}},
			"<fake_token_around_image><global-img><image><image><fake_token_around_image>In this image, we see"},
		{"no placeholders", 64, "Hello<end_of_utterance>", nil, "Hello<end_of_utterance>"},
		{"empty", 64, "", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Expander{ImageSeqLen: tc.seqLen}.Expand(tc.text, tc.images, nil)
			if err != nil {
				t.Fatalf("Expand: %v", err)
			}
			if got != tc.want {
				t.Errorf("Expand =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// TestExpandCounts checks the token inventory of spec §3.3: a 4×4 image
// has <image> ×1088, F ×18 and G ×1 with N = 64.
func TestExpandCounts(t *testing.T) {
	cases := []struct {
		grid             ImageGrid
		seqLen           int
		images, fakes, g int
		newlines         int
	}{
		{ImageGrid{4, 4}, 64, 1088, 18, 1, 5},
		{ImageGrid{2, 4}, 64, 576, 10, 1, 3},
		{ImageGrid{1, 1}, 64, 128, 3, 1, 2},
		{ImageGrid{}, 64, 64, 2, 1, 0},
		{ImageGrid{4, 4}, 81, 1377, 18, 1, 5},
	}
	for _, tc := range cases {
		got, err := Expander{ImageSeqLen: tc.seqLen}.Expand("<image>", []ImageGrid{tc.grid}, nil)
		if err != nil {
			t.Fatalf("%v N=%d: %v", tc.grid, tc.seqLen, err)
		}
		for _, c := range []struct {
			tok  string
			want int
		}{
			{ImageToken, tc.images}, {FakeImageToken, tc.fakes}, {GlobalImageToken, tc.g}, {"\n", tc.newlines},
		} {
			if n := strings.Count(got, c.tok); n != c.want {
				t.Errorf("%v N=%d: %q ×%d, want ×%d", tc.grid, tc.seqLen, c.tok, n, c.want)
			}
		}
		if n := ImageFeatureCount(tc.grid, tc.seqLen); n != tc.images {
			t.Errorf("ImageFeatureCount(%v, %d) = %d, want %d", tc.grid, tc.seqLen, n, tc.images)
		}
	}
}

func TestImageTokenCount(t *testing.T) {
	// Spec §3.3 totals minus the 14 tokens of the text around the image
	// ("1 11126 42" + 11 tokens from "Can" on).
	cases := []struct {
		grid   ImageGrid
		seqLen int
		want   int
	}{
		{ImageGrid{4, 4}, 64, 1141 - 14},
		{ImageGrid{}, 64, 81 - 14},
		{ImageGrid{2, 4}, 64, 611 - 14},
		{ImageGrid{1, 1}, 64, 148 - 14},
		{ImageGrid{4, 4}, 81, 1430 - 14},
	}
	for _, tc := range cases {
		if got := ImageTokenCount(tc.grid, tc.seqLen); got != tc.want {
			t.Errorf("ImageTokenCount(%v, %d) = %d, want %d", tc.grid, tc.seqLen, got, tc.want)
		}
	}
}

// skipSpecial removes the special tokens the way decode(skip_special_tokens)
// does for this prompt.
var skipSpecial = strings.NewReplacer("<|im_start|>", "", "<end_of_utterance>", "",
	"<fake_token_around_image>", "", "<global-img>", "", "<image>", "")

// TestVideoPrompt renders and expands the transformers integration test
// conversation (9 frames of a ~9 s video) and compares the special-token-free
// text with the decoded prompt quoted in spec §4.1.
func TestVideoPrompt(t *testing.T) {
	tp, err := NewTemplate(SmolVLMTemplate, "", "")
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := tp.Render([]Message{user(vid, txt("Describe this video in detail"))}, true)
	if err != nil {
		t.Fatal(err)
	}
	v := VideoFrames{Timestamps: []float64{0, 1, 2, 3, 4, 5, 6.5, 8, 9}, Duration: 9.4}
	got, err := Expander{ImageSeqLen: 64}.Expand(rendered, nil, []VideoFrames{v})
	if err != nil {
		t.Fatal(err)
	}
	want := "User: You are provided the following series of nine frames from a 0:00:09 [H:MM:SS] video.\n\nFrame from 00:00:\nFrame from 00:01:\nFrame from 00:02:\nFrame from 00:03:\nFrame from 00:04:\nFrame from 00:05:\nFrame from 00:06:\nFrame from 00:08:\nFrame from 00:09:\n\nDescribe this video in detail\nAssistant:"
	if d := skipSpecial.Replace(got); d != want {
		t.Errorf("decoded video prompt =\n%q\nwant\n%q", d, want)
	}
	// Each frame is one single-form image (spec §4.1).
	if n, want := strings.Count(got, ImageToken), 9*64; n != want {
		t.Errorf("<image> ×%d, want ×%d", n, want)
	}
	if n, want := strings.Count(got, "\nFrame from 00:01:"+unabbrev(specSingle64)+"\nFrame"), 1; n != want {
		t.Errorf("frame 1 is not followed by exactly the single image form")
	}
}

func TestExpandMixed(t *testing.T) {
	v := VideoFrames{Timestamps: []float64{0, 61}, Duration: 62}
	got, err := Expander{ImageSeqLen: 1}.Expand("<video>a<image>b", []ImageGrid{{}}, []VideoFrames{v})
	if err != nil {
		t.Fatal(err)
	}
	single := "<fake_token_around_image><global-img><image><fake_token_around_image>"
	want := "You are provided the following series of two frames from a 0:01:02 [H:MM:SS] video.\n" +
		"\nFrame from 00:00:" + single + "\nFrame from 01:01:" + single + "\n\n" +
		"a" + single + "b"
	if got != want {
		t.Errorf("Expand =\n%q\nwant\n%q", got, want)
	}
}

func TestExpandErrors(t *testing.T) {
	ok := VideoFrames{Timestamps: []float64{0}, Duration: 1}
	cases := []struct {
		name    string
		seqLen  int
		text    string
		images  []ImageGrid
		videos  []VideoFrames
		wantErr string
	}{
		{"too few images", 64, "<image><image>", []ImageGrid{{}}, nil,
			"prompt has 2 <image> placeholders but 1 image was given"},
		{"too many images", 64, "<image>", []ImageGrid{{}, {}}, nil,
			"prompt has 1 <image> placeholder but 2 images were given"},
		{"images without placeholder", 64, "hi", []ImageGrid{{}}, nil,
			"prompt has 0 <image> placeholders but 1 image was given"},
		{"videos mismatch", 64, "<video>", nil, nil,
			"prompt has 1 <video> placeholder but 0 videos were given"},
		{"zero seq len", 0, "<image>", []ImageGrid{{}}, nil, "image_seq_len must be positive, got 0"},
		{"half grid", 64, "<image>", []ImageGrid{{0, 3}}, nil, "grid 0x3"},
		{"grid too big", 64, "<image>", []ImageGrid{{7, 1}}, nil, "grid 7x1"},
		{"negative grid", 64, "<image>", []ImageGrid{{-1, -1}}, nil, "grid -1x-1"},
		{"video without frames", 64, "<video>", nil, []VideoFrames{{Duration: 3}}, "video 0: no frames"},
		{"negative timestamp", 64, "<video><video>", nil,
			[]VideoFrames{ok, {Timestamps: []float64{-1}, Duration: 3}}, "video 1: frame 0: timestamp -1"},
		{"negative duration", 64, "<video>", nil, []VideoFrames{{Timestamps: []float64{0}, Duration: -2}}, "duration -2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Expander{ImageSeqLen: tc.seqLen}.Expand(tc.text, tc.images, tc.videos)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Expand error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func BenchmarkExpand4x4(b *testing.B) {
	e := Expander{ImageSeqLen: 64}
	text := "<|im_start|>User:<image>Can you describe this image?<end_of_utterance>\nAssistant:"
	grids := []ImageGrid{{4, 4}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Expand(text, grids, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRender(b *testing.B) {
	tp, err := NewTemplate(SmolVLMTemplate, "", "")
	if err != nil {
		b.Fatal(err)
	}
	msgs := []Message{user(img, txt("Can you describe this image?"))}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tp.Render(msgs, true); err != nil {
			b.Fatal(err)
		}
	}
}
