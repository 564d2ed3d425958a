//go:build !cgo

package imageproc

import (
	"bytes"

	"golang.org/x/image/webp"
)

// webpExact reports whether WebP decoding matches Pillow bit for bit.
// Without cgo, golang.org/x/image/webp is used: lossless files match, lossy
// ones differ (no fancy upsampling; up to ~20 levels measured).
const webpExact = false

func decodeWebP(data []byte) (*RGB, error) {
	m, err := webp.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return fromImage(m, -1)
}
