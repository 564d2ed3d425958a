package snapvlm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/snapvlm/snapvlm/internal/jsref"
	"github.com/snapvlm/snapvlm/internal/jsref/jsreftest"
	"github.com/snapvlm/snapvlm/internal/prompt"
	"github.com/snapvlm/snapvlm/internal/video/videotest"
)

// testClip writes a short lavfi test clip (seconds long at rate fps).
func testClip(t testing.TB, name, size string, rate, seconds int) string {
	t.Helper()
	videotest.Require(t)
	path := filepath.Join(t.TempDir(), name)
	src := "testsrc2=size=" + size + ":rate=" + strconv.Itoa(rate) + ":duration=" + strconv.Itoa(seconds)
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", src,
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", path).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return path
}

func videoRequest(v *Video, question string) Request {
	return Request{Messages: []Message{{Role: User, Content: []Part{{Video: v}, {Text: question}}}}, GenerateOptions: GenerateOptions{MaxNewTokens: 8}}
}

// TestGenerateVideo runs a clip through the whole pipeline: sampled frames
// become single-form images in the prompt, their features are cached, and
// the same clip from memory gives the same answer.
func TestGenerateVideo(t *testing.T) {
	clip := testClip(t, "clip.mp4", "96x64", 10, 3)
	m := loadModel(t, "tiny512", Options{Dtype: "fp32"})
	v, err := VideoFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	res := greedy(t, m, videoRequest(v, "What happens?"))
	if len(res.Videos) != 1 {
		t.Fatalf("%d videos in the result, want 1", len(res.Videos))
	}
	info := res.Videos[0]
	// 30 frames at 10 fps: round(1·3) = 3 frames, linspace(0, 29, 3).
	if info.Frames != 3 || !slices.Equal(info.Indices, []int{0, 14, 29}) || info.TotalFrames != 30 || info.Cached {
		t.Errorf("video info %+v, want 3 frames [0 14 29] of 30, not cached", info)
	}
	if res.Tiles != 3 || res.ImageTokens != 3*m.seqLen {
		t.Errorf("tiles %d, image tokens %d; want 3 and %d", res.Tiles, res.ImageTokens, 3*m.seqLen)
	}
	text := prompt.Expander{ImageSeqLen: m.seqLen}
	want, err := text.Expand("<|im_start|>User: <video>What happens?<end_of_utterance>\nAssistant:", nil,
		[]prompt.VideoFrames{{Timestamps: info.Timestamps, Duration: info.Duration}})
	if err != nil {
		t.Fatal(err)
	}
	if ids := m.tok.Encode(want); !slices.Equal(ids, res.PromptTokens) {
		t.Errorf("prompt ids differ from the tokenized expansion of the template's video turn")
	}
	if res.Timings.VideoDecode <= 0 || res.Timings.Vision <= 0 {
		t.Errorf("timings %+v: want video decode and vision time", res.Timings)
	}

	again := greedy(t, m, videoRequest(v, "What happens?"))
	if !again.Videos[0].Cached || !slices.Equal(again.Tokens, res.Tokens) {
		t.Errorf("second ask: cached %v, tokens %v; want cached and %v", again.Videos[0].Cached, again.Tokens, res.Tokens)
	}
	data, err := os.ReadFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	fromBytes := greedy(t, m, videoRequest(VideoBytes("upload.mp4", data), "What happens?"))
	if !slices.Equal(fromBytes.Tokens, res.Tokens) || !slices.Equal(fromBytes.PromptTokens, res.PromptTokens) {
		t.Errorf("the same clip from memory answered %v, want %v", fromBytes.Tokens, res.Tokens)
	}
	fewer := videoRequest(v, "What happens?")
	fewer.MaxFrames = 2
	if r := greedy(t, m, fewer); r.Videos[0].Frames != 2 || r.Videos[0].Cached {
		t.Errorf("MaxFrames 2: %+v, want 2 frames, not cached (other options)", r.Videos[0])
	}
}

// TestGenerateVideoErrors checks that a bad video fails the request with an
// error naming it, and that a cancelled context returns a cancelled result.
func TestGenerateVideoErrors(t *testing.T) {
	videotest.Require(t)
	m := loadModel(t, "tiny512", Options{Dtype: "fp32"})
	bad := VideoBytes("notes.mp4", []byte("not a video"))
	_, err := m.Generate(context.Background(), videoRequest(bad, "?"), nil)
	if err == nil || !strings.Contains(err.Error(), "notes.mp4") {
		t.Errorf("err = %v, want an error naming notes.mp4", err)
	}
	clip := testClip(t, "clip.mp4", "96x64", 10, 2)
	v, err := VideoFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := m.Generate(ctx, videoRequest(v, "?"), nil)
	if !errors.Is(err, context.Canceled) || res == nil || res.FinishReason != FinishCancelled {
		t.Errorf("cancelled: %v, %v; want FinishCancelled and context.Canceled", res, err)
	}
	t.Setenv("PATH", t.TempDir())
	_, err = m.Generate(context.Background(), videoRequest(v, "?"), nil)
	if !errors.Is(err, ErrNoFFmpeg) {
		t.Errorf("without ffmpeg: %v, want ErrNoFFmpeg", err)
	}
}

// TestChatVideo asks about a video, then follows up: the video's features
// and the decoder cache of the first turn are reused.
func TestChatVideo(t *testing.T) {
	clip := testClip(t, "clip.mp4", "96x64", 10, 2)
	m := loadModel(t, "tiny512", Options{Dtype: "fp32"})
	v, err := VideoFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	c := m.NewChat()
	first, err := c.Send(context.Background(), Message{Content: []Part{{Video: v}, {Text: "What happens?"}}}, GenerateOptions{MaxNewTokens: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Send(context.Background(), UserMessage("And then?"), GenerateOptions{MaxNewTokens: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Videos) != 1 || len(second.Videos) != 1 || !second.Videos[0].Cached || second.ReusedTokens == 0 {
		t.Errorf("follow-up: videos %+v, reused %d; want the video's features cached and the cache reused", second.Videos, second.ReusedTokens)
	}
}

// TestVideoAgainstTransformersJS runs transformers.js's generate() on the
// same model, prompt ids and frame pixel values (transformers.js has no
// SmolVLM video processing, so the frames come from ours) and requires the
// same greedy tokens. (The image cases of TestAgainstTransformersJS cover
// the variants; the video path differs only before the vision encoder.)
func TestVideoAgainstTransformersJS(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: starts node")
	}
	jsreftest.Require(t)
	clip := testClip(t, "clip.mp4", "160x96", 12, 4)
	for _, dtype := range []string{"fp32"} {
		t.Run(dtype, func(t *testing.T) {
			m := loadModel(t, "tiny512", Options{Dtype: dtype})
			v, err := VideoFile(clip)
			if err != nil {
				t.Fatal(err)
			}
			req := videoRequest(v, "Describe this video in detail")
			req.MaxNewTokens = 20
			ours := greedy(t, m, req)
			jr := jsref.Request{
				ModelDir:     m.Dir(),
				Dtype:        map[string]string{jsref.VisionEncoder: dtype, jsref.EmbedTokens: dtype, jsref.Decoder: dtype},
				InputIDs:     ours.PromptTokens,
				MaxNewTokens: req.MaxNewTokens,
				LoadVision:   true,
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			if jr.Pixels, jr.PixelShape, err = m.PixelValues(ctx, req); err != nil {
				t.Fatal(err)
			}
			if jr.PixelShape[1] != int64(ours.Videos[0].Frames) {
				t.Fatalf("pixel values of %d frames, the prompt has %d", jr.PixelShape[1], ours.Videos[0].Frames)
			}
			ref, err := jsref.Generate(ctx, jr)
			if err != nil {
				t.Fatal(err)
			}
			want := ref.GeneratedIDs
			if len(ours.Tokens) < len(want) {
				if last := ours.Tokens[len(ours.Tokens)-1]; !m.eos[last] {
					t.Fatalf("ours stopped early on %d, not an end token", last)
				}
				want = want[:len(ours.Tokens)]
			}
			if !slices.Equal(ours.Tokens, want) {
				t.Fatalf("generated ids differ\n ours:            %v\n transformers.js: %v", ours.Tokens, ref.GeneratedIDs)
			}
			t.Logf("%d frames, %d prompt tokens, %d ids identical", ours.Videos[0].Frames, len(ours.PromptTokens), len(ours.Tokens))
		})
	}
}
