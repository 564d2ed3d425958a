//go:build !windows

package onnx

import (
	"fmt"
	"os"
	"syscall"
)

// MapFile maps a model file read-only. Weights are paged in only where
// touched; call unmap when done with data.
func MapFile(path string) (data []byte, unmap func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.Size() == 0 {
		return nil, nil, fmt.Errorf("%s is empty", path)
	}
	data, err = syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	return data, func() { syscall.Munmap(data) }, nil
}

// ReadFileIO maps the model file read-only and returns its graph I/O (see
// ReadGraphIO); the weights are not read.
func ReadFileIO(path string) ([]ValueInfo, []ValueInfo, error) {
	data, unmap, err := MapFile(path)
	if err != nil {
		return nil, nil, err
	}
	defer unmap()
	in, out, err := ReadGraphIO(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return in, out, nil
}

// ReadFileOpTypes maps the model file read-only and counts its nodes by
// operator (see ReadOpTypes).
func ReadFileOpTypes(path string) (map[string]int, error) {
	data, unmap, err := MapFile(path)
	if err != nil {
		return nil, err
	}
	defer unmap()
	ops, err := ReadOpTypes(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ops, nil
}
