package snapvlm

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// TestEncodeImage: features encoded ahead are what Generate uses (the same
// tokens as a model that never saw the image), and it skips the encoder.
func TestEncodeImage(t *testing.T) {
	img := pngImage(t, 700, 400, 0, false)
	for _, tc := range []struct {
		name string
		req  ImageOptions
		tile int // frames expected
	}{
		{"split", ImageOptions{}, 13}, // 700x400 -> 2048x1170: 3x4 tiles + global
		{"no split", ImageOptions{NoSplit: true}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			warm := loadModel(t, "tiny512", Options{})
			cold := loadModel(t, "tiny512", Options{})
			info, tm, err := warm.EncodeImage(context.Background(), img, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if info.Cached || info.Frames != tc.tile || tm.Vision <= 0 {
				t.Errorf("first encode: %+v, %+v; want %d frames, not cached, vision time", info, tm, tc.tile)
			}
			if again, tm2, err := warm.EncodeImage(context.Background(), img, tc.req); err != nil || !again.Cached || tm2.Vision != 0 {
				t.Errorf("second encode: %+v, %+v, %v; want cached without vision time", again, tm2, err)
			}
			req := Request{Messages: []Message{UserMessage("What is this?", img)},
				GenerateOptions: GenerateOptions{MaxNewTokens: 8, NoSplit: tc.req.NoSplit, ImageSize: tc.req.ImageSize}}
			got, err := warm.Generate(context.Background(), req, nil)
			if err != nil {
				t.Fatal(err)
			}
			want, err := cold.Generate(context.Background(), req, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Images[0].Cached || got.Timings.Vision != 0 {
				t.Errorf("Generate after EncodeImage ran the encoder: %+v", got.Images)
			}
			if !slices.Equal(got.Tokens, want.Tokens) {
				t.Errorf("tokens after EncodeImage %v, without %v", got.Tokens, want.Tokens)
			}
		})
	}
	if _, _, err := loadModel(t, "tiny512", Options{}).EncodeImage(context.Background(), &Image{Name: "junk", Data: []byte("junk")}, ImageOptions{}); err == nil {
		t.Error("EncodeImage of junk bytes: no error")
	}
}

func TestEncodeImageAfterClose(t *testing.T) {
	m, err := Load(context.Background(), modelDir(t, "tiny512"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if _, _, err := m.EncodeImage(context.Background(), pngImage(t, 64, 64, 0, false), ImageOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("EncodeImage after Close: %v, want ErrClosed", err)
	}
}
