package imageproc

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// fuzzMaxPixels bounds what one fuzz input may decode to, so that an
// iteration stays fast; a header claiming more must be refused.
const fuzzMaxPixels = 1 << 20

// FuzzDecodeProcess feeds arbitrary bytes to the decoders (libjpeg, libwebp
// through cgo; PNG and GIF in Go) and what decodes through the processor, at
// a small scale of SmolVLM's settings (longest edge 3 tiles, tiles of 32).
// Seeds: the images under testdata/inputs (up to 16 KB) and
// testdata/fuzz/FuzzDecodeProcess.
func FuzzDecodeProcess(f *testing.F) {
	inputs, err := filepath.Glob("testdata/inputs/*")
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range inputs {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) <= 16<<10 { // large seeds slow every mutation down
			f.Add(b)
		}
	}
	opt := Options{LongestEdge: 96, TileSize: 32, Split: true, Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.5, 0.5, 0.5}, RescaleFactor: 1.0 / 255}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := DecodeBytes(data, "fuzz", fuzzMaxPixels)
		if err != nil {
			return
		}
		if img.W <= 0 || img.H <= 0 || len(img.Pix) != 3*img.W*img.H {
			t.Fatalf("decoded %dx%d with %d bytes of pixels", img.W, img.H, len(img.Pix))
		}
		if int64(img.W)*int64(img.H) > fuzzMaxPixels {
			t.Fatalf("decoded %dx%d, more than the %d pixels allowed", img.W, img.H, fuzzMaxPixels)
		}
		b, err := Process(ctx, []*RGB{img}, opt)
		if err != nil {
			t.Fatalf("Process of a decoded %dx%d image: %v", img.W, img.H, err)
		}
		m := opt.TileSize
		if b.Size != m || len(b.Pixels) != b.Frames*3*m*m || len(b.Images) != 1 {
			t.Fatalf("batch of %d frames of size %d with %d values, %d images", b.Frames, b.Size, len(b.Pixels), len(b.Images))
		}
		info := b.Images[0]
		want := info.Rows*info.Cols + 1
		if info.Rows == 0 {
			want = 1
		}
		if info.Frames != b.Frames || b.Frames != want {
			t.Fatalf("%d frames for a %dx%d grid (info says %d)", b.Frames, info.Rows, info.Cols, info.Frames)
		}
		for _, v := range b.Pixels {
			if v < -1 || v > 1 {
				t.Fatalf("pixel value %v outside [-1, 1]", v)
			}
		}
	})
}

// npyHeader is the header dict numpy.save writes for a C-order array.
var npyHeader = regexp.MustCompile(`^\{'descr': '<f4', 'fortran_order': False, 'shape': \(([0-9, ]*)\), \} *\n$`)

// readNPY parses a version 1.0 .npy file of little-endian float32 the way
// numpy.load does (NEP 1: magic, version, header length, a dict literal
// padded so the data starts at a multiple of 64).
func readNPY(b []byte) (shape []int64, data []float32, err error) {
	if len(b) < 10 || string(b[:8]) != "\x93NUMPY\x01\x00" {
		return nil, nil, strconv.ErrSyntax
	}
	n := int(binary.LittleEndian.Uint16(b[8:10]))
	if len(b) < 10+n || (10+n)%64 != 0 {
		return nil, nil, strconv.ErrRange
	}
	m := npyHeader.FindStringSubmatch(string(b[10 : 10+n]))
	if m == nil {
		return nil, nil, strconv.ErrSyntax
	}
	count := int64(1)
	for _, s := range strings.Split(m[1], ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		d, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, nil, err
		}
		shape = append(shape, d)
		count *= d
	}
	body := b[10+n:]
	if int64(len(body)) != 4*count {
		return nil, nil, strconv.ErrRange
	}
	data = make([]float32, count)
	for i := range data {
		data[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
	}
	return shape, data, nil
}

// FuzzNPY writes batches of any shape and values (NaNs, infinities,
// negative zeros included) and reads them back as numpy would.
func FuzzNPY(f *testing.F) {
	// The reader reads what numpy.save wrote (testdata, scripts/pillow-golden).
	np, err := os.ReadFile("testdata/pixels_1x2x3x2x2.npy")
	if err != nil {
		f.Fatal(err)
	}
	if shape, data, err := readNPY(np); err != nil || !slices.Equal(shape, []int64{1, 2, 3, 2, 2}) || data[23] != 3.0/7 {
		f.Fatalf("reading numpy's file: shape %v, err %v", shape, err)
	}
	f.Add(uint8(2), uint8(2), []byte("\x00\x00\x80\x3f\x00\x00\xc0\x7f\x00\x00\x00\x80"))
	f.Add(uint8(1), uint8(1), []byte{})
	f.Add(uint8(0), uint8(0), []byte{1})
	f.Fuzz(func(t *testing.T, frames, size uint8, seed []byte) {
		fr, sz := int(frames%8), int(size%16)
		b := &Batch{Frames: fr, Size: sz, Pixels: make([]float32, fr*3*sz*sz)}
		for i := range b.Pixels {
			var w [4]byte
			for k := range w {
				if len(seed) > 0 {
					w[k] = seed[(4*i+k)%len(seed)]
				}
			}
			b.Pixels[i] = math.Float32frombits(binary.LittleEndian.Uint32(w[:]))
		}
		var buf bytes.Buffer
		if err := b.WriteNPY(&buf); err != nil {
			t.Fatal(err)
		}
		shape, data, err := readNPY(buf.Bytes())
		if err != nil {
			t.Fatalf("reading back: %v\n%q", err, buf.Bytes()[:min(buf.Len(), 128)])
		}
		if want := b.Shape(); !slices.Equal(shape, want) {
			t.Fatalf("shape %v, want %v", shape, want)
		}
		for i := range data {
			if math.Float32bits(data[i]) != math.Float32bits(b.Pixels[i]) {
				t.Fatalf("value %d: %v, want %v", i, data[i], b.Pixels[i])
			}
		}
	})
}
