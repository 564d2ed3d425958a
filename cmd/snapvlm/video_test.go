package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/video/videotest"
)

// videoPreprocessor is SmolVLM2-256M's preprocessor_config.json.
const videoPreprocessor = `{"do_image_splitting": true, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
 "max_image_size": {"longest_edge": 512}, "resample": 1, "rescale_factor": 0.00392156862745098,
 "size": {"longest_edge": 2048}, "video_sampling": {"fps": 1, "max_frames": 64, "video_size": {"longest_edge": 512}}}`

// TestPromptVideoSpecExample is the spec's integration example (§4.1,
// transformers' test_integration_test_video): nine frames of a 9-second
// clip, rendered and decoded without special tokens, give exactly the
// quoted prompt. 221 frames at 24 fps (9.21 s) put the sampled frames at
// 0, 1.1, 2.3, 3.4, 4.6, 5.7, 6.9, 8.0 and 9.2 s, as in the test's video.
func TestPromptVideoSpecExample(t *testing.T) {
	videotest.Require(t)
	dir := promptModelDir(t, true)
	if err := os.WriteFile(filepath.Join(dir, "preprocessor_config.json"), []byte(videoPreprocessor), 0o644); err != nil {
		t.Fatal(err)
	}
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=24",
		"-frames:v", "221", "-c:v", "libx264", "-preset", "ultrafast", clip).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var out, errOut bytes.Buffer
	if err := runPrompt(context.Background(), []string{"--model", dir, "--video", clip, "--json", "Describe this video in detail"}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var got promptJSON
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	text := got.Prompt
	for _, special := range []string{"<|im_start|>", "<fake_token_around_image>", "<global-img>", "<image>", "<end_of_utterance>"} {
		text = strings.ReplaceAll(text, special, "")
	}
	want := "User: You are provided the following series of nine frames from a 0:00:09 [H:MM:SS] video.\n\nFrame from 00:00:\nFrame from 00:01:\nFrame from 00:02:\nFrame from 00:03:\nFrame from 00:04:\nFrame from 00:05:\nFrame from 00:06:\nFrame from 00:08:\nFrame from 00:09:\n\nDescribe this video in detail\nAssistant:"
	if text != want {
		t.Errorf("prompt without special tokens\n%q\nwant\n%q", text, want)
	}
	// 9 frames × 64 <image> tokens; each frame's "<fake><global-img>" etc.
	if got.ImageTokens != 9*64 {
		t.Errorf("%d <image> tokens, want %d", got.ImageTokens, 9*64)
	}
}
