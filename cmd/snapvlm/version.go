package main

import (
	"context"
	"errors"
)

func cmdVersion(ctx context.Context, args []string) error {
	return errors.New("not implemented yet")
}
