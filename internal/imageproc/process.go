// Package imageproc turns images into the pixel_values tensor of a SmolVLM
// vision encoder, reproducing Python transformers' SmolVLMImageProcessor on
// Pillow bit for bit: transformers' load_image path (EXIF orientation, then
// Pillow's convert("RGB")), resize #1 to the longest edge, resize #2 to
// multiples of the tile size, row-major tiles plus a global image, rescale
// and normalise to float32.
//
// Every size comes from the model's preprocessor_config.json
// (OptionsFromConfig); nothing is specific to one model.
package imageproc

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/snapvlm/snapvlm/internal/modelconfig"
)

// DefaultMaxPixels is the decode guard used when Options.MaxPixels is 0.
const DefaultMaxPixels = 50_000_000

// maxImageSize is transformers' MAX_IMAGE_SIZE: resize #1 never makes a side
// longer than this.
const maxImageSize = 4096

// Options configures Process. OptionsFromConfig fills it from a model.
type Options struct {
	LongestEdge int  // resize #1 target (size.longest_edge)
	TileSize    int  // M (max_image_size.longest_edge)
	Split       bool // do_image_splitting
	Mean, Std   [3]float32
	// RescaleFactor is float64 because transformers multiplies the uint8
	// values by it in float64 before casting to float32; a float32 factor
	// changes the result for most pixel values.
	RescaleFactor float64
	MaxPixels     int64  // decode guard, default 50_000_000
	Resample      Filter // 0 means LANCZOS
}

// OptionsFromConfig reads the processor settings of preprocessor_config.json.
// Missing sizes are errors; missing mean/std/rescale take transformers'
// defaults (0.5, 0.5, 1/255) only where transformers itself would.
func OptionsFromConfig(p modelconfig.Preprocessor) (Options, error) {
	const file = modelconfig.PreprocessorFile
	o := Options{
		LongestEdge:   p.Size.LongestEdge,
		TileSize:      p.MaxImageSize.LongestEdge,
		Split:         true,
		Mean:          [3]float32{0.5, 0.5, 0.5},
		Std:           [3]float32{0.5, 0.5, 0.5},
		RescaleFactor: 1.0 / 255,
		MaxPixels:     DefaultMaxPixels,
		Resample:      Lanczos,
	}
	if o.LongestEdge <= 0 {
		return o, fmt.Errorf("%s: size.longest_edge is missing or not positive (got %d)", file, o.LongestEdge)
	}
	if o.TileSize <= 0 {
		return o, fmt.Errorf("%s: max_image_size.longest_edge is missing or not positive (got %d)", file, o.TileSize)
	}
	if p.DoImageSplitting != nil {
		o.Split = *p.DoImageSplitting
	}
	if p.RescaleFactor != 0 {
		o.RescaleFactor = p.RescaleFactor
	}
	if p.DoRescale != nil && !*p.DoRescale {
		o.RescaleFactor = 1
	}
	for _, f := range []struct {
		name string
		in   []float64
		out  *[3]float32
	}{{"image_mean", p.ImageMean, &o.Mean}, {"image_std", p.ImageStd, &o.Std}} {
		switch len(f.in) {
		case 0:
		case 1:
			*f.out = [3]float32{float32(f.in[0]), float32(f.in[0]), float32(f.in[0])}
		case 3:
			*f.out = [3]float32{float32(f.in[0]), float32(f.in[1]), float32(f.in[2])}
		default:
			return o, fmt.Errorf("%s: %s has %d values, want 1 or 3", file, f.name, len(f.in))
		}
	}
	if p.DoNormalize != nil && !*p.DoNormalize {
		o.Mean, o.Std = [3]float32{}, [3]float32{1, 1, 1}
	}
	for c, s := range o.Std {
		if s == 0 {
			return o, fmt.Errorf("%s: image_std[%d] is 0", file, c)
		}
	}
	if p.Resample != nil {
		o.Resample = Filter(*p.Resample)
		if _, _, err := o.Resample.kernel(); err != nil {
			return o, fmt.Errorf("%s: resample: %w", file, err)
		}
	}
	return o, nil
}

func (o Options) validate() error {
	if o.LongestEdge <= 0 || o.TileSize <= 0 {
		return fmt.Errorf("imageproc: LongestEdge (%d) and TileSize (%d) must be positive", o.LongestEdge, o.TileSize)
	}
	if o.Std[0] == 0 || o.Std[1] == 0 || o.Std[2] == 0 {
		return errors.New("imageproc: Std must not contain 0")
	}
	if o.RescaleFactor == 0 {
		return errors.New("imageproc: RescaleFactor must not be 0")
	}
	_, _, err := o.filter().kernel()
	return err
}

func (o Options) filter() Filter {
	if o.Resample == 0 {
		return Lanczos
	}
	return o.Resample
}

// RGB is a packed 8-bit RGB image, row-major, 3 bytes per pixel.
type RGB struct {
	W, H int
	Pix  []uint8
}

// ImageInfo describes the frames one image became. Rows and Cols are 0 for
// the single-frame form (no split, or an image that fits one tile).
type ImageInfo struct{ Rows, Cols, Frames int }

// Batch is the pixel_values of one prompt (batch size 1).
type Batch struct {
	Pixels []float32 // [frames, 3, M, M] for all images in order (batch dim 1 is implicit)
	Frames int
	Size   int // M
	Images []ImageInfo
}

// Shape returns the pixel_values shape [1, frames, 3, M, M].
func (b *Batch) Shape() []int64 {
	return []int64{1, int64(b.Frames), 3, int64(b.Size), int64(b.Size)}
}

// Mask returns pixel_attention_mask [1, frames, M, M]: all true, because a
// single sample is never padded.
func (b *Batch) Mask() []bool {
	m := make([]bool, b.Frames*b.Size*b.Size)
	for i := range m {
		m[i] = true
	}
	return m
}

// resize1Size is transformers' get_resize_output_image_size: longest side to
// l (small images are upscaled), the other side truncated and made even,
// then capped at maxImageSize.
func resize1Size(w, h, l int) (int, int) {
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
	h, w = max(h, 1), max(w, 1)
	aspect = float64(w) / float64(h)
	if w >= h && w > maxImageSize {
		w = maxImageSize
		h = int(float64(w) / aspect)
	} else if h > w && h > maxImageSize {
		h = maxImageSize
		w = int(float64(h) * aspect)
	}
	return max(w, 1), max(h, 1)
}

// ceilMul rounds v up to a multiple of m, as math.ceil(v / m) * m.
func ceilMul(v, m int) int { return int(math.Ceil(float64(v)/float64(m))) * m }

// resize2Size is transformers' resize_for_vision_encoder target size.
func resize2Size(w, h, m int) (int, int) {
	aspect := float64(w) / float64(h)
	if w >= h {
		w = ceilMul(w, m)
		h = ceilMul(int(float64(w)/aspect), m)
	} else {
		h = ceilMul(h, m)
		w = ceilMul(int(float64(h)*aspect), m)
	}
	return w, h
}

// stages holds the uint8 intermediate results of one image, for tests.
type stages struct {
	resized1 *RGB   // after resize #1
	resized2 *RGB   // after resize #2 (nil without splitting)
	frames   []*RGB // tiles row-major, then the global image; or the single frame
	info     ImageInfo
}

// tiles runs the uint8 part of the processor on one decoded RGB image.
func tiles(img *RGB, opt Options) (*stages, error) {
	f := opt.filter()
	m := opt.TileSize
	w1, h1 := resize1Size(img.W, img.H, opt.LongestEdge)
	r1, err := Resize(img, w1, h1, f)
	if err != nil {
		return nil, fmt.Errorf("resize #1: %w", err)
	}
	st := &stages{resized1: r1}
	if !opt.Split {
		sq, err := Resize(r1, m, m, f)
		if err != nil {
			return nil, fmt.Errorf("square resize: %w", err)
		}
		st.frames = []*RGB{sq}
		st.info = ImageInfo{Frames: 1}
		return st, nil
	}
	w2, h2 := resize2Size(r1.W, r1.H, m)
	r2, err := Resize(r1, w2, h2, f)
	if err != nil {
		return nil, fmt.Errorf("resize #2: %w", err)
	}
	st.resized2 = r2
	if r2.H <= m && r2.W <= m {
		st.frames = []*RGB{r2}
		st.info = ImageInfo{Frames: 1}
		return st, nil
	}
	rows := int(math.Ceil(float64(r2.H) / float64(m)))
	cols := int(math.Ceil(float64(r2.W) / float64(m)))
	th := int(math.Ceil(float64(r2.H) / float64(rows)))
	tw := int(math.Ceil(float64(r2.W) / float64(cols)))
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			x0, y0 := c*tw, r*th
			st.frames = append(st.frames, crop(r2, x0, y0, min(x0+tw, r2.W), min(y0+th, r2.H)))
		}
	}
	g, err := Resize(r2, m, m, f)
	if err != nil {
		return nil, fmt.Errorf("global resize: %w", err)
	}
	st.frames = append(st.frames, g)
	st.info = ImageInfo{Rows: rows, Cols: cols, Frames: len(st.frames)}
	return st, nil
}

func crop(img *RGB, x0, y0, x1, y1 int) *RGB {
	out := &RGB{W: x1 - x0, H: y1 - y0, Pix: make([]uint8, (x1-x0)*(y1-y0)*3)}
	for y := y0; y < y1; y++ {
		copy(out.Pix[(y-y0)*out.W*3:], img.Pix[(y*img.W+x0)*3:(y*img.W+x1)*3])
	}
	return out
}

// lut returns, per channel, the float32 value of every uint8 input computed
// with transformers' dtype path: float32(float64(p) * rescale), then
// (x - mean) / std in float32.
func (o Options) lut() [3][256]float32 {
	var t [3][256]float32
	for c := 0; c < 3; c++ {
		for p := 0; p < 256; p++ {
			x := float32(float64(p) * o.RescaleFactor)
			t[c][p] = float32(x-o.Mean[c]) / o.Std[c]
		}
	}
	return t
}

// Process turns decoded images into the pixel_values of one prompt: per
// image in order its tiles (row-major) then its global image, each frame
// 3×M×M channels-first float32.
func Process(ctx context.Context, imgs []*RGB, opt Options) (*Batch, error) {
	if err := opt.validate(); err != nil {
		return nil, err
	}
	m := opt.TileSize
	b := &Batch{Size: m}
	var all []*RGB
	for i, img := range imgs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if img == nil || img.W <= 0 || img.H <= 0 || len(img.Pix) != img.W*img.H*3 {
			return nil, fmt.Errorf("image %d: not a valid RGB image", i)
		}
		st, err := tiles(img, opt)
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		for j, f := range st.frames {
			if f.W != m || f.H != m {
				// Cannot happen with the transformers arithmetic; padding is
				// not implemented because batch 1 never needs it.
				return nil, fmt.Errorf("image %d frame %d: got %dx%d, want %dx%d", i, j, f.W, f.H, m, m)
			}
		}
		all = append(all, st.frames...)
		b.Images = append(b.Images, st.info)
	}
	b.Frames = len(all)
	b.Pixels = make([]float32, len(all)*3*m*m)
	t := opt.lut()
	plane := m * m
	parallelChunks(len(all), 1, func(i0, i1 int) {
		for i := i0; i < i1; i++ {
			base := b.Pixels[i*3*plane : (i+1)*3*plane]
			r, g, bl := base[:plane], base[plane:2*plane], base[2*plane:]
			pix := all[i].Pix[:plane*3]
			for p := range r {
				q := pix[p*3 : p*3+3 : p*3+3]
				r[p], g[p], bl[p] = t[0][q[0]], t[1][q[1]], t[2][q[2]]
			}
		}
	})
	return b, nil
}
