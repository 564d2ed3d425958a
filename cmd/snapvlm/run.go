package main

import (
	"context"
	"errors"
)

func cmdRun(ctx context.Context, args []string) error {
	return errors.New("not implemented yet")
}
