//go:build !unix

package snapvlm

import "time"

func processCPU() (time.Duration, bool) { return 0, false }
