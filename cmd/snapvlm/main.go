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
}

func commands() map[string]command {
	return map[string]command{
		"setup":      {"install and verify the ONNX Runtime library", cmdSetup},
		"version":    {"print the snapvlm and ONNX Runtime versions", cmdVersion},
		"testmodel":  {"write a random-weight SmolVLM-format test model", cmdTestmodel},
		"tokenize":   {"print the token ids of a text", cmdTokenize},
		"prompt":     {"render and expand a prompt without running a model", cmdPrompt},
		"preprocess": {"turn images into pixel_values like the Python processor", cmdPreprocess},
		"run":        {"answer one question about images (or text only)", cmdRun},
		"chat":       {"interactive multi-turn chat in the terminal", cmdChat},
		"pull":       {"download a model from the Hugging Face Hub", cmdPull},
		"models":     {"list models in the Hugging Face cache", cmdModels},
		"rm":         {"remove a model from the Hugging Face cache", cmdRm},
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := cmd.run(ctx, os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "snapvlm %s: %s\n", name, strings.TrimSpace(err.Error()))
		os.Exit(1)
	}
}
