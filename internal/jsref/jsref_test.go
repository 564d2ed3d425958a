package jsref

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	ok := Request{ModelDir: "m", InputIDs: []int64{1}, MaxNewTokens: 1}
	img := ok
	img.PixelShape = []int64{1, 2, 3, 4, 4}
	img.Pixels = make([]float32, 2*3*4*4)
	tests := []struct {
		name    string
		edit    func(r *Request)
		wantErr string // substring; "" means valid
	}{
		{"text only", func(r *Request) {}, ""},
		{"image", func(r *Request) { *r = img }, ""},
		{"no model dir", func(r *Request) { r.ModelDir = "" }, "ModelDir"},
		{"no ids", func(r *Request) { r.InputIDs = nil }, "InputIDs"},
		{"zero new tokens", func(r *Request) { r.MaxNewTokens = 0 }, "MaxNewTokens = 0"},
		{"shape without pixels", func(r *Request) { r.PixelShape = img.PixelShape }, "len(Pixels) = 0, want 96"},
		{"pixels without shape", func(r *Request) { r.Pixels = img.Pixels }, "PixelShape = []"},
		{"rank 4", func(r *Request) { *r = img; r.PixelShape = []int64{2, 3, 4, 4} }, "want [1, frames, 3, M, M]"},
		{"batch 2", func(r *Request) { *r = img; r.PixelShape = []int64{2, 1, 3, 4, 4} }, "want [1, frames, 3, M, M]"},
		{"4 channels", func(r *Request) { *r = img; r.PixelShape = []int64{1, 2, 4, 4, 4} }, "want [1, frames, 3, M, M]"},
		{"not square", func(r *Request) { *r = img; r.PixelShape = []int64{1, 2, 3, 4, 8} }, "want [1, frames, 3, M, M]"},
		{"short pixels", func(r *Request) { *r = img; r.Pixels = r.Pixels[1:] }, "len(Pixels) = 95, want 96"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			tc.edit(&r)
			err := r.validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("validate() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("validate() = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestModuleRoot(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "a", "b", "c")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{root, filepath.Join(root, "a"), deep} {
		got, err := moduleRoot(dir)
		if err != nil || got != root {
			t.Errorf("moduleRoot(%s) = %q, %v; want %q", dir, got, err, root)
		}
	}
	if got, err := moduleRoot(string(filepath.Separator)); err == nil {
		t.Errorf("moduleRoot(/) = %q, want an error", got)
	}
}

func TestDirEnv(t *testing.T) {
	want := t.TempDir()
	t.Setenv(DirEnv, want)
	if got, err := Dir(); err != nil || got != want {
		t.Fatalf("Dir() = %q, %v; want %q", got, err, want)
	}
	if err := Available(); err == nil {
		t.Fatalf("Available() = nil for an empty %s", want)
	}
}

func TestWritePixels(t *testing.T) {
	in := []float32{0, -1, 1, 0.5, float32(math.Pi), -0.0078125, math.MaxFloat32, math.SmallestNonzeroFloat32}
	name, err := writePixels(in)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(name)
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]float32, len(in))
	if err := binary.Read(f, binary.LittleEndian, got); err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if math.Float32bits(got[i]) != math.Float32bits(in[i]) {
			t.Errorf("value %d: got %v, want %v", i, got[i], in[i])
		}
	}
	if st, _ := f.Stat(); st.Size() != int64(4*len(in)) {
		t.Errorf("file size %d, want %d", st.Size(), 4*len(in))
	}
}
