package video

import (
	"context"
	"os"
	"testing"
)

// BenchmarkLoad samples, decodes and resizes the frames of the video named
// by SNAPVLM_BENCH_VIDEO with SmolVLM2's settings, in each decode mode:
//
//	SNAPVLM_BENCH_VIDEO=clip.mp4 go test -run '^$' -bench Load -benchtime 1x ./internal/video
func BenchmarkLoad(b *testing.B) {
	path := os.Getenv("SNAPVLM_BENCH_VIDEO")
	if path == "" {
		b.Skip("set SNAPVLM_BENCH_VIDEO to a video file")
	}
	for _, mode := range []DecodeMode{DecodeAuto, DecodeSeek, DecodeSelect} {
		b.Run(mode.String(), func(b *testing.B) {
			opt := testOptions(512, 512)
			opt.Decode = mode
			for b.Loop() {
				v, err := Load(context.Background(), path, opt)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(len(v.Frames)), "frames")
				b.ReportMetric(v.Probe.Seconds(), "probe-s")
				b.ReportMetric(v.Decode.Seconds(), "decode-s")
			}
		})
	}
}

// BenchmarkResize1080p is the two resizes of one 1920×1080 frame to the
// 512×512 tile.
func BenchmarkResize1080p(b *testing.B) {
	img := pattern(1920, 1080)
	w, h := FrameSize(1920, 1080, 512)
	for b.Loop() {
		resizeBicubicAA(resizeBicubicAA(img, w, h), 512, 512)
	}
}
