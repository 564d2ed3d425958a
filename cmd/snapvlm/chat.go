package main

import (
	"context"
	"errors"
)

func cmdChat(ctx context.Context, args []string) error {
	return errors.New("not implemented yet")
}
