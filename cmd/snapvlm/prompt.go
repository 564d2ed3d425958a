package main

import (
	"context"
	"errors"
)

func cmdPrompt(ctx context.Context, args []string) error {
	return errors.New("not implemented yet")
}
