package main

import (
	"context"
	"errors"
)

func cmdModels(ctx context.Context, args []string) error {
	return errors.New("not implemented yet")
}
