package main

import (
	"context"
	"errors"
)

func cmdSetup(ctx context.Context, args []string) error {
	return errors.New("not implemented yet")
}
