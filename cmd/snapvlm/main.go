// Command snapvlm runs SmolVLM / SmolVLM2 vision-language models from their
// ONNX exports on ONNX Runtime: ask a question about an image, get a streamed
// answer.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
)

// command is one subcommand of the CLI.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
	// ownSignals commands handle Ctrl-C themselves (chat stops the answer,
	// not the program).
	ownSignals bool
}

func commands() map[string]command {
	return map[string]command{
		"setup":      {summary: "install and verify the ONNX Runtime library", run: cmdSetup},
		"version":    {summary: "print the snapvlm and ONNX Runtime versions", run: cmdVersion},
		"tokenize":   {summary: "print the token ids of a text", run: cmdTokenize},
		"prompt":     {summary: "render and expand a prompt without running a model", run: cmdPrompt},
		"preprocess": {summary: "turn images into pixel_values like the Python processor", run: cmdPreprocess},
		"run":        {summary: "answer one question about images (or text only)", run: cmdRun},
		"bench":      {summary: "time load, vision, prefill, first token and decoding", run: cmdBench},
		"chat":       {summary: "interactive multi-turn chat in the terminal", run: cmdChat, ownSignals: true},
		"serve":      {summary: "serve an OpenAI-compatible API and a snap-and-ask web page", run: cmdServe, ownSignals: true},
		"pull":       {summary: "download a model from the Hugging Face Hub", run: cmdPull},
		"models":     {summary: "list models in the Hugging Face cache", run: cmdModels},
		"rm":         {summary: "remove a model from the Hugging Face cache", run: cmdRm},
		"cache":      {summary: "list or clear the rewritten decoders (attention rewrite, --decoder-int8)", run: cmdCache},
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, "snapvlm: SmolVLM vision-language models on ONNX Runtime\n\nUsage: snapvlm COMMAND [flags] [args]\n\nCommands:\n")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-11s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'snapvlm COMMAND -h' for a command's flags.\n")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	name := os.Args[1]
	cmd, ok := commands()[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "snapvlm: unknown command %q\n\n", name)
		usage()
		os.Exit(2)
	}
	// The first Ctrl-C cancels the context; commands that want to survive it
	// (chat) install their own handling.
	ctx := context.Background()
	if !cmd.ownSignals {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt)
		defer stop()
	}
	if err := cmd.run(ctx, os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		if errors.Is(err, errStopped) || ctx.Err() != nil {
			// Interrupted: the shell's convention for SIGINT.
			fmt.Fprintln(os.Stderr, "[stopped]")
			os.Exit(130)
		}
		fmt.Fprintf(os.Stderr, "snapvlm %s: %s\n", name, strings.TrimSpace(err.Error()))
		os.Exit(1)
	}
}

// errStopped is returned by a command whose work was interrupted (Ctrl-C);
// main prints "[stopped]" and exits with status 130.
var errStopped = errors.New("stopped")

// parseArgs parses fs allowing flags after positional arguments
// (snapvlm run --model M "question" --image x.jpg) and returns the
// positionals in order; the flag package alone stops at the first one.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
