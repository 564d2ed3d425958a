package main

import (
	"context"
	"errors"
)

func cmdPreprocess(ctx context.Context, args []string) error {
	return errors.New("not implemented yet")
}
