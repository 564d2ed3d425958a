package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/snapvlm/snapvlm/internal/ort"
	"github.com/snapvlm/snapvlm/internal/ortsetup"
)

func cmdSetup(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("setup", flag.ContinueOnError)
	tarball := fs.String("tarball", "", "use this downloaded "+ortsetup.Package+" .tgz instead of running npm pack")
	dest := fs.String("dest", "", "install the library here instead of the user cache dir")
	quiet := fs.Bool("quiet", false, "print nothing when the library is already installed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res, err := ortsetup.Install(ctx, ortsetup.Options{Tarball: *tarball, Dest: *dest, Log: os.Stderr})
	if err != nil {
		return err
	}
	env, err := ort.Open(ort.Options{LibPath: res.Path})
	if err != nil {
		return fmt.Errorf("installed %s but it does not load: %w", res.Path, err)
	}
	if res.Fresh || !*quiet {
		fmt.Printf("ONNX Runtime %s ready at %s\n", env.Version(), res.Path)
	}
	return nil
}
