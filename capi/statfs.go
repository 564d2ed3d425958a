//go:build linux || darwin

package main

import (
	"errors"
	"path/filepath"
	"syscall"
)

// freeBytes is the space available to the user on the file system holding
// dir (or its nearest existing parent), -1 when unknown.
func freeBytes(dir string) int64 {
	for d := dir; d != ""; {
		var st syscall.Statfs_t
		err := syscall.Statfs(d, &st)
		if err == nil {
			return int64(st.Bavail) * int64(st.Bsize)
		}
		if !errors.Is(err, syscall.ENOENT) {
			return -1
		}
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	return -1
}
