//go:build !linux && !darwin

package main

// freeBytes is unknown on this system.
func freeBytes(string) int64 { return -1 }
