package main

import (
	"context"
	"errors"
)

func cmdRm(ctx context.Context, args []string) error {
	return errors.New("not implemented yet")
}
