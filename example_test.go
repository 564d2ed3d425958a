package snapvlm_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/snapvlm/snapvlm"
	"github.com/snapvlm/snapvlm/internal/testmodel"
)

// Ask a question about an image and stream the answer. The example runs on a
// generated random-weight model (real weights are a download away: pass a
// directory such as one `snapvlm pull HuggingFaceTB/SmolVLM2-256M-Video-Instruct`
// fills), so it prints the shape of the result rather than its words.
func Example() {
	dir, err := os.MkdirTemp("", "snapvlm-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := testmodel.Generate(context.Background(), "tiny512", dir, testmodel.Options{Variants: []string{"q4"}}); err != nil {
		log.Fatal(err)
	}

	m, err := snapvlm.Load(dir, snapvlm.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	img, err := snapvlm.ImageFile("assets/sample.jpg")
	if err != nil {
		log.Fatal(err)
	}
	pieces := 0
	res, err := m.Generate(context.Background(), snapvlm.Request{
		Messages:     []snapvlm.Message{snapvlm.UserMessage("Can you describe this image?", img)},
		MaxNewTokens: 10,
	}, func(piece string) error {
		pieces++ // a real program prints the piece as it arrives
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// A 640x480 photo becomes 3x4 tiles plus a global view of 64 tokens each.
	fmt.Printf("%d tiles (%dx%d grid), %d image tokens\n", res.Tiles, res.Images[0].Rows, res.Images[0].Cols, res.ImageTokens)
	fmt.Printf("answered: %v\n", len(res.Tokens) > 0 && len(res.Tokens) <= 10)
	// Output:
	// 13 tiles (3x4 grid), 832 image tokens
	// answered: true
}
