// Command capi is libsnapvlm, snapvlm's C library: built with
// `go build -buildmode=c-shared` (libsnapvlm.so) or `-buildmode=c-archive`
// (libsnapvlm.a), it exports the functions declared in snapvlm.h, the
// hand-written and documented C API (see `make lib`).
//
// Every export recovers panics and turns Go errors into a status code and a
// per-thread message (snapvlm_last_error); handles are C blocks holding a
// runtime/cgo.Handle, so no Go pointer is kept by C. Callbacks are always
// run on the thread that made the call (the Go work runs on another
// goroutine and hands each callback back to the caller's goroutine, which
// cgo keeps on the caller's thread).
package main

func main() {}
