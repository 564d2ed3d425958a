// Package ortsetup installs the ONNX Runtime shared library from the official
// onnxruntime-node npm tarball into the user cache dir, verifying a pinned
// SHA-256 per platform.
//
// The npm registry is used because it carries Microsoft's own builds for
// linux x64/arm64 and darwin arm64 and is reachable where GitHub releases are
// not; `npm pack` downloads the tarball without running install scripts.
package ortsetup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/snapvlm/snapvlm/internal/ort"
)

// Package is the npm package that carries the library.
const Package = "onnxruntime-node@" + ort.Version

// artifact is the library of one platform inside the tarball.
type artifact struct {
	member string // path inside the .tgz
	sha256 string
}

// artifacts are pinned from onnxruntime-node 1.30.0.
var artifacts = map[string]artifact{
	"linux-x64":    {"package/bin/napi-v6/linux/x64/libonnxruntime.so.1", "ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23"},
	"linux-arm64":  {"package/bin/napi-v6/linux/arm64/libonnxruntime.so.1", "1f549d46250b005580b597f4164984aaf75b3bcb9f3aeb07c7f8a8fe60b23c76"},
	"darwin-arm64": {"package/bin/napi-v6/darwin/arm64/libonnxruntime.1.30.0.dylib", "685d2be5dba1309c89d3a5324b7fd06a5c42f1a61bfea32d14c4cc28d072121d"},
}

// Options control Install.
type Options struct {
	// Platform defaults to ort.Platform().
	Platform string
	// Dest is the library file to write; defaults to ort.CachedLibraryPath().
	Dest string
	// Tarball is an already downloaded onnxruntime-node .tgz; empty runs
	// `npm pack`.
	Tarball string
	// Log receives progress lines; nil is quiet.
	Log io.Writer
}

// Result says what Install did.
type Result struct {
	Path    string
	Fresh   bool // false when a verified library was already there
	SHA256  string
	Package string
}

// Install makes sure the verified library is at the destination. A second
// call finds it there and returns without network or copying.
func Install(ctx context.Context, o Options) (*Result, error) {
	if o.Platform == "" {
		o.Platform = ort.Platform()
	}
	art, ok := artifacts[o.Platform]
	if !ok {
		return nil, fmt.Errorf("no ONNX Runtime build for %s in %s (have linux-x64, linux-arm64, darwin-arm64); install ONNX Runtime %s yourself and pass --ort-lib",
			o.Platform, Package, ort.Version)
	}
	if o.Dest == "" {
		p, err := ort.CachedLibraryPath()
		if err != nil {
			return nil, err
		}
		o.Dest = p
	}
	res := &Result{Path: o.Dest, SHA256: art.sha256, Package: Package}
	if sum, err := fileSHA256(o.Dest); err == nil && sum == art.sha256 {
		return res, nil
	}
	logf(o.Log, "installing ONNX Runtime %s for %s from npm %s", ort.Version, o.Platform, Package)
	tgz := o.Tarball
	if tgz == "" {
		tmp, err := os.MkdirTemp("", "snapvlm-ort-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		if tgz, err = npmPack(ctx, tmp); err != nil {
			return nil, err
		}
	}
	if err := extract(tgz, art, o.Dest); err != nil {
		return nil, err
	}
	res.Fresh = true
	logf(o.Log, "installed %s (sha256 %s verified)", o.Dest, art.sha256[:16])
	return res, nil
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}

// npmPack downloads the package tarball into dir.
func npmPack(ctx context.Context, dir string) (string, error) {
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", errors.New("npm is needed to download ONNX Runtime from the npm registry but was not found: install Node.js and npm (Debian/Ubuntu: apt-get install nodejs npm; macOS: brew install node), or pass --tarball with a downloaded " + Package + " .tgz")
	}
	cmd := exec.CommandContext(ctx, npm, "pack", Package, "--pack-destination", dir, "--silent")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("npm pack %s: %w\n%s", Package, err, strings.TrimSpace(string(out)))
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "onnxruntime-node-*.tgz"))
	if len(matches) != 1 {
		return "", fmt.Errorf("npm pack %s: no tarball in %s (output: %s)", Package, dir, strings.TrimSpace(string(out)))
	}
	return matches[0], nil
}

// extract copies the platform's library out of the tarball to dest through a
// temporary file, renaming it into place only after the checksum matches.
func extract(tgz string, art artifact, dest string) error {
	f, err := os.Open(tgz)
	if err != nil {
		return fmt.Errorf("opening %s: %w", tgz, err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s is not a gzip tarball: %w", tgz, err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return fmt.Errorf("%s has no %s", tgz, art.member)
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", tgz, err)
		}
		if h.Name != art.member {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			return err
		}
		tmp, err := os.CreateTemp(filepath.Dir(dest), ".ort-*.tmp")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		hash := sha256.New()
		if _, err := io.Copy(io.MultiWriter(tmp, hash), tr); err != nil {
			tmp.Close()
			return fmt.Errorf("extracting %s: %w", art.member, err)
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		if got := hex.EncodeToString(hash.Sum(nil)); got != art.sha256 {
			return fmt.Errorf("checksum mismatch for %s from %s: got sha256 %s, want %s", art.member, tgz, got, art.sha256)
		}
		if err := os.Chmod(tmp.Name(), 0o755); err != nil {
			return err
		}
		return os.Rename(tmp.Name(), dest)
	}
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
