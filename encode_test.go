package snapvlm

import (
	"context"
	"slices"
	"sync"
	"testing"
)

// TestEncodeConcurrent: 8 goroutines encoding the same photo run the vision
// encoder once; a later Generate with that photo takes the features from the
// cache and answers exactly as a model that never saw Encode.
func TestEncodeConcurrent(t *testing.T) {
	m := loadModel(t, "tiny512", Options{})
	img, err := ImageFile("assets/sample.jpg")
	if err != nil {
		t.Fatal(err)
	}
	opt := ImageOptions{NoSplit: true}
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	got := make([]*Encoded, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got[i], errs[i] = m.Encode(ctx, img, opt)
		}()
	}
	close(start)
	wg.Wait()
	encoded := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("encode %d: %v", i, errs[i])
		}
		if !got[i].Cached {
			encoded++
		}
		if got[i].ID != got[0].ID || got[i].Frames != 1 || got[i].Tokens != m.ImageSeqLen() {
			t.Errorf("encode %d: %+v, want id %s, 1 frame, %d tokens", i, got[i], got[0].ID, m.ImageSeqLen())
		}
	}
	if encoded != 1 {
		t.Errorf("%d of %d concurrent encodes ran the vision encoder, want 1", encoded, n)
	}
	// Other options are another cache entry.
	split, err := m.Encode(ctx, img, ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if split.ID == got[0].ID || split.Cached || split.Frames <= 1 {
		t.Errorf("split encode: %+v, want a new id, not cached, several frames", split)
	}

	req := Request{Messages: []Message{UserMessage("What is this?", img)}, GenerateOptions: GenerateOptions{MaxNewTokens: 8, NoSplit: true}}
	res, err := m.Generate(ctx, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != 1 || !res.Images[0].Cached || res.Timings.Vision != 0 {
		t.Errorf("generate after encode: images %+v, vision %v; want cached features", res.Images, res.Timings.Vision)
	}
	fresh := loadModel(t, "tiny512", Options{})
	want, err := fresh.Generate(ctx, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want.Images[0].Cached || !slices.Equal(res.Tokens, want.Tokens) {
		t.Errorf("tokens after Encode %v, fresh model %v (cached %v)", res.Tokens, want.Tokens, want.Images[0].Cached)
	}
}
