package main

/*
#include "capi.h"
*/
import "C"

import (
	"context"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"github.com/snapvlm/snapvlm"
	"github.com/snapvlm/snapvlm/internal/hub"
)

// abiVersion is SNAPVLM_ABI_VERSION of the snapvlm.h this library implements.
const abiVersion = 1

// versionString is snapvlm.Version as a C string in capi.c's static
// storage (snapvlm_version returns it).
var versionString = sync.OnceValue(func() *C.char {
	v := C.CString(snapvlm.Version)
	defer C.free(unsafe.Pointer(v))
	return (*C.char)(unsafe.Pointer(C.snapvlm_store_version(v)))
})

//export snapvlm_version
func snapvlm_version() *C.snapvlm_cchar {
	return (*C.snapvlm_cchar)(unsafe.Pointer(versionString()))
}

//export snapvlm_abi_version
func snapvlm_abi_version() C.int { return abiVersion }

//export snapvlm_string_free
func snapvlm_string_free(s *C.char) {
	C.free(unsafe.Pointer(s))
}

//export snapvlm_cancel_new
func snapvlm_cancel_new() *C.snapvlm_cancel {
	return newCancelHandle(newCanceller())
}

//export snapvlm_cancel_request
func snapvlm_cancel_request(p *C.snapvlm_cancel) {
	defer guardVoid()
	if c, err := cancelOf(p); err == nil && c != nil {
		c.request()
	}
}

//export snapvlm_cancel_free
func snapvlm_cancel_free(p *C.snapvlm_cancel) {
	defer guardVoid()
	if p != nil {
		freeHandle(&p.h, unsafe.Pointer(p))
	}
}

// setOut stores a result string for C, or reports a NULL output pointer.
func setOut(out **C.char, s string) error {
	if out == nil {
		return invalid("the output pointer is NULL")
	}
	*out = cString(s)
	return nil
}

//export snapvlm_model_open
func snapvlm_model_open(spec *C.snapvlm_cchar, optionsJSON *C.snapvlm_cchar, out **C.snapvlm_model) (rc C.int) {
	defer guard(&rc)
	if out == nil {
		return report(invalid("snapvlm_model_open: out is NULL"))
	}
	*out = nil
	md, err := openModel(goString(spec), goString(optionsJSON))
	if err != nil {
		return report(err)
	}
	*out = newModelHandle(md)
	return report(nil)
}

func openModel(spec, optionsJSON string) (*model, error) {
	var o openOptions
	if err := decodeJSON("options", optionsJSON, &o); err != nil {
		return nil, err
	}
	opts, err := o.engine()
	if err != nil {
		return nil, err
	}
	if spec == "" {
		return nil, invalid("model is empty: want a directory or a repo id org/name")
	}
	if _, err := os.Stat(spec); err != nil && !hub.IsRepoID(spec) {
		return nil, withCode(statusNotFound, fmt.Errorf("model %s: no such directory (and not a repo id org/name)", spec))
	}
	ho := hub.OptionsFromEnv()
	if o.CacheDir != "" {
		ho.CacheDir = o.CacheDir
	}
	ho.Offline = true // opening never downloads: snapvlm_models_pull does
	if o.Dtype != "" && o.Dtype != "auto" {
		ho.Dtypes = []string{o.Dtype}
	}
	dir, err := hub.Resolve(context.Background(), spec, ho)
	if err != nil {
		return nil, err
	}
	m, err := snapvlm.Load(context.Background(), dir, opts)
	if err != nil {
		return nil, err
	}
	return &model{m: m, running: map[int]context.CancelFunc{}}, nil
}

type modelInfo struct {
	Dir         string            `json:"dir"`
	Files       map[string]string `json:"files"`
	ImageSeqLen int               `json:"image_seq_len"`
	ORTVersion  string            `json:"ort_version"`
	LoadMS      float64           `json:"load_ms"`
}

//export snapvlm_model_info
func snapvlm_model_info(p *C.snapvlm_model, out **C.char) (rc C.int) {
	defer guard(&rc)
	md, err := modelOf(p)
	if err != nil {
		return report(err)
	}
	s, err := marshal(modelInfo{md.m.Dir(), md.m.Files(), md.m.ImageSeqLen(), md.m.ORTVersion(), ms(md.m.LoadTime())})
	if err == nil {
		err = setOut(out, s)
	}
	return report(err)
}

//export snapvlm_model_cancel_all
func snapvlm_model_cancel_all(p *C.snapvlm_model) (rc C.int) {
	defer guard(&rc)
	md, err := modelOf(p)
	if err != nil {
		return report(err)
	}
	md.cancelAll()
	return report(nil)
}

//export snapvlm_model_close
func snapvlm_model_close(p *C.snapvlm_model) {
	defer guardVoid()
	if p == nil {
		return
	}
	md, err := modelOf(p)
	if err != nil {
		report(err)
		return
	}
	err = md.close()
	freeHandle(&p.h, unsafe.Pointer(p))
	report(err)
}

//export snapvlm_image_encode
func snapvlm_image_encode(p *C.snapvlm_model, data *C.snapvlm_cbyte, n C.size_t, optionsJSON *C.snapvlm_cchar, out **C.snapvlm_image) (rc C.int) {
	defer guard(&rc)
	if out == nil {
		return report(invalid("snapvlm_image_encode: out is NULL"))
	}
	*out = nil
	md, err := modelOf(p)
	if err != nil {
		return report(err)
	}
	if data == nil || n == 0 {
		return report(invalid("snapvlm_image_encode: no image bytes"))
	}
	var o imageOptions
	if err := decodeJSON("image options", goString(optionsJSON), &o); err != nil {
		return report(err)
	}
	if o.ImageSize < 0 {
		return report(invalid("image options: image_size must not be negative"))
	}
	name := o.Name
	if name == "" {
		name = "(image bytes)"
	}
	img := &image{img: &snapvlm.Image{Name: name, Data: C.GoBytes(unsafe.Pointer(data), C.int(n))}, noSplit: o.NoSplit, imageSize: o.ImageSize}
	ctx, end, err := md.begin(context.Background())
	if err != nil {
		return report(err)
	}
	defer end()
	enc, err := md.m.Encode(ctx, img.img, snapvlm.ImageOptions{NoSplit: o.NoSplit, ImageSize: o.ImageSize})
	if err != nil {
		if ctx.Err() != nil {
			return report(withCode(statusCancelled, err))
		}
		return report(err)
	}
	img.info, img.tokens = enc.ImageInfo, enc.Tokens
	img.timings = snapvlm.Timings{Preprocess: enc.Preprocess, Vision: enc.Vision}
	*out = newImageHandle(img)
	return report(nil)
}

type imageInfo struct {
	Rows         int     `json:"rows"`
	Cols         int     `json:"cols"`
	Frames       int     `json:"frames"`
	ImageTokens  int     `json:"image_tokens"`
	NoSplit      bool    `json:"no_split"`
	ImageSize    int     `json:"image_size"`
	PreprocessMS float64 `json:"preprocess_ms"`
	VisionMS     float64 `json:"vision_ms"`
	Cached       bool    `json:"cached"`
}

//export snapvlm_image_info
func snapvlm_image_info(p *C.snapvlm_image, out **C.char) (rc C.int) {
	defer guard(&rc)
	img, err := imageOf(p)
	if err != nil {
		return report(err)
	}
	s, err := marshal(imageInfo{img.info.Rows, img.info.Cols, img.info.Frames, img.tokens, img.noSplit, img.imageSize,
		ms(img.timings.Preprocess), ms(img.timings.Vision), img.info.Cached})
	if err == nil {
		err = setOut(out, s)
	}
	return report(err)
}

//export snapvlm_image_free
func snapvlm_image_free(p *C.snapvlm_image) {
	defer guardVoid()
	if p != nil {
		freeHandle(&p.h, unsafe.Pointer(p))
	}
}

//export snapvlm_generate
func snapvlm_generate(p *C.snapvlm_model, reqJSON *C.snapvlm_cchar, images *C.snapvlm_image_cptr, nImages C.size_t,
	onToken C.snapvlm_token_fn, user unsafe.Pointer, cancel *C.snapvlm_cancel, out **C.char) (rc C.int) {
	defer guard(&rc)
	if out == nil {
		return report(invalid("snapvlm_generate: result_json is NULL"))
	}
	*out = nil
	md, err := modelOf(p)
	if err != nil {
		return report(err)
	}
	c, err := cancelOf(cancel)
	if err != nil {
		return report(err)
	}
	if nImages > 0 && images == nil {
		return report(invalid("snapvlm_generate: images is NULL but n_images is %d", nImages))
	}
	imgs := make([]*image, int(nImages))
	for i, h := range unsafe.Slice(images, int(nImages)) {
		if imgs[i], err = imageOf(h); err != nil {
			return report(invalid("images[%d]: %v", i, err))
		}
	}
	var rj requestJSON
	if err := decodeJSON("request", goString(reqJSON), &rj); err != nil {
		return report(err)
	}
	req, err := rj.request(imgs)
	if err != nil {
		return report(err)
	}
	ctx, end, err := md.begin(context.Background())
	if err != nil {
		return report(err)
	}
	defer end()
	ctx, release := c.watch(ctx)
	defer release()
	ctx, stop := context.WithCancel(ctx)
	defer stop()

	res, err := onCaller(func(call func(func())) (*snapvlm.Result, error) {
		var onText func(snapvlm.Token) error
		if onToken != nil {
			onText = func(tok snapvlm.Token) error {
				piece := tok.Text
				if piece == "" {
					return nil
				}
				call(func() {
					cs := C.CString(piece)
					defer C.free(unsafe.Pointer(cs))
					if C.snapvlm_call_token(onToken, cs, C.size_t(len(piece)), user) != 0 {
						stop()
					}
				})
				return nil
			}
		}
		res, err := md.m.Generate(ctx, req, onText)
		if err != nil && res != nil && res.FinishReason == snapvlm.FinishCancelled {
			err = nil // a cancelled generation reports its partial result
		}
		return res, err
	})
	if err != nil {
		return report(err)
	}
	s, err := marshal(resultOf(res))
	if err == nil {
		err = setOut(out, s)
	}
	return report(err)
}
