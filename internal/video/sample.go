package video

import (
	"fmt"
	"math"
)

// Sampling is how many frames to take from a video: transformers'
// SmolVLMVideoProcessor.sample_frames parameters (video_sampling.fps and
// video_sampling.max_frames of preprocessor_config.json, skip_secs 1).
type Sampling struct {
	FPS       float64 // target frames per second of video
	MaxFrames int     // upper bound on the number of frames
	SkipSecs  float64 // seconds skipped at both ends of a long enough video
}

// Indices returns the frame indices sample_frames picks for a video with
// m.Frames frames, native frame rate m.FPS and duration m.Duration seconds
// (spec §4.1):
//
//  1. desired = min(round(FPS·duration), MaxFrames), at least 1;
//  2. the range is [0, total−1], or [int(SkipSecs·nativeFPS),
//     int(total − SkipSecs·nativeFPS)] clamped to total−1 when
//     duration − 2·SkipSecs > MaxFrames·FPS (back to [0, total−1] if empty);
//  3. numpy.linspace over the range with desired points, truncated to int,
//     de-duplicated and sorted.
func (s Sampling) Indices(m Metadata) ([]int, error) {
	total, nativeFPS, duration := m.Frames, m.FPS, m.Duration
	if total < 1 {
		return nil, fmt.Errorf("video has %d frames, want at least 1", total)
	}
	if !(nativeFPS > 0) || math.IsInf(nativeFPS, 0) {
		return nil, fmt.Errorf("native frame rate %v, want a finite value > 0", nativeFPS)
	}
	if !(s.FPS > 0) || math.IsInf(s.FPS, 0) {
		return nil, fmt.Errorf("sampling fps %v, want a finite value > 0", s.FPS)
	}
	if s.MaxFrames < 1 {
		return nil, fmt.Errorf("max frames %d, want at least 1", s.MaxFrames)
	}
	if !(duration >= 0) || math.IsInf(duration, 0) {
		return nil, fmt.Errorf("duration %v s, want a finite value >= 0", duration)
	}
	// Python's round() rounds half to even.
	desired := min(int(math.RoundToEven(s.FPS*duration)), s.MaxFrames)
	desired = max(desired, 1)

	start, end := 0, total-1
	if s.SkipSecs > 0 && duration-2*s.SkipSecs > float64(s.MaxFrames)*s.FPS {
		start = int(s.SkipSecs * nativeFPS)
		end = int(float64(total) - s.SkipSecs*nativeFPS)
	}
	start = max(start, 0)
	end = min(end, total-1)
	if start >= end {
		start, end = 0, total-1
	}
	lin := linspace(float64(start), float64(end), desired)
	out := make([]int, 0, len(lin))
	for _, v := range lin {
		i := int(v) // astype(int) truncates toward zero; v >= 0
		if len(out) == 0 || i > out[len(out)-1] {
			out = append(out, i)
		}
	}
	return out, nil
}

// linspace is numpy.linspace(start, stop, num) with endpoint=True in float64:
// arange(num)·step + start with step = (stop−start)/(num−1), the last value
// set to stop exactly. The values are non-decreasing, so de-duplicating
// neighbours equals numpy.unique.
func linspace(start, stop float64, num int) []float64 {
	y := make([]float64, num)
	div := num - 1
	delta := stop - start
	if div == 0 {
		y[0] = start
		return y
	}
	step := delta / float64(div)
	for i := range y {
		// The explicit float64 conversions keep the compiler from fusing
		// the multiply and add (numpy rounds the product first).
		if step == 0 {
			y[i] = float64(float64(i)/float64(div)*delta) + start
		} else {
			y[i] = float64(float64(i)*step) + start
		}
	}
	y[num-1] = stop
	return y
}
