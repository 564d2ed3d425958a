package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/snapvlm/snapvlm"
)

// videoFlags are the flags of the commands that take videos.
type videoFlags struct {
	paths     multiFlag
	maxFrames int
	fps       float64
}

func (v *videoFlags) register(fs *flag.FlagSet) {
	fs.Var(&v.paths, "video", "video file (repeatable; MP4, WebM, MOV, MKV, AVI, animated GIF...): frames sampled as SmolVLM2's processor does (needs ffmpeg)")
	fs.IntVar(&v.maxFrames, "max-frames", 0, "most frames sampled from a video (0: the model's video_sampling.max_frames, 64)")
	fs.Float64Var(&v.fps, "fps", 0, "frames sampled per second of video (0: the model's video_sampling.fps, 1)")
}

// validate checks the flags that need no model.
func (v *videoFlags) validate() error {
	if err := intRange("max-frames", v.maxFrames, 0, 1024, "0: the model's video_sampling.max_frames"); err != nil {
		return err
	}
	return floatRange("fps", v.fps, 0, 1000, "0: the model's video_sampling.fps")
}

// videoInfo is one video in the JSON of `preprocess --video`.
type videoInfo struct {
	File        string    `json:"file"`
	Width       int       `json:"width"`
	Height      int       `json:"height"`
	TotalFrames int       `json:"total_frames"`
	Rate        string    `json:"fps"`
	Duration    float64   `json:"duration"`
	Indices     []int     `json:"indices"`
	Timestamps  []float64 `json:"timestamps"`
	Frames      int       `json:"frames"`
	ImageTokens int       `json:"image_tokens"`
	Tokens      int       `json:"tokens"`
	Decode      string    `json:"decode"`
	DecodeMS    float64   `json:"decode_ms"`
}

func newVideoInfo(path string, v snapvlm.VideoInfo, seqLen int) videoInfo {
	return videoInfo{
		File: path, Width: v.Width, Height: v.Height,
		TotalFrames: v.TotalFrames, Rate: v.FPS, Duration: v.Duration,
		Indices: v.Indices, Timestamps: v.Timestamps, Frames: v.Frames,
		ImageTokens: v.Frames * seqLen, Tokens: v.Tokens,
		Decode: v.Decode, DecodeMS: ms(v.DecodeTime),
	}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

// readVideos refers to the --video files (read when the request runs).
func (f *engineFlags) readVideos() ([]*snapvlm.Video, error) {
	_, vids, err := openMedia(nil, f.videos.paths)
	return vids, err
}

// userMessage is a user turn with the videos, then the images, then the
// text.
func userMessage(text string, videos []*snapvlm.Video, images []*snapvlm.Image) snapvlm.Message {
	msg := snapvlm.Message{Role: snapvlm.User}
	for _, v := range videos {
		msg.Content = append(msg.Content, snapvlm.Part{Video: v})
	}
	for _, img := range images {
		msg.Content = append(msg.Content, snapvlm.Part{Image: img})
	}
	if text != "" {
		msg.Content = append(msg.Content, snapvlm.Part{Text: text})
	}
	return msg
}

// printVideoStats is the --verbose report of the videos of a result: frames
// sampled, their times, decoding time and vision time per frame.
func printVideoStats(w io.Writer, res *snapvlm.Result) {
	if len(res.Videos) == 0 {
		return
	}
	frames := 0
	for i, v := range res.Videos {
		frames += v.Frames
		how := "decoded by " + v.Decode
		if v.Cached {
			how = "features cached"
		}
		fmt.Fprintf(w, "[video %d: %d of %d frames sampled (%s video, %s) at", i+1, v.Frames, v.TotalFrames,
			(time.Duration(v.Duration * float64(time.Second))).Round(time.Millisecond), how)
		for _, t := range v.Timestamps {
			fmt.Fprintf(w, " %02d:%02d", int(t)/60, int(t)%60)
		}
		fmt.Fprintln(w, "]")
	}
	t := res.Timings
	perFrame := time.Duration(0)
	if res.Tiles > 0 {
		perFrame = t.Vision / time.Duration(res.Tiles)
	}
	fmt.Fprintf(w, "[video decode %s for %d frames, vision %s per frame]\n", t.VideoDecode.Round(1e5), frames, perFrame.Round(1e5))
}

// chatVideo refers to a video file after checking that ffmpeg reads it, so
// that a bad one is refused when attached.
func chatVideo(path string) (*snapvlm.Video, error) {
	v, err := snapvlm.VideoFile(path)
	if err != nil {
		return nil, err
	}
	if err := v.Check(context.Background()); err != nil {
		return nil, err
	}
	return v, nil
}
