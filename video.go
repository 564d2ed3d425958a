package snapvlm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/snapvlm/snapvlm/internal/prompt"
	"github.com/snapvlm/snapvlm/internal/video"
)

// Video is a video given to a message (SmolVLM2 models): a file, or bytes
// held in memory. Its frames are sampled, decoded and resized as
// transformers' SmolVLMVideoProcessor does (see internal/video) when a
// request needs them, which takes ffmpeg on PATH; the frames' features are
// cached like an image's, keyed by the video and the sampling options.
type Video struct {
	Name string // shown in errors
	path string // the file (VideoFile), or "" for bytes
	data []byte // the contents (VideoBytes, VideoReader)
	id   [32]byte
}

// DefaultMaxVideoBytes is the most VideoReader reads: 1 GiB.
const DefaultMaxVideoBytes = 1 << 30

// ErrNoFFmpeg is returned when a request has a video and ffmpeg or ffprobe
// is not on PATH.
var ErrNoFFmpeg = video.ErrNoFFmpeg

// VideoFile refers to a video file. The file is read when a request needs
// its frames. Its cache identity is the file's path, size, modification
// time and inode, so that a long video is not read twice just to hash it; a
// rewritten file is a new video.
func VideoFile(path string) (*Video, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("video: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("video %s: not a regular file (%v)", path, st.Mode().Type())
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("video %s: %w", path, err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "file|%s|%d|%d", abs, st.Size(), st.ModTime().UnixNano())
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		fmt.Fprintf(h, "|%d|%d", sys.Dev, sys.Ino)
	}
	v := &Video{Name: path, path: path}
	h.Sum(v.id[:0])
	return v, nil
}

// VideoBytes is a video held in memory (an upload). name is shown in
// errors; its extension, if any, is kept for ffmpeg's format guess.
func VideoBytes(name string, data []byte) *Video {
	v := &Video{Name: name, data: data}
	v.id = sha256.Sum256(data)
	return v
}

// VideoReader reads a video of at most maxBytes (0: DefaultMaxVideoBytes)
// into memory.
func VideoReader(name string, r io.Reader, maxBytes int64) (*Video, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxVideoBytes
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("video %s: %w", name, err)
	}
	if n > maxBytes {
		return nil, fmt.Errorf("video %s: longer than %d bytes", name, maxBytes)
	}
	return VideoBytes(name, buf.Bytes()), nil
}

// Check reads the video's metadata with ffprobe, as a request will, and
// returns the error a request would fail with (ErrNoFFmpeg without
// ffprobe), so that a program can refuse a bad video when it is given.
func (v *Video) Check(ctx context.Context) error {
	path, cleanup, err := v.file()
	if err != nil {
		return err
	}
	defer cleanup()
	_, err = video.Probe(ctx, path, video.Options{})
	return videoErr(v, path, err)
}

// VideoInfo is what one video of a request became.
type VideoInfo struct {
	Frames      int       `json:"frames"`       // frames sampled (vision-encoder frames)
	Indices     []int     `json:"indices"`      // their indices in the video
	Timestamps  []float64 `json:"timestamps"`   // their times, seconds
	Duration    float64   `json:"duration"`     // of the video, seconds (frames / rate)
	TotalFrames int       `json:"total_frames"` // in the video
	Decode      string    `json:"decode"`       // how the frames were decoded (select, seek)
	Cached      bool      `json:"cached"`       // features came from the cache
	// Width, Height and FPS (a rational, e.g. "24/1") are the video
	// stream's, where known.
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
	FPS    string `json:"fps,omitempty"`
	// Tokens is the number of prompt tokens the video adds (its frames'
	// <image> tokens and their text); set by Processor.Process.
	Tokens int `json:"tokens,omitempty"`
	// DecodeTime is the time spent decoding and resizing the frames
	// (Processor.Process with pixel values).
	DecodeTime time.Duration `json:"-"`
}

// newVideoInfo describes a sampled (and possibly decoded) video.
func newVideoInfo(vid *video.Video) VideoInfo {
	info := VideoInfo{Frames: len(vid.Indices), Indices: vid.Indices, Timestamps: vid.Timestamps, Duration: vid.Meta.Duration,
		TotalFrames: vid.Meta.Frames, Width: vid.Meta.Width, Height: vid.Meta.Height, FPS: vid.Meta.Rate}
	if len(vid.Frames) > 0 {
		info.Decode, info.DecodeTime = vid.Mode.String(), vid.Decode
	}
	return info
}

// videoEntry is what a cached video feature entry remembers of the video.
type videoEntry struct {
	info VideoInfo
}

// videoOptions are the model's video options with the request's overrides.
func (m *Model) videoOptions(o GenerateOptions) (video.Options, error) {
	return m.processor.videoOptions(o)
}

func videoKey(v *Video, opt video.Options) [32]byte {
	h := sha256.New()
	h.Write(v.id[:])
	fmt.Fprintf(h, "|video|%v|%d|%d|%v|%v|%v", opt.Sampling, opt.VideoSize, opt.FrameSize, opt.Mean, opt.Std, opt.RescaleFactor)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// file returns a path ffmpeg can read for v: its file, or a temporary copy
// of its bytes (ffmpeg needs a seekable file: MP4 indexes may sit at the
// end) that cleanup removes.
func (v *Video) file() (path string, cleanup func(), err error) {
	if v == nil || (v.path == "" && v.data == nil) {
		return "", nil, errors.New("video: empty Video (use VideoFile, VideoBytes or VideoReader)")
	}
	if v.path != "" {
		return v.path, func() {}, nil
	}
	f, err := os.CreateTemp("", "snapvlm-video-*"+filepath.Ext(v.Name))
	if err != nil {
		return "", nil, fmt.Errorf("video %s: %w", v.Name, err)
	}
	cleanup = func() { os.Remove(f.Name()) }
	_, err = f.Write(v.data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("video %s: %w", v.Name, err)
	}
	return f.Name(), cleanup, nil
}

// videoErr names the video in err: the upload's name, not the temporary
// file's (whose path the video package's errors give).
func videoErr(v *Video, path string, err error) error {
	if err == nil || v.path != "" {
		return err
	}
	return fmt.Errorf("video %s: %s", v.Name, strings.ReplaceAll(err.Error(), path, v.Name))
}

// sampleVideo picks the frames of v (decode: and decodes and resizes
// them).
func sampleVideo(ctx context.Context, v *Video, opt video.Options, decode bool) (*video.Video, error) {
	path, cleanup, err := v.file()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	var vid *video.Video
	if decode {
		vid, err = video.Load(ctx, path, opt)
	} else {
		vid, err = video.Sample(ctx, path, opt)
	}
	return vid, videoErr(v, path, err)
}

// videoPlan is one video of a request before decoding: the frames the
// sampler picks (from the cache, or from ffprobe's metadata alone).
type videoPlan struct {
	v       *Video
	opt     video.Options
	key     [32]byte
	path    string
	cleanup func()
	info    VideoInfo
}

// planVideos picks each video's frames without decoding any. The caller
// runs the plans' cleanups.
func (m *Model) planVideos(ctx context.Context, videos []*Video, o GenerateOptions) ([]videoPlan, error) {
	if len(videos) == 0 {
		return nil, nil
	}
	if m.vis == nil {
		return nil, errors.New("generate: the model was loaded text-only (Options.TextOnly) but the request has videos")
	}
	opt, err := m.videoOptions(o)
	if err != nil {
		return nil, err
	}
	plans := make([]videoPlan, 0, len(videos))
	fail := func(err error) ([]videoPlan, error) {
		for _, pl := range plans {
			pl.cleanup()
		}
		return nil, err
	}
	for _, v := range videos {
		pl := videoPlan{v: v, opt: opt, key: videoKey(v, opt), cleanup: func() {}}
		if ent, ok := m.features.get(pl.key); ok && ent.video != nil {
			pl.info = ent.video.info
			plans = append(plans, pl)
			continue
		}
		if pl.path, pl.cleanup, err = v.file(); err != nil {
			return fail(err)
		}
		plans = append(plans, pl)
		vid, err := video.Sample(ctx, pl.path, opt)
		if err != nil {
			return fail(videoErr(v, pl.path, err))
		}
		plans[len(plans)-1].info = newVideoInfo(vid)
	}
	return plans, nil
}

// promptVideos is what the prompt needs of each video. transformers spells
// pixel_values.shape[1] in every intro: the largest frame count of the
// videos in the call.
func promptVideos(infos []VideoInfo) []prompt.VideoFrames {
	out := make([]prompt.VideoFrames, len(infos))
	count := 0
	for _, v := range infos {
		count = max(count, v.Frames)
	}
	for i, v := range infos {
		out[i] = prompt.VideoFrames{Timestamps: v.Timestamps, Duration: v.Duration}
		if len(infos) > 1 {
			out[i].Count = count
		}
	}
	return out
}

// videoFeature returns the features of a planned video's sampled frames
// from the cache or by decoding and encoding them (time added to
// res.Timings).
func (m *Model) videoFeature(ctx context.Context, pl videoPlan, res *Result, progress func(done, tiles int)) (*featureEntry, bool, error) {
	ent, computed, err := m.features.do(ctx, pl.key, func() (*featureEntry, error) {
		t := time.Now()
		path, cleanup := pl.path, func() {}
		if path == "" { // planned from the cache, evicted since
			var err error
			if path, cleanup, err = pl.v.file(); err != nil {
				return nil, err
			}
		}
		defer cleanup()
		vid, err := video.Load(ctx, path, pl.opt)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, videoErr(pl.v, path, err)
		}
		pixels := vid.Pixels(pl.opt)
		res.Timings.VideoDecode += time.Since(t)
		t = time.Now()
		var onRun func(int)
		if progress != nil {
			progress(0, len(vid.Frames))
			onRun = func(done int) { progress(done, len(vid.Frames)) }
		}
		feats, err := m.vis.EncodeProgress(ctx, pixels, len(vid.Frames), onRun)
		if err != nil {
			return nil, fmt.Errorf("video %s: %w", pl.v.Name, err)
		}
		res.Timings.Vision += time.Since(t)
		return &featureEntry{features: feats, frames: len(vid.Frames), video: &videoEntry{info: newVideoInfo(vid)}}, nil
	})
	if err == nil && (ent.video == nil || !slices.Equal(ent.video.info.Indices, pl.info.Indices)) {
		return nil, false, fmt.Errorf("video %s: decoded other frames than were planned", pl.v.Name)
	}
	return ent, !computed, err
}
