package snapvlm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/testtok"
)

// processorDir is a model directory without graphs: the real tokenizer and
// SmolVLM-256M's prompt and image settings (image_seq_len 64, 512-px tiles
// of images resized to 2048 px), with or without a chat template.
func processorDir(t *testing.T, withTemplate bool) string {
	t.Helper()
	tok, err := os.ReadFile(testtok.Path(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"config.json":           `{"model_type": "idefics3", "image_token_id": 49190}`,
		"processor_config.json": `{"image_seq_len": 64}`,
		"tokenizer_config.json": `{"bos_token": "<|im_start|>", "eos_token": "<end_of_utterance>"}`,
		"tokenizer.json":        string(tok),
		"preprocessor_config.json": `{"do_image_splitting": true, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
 "max_image_size": {"longest_edge": 512}, "resample": 1, "rescale_factor": 0.00392156862745098, "size": {"longest_edge": 2048}}`,
	}
	if withTemplate {
		files["chat_template.json"] = `{"chat_template": "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"}`
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestProcessorCounts checks Process against the token counts of the spec
// (§3.3: one 4×4 image is 1141 prompt tokens, 1088 of them <image>; the
// single form 81; the text alone 14) and the tile grid the Python
// processor gives a 1024×768 image (resized to 2048×1536: 3 rows, 4
// columns, 13 frames of 3×512×512). No ONNX Runtime is needed.
func TestProcessorCounts(t *testing.T) {
	dir := processorDir(t, true)
	p, err := OpenProcessor(dir, ProcessorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	photo := pngImage(t, 1024, 768, 0, false)
	q := "Can you describe this image?"
	cases := []struct {
		name              string
		msg               Message
		opts              ProcessOptions
		gen               GenerateOptions
		tokens, imgTokens int
		images            []ImageInfo
		shape             []int64
	}{
		{"text", UserMessage(q), ProcessOptions{}, GenerateOptions{}, 14, 0, nil, nil},
		{"grid 4x4", UserMessage(q, &Image{Name: "x"}), ProcessOptions{Grids: []TileGrid{{4, 4}}}, GenerateOptions{}, 1141, 1088, []ImageInfo{{Rows: 4, Cols: 4, Frames: 17}}, nil},
		{"grid single", UserMessage(q, &Image{Name: "x"}), ProcessOptions{Grids: []TileGrid{{}}}, GenerateOptions{}, 81, 64, []ImageInfo{{Frames: 1}}, nil},
		{"grid 3x4", UserMessage(q, &Image{Name: "x"}), ProcessOptions{Grids: []TileGrid{{3, 4}}}, GenerateOptions{}, -1, 13 * 64, []ImageInfo{{Rows: 3, Cols: 4, Frames: 13}}, nil},
		{"photo planned", UserMessage(q, photo), ProcessOptions{}, GenerateOptions{}, -1, 13 * 64, []ImageInfo{{Rows: 3, Cols: 4, Frames: 13}}, nil},
		{"photo pixels", UserMessage(q, photo), ProcessOptions{PixelValues: true}, GenerateOptions{}, -1, 13 * 64, []ImageInfo{{Rows: 3, Cols: 4, Frames: 13}}, []int64{1, 13, 3, 512, 512}},
		{"photo no split", UserMessage(q, photo), ProcessOptions{PixelValues: true}, GenerateOptions{NoSplit: true}, 81, 64, []ImageInfo{{Frames: 1}}, []int64{1, 1, 3, 512, 512}},
	}
	texts := map[string]string{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pr, err := p.Process(context.Background(), Request{Messages: []Message{c.msg}, GenerateOptions: c.gen}, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			texts[c.name] = pr.Text
			if c.tokens >= 0 && len(pr.IDs) != c.tokens {
				t.Errorf("%d tokens, want %d", len(pr.IDs), c.tokens)
			}
			if pr.ImageTokens != c.imgTokens || strings.Count(pr.Text, "<image>") != c.imgTokens {
				t.Errorf("%d <image> tokens (%d in the text), want %d", pr.ImageTokens, strings.Count(pr.Text, "<image>"), c.imgTokens)
			}
			if len(pr.Images) != len(c.images) || (len(c.images) > 0 && pr.Images[0] != c.images[0]) {
				t.Errorf("images %+v, want %+v", pr.Images, c.images)
			}
			if c.shape == nil {
				if pr.PixelValues != nil {
					t.Error("pixel values made without ProcessOptions.PixelValues")
				}
				return
			}
			if len(pr.Shape) != 5 || pr.Shape[1] != c.shape[1] || pr.Shape[3] != 512 || int64(len(pr.PixelValues)) != c.shape[1]*3*512*512 {
				t.Fatalf("shape %v with %d values, want %v", pr.Shape, len(pr.PixelValues), c.shape)
			}
			var npy bytes.Buffer
			if err := pr.WriteNPY(&npy); err != nil {
				t.Fatal(err)
			}
			// .npy: magic, version, header length, header, then the data.
			b := npy.Bytes()
			hl := int(binary.LittleEndian.Uint16(b[8:10]))
			if !bytes.HasPrefix(b, []byte("\x93NUMPY")) || !bytes.Contains(b[10:10+hl], []byte("'<f4'")) || len(b)-10-hl != 4*len(pr.PixelValues) {
				t.Errorf("npy header %q, %d data bytes for %d values", b[10:10+hl], len(b)-10-hl, len(pr.PixelValues))
			}
		})
	}
	// The photo's planned grid and its tiled one give the prompt of a
	// 3x4 grid.
	for _, name := range []string{"photo planned", "photo pixels"} {
		if texts[name] != texts["grid 3x4"] {
			t.Errorf("%s: the prompt differs from a given 3x4 grid's", name)
		}
	}
}

// TestProcessorErrors: what Process and OpenProcessor refuse, and the
// over-long prompt that is still returned.
func TestProcessorErrors(t *testing.T) {
	dir := processorDir(t, false)
	if _, err := OpenProcessor(dir, ProcessorOptions{}); !errors.Is(err, ErrNoTemplate) {
		t.Errorf("no template: err = %v, want ErrNoTemplate", err)
	}
	var me *ModelError
	if _, err := OpenProcessor(t.TempDir(), ProcessorOptions{}); !errors.As(err, &me) {
		t.Errorf("empty dir: err = %v, want a *ModelError", err)
	}
	p, err := OpenProcessor(dir, ProcessorOptions{DefaultTemplate: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	one := []Message{UserMessage("q", &Image{Name: "x"})}
	bad := &Image{Name: "bad.png", Data: []byte("not an image")}
	cases := []struct {
		name string
		req  Request
		opts ProcessOptions
		want string
	}{
		{"no messages", Request{}, ProcessOptions{}, "no messages"},
		{"grids and pixels", Request{Messages: one}, ProcessOptions{Grids: []TileGrid{{}}, PixelValues: true}, "exclude each other"},
		{"grid count", Request{Messages: one}, ProcessOptions{Grids: []TileGrid{{}, {}}}, "2 grids for 1 images"},
		{"bad image", Request{Messages: []Message{UserMessage("q", bad)}}, ProcessOptions{}, "bad.png"},
		{"image size", Request{Messages: []Message{UserMessage("q", bad)}, GenerateOptions: GenerateOptions{ImageSize: 4096}}, ProcessOptions{}, "ImageSize 4096"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := p.Process(ctx, c.req, c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want containing %q", err, c.want)
			}
		})
	}
	// 2 × 1141 tokens fit the default 2048 positions; 2 4×4 images do not.
	grids := []TileGrid{{4, 4}, {4, 4}}
	two := []Message{UserMessage("q", &Image{Name: "a"}, &Image{Name: "b"})}
	pr, err := p.Process(ctx, Request{Messages: two}, ProcessOptions{Grids: grids})
	var long *PromptTooLongError
	if !errors.As(err, &long) || pr == nil || len(pr.IDs) != long.Tokens || long.ImageTokens != 2*1088 || long.Limit != p.ContextLength() {
		t.Errorf("too long: %v, %+v", err, long)
	}
}

// TestLoadTokenizer: the tokenizer alone, from a directory with nothing
// else (cmd/snapvlm's TestTokenize checks its ids against the Hugging Face
// tokenizers output through this function).
func TestLoadTokenizer(t *testing.T) {
	dir := t.TempDir()
	tj, err := os.ReadFile("internal/tokenizer/testdata/tiny_tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), tj, 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := LoadTokenizer(dir)
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.Tokenize("<image>")
	if s, ok := tok.TokenString(ids[0]); len(ids) != 1 || !ok || s != "<image>" {
		t.Errorf("<image> = %v, TokenString %q, %v; want one special token", ids, s, ok)
	}
	if got := tok.Detokenize(tok.Tokenize("hello world"), false); got != "hello world" {
		t.Errorf("round trip = %q", got)
	}
	var me *ModelError
	if _, err := LoadTokenizer(t.TempDir()); !errors.As(err, &me) || me.File != "tokenizer.json" {
		t.Errorf("missing tokenizer.json: err = %v, want a *ModelError naming it", err)
	}
}
