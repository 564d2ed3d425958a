//go:build unix

package snapvlm

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) this process has used; with
// one ONNX Runtime thread it measures a benchmark's work even on a loaded
// machine, where wall time measures the machine.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
