//go:build !windows

package onnx

import (
	"fmt"
	"os"
	"syscall"
)

// ReadFileIO maps the model file read-only and returns its graph I/O (see
// ReadGraphIO); the weights are not read.
func ReadFileIO(path string) ([]ValueInfo, []ValueInfo, error) {
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
	data, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mapping %s: %w", path, err)
	}
	defer syscall.Munmap(data)
	in, out, err := ReadGraphIO(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return in, out, nil
}
