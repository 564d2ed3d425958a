package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/snapvlm/snapvlm"
	"github.com/snapvlm/snapvlm/internal/ort"
)

func cmdVersion(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	ortLib := fs.String("ort-lib", "", "ONNX Runtime library file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Printf("snapvlm %s\n", snapvlm.Version)
	env, err := ort.Open(ort.Options{LibPath: *ortLib})
	var nf *ort.NotFoundError
	if errors.As(err, &nf) {
		return fmt.Errorf("%w\n(pass --ort-lib FILE)", err)
	}
	if err != nil {
		return err
	}
	fmt.Printf("ONNX Runtime %s (%s)\n", env.Version(), env.LibraryPath())
	return nil
}
