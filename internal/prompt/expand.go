package prompt

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Special-token strings of the SmolVLM tokenizer that the expansion writes.
// The placeholder <image> the chat template emits is the image token itself.
const (
	ImageToken       = "<image>"
	VideoToken       = "<video>"
	FakeImageToken   = "<fake_token_around_image>"
	GlobalImageToken = "<global-img>"
	EndOfUtterance   = "<end_of_utterance>"
)

// MaxGridSide is the largest rows or cols value: the tokenizer has
// <row_r_col_c> tokens only for r, c in 1..6.
const MaxGridSide = 6

// Video prompt pieces of transformers' video_processing_smolvlm.py.
const (
	videoIntro   = "You are provided the following series of %s frames from a %s [H:MM:SS] video.\n"
	frameMessage = "\nFrame from %02d:%02d:"
	mediaOutro   = "\n\n"
)

// ImageGrid is how the image processor tiled one image: Rows×Cols tiles
// plus a global view, or Rows = Cols = 0 for the single (global view only)
// form used without splitting.
type ImageGrid struct {
	Rows, Cols int
}

// Single reports whether g is the unsplit form.
func (g ImageGrid) Single() bool { return g.Rows == 0 && g.Cols == 0 }

// Frames is the number of vision-encoder frames the image becomes: one per
// tile plus the global view.
func (g ImageGrid) Frames() int { return g.Rows*g.Cols + 1 }

func (g ImageGrid) validate() error {
	if g.Single() {
		return nil
	}
	if g.Rows < 1 || g.Cols < 1 || g.Rows > MaxGridSide || g.Cols > MaxGridSide {
		return fmt.Errorf("grid %dx%d: rows and cols must both be 0 (single form) or in 1..%d", g.Rows, g.Cols, MaxGridSide)
	}
	return nil
}

// VideoFrames describes one sampled video: the time of each kept frame and
// the length of the whole video, both in seconds.
type VideoFrames struct {
	Timestamps []float64
	Duration   float64
	// Count is the frame count the intro spells out; 0 means
	// len(Timestamps). transformers writes pixel_values.shape[1] there,
	// which for several videos in one call is the largest frame count of
	// them all (shorter videos are padded), so callers expanding several
	// videos set it to that maximum.
	Count int
}

// ImageTokenCount is the number of tokens one image's expansion tokenizes
// to with N = seqLen tokens per tile: rows·cols·(N+2) + rows + N + 3 for a
// grid (the last row's "\n" and the following "\n" merge into one token) or
// N + 3 for the single form.
func ImageTokenCount(g ImageGrid, seqLen int) int {
	if g.Single() {
		return seqLen + 3
	}
	return g.Rows*g.Cols*(seqLen+2) + g.Rows + seqLen + 3
}

// ImageFeatureCount is the number of <image> tokens in one image's
// expansion, i.e. the number of feature vectors the vision encoder yields
// for it: (rows·cols + 1)·N.
func ImageFeatureCount(g ImageGrid, seqLen int) int {
	return g.Frames() * seqLen
}

// Expander replaces media placeholders with the token text the model was
// trained on (transformers' SmolVLMProcessor / Idefics3Processor).
type Expander struct {
	// ImageSeqLen is the number of <image> tokens per tile
	// (modelconfig.Model.ImageSeqLen: 64 for the 256M/500M models, 81 for
	// 2.2B).
	ImageSeqLen int
}

// Expand replaces the k-th <image> in text with the expansion of images[k]
// and the k-th <video> with the frame-by-frame text of videos[k]. The
// number of placeholders of each kind must equal the number of media given.
// Text produced by an expansion is never searched again, so the <image>
// tokens it contains are not mistaken for placeholders.
func (e Expander) Expand(text string, images []ImageGrid, videos []VideoFrames) (string, error) {
	if e.ImageSeqLen <= 0 {
		return "", fmt.Errorf("expand prompt: image_seq_len must be positive, got %d", e.ImageSeqLen)
	}
	nImg, nVid := strings.Count(text, ImageToken), strings.Count(text, VideoToken)
	if nImg != len(images) {
		return "", fmt.Errorf("prompt has %s but %s", count(nImg, ImageToken+" placeholder"), given(len(images), "image"))
	}
	if nVid != len(videos) {
		return "", fmt.Errorf("prompt has %s but %s", count(nVid, VideoToken+" placeholder"), given(len(videos), "video"))
	}
	size := len(text)
	for i, g := range images {
		if err := g.validate(); err != nil {
			return "", fmt.Errorf("image %d: %w", i, err)
		}
		size += e.imageLen(g)
	}
	for i, v := range videos {
		if err := validateVideo(v); err != nil {
			return "", fmt.Errorf("video %d: %w", i, err)
		}
		size += len(videoIntro) + 32 + len(v.Timestamps)*(len(frameMessage)+8+e.imageLen(ImageGrid{}))
	}

	var b strings.Builder
	b.Grow(size)
	for ii, vi := 0, 0; ; {
		// Both placeholders are 7 bytes starting with '<' and cannot
		// overlap, so the earlier of the two next matches is the next one.
		i, j := strings.Index(text, ImageToken), strings.Index(text, VideoToken)
		switch {
		case i >= 0 && (j < 0 || i < j):
			b.WriteString(text[:i])
			e.writeImage(&b, images[ii])
			ii++
			text = text[i+len(ImageToken):]
		case j >= 0:
			b.WriteString(text[:j])
			if err := e.writeVideo(&b, videos[vi]); err != nil {
				return "", fmt.Errorf("video %d: %w", vi, err)
			}
			vi++
			text = text[j+len(VideoToken):]
		default:
			b.WriteString(text)
			return b.String(), nil
		}
	}
}

// imageLen is the byte length of one image's expansion.
func (e Expander) imageLen(g ImageGrid) int {
	n := e.ImageSeqLen * len(ImageToken)
	single := 2*len(FakeImageToken) + len(GlobalImageToken) + n
	if g.Single() {
		return single
	}
	return g.Rows*g.Cols*(len(FakeImageToken)+len("<row_1_col_1>")+n) + g.Rows + 1 + single
}

// writeImage writes the grid or single form of spec §3.2.
func (e Expander) writeImage(b *strings.Builder, g ImageGrid) {
	for r := 1; r <= g.Rows; r++ {
		for c := 1; c <= g.Cols; c++ {
			b.WriteString(FakeImageToken)
			b.WriteString("<row_")
			b.WriteString(strconv.Itoa(r))
			b.WriteString("_col_")
			b.WriteString(strconv.Itoa(c))
			b.WriteString(">")
			e.writeRun(b)
		}
		b.WriteByte('\n')
	}
	if !g.Single() {
		b.WriteByte('\n')
	}
	b.WriteString(FakeImageToken)
	b.WriteString(GlobalImageToken)
	e.writeRun(b)
	b.WriteString(FakeImageToken)
}

func (e Expander) writeRun(b *strings.Builder) {
	for range e.ImageSeqLen {
		b.WriteString(ImageToken)
	}
}

// writeVideo writes the intro, one single-form image per frame headed by its
// MM:SS time, and the outro (spec §4.1).
func (e Expander) writeVideo(b *strings.Builder, v VideoFrames) error {
	n := len(v.Timestamps)
	if v.Count > 0 {
		n = v.Count
	}
	words, err := numberWords(n)
	if err != nil {
		return fmt.Errorf("frame count: %w", err)
	}
	fmt.Fprintf(b, videoIntro, words, formatDuration(int64(v.Duration)))
	for _, t := range v.Timestamps {
		m, s := minutesSeconds(t)
		fmt.Fprintf(b, frameMessage, m, s)
		e.writeImage(b, ImageGrid{})
	}
	b.WriteString(mediaOutro)
	return nil
}

func validateVideo(v VideoFrames) error {
	if len(v.Timestamps) == 0 {
		return fmt.Errorf("no frames")
	}
	if len(v.Timestamps) > maxWords || v.Count > maxWords {
		return fmt.Errorf("%d frames, more than %d", max(len(v.Timestamps), v.Count), maxWords)
	}
	if v.Count != 0 && v.Count < len(v.Timestamps) {
		return fmt.Errorf("frame count %d is less than the %d timestamps", v.Count, len(v.Timestamps))
	}
	if !(v.Duration >= 0) || math.IsInf(v.Duration, 0) {
		return fmt.Errorf("duration %v s: want a finite value >= 0", v.Duration)
	}
	for k, t := range v.Timestamps {
		if !(t >= 0) || math.IsInf(t, 0) {
			return fmt.Errorf("frame %d: timestamp %v s: want a finite value >= 0", k, t)
		}
	}
	return nil
}

// formatDuration is Python's str(timedelta(seconds=s)) for s >= 0:
// "H:MM:SS" with unpadded hours, prefixed by "N day(s), " past 24 h.
func formatDuration(s int64) string {
	d, s := s/86400, s%86400
	hms := fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	switch d {
	case 0:
		return hms
	case 1:
		return "1 day, " + hms
	default:
		return fmt.Sprintf("%d days, %s", d, hms)
	}
}

// minutesSeconds is (int(t // 60), int(t % 60)) with Python's float
// floor-division semantics for t >= 0.
func minutesSeconds(t float64) (int64, int64) {
	mod := math.Mod(t, 60)
	// CPython computes floor division as (t - fmod(t, 60)) / 60, rounded
	// to the nearest integer, which avoids t/60 rounding up across an
	// integer boundary.
	return int64(math.Round((t - mod) / 60)), int64(mod)
}

// count writes "1 <image> placeholder" / "2 <image> placeholders".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// given writes "1 image was given" / "0 images were given".
func given(n int, noun string) string {
	if n == 1 {
		return "1 " + noun + " was given"
	}
	return strconv.Itoa(n) + " " + noun + "s were given"
}
