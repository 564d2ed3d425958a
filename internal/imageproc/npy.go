package imageproc

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"
)

// WriteNPY writes pixel_values as a NumPy .npy file (format 1.0,
// little-endian float32, C order, shape [1, frames, 3, M, M]), readable
// with numpy.load.
func (b *Batch) WriteNPY(w io.Writer) error {
	shape := make([]string, 0, 5)
	for _, d := range b.Shape() {
		shape = append(shape, fmt.Sprint(d))
	}
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", strings.Join(shape, ", "))
	// Magic (6) + version (2) + length (2) + header + '\n' is padded to a
	// multiple of 64 bytes, as numpy writes it.
	pad := 64 - (10+len(header)+1)%64
	if pad == 64 {
		pad = 0
	}
	header += strings.Repeat(" ", pad) + "\n"
	if len(header) > math.MaxUint16 {
		return fmt.Errorf("npy header of %d bytes is too long for format 1.0", len(header))
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	bw.WriteString("\x93NUMPY\x01\x00")
	binary.Write(bw, binary.LittleEndian, uint16(len(header)))
	bw.WriteString(header)
	var buf [4]byte
	for _, v := range b.Pixels {
		binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
		bw.Write(buf[:])
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write npy: %w", err)
	}
	return nil
}
