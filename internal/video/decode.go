package video

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/snapvlm/snapvlm/internal/imageproc"
)

// DecodeMode chooses how the sampled frames are pulled out of the file.
type DecodeMode int

const (
	// DecodeAuto picks the cheaper of the two below from the keyframe
	// positions.
	DecodeAuto DecodeMode = iota
	// DecodeSelect runs one ffmpeg that decodes the video up to the last
	// sampled frame and keeps the sampled ones (select filter on the frame
	// number): exact by construction, cost grows with the position of the
	// last sampled frame.
	DecodeSelect
	// DecodeSeek runs one ffmpeg per sampled frame that seeks to the
	// keyframe before it and decodes from there: cost grows with the
	// keyframe interval, not the length of the video.
	DecodeSeek
)

func (d DecodeMode) String() string {
	switch d {
	case DecodeSelect:
		return "select"
	case DecodeSeek:
		return "seek"
	}
	return "auto"
}

// commonArgs are the ffmpeg input options of every decode. -noautorotate:
// transformers' PyAV reader does not apply rotation metadata, so neither
// does this. -sws_flags bilinear: the flags PyAV's to_ndarray("rgb24")
// gives libswscale.
var commonArgs = []string{"-nostdin", "-hide_banner", "-v", "error", "-noautorotate"}

func outputArgs(n int) []string {
	return []string{"-map", "0:v:0", "-an", "-sn", "-dn", "-vsync", "0", "-frames:v", strconv.Itoa(n),
		"-sws_flags", "bilinear", "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"}
}

// decode delivers the frames at indices (sorted, distinct) as packed RGB to
// onFrame(k, frame) in order of k. It returns the mode used.
func decode(ctx context.Context, path string, m Metadata, indices []int, pkts []packet, opt Options,
	onFrame func(k int, img *imageproc.RGB) error) (DecodeMode, error) {
	_, ffmpeg, err := tools()
	if err != nil {
		return 0, err
	}
	mode := opt.Decode
	var pts []float64
	if mode != DecodeSelect {
		last := indices[len(indices)-1]
		if mode == DecodeAuto && last < 300 {
			mode = DecodeSelect
		} else {
			if pkts == nil {
				if pkts, err = packets(ctx, path, opt); err != nil {
					return 0, err
				}
			}
			var ok bool
			pts, ok = seekable(pkts, m.Frames)
			switch {
			case !ok && mode == DecodeSeek:
				return 0, fmt.Errorf("video %s: cannot seek by frame (packets without distinct timestamps, or %d packets for %d frames)", path, len(pkts), m.Frames)
			case !ok:
				mode = DecodeSelect
			case mode == DecodeAuto:
				mode = DecodeSelect
				if seekCost(pkts, pts, indices) < float64(last+1) {
					mode = DecodeSeek
				}
			}
		}
	}
	if mode == DecodeSelect {
		return mode, decodeSelect(ctx, ffmpeg, path, m, indices, opt, onFrame)
	}
	return mode, decodeSeek(ctx, ffmpeg, path, m, indices, pts, opt, onFrame)
}

// seekable returns the presentation times of the frames in order when every
// packet has a distinct timestamp and there is one packet per frame.
func seekable(pkts []packet, frames int) ([]float64, bool) {
	if len(pkts) != frames || frames == 0 {
		return nil, false
	}
	pts := make([]float64, len(pkts))
	for i, p := range pkts {
		if math.IsNaN(p.pts) {
			return nil, false
		}
		pts[i] = p.pts
	}
	slices.Sort(pts)
	for i := 1; i < len(pts); i++ {
		if pts[i] == pts[i-1] {
			return nil, false
		}
	}
	return pts, true
}

// seekOverhead is the cost of starting one ffmpeg, in decoded frames.
const seekOverhead = 20

// seekCost estimates the frames decoded when seeking to each index: from
// the last keyframe at or before it, plus a start-up overhead per frame.
func seekCost(pkts []packet, pts []float64, indices []int) float64 {
	var keys []float64
	for _, p := range pkts {
		if p.key {
			keys = append(keys, p.pts)
		}
	}
	slices.Sort(keys)
	var cost float64
	for _, i := range indices {
		t := pts[i]
		k, found := slices.BinarySearch(keys, t)
		if !found {
			k--
		}
		from := 0
		if k >= 0 {
			from, _ = slices.BinarySearch(pts, keys[k])
		}
		cost += float64(i-from+1) + seekOverhead
	}
	return cost
}

// frameReader reads packed RGB frames of the probed size from r.
func readFrame(r io.Reader, m Metadata) (*imageproc.RGB, error) {
	img := &imageproc.RGB{W: m.Width, H: m.Height, Pix: make([]uint8, m.Width*m.Height*3)}
	if _, err := io.ReadFull(r, img.Pix); err != nil {
		return nil, err
	}
	return img, nil
}

// startFFmpeg starts ffmpeg with args under ctx and a timeout; stop waits
// for it and reports its error.
func startFFmpeg(ctx context.Context, ffmpeg string, timeout time.Duration, args []string) (io.Reader, func() error, error) {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	cmd := exec.CommandContext(tctx, ffmpeg, args...)
	cmd.WaitDelay = time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, nil, err
	}
	stop := func() error {
		err := cmd.Wait()
		defer cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		if tctx.Err() != nil {
			return fmt.Errorf("ffmpeg did not finish within %v", timeout)
		}
		if err != nil {
			return fmt.Errorf("ffmpeg: %v%s", err, lastLine(stderr.Bytes()))
		}
		return nil
	}
	return bufio.NewReaderSize(out, 1<<20), stop, nil
}

func decodeSelect(ctx context.Context, ffmpeg, path string, m Metadata, indices []int, opt Options,
	onFrame func(int, *imageproc.RGB) error) error {
	var expr strings.Builder
	for k, i := range indices {
		if k > 0 {
			expr.WriteByte('+')
		}
		fmt.Fprintf(&expr, "eq(n\\,%d)", i)
	}
	args := append(slices.Clone(commonArgs), "-i", path, "-vf", "select="+expr.String())
	args = append(args, outputArgs(len(indices))...)
	r, stop, err := startFFmpeg(ctx, ffmpeg, opt.Timeout, args)
	if err != nil {
		return fmt.Errorf("video %s: %w", path, err)
	}
	var ferr error
	got := 0
	for k := range indices {
		img, err := readFrame(r, m)
		if err != nil {
			break
		}
		if ferr = onFrame(k, img); ferr != nil {
			break
		}
		got++
	}
	if ferr != nil || got < len(indices) {
		// Drain so ffmpeg is not blocked writing, then collect its error.
		go io.Copy(io.Discard, r)
	}
	serr := stop()
	switch {
	case ferr != nil:
		return ferr
	case serr != nil:
		return fmt.Errorf("video %s: %w", path, serr)
	case got < len(indices):
		return fmt.Errorf("video %s: decoded %d of %d sampled frames (frames %v; the file says it has %d): truncated or damaged file", path, got, len(indices), indices, m.Frames)
	}
	return nil
}

func decodeSeek(ctx context.Context, ffmpeg, path string, m Metadata, indices []int, pts []float64, opt Options,
	onFrame func(int, *imageproc.RGB) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		img *imageproc.RGB
		err error
	}
	results := make([]chan result, len(indices))
	for k := range results {
		results[k] = make(chan result, 1)
	}
	sem := make(chan struct{}, opt.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		for k, i := range indices {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				for _, ch := range results[k:] {
					ch <- result{err: ctx.Err()}
				}
				return
			}
			wg.Go(func() {
				defer func() { <-sem }()
				img, err := seekOne(ctx, ffmpeg, path, m, i, pts, opt)
				results[k] <- result{img, err}
			})
		}
	}()
	for k, ch := range results {
		r := <-ch
		if r.err != nil {
			cancel()
			return fmt.Errorf("video %s: frame %d: %w", path, indices[k], r.err)
		}
		if err := onFrame(k, r.img); err != nil {
			cancel()
			return err
		}
	}
	return nil
}

// seekOne decodes frame i: ffmpeg seeks (accurately) to the midpoint
// between frame i−1 and frame i, so the first frame it outputs is frame i
// whatever the rounding of the timestamps.
func seekOne(ctx context.Context, ffmpeg, path string, m Metadata, i int, pts []float64, opt Options) (*imageproc.RGB, error) {
	args := slices.Clone(commonArgs)
	args = append(args, "-threads", "1")
	if i > 0 {
		// -ss is relative to the container's start time; the packet
		// times are absolute.
		ss := (pts[i-1]+pts[i])/2 - m.StartTime
		if ss > 0 {
			args = append(args, "-ss", strconv.FormatFloat(ss, 'f', 6, 64))
		}
	}
	args = append(args, "-i", path)
	args = append(args, outputArgs(1)...)
	r, stop, err := startFFmpeg(ctx, ffmpeg, opt.Timeout, args)
	if err != nil {
		return nil, err
	}
	img, rerr := readFrame(r, m)
	if rerr != nil {
		go io.Copy(io.Discard, r)
	}
	if err := stop(); err != nil {
		return nil, err
	}
	if rerr != nil {
		return nil, errors.New("ffmpeg returned no frame: truncated or damaged file")
	}
	return img, nil
}
