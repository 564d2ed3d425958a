package imageproc

import (
	"bytes"
	"os"
	"testing"
)

// TestWriteNPY compares with a file written by numpy.save (gen.py).
func TestWriteNPY(t *testing.T) {
	want, err := os.ReadFile("testdata/pixels_1x2x3x2x2.npy")
	if err != nil {
		t.Fatal(err)
	}
	b := &Batch{Frames: 2, Size: 2, Pixels: make([]float32, 24)}
	for i := range b.Pixels {
		b.Pixels[i] = (float32(i) - 20) / 7
	}
	var got bytes.Buffer
	if err := b.WriteNPY(&got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("npy bytes differ from numpy.save:\n got %q\nwant %q", got.Bytes(), want)
	}
}
