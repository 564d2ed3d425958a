package snapvlm_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/snapvlm/snapvlm"
)

// Ask a question about an image and stream the answer.
func Example() {
	// A model directory in the Hugging Face layout, such as the one
	// `snapvlm pull HuggingFaceTB/SmolVLM2-256M-Video-Instruct` fills (or
	// use snapvlm.LoadFromHub with the repo id). The tests point it at a
	// generated random-weight model, so the example prints the shape of the
	// result rather than its words.
	modelDir := os.Getenv("SNAPVLM_EXAMPLE_MODEL")
	ctx := context.Background()
	m, err := snapvlm.Load(ctx, modelDir, snapvlm.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	img, err := snapvlm.ImageFile("assets/sample.jpg")
	if err != nil {
		log.Fatal(err)
	}
	var answer strings.Builder
	res, err := m.Generate(ctx, snapvlm.Request{
		Messages:        []snapvlm.Message{snapvlm.UserMessage("Can you describe this image?", img)},
		GenerateOptions: snapvlm.GenerateOptions{MaxNewTokens: 10},
	}, func(tok snapvlm.Token) error {
		answer.WriteString(tok.Text) // a real program prints tok.Text as it arrives
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// A 640x480 photo becomes 3x4 tiles plus a global view of 64 tokens each.
	fmt.Printf("%d tiles (%dx%d grid), %d image tokens\n", res.Tiles, res.Images[0].Rows, res.Images[0].Cols, res.ImageTokens)
	fmt.Printf("answered: %v, streamed the whole answer: %v\n", len(res.Tokens) > 0 && len(res.Tokens) <= 10, answer.String() == res.Text)
	// Output:
	// 13 tiles (3x4 grid), 832 image tokens
	// answered: true, streamed the whole answer: true
}

// A conversation about one image: the image is encoded once, and each turn
// reuses the decoder cache of the turns before it.
func ExampleChat() {
	modelDir := os.Getenv("SNAPVLM_EXAMPLE_MODEL") // as in the first example
	ctx := context.Background()
	m, err := snapvlm.Load(ctx, modelDir, snapvlm.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	img, err := snapvlm.ImageFile("assets/sample.jpg")
	if err != nil {
		log.Fatal(err)
	}

	chat := m.NewChat()
	defer chat.Close()
	chat.SetSystem("Answer in one sentence.")
	opts := snapvlm.GenerateOptions{MaxNewTokens: 8, NoSplit: true}
	for i, msg := range []snapvlm.Message{
		snapvlm.UserMessage("What is in this picture?", img),
		snapvlm.UserMessage("What colour is it?"),
	} {
		res, err := chat.Send(ctx, msg, opts, nil)
		if errors.Is(err, context.Canceled) {
			break // res holds the partial answer, which joined the history
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("turn %d: image encoded now: %v, prompt tokens from the cache: %v\n",
			i+1, len(res.Images) == 1 && !res.Images[0].Cached, res.ReusedTokens > 0)
	}
	fmt.Println(len(chat.History()), "messages")
	// Output:
	// turn 1: image encoded now: true, prompt tokens from the cache: false
	// turn 2: image encoded now: false, prompt tokens from the cache: true
	// 4 messages
}

// Count what a request costs before running anything: the processor reads
// only the configs and the tokenizer (no ONNX Runtime), plans each image's
// tiles from its size and tokenizes the prompt as generation will.
func ExampleProcessor() {
	modelDir := os.Getenv("SNAPVLM_EXAMPLE_MODEL") // as in the first example
	p, err := snapvlm.OpenProcessor(modelDir, snapvlm.ProcessorOptions{})
	if err != nil {
		log.Fatal(err)
	}
	img, err := snapvlm.ImageFile("assets/sample.jpg")
	if err != nil {
		log.Fatal(err)
	}
	req := snapvlm.Request{Messages: []snapvlm.Message{snapvlm.UserMessage("Can you describe this image?", img)}}
	pr, err := p.Process(context.Background(), req, snapvlm.ProcessOptions{})
	var long *snapvlm.PromptTooLongError
	if errors.As(err, &long) {
		log.Fatalf("%v: ask with GenerateOptions.NoSplit", err)
	}
	if err != nil {
		log.Fatal(err)
	}
	g := pr.Images[0]
	fmt.Printf("%dx%d grid, %d frames, %d image tokens, room left for an answer: %v\n",
		g.Rows, g.Cols, g.Frames, pr.ImageTokens, len(pr.IDs) < p.ContextLength())
	// Output:
	// 3x4 grid, 13 frames, 832 image tokens, room left for an answer: true
}
