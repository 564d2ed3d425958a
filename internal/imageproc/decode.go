package imageproc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"io"
	"os"

	// Registered for image.DecodeConfig, which the pixel guard reads.
	_ "image/jpeg"

	_ "golang.org/x/image/webp"
)

// Decode reads an image file the way transformers' load_image does with
// Pillow: EXIF orientation applied, then convert("RGB") (grey and palette
// expanded, alpha dropped without compositing, CMYK and 16-bit samples
// converted as Pillow converts them). Images whose header declares more than
// maxPixels pixels (0 = DefaultMaxPixels) are refused before decoding.
// The file is read with ReadFile's default limit of DefaultMaxBytes.
func Decode(path string, maxPixels int64) (*RGB, error) {
	data, err := ReadFile(path, 0)
	if err != nil {
		return nil, err
	}
	return DecodeBytes(data, path, maxPixels)
}

// DefaultMaxBytes is the largest image file ReadFile reads when given no
// limit: 100 MB, far above any photo (a 50-megapixel PNG is ~150 MB only
// when uncompressed and incompressible).
const DefaultMaxBytes = 100 << 20

// ErrTooLarge is returned (wrapped, naming the file) by ReadFile for a file
// longer than its limit.
var ErrTooLarge = errors.New("image file too large")

// ReadFile reads an image file, at most maxBytes of it (0 = DefaultMaxBytes):
// a longer file, or an endless one such as /dev/zero or a pipe that never
// closes, is refused after maxBytes+1 bytes rather than read until memory
// runs out. Directories are refused before reading.
func ReadFile(path string, maxBytes int64) ([]byte, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read image: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read image: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("image %s: is a directory", path)
	}
	if st.Mode().IsRegular() && st.Size() > maxBytes {
		return nil, fmt.Errorf("image %s: %w: %d bytes, more than the limit of %d", path, ErrTooLarge, st.Size(), maxBytes)
	}
	var buf bytes.Buffer
	if st.Mode().IsRegular() {
		buf.Grow(int(st.Size()) + 1)
	}
	n, err := buf.ReadFrom(io.LimitReader(f, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read image %s: %w", path, err)
	}
	if n > maxBytes {
		return nil, fmt.Errorf("image %s: %w: %s gave more than the limit of %d bytes", path, ErrTooLarge, fileKind(st.Mode()), maxBytes)
	}
	return buf.Bytes(), nil
}

// fileKind names the kind of file m describes, for error messages.
func fileKind(m os.FileMode) string {
	switch {
	case m&os.ModeCharDevice != 0:
		return "the character device"
	case m&os.ModeDevice != 0:
		return "the device"
	case m&os.ModeNamedPipe != 0:
		return "the pipe"
	case m&os.ModeSocket != 0:
		return "the socket"
	}
	return "the file"
}

// DecodeBytes is Decode for an image already in memory; name is used in
// error messages.
func DecodeBytes(data []byte, name string, maxPixels int64) (*RGB, error) {
	img, err := decodeBytes(data, maxPixels)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	return img, nil
}

type format int

const (
	formatUnknown format = iota
	formatJPEG
	formatPNG
	formatGIF
	formatWebP
)

func (f format) String() string {
	return [...]string{"unknown", "JPEG", "PNG", "GIF", "WebP"}[f]
}

func sniff(b []byte) format {
	switch {
	case bytes.HasPrefix(b, []byte{0xff, 0xd8, 0xff}):
		return formatJPEG
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return formatPNG
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return formatGIF
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return formatWebP
	}
	return formatUnknown
}

// Dimensions returns the width and height Decode would give data (the
// header's size, swapped by an EXIF rotation) without decoding the pixels,
// with the checks Decode makes before decoding.
func Dimensions(data []byte, name string, maxPixels int64) (w, h int, err error) {
	f, cfg, err := header(data, maxPixels)
	if err != nil {
		return 0, 0, fmt.Errorf("image %s: %w", name, err)
	}
	if o := exifOrientation(data, f); o >= 5 && o <= 8 {
		return cfg.Height, cfg.Width, nil
	}
	return cfg.Width, cfg.Height, nil
}

// header sniffs the format and reads the header of an encoded image,
// refusing empty, unknown and over-large ones.
func header(data []byte, maxPixels int64) (format, image.Config, error) {
	if len(data) == 0 {
		return 0, image.Config{}, errors.New("file is empty")
	}
	f := sniff(data)
	if f == formatUnknown {
		return f, image.Config{}, errors.New("not a supported image (want JPEG, PNG, GIF or WebP)")
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return f, cfg, fmt.Errorf("bad or truncated %s header: %w", f, err)
	}
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return f, cfg, fmt.Errorf("%s header declares an empty %dx%d image", f, cfg.Width, cfg.Height)
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > maxPixels {
		return f, cfg, fmt.Errorf("%s is %dx%d = %d pixels, more than the limit of %d", f, cfg.Width, cfg.Height, px, maxPixels)
	}
	return f, cfg, nil
}

func decodeBytes(data []byte, maxPixels int64) (*RGB, error) {
	f, cfg, err := header(data, maxPixels)
	if err != nil {
		return nil, err
	}
	var img *RGB
	switch f {
	case formatJPEG:
		img, err = decodeJPEG(data, cfg.Width, cfg.Height, jpegComponents(cfg.ColorModel))
	case formatPNG:
		img, err = decodePNG(data)
	case formatGIF:
		img, err = decodeGIF(data)
	case formatWebP:
		img, err = decodeWebP(data)
	}
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", f, err)
	}
	if img.W != cfg.Width || img.H != cfg.Height {
		return nil, fmt.Errorf("decoded %s is %dx%d, header says %dx%d", f, img.W, img.H, cfg.Width, cfg.Height)
	}
	return orient(img, exifOrientation(data, f)), nil
}

// jpegComponents returns the number of samples per pixel libjpeg outputs
// for a JPEG whose image.DecodeConfig colour model is m.
func jpegComponents(m color.Model) int {
	switch m {
	case color.GrayModel:
		return 1
	case color.CMYKModel:
		return 4
	}
	return 3
}

func greyToRGB(dst, grey []uint8) {
	for i, v := range grey {
		d := dst[i*3 : i*3+3 : i*3+3]
		d[0], d[1], d[2] = v, v, v
	}
}

// cmykToRGB is Pillow's cmyk2rgb. With invert, samples are first inverted
// as Pillow's "CMYK;I" raw mode does for every CMYK JPEG (Adobe convention).
func cmykToRGB(dst, cmyk []uint8, invert bool) {
	for i := 0; i < len(cmyk)/4; i++ {
		s := cmyk[i*4 : i*4+4 : i*4+4]
		c, m, y, k := int(s[0]), int(s[1]), int(s[2]), int(s[3])
		if invert {
			c, m, y, k = 255-c, 255-m, 255-y, 255-k
		}
		nk := 255 - k
		d := dst[i*3 : i*3+3 : i*3+3]
		d[0] = clamp8(nk - mulDiv255(c, nk))
		d[1] = clamp8(nk - mulDiv255(m, nk))
		d[2] = clamp8(nk - mulDiv255(y, nk))
	}
}

// mulDiv255 is Pillow's MULDIV255: a*b/255 rounded.
func mulDiv255(a, b int) int {
	t := a*b + 128
	return ((t >> 8) + t) >> 8
}

func clamp8(v int) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// pngGrey16 reports whether a PNG is 16-bit greyscale (colour type 0), which
// Pillow opens in mode "I" and whose convert("RGB") clips values to 0..255
// instead of scaling them.
func pngGrey16(data []byte) bool {
	// IHDR is the first chunk: 8-byte signature, length, "IHDR", w, h, depth, colour type.
	if len(data) < 26 || string(data[12:16]) != "IHDR" {
		return false
	}
	return data[24] == 16 && data[25] == 0
}

func decodePNG(data []byte) (*RGB, error) {
	m, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if pngGrey16(data) {
		return fromImage(m, 0)
	}
	return fromImage(m, -1)
}

// fromImage converts a decoded image to RGB as Pillow's convert("RGB")
// would convert the same file: colour samples taken as they are (alpha
// dropped, not composited), 16-bit samples reduced to their high byte,
// except for 16-bit grey PNGs (pngColorType 0) whose values are clipped.
func fromImage(m image.Image, pngColorType int) (*RGB, error) {
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	img := &RGB{W: w, H: h, Pix: make([]uint8, w*h*3)}
	set := func(x, y int, r, g, bl uint8) {
		d := img.Pix[(y*w+x)*3 : (y*w+x)*3+3 : (y*w+x)*3+3]
		d[0], d[1], d[2] = r, g, bl
	}
	switch s := m.(type) {
	case *image.RGBA:
		// Opaque sources only (Go's PNG decoder uses RGBA for RGB without tRNS).
		for y := 0; y < h; y++ {
			row := s.Pix[y*s.Stride : y*s.Stride+w*4]
			for x := 0; x < w; x++ {
				set(x, y, row[x*4], row[x*4+1], row[x*4+2])
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := s.Pix[y*s.Stride : y*s.Stride+w*4]
			for x := 0; x < w; x++ {
				set(x, y, row[x*4], row[x*4+1], row[x*4+2])
			}
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			greyToRGB(img.Pix[y*w*3:(y+1)*w*3], s.Pix[y*s.Stride:y*s.Stride+w])
		}
	case *image.Gray16:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				i := y*s.Stride + x*2
				v := uint8(s.Pix[i])
				if pngColorType == 0 {
					v = clip16(s.Pix[i], s.Pix[i+1])
				}
				set(x, y, v, v, v)
			}
		}
	case *image.RGBA64:
		for y := 0; y < h; y++ {
			row := s.Pix[y*s.Stride : y*s.Stride+w*8]
			for x := 0; x < w; x++ {
				set(x, y, row[x*8], row[x*8+2], row[x*8+4])
			}
		}
	case *image.NRGBA64:
		for y := 0; y < h; y++ {
			row := s.Pix[y*s.Stride : y*s.Stride+w*8]
			for x := 0; x < w; x++ {
				p := row[x*8 : x*8+8]
				if pngColorType == 0 {
					v := clip16(p[0], p[1])
					set(x, y, v, v, v)
				} else {
					set(x, y, p[0], p[2], p[4])
				}
			}
		}
	case *image.Paletted:
		var pal [256][3]uint8
		for i, c := range s.Palette {
			pal[i] = straightRGB(c)
		}
		for y := 0; y < h; y++ {
			row := s.Pix[y*s.Stride : y*s.Stride+w]
			for x, idx := range row {
				p := pal[idx]
				set(x, y, p[0], p[1], p[2])
			}
		}
	default:
		// YCbCr (lossy WebP) and anything else: Go's own conversion.
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				c := straightRGB(m.At(b.Min.X+x, b.Min.Y+y))
				set(x, y, c[0], c[1], c[2])
			}
		}
	}
	return img, nil
}

// clip16 returns a big-endian 16-bit sample clipped to 0..255.
func clip16(hi, lo uint8) uint8 {
	if hi != 0 {
		return 255
	}
	return lo
}

// straightRGB returns the colour's RGB without alpha premultiplication.
func straightRGB(c color.Color) [3]uint8 {
	switch c := c.(type) {
	case color.NRGBA:
		return [3]uint8{c.R, c.G, c.B}
	case color.RGBA:
		if c.A == 0xff {
			return [3]uint8{c.R, c.G, c.B}
		}
	case color.Gray:
		return [3]uint8{c.Y, c.Y, c.Y}
	}
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	return [3]uint8{n.R, n.G, n.B}
}

// decodeGIF returns the first frame on the logical screen like Pillow (the
// only frame a still image uses; later frames are not decoded, so an
// animation costs what its first frame costs):
// pixels outside the frame take the transparent index if the frame has one,
// else index 0. Go's decoder replaces the transparent palette entry by
// transparent black; Pillow keeps the colour of the file's colour table, so
// the table is read here.
func decodeGIF(data []byte) (*RGB, error) {
	cfg, err := gif.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	m, err := gif.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	fr, ok := m.(*image.Paletted)
	if !ok {
		return nil, fmt.Errorf("first frame is %T, want a paletted image", m)
	}
	table, fill := gifFirstFrame(data)
	col := func(idx uint8) [3]uint8 {
		if int(idx)*3+2 < len(table) {
			return [3]uint8{table[int(idx)*3], table[int(idx)*3+1], table[int(idx)*3+2]}
		}
		return [3]uint8{}
	}
	w, h := cfg.Width, cfg.Height
	img := &RGB{W: w, H: h, Pix: make([]uint8, w*h*3)}
	bg := col(fill)
	for i := 0; i < w*h; i++ {
		copy(img.Pix[i*3:i*3+3], bg[:])
	}
	r := fr.Rect.Intersect(image.Rect(0, 0, w, h))
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c := col(fr.ColorIndexAt(x, y))
			copy(img.Pix[(y*w+x)*3:], c[:])
		}
	}
	return img, nil
}

// gifFirstFrame returns the colour table of the first frame (its local
// table if it has one, else the global table) and its transparent index
// (0 when it has none).
func gifFirstFrame(b []byte) (table []byte, transparent uint8) {
	if len(b) < 13 {
		return nil, 0
	}
	var global []byte
	p := 13
	if b[10]&0x80 != 0 {
		n := 3 << (b[10]&7 + 1)
		if p+n > len(b) {
			return nil, 0
		}
		global = b[p : p+n]
		p += n
	}
	for p < len(b) {
		switch b[p] {
		case 0x21: // extension: label, then sub-blocks
			if p+6 < len(b) && b[p+1] == 0xf9 && b[p+2] == 4 && b[p+3]&1 != 0 {
				transparent = b[p+6] // graphic control extension
			}
			p += 2
			for p < len(b) && b[p] != 0 {
				p += int(b[p]) + 1
			}
			p++
		case 0x2c: // image descriptor
			if p+10 <= len(b) && b[p+9]&0x80 != 0 {
				n := 3 << (b[p+9]&7 + 1)
				if p+10+n <= len(b) {
					return b[p+10 : p+10+n], transparent
				}
			}
			return global, transparent
		default:
			return global, transparent
		}
	}
	return global, transparent
}

// exifOrientation returns the EXIF orientation tag (1..8) of a JPEG (first
// APP1 Exif segment), PNG (eXIf chunk) or WebP (EXIF chunk), or 1.
func exifOrientation(b []byte, f format) int {
	var tiff []byte
	switch f {
	case formatJPEG:
		tiff = jpegExif(b)
	case formatPNG:
		tiff = pngChunk(b, "eXIf")
	case formatWebP:
		tiff = riffChunk(b, "EXIF")
	}
	tiff = bytes.TrimPrefix(tiff, []byte("Exif\x00\x00"))
	return tiffOrientation(tiff)
}

func jpegExif(b []byte) []byte {
	p := 2
	for p+4 <= len(b) {
		if b[p] != 0xff {
			return nil
		}
		m := b[p+1]
		if m == 0xff { // fill byte
			p++
			continue
		}
		if m == 0xda || m == 0xd9 { // start of scan / end of image
			return nil
		}
		n := int(binary.BigEndian.Uint16(b[p+2:]))
		if n < 2 || p+2+n > len(b) {
			return nil
		}
		seg := b[p+4 : p+2+n]
		if m == 0xe1 && bytes.HasPrefix(seg, []byte("Exif\x00\x00")) {
			return seg
		}
		p += 2 + n
	}
	return nil
}

// pngChunk returns the first chunk of type typ anywhere in the file: Pillow
// also finds an eXIf chunk that follows the image data.
func pngChunk(b []byte, typ string) []byte {
	p := 8
	for p+8 <= len(b) {
		n := int(binary.BigEndian.Uint32(b[p:]))
		if n < 0 || p+12+n > len(b) {
			return nil
		}
		if string(b[p+4:p+8]) == typ {
			return b[p+8 : p+8+n]
		}
		p += 12 + n
	}
	return nil
}

func riffChunk(b []byte, typ string) []byte {
	p := 12
	for p+8 <= len(b) {
		n := int(binary.LittleEndian.Uint32(b[p+4:]))
		if n < 0 || p+8+n > len(b) {
			return nil
		}
		if string(b[p:p+4]) == typ {
			return b[p+8 : p+8+n]
		}
		p += 8 + n + n&1
	}
	return nil
}

// tiffOrientation reads tag 0x0112 of IFD0 of a TIFF-structured EXIF block.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	off := int(bo.Uint32(t[4:]))
	if off < 8 || off+2 > len(t) {
		return 1
	}
	n := int(bo.Uint16(t[off:]))
	for i := 0; i < n; i++ {
		e := off + 2 + i*12
		if e+12 > len(t) {
			return 1
		}
		if bo.Uint16(t[e:]) != 0x0112 {
			continue
		}
		var v int
		switch bo.Uint16(t[e+2:]) {
		case 3: // SHORT
			v = int(bo.Uint16(t[e+8:]))
		case 4: // LONG
			v = int(bo.Uint32(t[e+8:]))
		default:
			return 1
		}
		if v >= 1 && v <= 8 {
			return v
		}
		return 1
	}
	return 1
}

// orient applies an EXIF orientation like Pillow's ImageOps.exif_transpose.
// Output pixel (x, y) is read from source pixel index base + x*dx + y*dy.
func orient(img *RGB, o int) *RGB {
	if o <= 1 || o > 8 {
		return img
	}
	W, H := img.W, img.H
	var base, dx, dy int
	switch o {
	case 2: // FLIP_LEFT_RIGHT
		base, dx, dy = W-1, -1, W
	case 3: // ROTATE_180
		base, dx, dy = (H-1)*W+W-1, -1, -W
	case 4: // FLIP_TOP_BOTTOM
		base, dx, dy = (H-1)*W, 1, -W
	case 5: // TRANSPOSE
		base, dx, dy = 0, W, 1
	case 6: // ROTATE_270
		base, dx, dy = (H-1)*W, -W, 1
	case 7: // TRANSVERSE
		base, dx, dy = (H-1)*W+W-1, -W, -1
	case 8: // ROTATE_90
		base, dx, dy = W-1, W, -1
	}
	ow, oh := W, H
	if o >= 5 {
		ow, oh = H, W
	}
	out := &RGB{W: ow, H: oh, Pix: make([]uint8, len(img.Pix))}
	for y := 0; y < oh; y++ {
		s := base + y*dy
		d := out.Pix[y*ow*3 : (y+1)*ow*3]
		for x := 0; x < ow; x++ {
			copy(d[x*3:x*3+3], img.Pix[s*3:s*3+3])
			s += dx
		}
	}
	return out
}

// FromImage converts an image decoded elsewhere to RGB the way Decode
// converts a file's pixels (alpha dropped without compositing, 16-bit
// samples reduced to their high byte). No EXIF orientation is applied: the
// image is taken as it is. Images of more than maxPixels pixels (0 =
// DefaultMaxPixels) are refused.
func FromImage(m image.Image, maxPixels int64) (*RGB, error) {
	if m == nil {
		return nil, errors.New("no image")
	}
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	b := m.Bounds()
	if b.Dx() <= 0 || b.Dy() <= 0 {
		return nil, fmt.Errorf("empty %dx%d image", b.Dx(), b.Dy())
	}
	if px := int64(b.Dx()) * int64(b.Dy()); px > maxPixels {
		return nil, fmt.Errorf("%dx%d = %d pixels, more than the limit of %d", b.Dx(), b.Dy(), px, maxPixels)
	}
	return fromImage(m, -1)
}
