package main

/*
#include "capi.h"
*/
import "C"

import (
	"context"
	"fmt"
	"runtime/cgo"
	"sync"
	"unsafe"

	"github.com/snapvlm/snapvlm"
)

// model is what a snapvlm_model handle refers to: the Go model and the calls
// running on it, so close can cancel and wait for them.
type model struct {
	m *snapvlm.Model

	mu      sync.Mutex
	closed  bool
	nextID  int
	running map[int]context.CancelFunc
	wg      sync.WaitGroup
}

// begin registers a call on the model and returns its context; end must
// be called when the call returns.
func (md *model) begin(parent context.Context) (ctx context.Context, end func(), err error) {
	md.mu.Lock()
	defer md.mu.Unlock()
	if md.closed {
		return nil, nil, invalid("the model is closed")
	}
	ctx, cancel := context.WithCancel(parent)
	id := md.nextID
	md.nextID++
	md.running[id] = cancel
	md.wg.Add(1)
	return ctx, func() {
		md.mu.Lock()
		delete(md.running, id)
		md.mu.Unlock()
		cancel()
		md.wg.Done()
	}, nil
}

// cancelAll cancels the calls running now.
func (md *model) cancelAll() {
	md.mu.Lock()
	defer md.mu.Unlock()
	for _, cancel := range md.running {
		cancel()
	}
}

// close cancels the running calls, waits for them and releases the model.
func (md *model) close() error {
	md.mu.Lock()
	if md.closed {
		md.mu.Unlock()
		return nil
	}
	md.closed = true
	for _, cancel := range md.running {
		cancel()
	}
	md.mu.Unlock()
	md.wg.Wait()
	return md.m.Close()
}

// image is what a snapvlm_image handle refers to: the bytes and the
// preprocessing settings (the features live in the model's cache).
type image struct {
	img       *snapvlm.Image
	noSplit   bool
	imageSize int
	info      snapvlm.ImageInfo
	tokens    int
	timings   snapvlm.Timings
}

// canceller is what a snapvlm_cancel handle refers to.
type canceller struct {
	mu        sync.Mutex
	requested bool
	nextID    int
	cancels   map[int]context.CancelFunc
}

func newCanceller() *canceller { return &canceller{cancels: map[int]context.CancelFunc{}} }

// request cancels the calls using c, now and later.
func (c *canceller) request() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requested = true
	for _, cancel := range c.cancels {
		cancel()
	}
}

// watch derives a context that c cancels; the returned func releases it.
// A nil canceller gives ctx itself.
func (c *canceller) watch(ctx context.Context) (context.Context, func()) {
	if c == nil {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.requested {
		cancel()
		return ctx, func() {}
	}
	id := c.nextID
	c.nextID++
	c.cancels[id] = cancel
	return ctx, func() {
		c.mu.Lock()
		delete(c.cancels, id)
		c.mu.Unlock()
		cancel()
	}
}

// The handle blocks are allocated with C.malloc and hold a cgo.Handle.

func newModelHandle(md *model) *C.snapvlm_model {
	p := (*C.snapvlm_model)(C.malloc(C.sizeof_struct_snapvlm_model))
	p.h = C.uintptr_t(cgo.NewHandle(md))
	return p
}

func newImageHandle(img *image) *C.snapvlm_image {
	p := (*C.snapvlm_image)(C.malloc(C.sizeof_struct_snapvlm_image))
	p.h = C.uintptr_t(cgo.NewHandle(img))
	return p
}

func newCancelHandle(c *canceller) *C.snapvlm_cancel {
	p := (*C.snapvlm_cancel)(C.malloc(C.sizeof_struct_snapvlm_cancel))
	p.h = C.uintptr_t(cgo.NewHandle(c))
	return p
}

// handleValue reads a handle block, or fails on NULL or a freed handle.
func handleValue[T any](h C.uintptr_t, what string) (T, error) {
	var zero T
	if h == 0 {
		return zero, invalid("the %s handle was freed", what)
	}
	v, ok := cgo.Handle(h).Value().(T)
	if !ok {
		return zero, invalid("not a %s handle", what)
	}
	return v, nil
}

func modelOf(p *C.snapvlm_model) (*model, error) {
	if p == nil {
		return nil, invalid("model handle is NULL")
	}
	return handleValue[*model](p.h, "model")
}

func imageOf(p *C.snapvlm_image) (*image, error) {
	if p == nil {
		return nil, invalid("image handle is NULL")
	}
	return handleValue[*image](p.h, "image")
}

func cancelOf(p *C.snapvlm_cancel) (*canceller, error) {
	if p == nil {
		return nil, nil
	}
	return handleValue[*canceller](p.h, "cancel")
}

// freeHandle deletes the cgo.Handle of a block and frees the block.
func freeHandle(h *C.uintptr_t, block unsafe.Pointer) {
	if *h != 0 {
		cgo.Handle(*h).Delete()
		*h = 0
	}
	C.free(block)
}

// goString copies a C string; NULL is "".
func goString(s *C.snapvlm_cchar) string {
	if s == nil {
		return ""
	}
	return C.GoString((*C.char)(unsafe.Pointer(s)))
}

// cString hands s to C in malloc'd memory (freed with snapvlm_string_free).
func cString(s string) *C.char { return C.CString(s) }

// onCaller runs work on a new goroutine while the calling goroutine — the
// one cgo runs an export on, locked to the caller's C thread — runs the
// callbacks work asks for through call, one at a time and in order. So C
// callbacks always run on the thread that called the library (JNI needs
// that), whatever goroutines the engine uses.
func onCaller[T any](work func(call func(func())) (T, error)) (T, error) {
	type request struct {
		f    func()
		done chan struct{}
	}
	type outcome struct {
		v   T
		err error
	}
	reqs := make(chan request)
	fin := make(chan outcome, 1)
	go func() {
		var o outcome
		defer func() {
			if r := recover(); r != nil {
				o.err = &codedError{statusInternal, fmt.Errorf("internal error (please report): %v", r)}
			}
			fin <- o
		}()
		o.v, o.err = work(func(f func()) {
			done := make(chan struct{})
			reqs <- request{f, done}
			<-done
		})
	}()
	for {
		select {
		case r := <-reqs:
			r.f()
			close(r.done)
		case o := <-fin:
			return o.v, o.err
		}
	}
}
