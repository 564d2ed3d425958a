//go:build !cgo

package imageproc

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
)

// jpegExact reports whether JPEG decoding matches Pillow bit for bit. Without
// cgo, Go's image/jpeg is used: it lacks libjpeg's fancy upsampling and IDCT,
// so pixels differ from Pillow by a few levels (up to ~90 on noisy 4:2:0).
const jpegExact = false

func decodeJPEG(data []byte, w, h, _ int) (*RGB, error) {
	m, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("file is truncated or corrupt: %w", err)
	}
	if c, ok := m.(*image.CMYK); ok {
		// Go already inverted Adobe CMYK; cmykToRGB wants Pillow's view.
		img := &RGB{W: w, H: h, Pix: make([]uint8, w*h*3)}
		if c.Rect.Dx() != w || c.Rect.Dy() != h {
			return nil, fmt.Errorf("decoded %v, header says %dx%d", c.Rect, w, h)
		}
		buf := make([]uint8, w*h*4)
		for y := 0; y < h; y++ {
			copy(buf[y*w*4:(y+1)*w*4], c.Pix[y*c.Stride:])
		}
		cmykToRGB(img.Pix, buf, false)
		return img, nil
	}
	return fromImage(m, -1)
}
