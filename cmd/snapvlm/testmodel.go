package main

import (
	"context"
	"errors"
)

func cmdTestmodel(ctx context.Context, args []string) error {
	return errors.New("not implemented yet")
}
