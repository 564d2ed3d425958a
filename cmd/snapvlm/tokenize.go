package main

import (
	"context"
	"errors"
)

func cmdTokenize(ctx context.Context, args []string) error {
	return errors.New("not implemented yet")
}
