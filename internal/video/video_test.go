package video

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireFFmpeg is videotest.Require (which imports this package, so it
// cannot be used from here).
func requireFFmpeg(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("SNAPVLM_REQUIRE_FFMPEG") == "1" || os.Getenv("CI") == "true" {
			t.Fatalf("ffmpeg required (SNAPVLM_REQUIRE_FFMPEG=1 or CI=true): %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
}

// TestIndices checks the sampler on cases worked out by hand from the
// transformers code (spec §4.1, §7.5).
func TestIndices(t *testing.T) {
	tests := []struct {
		name   string
		s      Sampling
		frames int
		fps    float64
		want   []int
	}{
		// test_video_processing_smolvlm: 8 frames at 4 fps, num_frames 6, fps 3.
		{"transformers test", Sampling{FPS: 3, MaxFrames: 6, SkipSecs: 1}, 8, 4, []int{0, 1, 2, 4, 5, 7}},
		{"one frame", Sampling{FPS: 1, MaxFrames: 64, SkipSecs: 1}, 1, 30, []int{0}},
		// round(0.4) = 0 -> at least one frame, linspace(0, 11, 1) = [0].
		{"shorter than a sample", Sampling{FPS: 1, MaxFrames: 64, SkipSecs: 1}, 12, 30, []int{0}},
		// round(2.5) = 2 (half to even): linspace(0, 74, 2).
		{"half to even", Sampling{FPS: 1, MaxFrames: 64, SkipSecs: 1}, 75, 30, []int{0, 74}},
		// 100 s at 1 fps, max 4: 100-2 > 4 -> skip 1 s: linspace(1, 99, 4) = 1, 33.67, 66.33, 99.
		{"skip", Sampling{FPS: 1, MaxFrames: 4, SkipSecs: 1}, 100, 1, []int{1, 33, 66, 99}},
		// 6 frames, fps 10 over 0.6 s... desired round(10*3)=30 > 6 frames: duplicates dropped.
		{"duplicates", Sampling{FPS: 10, MaxFrames: 64, SkipSecs: 1}, 6, 2, []int{0, 1, 2, 3, 4, 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := Metadata{Frames: tc.frames, FPS: tc.fps, Duration: float64(tc.frames) / tc.fps}
			got, err := tc.s.Indices(m)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("Indices = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	for _, bad := range []struct {
		s Sampling
		m Metadata
	}{
		{Sampling{FPS: 1, MaxFrames: 64}, Metadata{Frames: 0, FPS: 30}},
		{Sampling{FPS: 1, MaxFrames: 64}, Metadata{Frames: 10, FPS: 0}},
		{Sampling{FPS: 0, MaxFrames: 64}, Metadata{Frames: 10, FPS: 30}},
		{Sampling{FPS: 1, MaxFrames: 0}, Metadata{Frames: 10, FPS: 30}},
	} {
		if _, err := bad.s.Indices(bad.m); err == nil {
			t.Errorf("Indices(%+v, %+v): no error", bad.s, bad.m)
		}
	}
}

func TestFrameSize(t *testing.T) {
	for _, tc := range []struct{ w, h, l, ww, wh int }{
		{1920, 1080, 512, 512, 288},
		{1080, 1920, 512, 288, 512},
		{640, 480, 512, 512, 384},
		{100, 80, 512, 512, 410}, // int(409.6) = 409 -> even 410
		{333, 77, 64, 64, 14},    // int(14.8) = 14, even
		{5000, 10, 8192, 4096, 8},
	} {
		if w, h := FrameSize(tc.w, tc.h, tc.l); w != tc.ww || h != tc.wh {
			t.Errorf("FrameSize(%d, %d, %d) = %dx%d, want %dx%d", tc.w, tc.h, tc.l, w, h, tc.ww, tc.wh)
		}
	}
}

// TestBadInput checks that what is not a usable video gives an error that
// names the file, quickly.
func TestBadInput(t *testing.T) {
	requireFFmpeg(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	text := write("notes.mp4", []byte("this is not a video\n"))
	empty := write("empty.mp4", nil)
	// An audio-only file.
	audio := filepath.Join(dir, "audio.wav")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", audio).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// A still image is a one-frame video (as PyAV reads it); a PNG works.
	// A truncated MP4: the first half of a clip.
	clip := filepath.Join(dir, "clip.mp4")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=128x96:rate=24:duration=4",
		"-c:v", "libx264", "-preset", "ultrafast", "-movflags", "+faststart", clip).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	full, _ := os.ReadFile(clip)
	truncated := write("truncated.mp4", full[:len(full)/2])
	fifo := filepath.Join(dir, "fifo.mp4")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// 12000×12000: ffmpeg accepts the size, the pixel guard does not.
	huge := write("huge.y4m", []byte("YUV4MPEG2 W12000 H12000 F24:1 Ip A1:1 C420jpeg\n"))

	tests := []struct {
		name, path, want string
	}{
		{"not a video", text, "not a readable video"},
		{"empty", empty, "empty file"},
		{"missing", filepath.Join(dir, "missing.mp4"), "no such file"},
		{"no video stream", audio, "no video stream"},
		{"truncated", truncated, "truncated"},
		{"fifo", fifo, "not a regular file"},
		{"directory", dir, "not a regular file"},
		{"absurd resolution", huge, "exceeds the limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := Load(ctx, tc.path, testOptions(64, 48))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want the path and %q", err, tc.want)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestCancel checks that cancelling the context stops ffmpeg promptly.
func TestCancel(t *testing.T) {
	requireFFmpeg(t)
	clip := filepath.Join(t.TempDir(), "long.mp4")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30:duration=120",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "3600", clip).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	opt := testOptions(64, 48)
	opt.Decode = DecodeSelect
	_, err := Load(ctx, clip, opt)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancel took %v", d)
	}
}

func TestNoFFmpeg(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Load(context.Background(), "clip.mp4", testOptions(64, 48))
	if !errors.Is(err, ErrNoFFmpeg) || !strings.Contains(err.Error(), "apt-get install ffmpeg") {
		t.Errorf("err = %v, want ErrNoFFmpeg", err)
	}
}
