package processor

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/prompt"
	"github.com/snapvlm/snapvlm/internal/testmodel"
)

func tinyProcessor(t *testing.T) *Processor {
	t.Helper()
	dir := t.TempDir()
	if err := testmodel.Generate(context.Background(), "tiny512", dir, testmodel.Options{Seed: 1, Variants: []string{testmodel.Q4}, GenerateTokenizer: true}); err != nil {
		t.Fatal(err)
	}
	p, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPromptCounts: the image tokens of a prompt are (rows·cols+1)·N per
// image (the SmolVLM processor's expansion, docs/smolvlm-format.md §3),
// and a prompt over the context is refused with its counts.
func TestPromptCounts(t *testing.T) {
	p := tinyProcessor(t)
	user := func(images int) []prompt.Message {
		var c []prompt.Part
		for range images {
			c = append(c, prompt.Part{Type: prompt.PartImage})
		}
		return []prompt.Message{{Role: prompt.RoleUser, Content: append(c, prompt.Part{Type: prompt.PartText, Text: "What is this?"})}}
	}
	n := p.SeqLen
	cases := []struct {
		grids []prompt.ImageGrid
		want  int
	}{
		{nil, 0},
		{[]prompt.ImageGrid{{}}, n},
		{[]prompt.ImageGrid{{Rows: 3, Cols: 4}}, 13 * n},
		{[]prompt.ImageGrid{{Rows: 4, Cols: 4}, {}}, 18 * n},
	}
	for _, c := range cases {
		pr, err := p.Prompt(Input{Messages: user(len(c.grids)), Grids: c.grids})
		if err != nil {
			t.Fatal(err)
		}
		if pr.ImageTokens != c.want || !strings.Contains(pr.Text, "What is this?") || len(pr.IDs) <= pr.ImageTokens {
			t.Errorf("grids %v: %d image tokens of %d, want %d", c.grids, pr.ImageTokens, len(pr.IDs), c.want)
		}
	}
	many := make([]prompt.ImageGrid, p.Positions/(17*n)+1)
	for i := range many {
		many[i] = prompt.ImageGrid{Rows: 4, Cols: 4}
	}
	_, err := p.Prompt(Input{Messages: user(len(many)), Grids: many})
	var long *TooLongError
	if !errors.As(err, &long) || long.ImageTokens != len(many)*17*n || long.Limit != p.Positions || long.Tokens <= long.ImageTokens {
		t.Errorf("%d 4x4 images: %v (%+v)", len(many), err, long)
	}
}

func TestOverride(t *testing.T) {
	p := tinyProcessor(t)
	base := p.Image
	cases := []struct {
		noSplit bool
		size    int
		want    string // error substring, or ""
		split   bool
		edge    int
	}{
		{false, 0, "", true, base.LongestEdge},
		{true, 0, "", false, base.LongestEdge},
		{false, 512, "", true, 512},
		{false, base.LongestEdge + 1, "maximum", true, 0},
		{false, -1, "positive", true, 0},
	}
	for _, c := range cases {
		got, err := p.ImageOptions(c.noSplit, c.size)
		if c.want != "" {
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "--") {
				t.Errorf("noSplit %v size %d: %v, want an error with %q", c.noSplit, c.size, err, c.want)
			}
			continue
		}
		if err != nil || got.Split != c.split || got.LongestEdge != c.edge || got.TileSize != base.TileSize {
			t.Errorf("noSplit %v size %d: %+v, %v", c.noSplit, c.size, got, err)
		}
	}
	// Grid plans from the size alone: 640x480 is 3x4 tiles on the 512-px models.
	if g := Grid(640, 480, base); g != (prompt.ImageGrid{Rows: 3, Cols: 4}) {
		t.Errorf("Grid(640x480) = %+v", g)
	}
}
