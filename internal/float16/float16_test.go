package float16

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
)

// golden is testdata/golden.txt, written by scripts/float16-golden/gen.py
// from numpy's conversions (see that script for the format).
type golden struct {
	to32Blocks [64]string  // SHA-256 per 1024 halves of the float32 bits
	to32       [][2]uint32 // half bits, float32 bits
	from32Enum string      // SHA-256 of numpy's halves for enumInputs()
	from32     [][2]uint32 // float32 bits, half bits
}

func readGolden(t *testing.T) *golden {
	t.Helper()
	const path = "testdata/golden.txt"
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open golden data (regenerate with /usr/bin/python3 scripts/float16-golden/gen.py): %v", err)
	}
	defer f.Close()
	g := &golden{}
	section := ""
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		switch {
		case text == "" || strings.HasPrefix(text, "#"):
			continue
		case strings.HasPrefix(text, "["):
			section = text
			continue
		}
		fields := strings.Fields(text)
		hexPair := func() [2]uint32 {
			if len(fields) != 2 {
				t.Fatalf("%s:%d: want 2 fields, got %q", path, line, text)
			}
			var p [2]uint32
			for i, s := range fields {
				v, err := strconv.ParseUint(s, 16, 32)
				if err != nil {
					t.Fatalf("%s:%d: %v", path, line, err)
				}
				p[i] = uint32(v)
			}
			return p
		}
		switch section {
		case "[to32-blocks]":
			b, err := strconv.Atoi(fields[0])
			if err != nil || b < 0 || b >= 64 || len(fields) != 2 {
				t.Fatalf("%s:%d: bad block line %q", path, line, text)
			}
			g.to32Blocks[b] = fields[1]
		case "[to32]":
			g.to32 = append(g.to32, hexPair())
		case "[from32-enum]":
			g.from32Enum = fields[0]
		case "[from32]":
			g.from32 = append(g.from32, hexPair())
		default:
			t.Fatalf("%s:%d: line outside a known section: %q", path, line, text)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	for i, h := range g.to32Blocks {
		if h == "" {
			t.Fatalf("%s: block %d hash missing", path, i)
		}
	}
	if len(g.to32) == 0 || len(g.from32) == 0 || g.from32Enum == "" {
		t.Fatalf("%s: missing sections (to32 %d, from32 %d, enum %q)", path, len(g.to32), len(g.from32), g.from32Enum)
	}
	return g
}

// TestToFloat32Exhaustive checks all 65,536 halves against numpy, block by
// block so that a failure names the range.
func TestToFloat32Exhaustive(t *testing.T) {
	g := readGolden(t)
	buf := make([]byte, 4*1024)
	for b := range 64 {
		for i := range 1024 {
			h := uint16(b*1024 + i)
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(ToFloat32(h)))
		}
		sum := sha256.Sum256(buf)
		if got := hex.EncodeToString(sum[:]); got != g.to32Blocks[b] {
			t.Errorf("halves %#04x..%#04x: SHA-256 %s, numpy %s", b*1024, b*1024+1023, got, g.to32Blocks[b])
		}
	}
}

func TestToFloat32Spots(t *testing.T) {
	g := readGolden(t)
	for _, p := range g.to32 {
		h, want := uint16(p[0]), p[1]
		if got := math.Float32bits(ToFloat32(h)); got != want {
			t.Errorf("ToFloat32(%#04x) = %#08x, numpy %#08x", h, got, want)
		}
	}
}

func TestFromFloat32Golden(t *testing.T) {
	g := readGolden(t)
	for _, p := range g.from32 {
		f, want := math.Float32frombits(p[0]), uint16(p[1])
		if got := FromFloat32(f); got != want {
			t.Errorf("FromFloat32(%g = %#08x) = %#04x, numpy %#04x", f, p[0], got, want)
		}
	}
}

// enumInputs mirrors enum_inputs() in gen.py: for each finite non-negative
// half h < 0x7bff, its value, the float32 just below the midpoint to h+1, the
// midpoint and the float32 just above; then all of that negated.
func enumInputs() []float32 {
	var pos []float32
	for h := uint16(0); h < MaxValue; h++ {
		lo, hi := ToFloat32(h), ToFloat32(h+1)
		mid := float32((float64(lo) + float64(hi)) / 2) // exact: one more bit than a half
		pos = append(pos, lo, math.Nextafter32(mid, 0), mid, math.Nextafter32(mid, float32(math.Inf(1))))
	}
	all := append([]float32(nil), pos...)
	for _, f := range pos {
		all = append(all, -f)
	}
	return all
}

// TestFromFloat32Enumerated covers every rounding boundary of the half range
// (ties to even at each midpoint, one float32 ulp either side).
func TestFromFloat32Enumerated(t *testing.T) {
	g := readGolden(t)
	in := enumInputs()
	out := make([]byte, 2*len(in))
	for i, f := range in {
		binary.LittleEndian.PutUint16(out[2*i:], FromFloat32(f))
	}
	sum := sha256.Sum256(out)
	if got := hex.EncodeToString(sum[:]); got != g.from32Enum {
		t.Errorf("%d enumerated inputs: SHA-256 %s, numpy %s", len(in), got, g.from32Enum)
		// Point at the first wrong value using the definition of rounding.
		for i := 0; i < len(in); i += 4 {
			h := FromFloat32(in[i])
			if math.Float32bits(ToFloat32(h)) != math.Float32bits(in[i]) {
				t.Errorf("value %g did not convert exactly: %#04x", in[i], h)
				return
			}
		}
	}
}

// TestRoundTrip: half → float32 → half is the identity for every half,
// NaN payloads included (numpy does the same).
func TestRoundTrip(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		if got := FromFloat32(ToFloat32(h)); got != h {
			t.Errorf("FromFloat32(ToFloat32(%#04x)) = %#04x", h, got)
		}
	}
}

// TestKnownValues uses values fixed by the IEEE 754 binary16 definition.
func TestKnownValues(t *testing.T) {
	tests := []struct {
		f float32
		h uint16
	}{
		{0, 0x0000},
		{1, 0x3c00},
		{-2, 0xc000},
		{0.5, 0x3800},
		{65504, MaxValue},
		{float32(math.Inf(1)), PositiveInf},
		{float32(math.Inf(-1)), NegativeInf},
		{0x1p-24, 0x0001},     // smallest subnormal
		{0x1p-14, 0x0400},     // smallest normal
		{0x1.ff8p-15, 0x03ff}, // largest subnormal
	}
	for _, tt := range tests {
		if got := FromFloat32(tt.f); got != tt.h {
			t.Errorf("FromFloat32(%g) = %#04x, want %#04x", tt.f, got, tt.h)
		}
		if got := ToFloat32(tt.h); got != tt.f {
			t.Errorf("ToFloat32(%#04x) = %g, want %g", tt.h, got, tt.f)
		}
	}
	if got := FromFloat32(float32(math.Copysign(0, -1))); got != 0x8000 {
		t.Errorf("FromFloat32(-0) = %#04x, want 0x8000", got)
	}
	if got := ToFloat32(NaN); !math.IsNaN(float64(got)) {
		t.Errorf("ToFloat32(NaN) = %g, want NaN", got)
	}
}

func TestBulk(t *testing.T) {
	src := []float32{1, -2, 0.5, 65504, 1e9, 0x1p-24}
	want := []uint16{0x3c00, 0xc000, 0x3800, 0x7bff, 0x7c00, 0x0001}
	wantLE := []byte{0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38, 0xff, 0x7b, 0x00, 0x7c, 0x01, 0x00}
	back := []float32{1, -2, 0.5, 65504, float32(math.Inf(1)), 0x1p-24}

	tests := []struct {
		name  string
		dstN  int
		wantN int
	}{
		{"exact", len(src), len(src)},
		{"short dst", 4, 4},
		{"long dst", len(src) + 3, len(src)},
		{"empty dst", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := make([]uint16, tt.dstN)
			if n := FromFloat32s(h, src); n != tt.wantN {
				t.Fatalf("FromFloat32s converted %d, want %d", n, tt.wantN)
			}
			for i := range tt.wantN {
				if h[i] != want[i] {
					t.Errorf("FromFloat32s[%d] = %#04x, want %#04x", i, h[i], want[i])
				}
			}
			f := make([]float32, tt.dstN)
			if n := ToFloat32s(f, want); n != tt.wantN {
				t.Fatalf("ToFloat32s converted %d, want %d", n, tt.wantN)
			}
			for i := range tt.wantN {
				if f[i] != back[i] {
					t.Errorf("ToFloat32s[%d] = %g, want %g", i, f[i], back[i])
				}
			}
			b := make([]byte, 2*tt.dstN)
			if n := EncodeLE(b, src); n != tt.wantN {
				t.Fatalf("EncodeLE converted %d, want %d", n, tt.wantN)
			}
			if string(b[:2*tt.wantN]) != string(wantLE[:2*tt.wantN]) {
				t.Errorf("EncodeLE = % x, want % x", b[:2*tt.wantN], wantLE[:2*tt.wantN])
			}
			f2 := make([]float32, tt.dstN)
			if n := DecodeLE(f2, wantLE); n != tt.wantN {
				t.Fatalf("DecodeLE converted %d, want %d", n, tt.wantN)
			}
			for i := range tt.wantN {
				if f2[i] != back[i] {
					t.Errorf("DecodeLE[%d] = %g, want %g", i, f2[i], back[i])
				}
			}
		})
	}
	if got := BytesLE(want); string(got) != string(wantLE) {
		t.Errorf("BytesLE = % x, want % x", got, wantLE)
	}
	if n := DecodeLE(make([]float32, 4), []byte{0x00, 0x3c, 0x00}); n != 1 {
		t.Errorf("DecodeLE with odd byte count converted %d, want 1", n)
	}
}

// benchN is a SmolVLM vocabulary row, the size of one fp16 logits read.
const benchN = 49280

// benchInput is logit-like data: mostly normal halves of magnitude 0.01..30,
// which is what fp16 model inputs and outputs hold.
func benchInput() []float32 {
	src := make([]float32, benchN)
	x := uint32(1)
	for i := range src {
		x = x*1664525 + 1013904223 // LCG
		src[i] = float32(int32(x)) / float32(1<<31) * 30
	}
	return src
}

func reportPerElement(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchN, "ns/elem")
}

func BenchmarkFromFloat32s(b *testing.B) {
	src := benchInput()
	dst := make([]uint16, benchN)
	for b.Loop() {
		FromFloat32s(dst, src)
	}
	reportPerElement(b)
}

func BenchmarkToFloat32s(b *testing.B) {
	h := make([]uint16, benchN)
	FromFloat32s(h, benchInput())
	dst := make([]float32, benchN)
	for b.Loop() {
		ToFloat32s(dst, h)
	}
	reportPerElement(b)
}

func BenchmarkEncodeLE(b *testing.B) {
	src := benchInput()
	dst := make([]byte, 2*benchN)
	for b.Loop() {
		EncodeLE(dst, src)
	}
	reportPerElement(b)
}

func BenchmarkDecodeLE(b *testing.B) {
	src := make([]byte, 2*benchN)
	EncodeLE(src, benchInput())
	dst := make([]float32, benchN)
	for b.Loop() {
		DecodeLE(dst, src)
	}
	reportPerElement(b)
}

// TestFloat16Table: the bit patterns the ONNX writer was checked with (its
// own converter was merged into this one).
func TestFloat16Table(t *testing.T) {
	// Reference bit patterns from IEEE 754 binary16 (numpy.float16).
	tests := []struct {
		in   float32
		want uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{0.1, 0x2e66},
		{65504, 0x7bff},
		{65520, 0x7c00},            // rounds up to Inf
		{5.960464477539063e-08, 1}, // smallest subnormal
		{2.980232238769531e-08, 0}, // exactly half of it: ties to even (0)
		{6.103515625e-05, 0x0400},  // smallest normal
		{1.0009765625, 0x3c01},     // 1 + 2^-10
		{1.00048828125, 0x3c00},    // 1 + 2^-11: tie to even
		{1.00146484375, 0x3c02},    // 1 + 3*2^-11: tie rounds up to even
		{float32(math.Inf(-1)), 0xfc00},
	}
	for _, tc := range tests {
		if got := FromFloat32(tc.in); got != tc.want {
			t.Errorf("FromFloat32(%g) = %#04x, want %#04x", tc.in, got, tc.want)
		}
		if tc.want&0x7c00 != 0x7c00 {
			back := ToFloat32(tc.want)
			if FromFloat32(back) != tc.want {
				t.Errorf("ToFloat32(%#04x) = %g does not round-trip", tc.want, back)
			}
		}
	}
	if got := ToFloat32(0x3555); math.Abs(float64(got)-0.333251953125) > 0 {
		t.Errorf("ToFloat32(0x3555) = %g, want 0.333251953125", got)
	}
}
