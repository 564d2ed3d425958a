package main

import (
	"context"
	"fmt"
	"os"

	"github.com/snapvlm/snapvlm/internal/hub"
	"golang.org/x/term"
)

// resolveModel turns --model into a local directory: a directory as it is; a
// Hugging Face repo id from the cache, downloading it first when missing —
// on a terminal after asking (unless --yes), otherwise with a note on stderr.
func resolveModel(ctx context.Context, spec string, yes bool, dtype string, graphDtypes map[string]string) (string, error) {
	if st, err := os.Stat(spec); err == nil && st.IsDir() {
		return spec, nil
	}
	if !hub.IsRepoID(spec) {
		return "", fmt.Errorf("model %q is neither a directory nor a Hugging Face repo id (org/name)", spec)
	}
	opt := hub.OptionsFromEnv()
	if dtype != "" && dtype != "auto" {
		opt.Dtypes = []string{dtype}
	}
	opt.GraphDtypes = graphDtypes
	opt.Progress = os.Stderr
	interactive := term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stderr.Fd()))
	return hub.Ensure(ctx, spec, opt, func(ctx context.Context, plan *hub.PullPlan) bool {
		switch {
		case yes:
			return true
		case interactive:
			return hub.ConfirmPull(ctx, os.Stdin, os.Stderr, plan)
		}
		fmt.Fprintf(os.Stderr, "%s is not in the cache: downloading it (non-interactive; --yes skips this note)\n", spec)
		return true
	})
}
