package embed

import (
	"strings"
	"testing"
)

func TestMerge(t *testing.T) {
	const img = 9
	// Width 2; features rows are (10,11), (20,21), (30,31).
	feats := []float32{10, 11, 20, 21, 30, 31}
	cases := []struct {
		name    string
		ids     []int64
		want    []float32
		wantErr string
	}{
		{"in order", []int64{1, img, 2, img, img}, []float32{0, 0, 10, 11, 0, 0, 20, 21, 30, 31}, ""},
		{"adjacent at start", []int64{img, img, img, 5}, []float32{10, 11, 20, 21, 30, 31, 0, 0}, ""},
		{"too few tokens", []int64{1, img, img}, nil, "2 image tokens but the images gave 3 feature rows"},
		{"too many tokens", []int64{img, img, img, img}, nil, "4 image tokens but the images gave 3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			embeds := make([]float32, 2*len(c.ids))
			err := Merge(embeds, c.ids, img, feats, 2)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range c.want {
				if embeds[i] != c.want[i] {
					t.Fatalf("embeds = %v, want %v", embeds, c.want)
				}
			}
		})
	}
}
