package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/snapvlm/snapvlm"
)

func cmdRun(ctx context.Context, args []string) error {
	return runRun(ctx, args, os.Stdout, os.Stderr)
}

// runRun is `snapvlm run` reading a "-" question from os.Stdin.
func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runRunIO(ctx, args, os.Stdin, stdout, stderr)
}

func runRunIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f engineFlags
	f.register(fs)
	asJSON := fs.Bool("json", false, "print one JSON object with the answer, token ids and timings instead of streaming")
	qfile := fs.String("question-file", "", "read the question from this file (- for stdin)")
	format := fs.String("format", "", `constrain the answer: "json" makes it a JSON object`)
	schemaFile := fs.String("schema", "", "constrain the answer to JSON valid against the JSON Schema in this `FILE`")
	regex := fs.String("regex", "", "constrain the answer to match this regular expression (`RE`, RE2 syntax) as a whole")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: snapvlm run --model DIR|REPO [--image IMG]... [--video CLIP]... [flags] QUESTION|-")
		fs.PrintDefaults()
	}
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	question, err := questionText(rest, *qfile, stdin)
	if err != nil {
		return err
	}
	if question == "" {
		return fmt.Errorf("no question given (usage: snapvlm run --model DIR --image IMG QUESTION, or - / --question-file FILE)")
	}
	if err := f.validate(); err != nil {
		return err
	}
	images, err := f.readImages()
	if err != nil {
		return err
	}
	if *format != "" && *format != snapvlm.FormatJSON {
		return fmt.Errorf("--format %q: only %q is supported", *format, snapvlm.FormatJSON)
	}
	if n := btoi(*format != "") + btoi(*schemaFile != "") + btoi(*regex != ""); n > 1 {
		return fmt.Errorf("--format, --schema and --regex exclude each other")
	}
	var schema []byte
	if *schemaFile != "" {
		if schema, err = os.ReadFile(*schemaFile); err != nil {
			return fmt.Errorf("--schema: %w", err)
		}
	}
	videos, err := f.readVideos()
	if err != nil {
		return err
	}
	m, err := f.load(ctx, len(images) == 0 && len(videos) == 0)
	if err != nil {
		return err
	}
	defer m.Close()
	req := snapvlm.Request{
		Messages:        append(f.systemMessages(), userMessage(question, videos, images)),
		GenerateOptions: f.generateOptions(),
	}
	req.Format, req.Schema, req.Regex = *format, schema, *regex
	// On a terminal, a line shows the vision encoder's progress on long
	// encodes; it is cleared before the answer.
	prog := &progressLine{w: stderr}
	if isTerminal(stderr) {
		req.OnProgress = prog.show
	}
	var onToken func(snapvlm.Token) error
	if !*asJSON {
		onToken = func(tok snapvlm.Token) error {
			if tok.Text == "" {
				return nil // a token whose text is held back (or an end token)
			}
			prog.clear()
			_, err := io.WriteString(stdout, tok.Text)
			return err
		}
	}
	res, err := m.Generate(ctx, req, onToken)
	prog.clear()
	if err != nil && !(res != nil && res.FinishReason == snapvlm.FinishCancelled) {
		return withFlagHints(err)
	}
	if *asJSON {
		if res.Tokens == nil {
			res.Tokens = []int64{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		out := runJSON{Result: res, Files: map[string]graphFileJSON{}}
		for g, p := range m.Files() {
			out.Files[g] = graphFileJSON{File: p, Why: m.FileReasons()[g]}
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout)
		if res.Incomplete {
			fmt.Fprintf(stderr, "snapvlm: the answer is incomplete (finish %s)", res.FinishReason)
			if res.FinishReason == snapvlm.FinishLength {
				fmt.Fprint(stderr, "; raise --max-tokens")
			}
			fmt.Fprintln(stderr)
		}
	}
	if f.verbose {
		printStats(stderr, res)
	}
	if res.FinishReason == snapvlm.FinishCancelled {
		return errStopped
	}
	return nil
}

// runJSON is the --json output: the Result and the graph files run.
type runJSON struct {
	*snapvlm.Result
	// Files are the graph files run, by graph, and why each was chosen.
	Files map[string]graphFileJSON `json:"files,omitempty"`
}

type graphFileJSON struct {
	File string `json:"file"`
	Why  string `json:"why"`
}

// progressLine redraws one status line on a terminal.
type progressLine struct {
	w     io.Writer
	width int // of the line shown, 0 when none
}

func (p *progressLine) show(pr snapvlm.Progress) {
	line := fmt.Sprintf("encoding image %d/%d: tile %d/%d", pr.Image, pr.Images, pr.Done, pr.Tiles)
	fmt.Fprintf(p.w, "\r%-*s", p.width, line)
	p.width = max(p.width, len(line))
}

func (p *progressLine) clear() {
	if p.width > 0 {
		fmt.Fprintf(p.w, "\r%*s\r", p.width, "")
		p.width = 0
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
