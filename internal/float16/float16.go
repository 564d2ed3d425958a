// Package float16 converts between IEEE 754 binary16 ("half", stored as
// uint16 bit patterns) and float32, bit for bit as numpy does.
//
// float32 → half rounds to nearest, ties to even; values whose magnitude
// rounds to 65520 or more become ±Inf, tiny values become half subnormals or
// ±0. half → float32 is exact. NaN keeps its sign and the top bits of its
// payload (payload bits that do not fit are dropped, and a payload that would
// become zero is set to 1 so the result stays NaN). Quiet NaNs stay quiet.
// Signalling NaNs are converted as numpy's software path does (not quieted);
// x86 F16C instructions would set the quiet bit instead — that only matters for
// signalling NaNs, which models do not produce.
//
// The bulk functions convert whole slices and the LE functions read and write
// the little-endian byte layout ONNX Runtime uses for float16 tensors.
package float16

import (
	"encoding/binary"
	"math"
	"math/bits"
)

// Bit patterns of some half values.
const (
	PositiveInf uint16 = 0x7c00 // +Inf
	NegativeInf uint16 = 0xfc00 // -Inf
	NaN         uint16 = 0x7e00 // the quiet NaN numpy produces for float32 NaN
	MaxValue    uint16 = 0x7bff // 65504, the largest finite half
)

// FromFloat32 returns the half nearest to f (ties to even), as numpy's
// np.float32(f).astype(np.float16) does.
func FromFloat32(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	abs := b & 0x7fffffff
	if abs >= 0x38800000 && abs < 0x7f800000 {
		// Normal half, or finite overflow. Clamping to 2^16 makes every
		// overflow round to Inf without a branch. Rebiasing the exponent
		// (127 → 15) keeps the layout; adding 0xfff plus the lowest kept bit
		// then rounds to nearest even, and a carry out of the mantissa moves
		// into the exponent, which is exactly the next half up (65504 + ulp
		// carries into the Inf pattern 0x7c00).
		h := min(abs, 0x47800000) - 0x38000000
		return sign | uint16((h+0xfff+(h>>13)&1)>>13)
	}
	return sign | fromSmallOrNaN(abs)
}

// fromSmallOrNaN converts |f| (bits abs) below 2^-14, or Inf or NaN; kept out
// of FromFloat32 so that the common path inlines.
func fromSmallOrNaN(abs uint32) uint16 {
	if abs >= 0x7f800000 { // Inf or NaN
		if abs == 0x7f800000 {
			return 0x7c00
		}
		h := uint16(0x7c00 | (abs&0x007fffff)>>13)
		if h == 0x7c00 { // payload only in the dropped bits: keep it a NaN
			h = 0x7c01
		}
		return h
	}
	// Half subnormal or zero, in units of 2^-24: units = m · 2^(e-126) with
	// the implicit bit set in m.
	shift := 126 - abs>>23
	if shift > 24 { // below 2^-25 (or exactly: a tie, to even): zero
		return 0
	}
	m := abs&0x007fffff | 0x00800000
	r := m >> shift
	rem := m & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rem > half || (rem == half && r&1 == 1) {
		r++ // may become 0x400, the smallest normal: still correct
	}
	return uint16(r)
}

// ToFloat32 returns the float32 equal to the half h (every half is exactly
// representable as a float32).
func ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	if e := h & 0x7c00; e != 0 && e != 0x7c00 { // normal: rebias 15 → 127
		return math.Float32frombits(sign | (uint32(h&0x7fff)<<13 + 0x38000000))
	}
	return math.Float32frombits(sign | toSmallOrNaN(h&0x7fff))
}

// toSmallOrNaN converts a zero, subnormal, Inf or NaN half magnitude; kept out
// of ToFloat32 so that the common path inlines.
func toSmallOrNaN(abs uint16) uint32 {
	mant := uint32(abs & 0x03ff)
	if abs >= 0x7c00 { // Inf or NaN: payload moves to the top of the mantissa
		return 0x7f800000 | mant<<13
	}
	if mant == 0 {
		return 0
	}
	// Subnormal: normalise so the leading 1 lands on bit 10 (implicit).
	lz := uint32(bits.LeadingZeros32(mant)) - 21 // shifts to reach bit 10
	mant = (mant << lz) & 0x03ff
	return (113-lz)<<23 | mant<<13
}

// FromFloat32s converts src into dst element by element, like copy: it
// converts min(len(dst), len(src)) elements and returns that number.
func FromFloat32s(dst []uint16, src []float32) int {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	for i, f := range src {
		// The fast path of FromFloat32, written out: the compiler does not
		// inline FromFloat32 and the call would cost more than the work.
		b := math.Float32bits(f)
		sign := uint16(b>>16) & 0x8000
		abs := b & 0x7fffffff
		if abs >= 0x38800000 && abs < 0x7f800000 {
			h := min(abs, 0x47800000) - 0x38000000
			dst[i] = sign | uint16((h+0xfff+(h>>13)&1)>>13)
		} else {
			dst[i] = sign | fromSmallOrNaN(abs)
		}
	}
	return n
}

// ToFloat32s converts src into dst element by element, like copy: it converts
// min(len(dst), len(src)) elements and returns that number.
func ToFloat32s(dst []float32, src []uint16) int {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	for i, h := range src {
		// The fast path of ToFloat32, written out (see FromFloat32s).
		sign := uint32(h&0x8000) << 16
		if e := h & 0x7c00; e != 0 && e != 0x7c00 {
			dst[i] = math.Float32frombits(sign | (uint32(h&0x7fff)<<13 + 0x38000000))
		} else {
			dst[i] = math.Float32frombits(sign | toSmallOrNaN(h&0x7fff))
		}
	}
	return n
}

// BytesLE returns the halves h as a new little-endian byte slice
// (2·len(h) bytes), the layout of an ONNX Runtime float16 tensor buffer.
func BytesLE(h []uint16) []byte {
	b := make([]byte, 2*len(h))
	for i, v := range h {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	return b
}

// EncodeLE converts float32 values to halves written little-endian into dst,
// for filling a float16 tensor buffer without an intermediate []uint16. It
// converts min(len(dst)/2, len(src)) values and returns that number.
func EncodeLE(dst []byte, src []float32) int {
	n := min(len(dst)/2, len(src))
	dst, src = dst[:2*n], src[:n]
	// Convert in chunks through a stack buffer so the bulk loop does the work.
	var buf [256]uint16
	for len(src) > 0 {
		k := FromFloat32s(buf[:], src)
		for i, h := range buf[:k] {
			binary.LittleEndian.PutUint16(dst[2*i:], h)
		}
		src, dst = src[k:], dst[2*k:]
	}
	return n
}

// DecodeLE reads little-endian halves from src into float32 values, for
// reading a float16 tensor buffer. It converts min(len(dst), len(src)/2)
// values and returns that number; a trailing odd byte is ignored.
func DecodeLE(dst []float32, src []byte) int {
	n := min(len(dst), len(src)/2)
	dst, src = dst[:n], src[:2*n]
	var buf [256]uint16
	for len(dst) > 0 {
		k := min(len(dst), len(buf))
		for i := range buf[:k] {
			buf[i] = binary.LittleEndian.Uint16(src[2*i:])
		}
		ToFloat32s(dst, buf[:k])
		src, dst = src[2*k:], dst[k:]
	}
	return n
}
