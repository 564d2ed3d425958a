package video

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ErrNoFFmpeg is returned when ffmpeg or ffprobe is not on PATH.
var ErrNoFFmpeg = errors.New("video needs ffmpeg on PATH (apt-get install ffmpeg)")

// Metadata is what the sampler needs to know about a video stream, with the
// definitions transformers' PyAV reader uses: Frames is the stream's frame
// count (nb_frames of the container, or the number of packets when the
// container does not record it), FPS its average frame rate and Duration =
// Frames / FPS (not the container's duration).
type Metadata struct {
	Frames   int
	FPS      float64
	Duration float64
	// Rate is FPS as the exact fraction ffprobe reports ("30000/1001").
	Rate          string
	Width, Height int
	Codec         string
	Format        string
	// StartTime is the container's start time in seconds, the origin of
	// ffmpeg's -ss.
	StartTime float64
}

// tools finds ffprobe and ffmpeg.
func tools() (ffprobe, ffmpeg string, err error) {
	ffprobe, err = exec.LookPath("ffprobe")
	if err != nil {
		return "", "", ErrNoFFmpeg
	}
	ffmpeg, err = exec.LookPath("ffmpeg")
	if err != nil {
		return "", "", ErrNoFFmpeg
	}
	return ffprobe, ffmpeg, nil
}

// Available reports whether ffmpeg and ffprobe are on PATH.
func Available() error {
	_, _, err := tools()
	return err
}

// run runs a tool under ctx with a timeout and returns its stdout. The
// process is killed when ctx is cancelled or the timeout passes.
func run(ctx context.Context, timeout time.Duration, name string, args ...string) ([]byte, error) {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(tctx, name, args...)
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if tctx.Err() != nil {
		return nil, fmt.Errorf("%s did not finish within %v", baseName(name), timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %v%s", baseName(name), err, lastLine(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// lastLine returns ": " + the last non-empty line of a tool's stderr, or "".
func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return ": " + l
		}
	}
	return ""
}

// checkPath refuses what is not a regular file (a pipe or a device would
// make ffmpeg block or read forever).
func checkPath(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%v)", st.Mode().Type())
	}
	if st.Size() == 0 {
		return errors.New("empty file")
	}
	return nil
}

type probeJSON struct {
	Streams []struct {
		CodecName    string `json:"codec_name"`
		Width        int    `json:"width"`
		Height       int    `json:"height"`
		NbFrames     string `json:"nb_frames"`
		AvgFrameRate string `json:"avg_frame_rate"`
		RFrameRate   string `json:"r_frame_rate"`
		Disposition  struct {
			AttachedPic int `json:"attached_pic"`
		} `json:"disposition"`
	} `json:"streams"`
	Format struct {
		FormatName string `json:"format_name"`
		StartTime  string `json:"start_time"`
	} `json:"format"`
}

// Probe reads the metadata of the first video stream of the file at path.
func Probe(ctx context.Context, path string, opt Options) (Metadata, error) {
	m, _, err := probe(ctx, path, opt)
	return m, err
}

// probe returns the metadata and, when the frame count had to be counted,
// the packet list it was counted from.
func probe(ctx context.Context, path string, opt Options) (Metadata, []packet, error) {
	var m Metadata
	opt = opt.withDefaults()
	ffprobe, _, err := tools()
	if err != nil {
		return m, nil, err
	}
	if err := checkPath(path); err != nil {
		return m, nil, fmt.Errorf("video %s: %w", path, err)
	}
	out, err := run(ctx, opt.Timeout, ffprobe, "-v", "error", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,width,height,nb_frames,avg_frame_rate,r_frame_rate:stream_disposition=attached_pic:format=format_name,start_time",
		"-of", "json", "--", path)
	if err != nil {
		return m, nil, fmt.Errorf("video %s: not a readable video: %w", path, err)
	}
	var pj probeJSON
	if err := json.Unmarshal(out, &pj); err != nil {
		return m, nil, fmt.Errorf("video %s: ffprobe output: %w", path, err)
	}
	if len(pj.Streams) == 0 || pj.Streams[0].Disposition.AttachedPic != 0 {
		return m, nil, fmt.Errorf("video %s: no video stream (format %q)", path, pj.Format.FormatName)
	}
	s := pj.Streams[0]
	m.Codec, m.Format = s.CodecName, pj.Format.FormatName
	if st, err := strconv.ParseFloat(pj.Format.StartTime, 64); err == nil {
		m.StartTime = st
	}
	m.Width, m.Height = s.Width, s.Height
	if (m.Width <= 0 || m.Height <= 0) && m.Codec == "webp" {
		// ffmpeg before 7.1 reads still WebP only (PyAV, built on it,
		// neither).
		return m, nil, fmt.Errorf("video %s: this ffmpeg cannot decode animated WebP; convert it to a video or GIF first", path)
	}
	if m.Width <= 0 || m.Height <= 0 {
		return m, nil, fmt.Errorf("video %s: frame size %dx%d is not valid", path, m.Width, m.Height)
	}
	if px := int64(m.Width) * int64(m.Height); px > opt.MaxFramePixels {
		return m, nil, fmt.Errorf("video %s: frame size %dx%d = %d pixels exceeds the limit of %d", path, m.Width, m.Height, px, opt.MaxFramePixels)
	}
	rate, ok := parseRate(s.AvgFrameRate)
	m.Rate = s.AvgFrameRate
	if !ok {
		// PyAV has no average rate either; r_frame_rate is ffmpeg's guess.
		if rate, ok = parseRate(s.RFrameRate); !ok {
			return m, nil, fmt.Errorf("video %s: no frame rate (avg_frame_rate %q, r_frame_rate %q)", path, s.AvgFrameRate, s.RFrameRate)
		}
		m.Rate = s.RFrameRate
	}
	var pkts []packet
	if n, err := strconv.Atoi(s.NbFrames); err == nil && n > 0 {
		m.Frames = n
	} else {
		// WebM, GIF, raw streams: the container does not record the count.
		pkts, err = packets(ctx, path, opt)
		if err != nil {
			return m, nil, err
		}
		m.Frames = len(pkts)
	}
	if m.Frames < 1 {
		return m, nil, fmt.Errorf("video %s: no frames", path)
	}
	if total := int64(m.Frames) * int64(m.Width) * int64(m.Height); total > opt.MaxTotalPixels {
		return m, nil, fmt.Errorf("video %s: %d frames of %dx%d = %d pixels exceeds the limit of %d", path, m.Frames, m.Width, m.Height, total, opt.MaxTotalPixels)
	}
	m.FPS, _ = rate.Float64()
	// Duration = Frames / rate, computed exactly and rounded once, as
	// Python's int / Fraction then float() does.
	m.Duration, _ = new(big.Rat).Quo(new(big.Rat).SetInt64(int64(m.Frames)), rate).Float64()
	return m, pkts, nil
}

// parseRate parses "num/den" with num, den > 0.
func parseRate(s string) (*big.Rat, bool) {
	num, den, ok := strings.Cut(s, "/")
	if !ok {
		den = "1"
	}
	n, err1 := strconv.ParseInt(num, 10, 64)
	d, err2 := strconv.ParseInt(den, 10, 64)
	if err1 != nil || err2 != nil || n <= 0 || d <= 0 {
		return nil, false
	}
	r := new(big.Rat).SetFrac64(n, d)
	if f, _ := r.Float64(); math.IsInf(f, 0) {
		return nil, false
	}
	return r, true
}

// packet is one video packet: presentation time in seconds and whether it
// starts a keyframe.
type packet struct {
	pts float64
	key bool
}

// packets lists the video packets of the file (demuxing only, no decoding),
// in file order.
func packets(ctx context.Context, path string, opt Options) ([]packet, error) {
	ffprobe, _, err := tools()
	if err != nil {
		return nil, err
	}
	out, err := run(ctx, opt.Timeout, ffprobe, "-v", "error", "-select_streams", "v:0",
		"-show_entries", "packet=pts_time,flags", "-of", "csv=p=0", "--", path)
	if err != nil {
		return nil, fmt.Errorf("video %s: listing packets: %w", path, err)
	}
	var pkts []packet
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		ts, flags, _ := strings.Cut(line, ",")
		if strings.Contains(flags, "D") {
			continue // discarded by the demuxer (edit list): never decoded into a frame
		}
		pts, err := strconv.ParseFloat(ts, 64)
		if err != nil {
			pts = math.NaN()
		}
		pkts = append(pkts, packet{pts: pts, key: strings.Contains(flags, "K")})
	}
	return pkts, nil
}
