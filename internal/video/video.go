// Package video turns a video file into the frames a SmolVLM2 model sees,
// reproducing transformers' SmolVLMVideoProcessor (spec §4.1): it reads the
// stream's metadata with ffprobe, picks frame indices with sample_frames'
// rule (Sampling.Indices), decodes only those frames to RGB with ffmpeg
// through a pipe, resizes each to the longest edge video_size and then to
// the square tile M×M with torchvision's antialiased bicubic (resize.go),
// and normalises them like images.
//
// The definitions follow transformers' PyAV reader: frame i is the i-th
// frame the decoder outputs, the frame count is the container's nb_frames
// (counted from the packets when the container has none), the native rate
// is the stream's average frame rate, duration = frames / rate and frame
// i's time is i / rate. Rotation metadata is not applied (PyAV does not).
//
// ffmpeg and ffprobe must be on PATH (ErrNoFFmpeg otherwise). Every ffmpeg
// runs under the caller's context with a timeout and is killed when either
// ends. Sizes come from the model's preprocessor_config.json
// (OptionsFromConfig).
//
// The golden tests compare indices, timestamps, prompt text and pixels with
// an independent Python implementation (PyAV + torchvision):
// scripts/video-golden/.
package video

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/snapvlm/snapvlm/internal/imageproc"
	"github.com/snapvlm/snapvlm/internal/modelconfig"
)

// maxImageSize is transformers' MAX_IMAGE_SIZE, the cap on video_size.
const maxImageSize = 4096

// Defaults of the guards and the ffmpeg timeout.
const (
	DefaultMaxFramePixels = 8192 * 8192
	DefaultMaxTotalPixels = 1 << 40
	DefaultTimeout        = 5 * time.Minute
)

// Options configures Load. OptionsFromConfig fills it from a model.
type Options struct {
	Sampling Sampling
	// VideoSize is the longest edge of the first resize
	// (video_sampling.video_size.longest_edge); FrameSize is the square
	// tile M of the second (max_image_size.longest_edge).
	VideoSize, FrameSize int
	Mean, Std            [3]float32
	RescaleFactor        float64
	// MaxFramePixels bounds width×height; MaxTotalPixels bounds
	// frames×width×height of the whole stream. 0 means the default.
	MaxFramePixels, MaxTotalPixels int64
	// Timeout bounds each ffmpeg/ffprobe run (0: DefaultTimeout).
	Timeout time.Duration
	// Decode picks the decoding strategy (DecodeAuto by default).
	Decode DecodeMode
	// Workers is the number of ffmpeg processes DecodeSeek runs at once
	// (0: the number of CPUs).
	Workers int
}

func (o Options) withDefaults() Options {
	if o.MaxFramePixels <= 0 {
		o.MaxFramePixels = DefaultMaxFramePixels
	}
	if o.MaxTotalPixels <= 0 {
		o.MaxTotalPixels = DefaultMaxTotalPixels
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Workers <= 0 {
		o.Workers = runtime.NumCPU()
	}
	return o
}

// OptionsFromConfig reads video_sampling (fps, max_frames, video_size),
// max_image_size and the normalisation of preprocessor_config.json. A model
// without video_sampling (SmolVLM v1) does not take videos.
func OptionsFromConfig(p modelconfig.Preprocessor) (Options, error) {
	const file = modelconfig.PreprocessorFile
	vs := p.VideoSampling
	if vs == nil {
		return Options{}, fmt.Errorf("%s has no video_sampling: this model does not take videos (SmolVLM2 models do)", file)
	}
	img, err := imageproc.OptionsFromConfig(p)
	if err != nil {
		return Options{}, err
	}
	o := Options{
		Sampling:      Sampling{FPS: vs.FPS, MaxFrames: vs.MaxFrames, SkipSecs: 1},
		VideoSize:     vs.VideoSize.LongestEdge,
		FrameSize:     img.TileSize,
		Mean:          img.Mean,
		Std:           img.Std,
		RescaleFactor: img.RescaleFactor,
	}
	switch {
	case !(o.Sampling.FPS > 0):
		return o, fmt.Errorf("%s: video_sampling.fps is missing or not positive (got %v)", file, vs.FPS)
	case o.Sampling.MaxFrames <= 0:
		return o, fmt.Errorf("%s: video_sampling.max_frames is missing or not positive (got %d)", file, vs.MaxFrames)
	case o.VideoSize <= 0:
		return o, fmt.Errorf("%s: video_sampling.video_size.longest_edge is missing or not positive (got %d)", file, o.VideoSize)
	}
	return o, nil
}

func (o Options) validate() error {
	if o.VideoSize <= 0 || o.FrameSize <= 0 {
		return fmt.Errorf("video: VideoSize (%d) and FrameSize (%d) must be positive", o.VideoSize, o.FrameSize)
	}
	if o.Std[0] == 0 || o.Std[1] == 0 || o.Std[2] == 0 || o.RescaleFactor == 0 {
		return errors.New("video: Std and RescaleFactor must not be 0")
	}
	return nil
}

// Video is one sampled video: its metadata, the frames picked and the
// frames resized to FrameSize×FrameSize.
type Video struct {
	Path       string
	Meta       Metadata
	Indices    []int     // frame indices, increasing
	Timestamps []float64 // seconds, Indices[k] / Meta.FPS
	Frames     []*imageproc.RGB
	Mode       DecodeMode    // how the frames were decoded
	Probe      time.Duration // ffprobe time
	Decode     time.Duration // ffmpeg decode + resize time
	Size       int           // FrameSize
}

// FrameSize is the size of the first resize (longest edge to l, capped at
// MAX_IMAGE_SIZE, the other side truncated and made even, at least 1):
// transformers' video get_resize_output_image_size. It returns (w, h).
func FrameSize(w, h, l int) (int, int) {
	l = min(l, maxImageSize)
	aspect := float64(w) / float64(h)
	if w >= h {
		w = l
		h = int(float64(w) / aspect)
		if h%2 != 0 {
			h++
		}
	} else {
		h = l
		w = int(float64(h) * aspect)
		if w%2 != 0 {
			w++
		}
	}
	return max(w, 1), max(h, 1)
}

// Sample reads the metadata of the video at path and picks its frames
// without decoding any: everything of Video but Frames (enough for the
// prompt text).
func Sample(ctx context.Context, path string, opt Options) (*Video, error) {
	v, _, err := sample(ctx, path, opt)
	return v, err
}

func sample(ctx context.Context, path string, opt Options) (*Video, []packet, error) {
	if err := opt.validate(); err != nil {
		return nil, nil, err
	}
	opt = opt.withDefaults()
	t0 := time.Now()
	m, pkts, err := probe(ctx, path, opt)
	if err != nil {
		return nil, nil, err
	}
	v := &Video{Path: path, Meta: m, Size: opt.FrameSize, Probe: time.Since(t0)}
	if v.Indices, err = opt.Sampling.Indices(m); err != nil {
		return nil, nil, fmt.Errorf("video %s: %w", path, err)
	}
	v.Timestamps = make([]float64, len(v.Indices))
	for k, i := range v.Indices {
		v.Timestamps[k] = float64(i) / m.FPS
	}
	return v, pkts, nil
}

// Load samples, decodes and resizes the frames of the video at path.
func Load(ctx context.Context, path string, opt Options) (*Video, error) {
	v, pkts, err := sample(ctx, path, opt)
	if err != nil {
		return nil, err
	}
	opt = opt.withDefaults()
	m := v.Meta
	t1 := time.Now()
	v.Frames = make([]*imageproc.RGB, len(v.Indices))
	w1, h1 := FrameSize(m.Width, m.Height, opt.VideoSize)
	// Frames are resized as they arrive, on other goroutines, while ffmpeg
	// decodes the next ones; only the small results are kept.
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(runtime.GOMAXPROCS(0)/2, 1))
	v.Mode, err = decode(ctx, path, m, v.Indices, pkts, opt, func(k int, img *imageproc.RGB) error {
		if img.W != m.Width || img.H != m.Height {
			return fmt.Errorf("video %s: frame %d is %dx%d, want %dx%d", path, v.Indices[k], img.W, img.H, m.Width, m.Height)
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			v.Frames[k] = resizeBicubicAA(resizeBicubicAA(img, w1, h1), opt.FrameSize, opt.FrameSize)
		})
		return nil
	})
	wg.Wait()
	if err != nil {
		return nil, err
	}
	v.Decode = time.Since(t1)
	return v, nil
}

// Pixels returns the frames as float32 [frames, 3, M, M], normalised as
// transformers' fast video processor does: rescale and normalise fused into
// (p − mean/rescale) / (std/rescale) in float32.
func (v *Video) Pixels(opt Options) []float32 {
	var lut [3][256]float32
	for c := range 3 {
		mean := float32(opt.Mean[c]) * float32(1/opt.RescaleFactor)
		std := float32(opt.Std[c]) * float32(1/opt.RescaleFactor)
		for p := range 256 {
			lut[c][p] = float32(float32(p)-mean) / std
		}
	}
	m := v.Size
	plane := m * m
	out := make([]float32, len(v.Frames)*3*plane)
	for k, f := range v.Frames {
		base := out[k*3*plane : (k+1)*3*plane]
		for p := range plane {
			base[p] = lut[0][f.Pix[p*3]]
			base[plane+p] = lut[1][f.Pix[p*3+1]]
			base[2*plane+p] = lut[2][f.Pix[p*3+2]]
		}
	}
	return out
}
