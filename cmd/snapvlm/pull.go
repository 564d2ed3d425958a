package main

import (
	"context"
	"errors"
)

func cmdPull(ctx context.Context, args []string) error {
	return errors.New("not implemented yet")
}
