package main

/*
#include "capi.h"
*/
import "C"

import (
	"context"
	"unsafe"

	"github.com/snapvlm/snapvlm/internal/hub"
)

// managerOptions is the model manager's options_json.
type managerOptions struct {
	CacheDir     string `json:"cache_dir"`
	Endpoint     string `json:"endpoint"`
	Token        string `json:"token"`
	Offline      bool   `json:"offline"`
	Dtype        string `json:"dtype"`
	VisionDtype  string `json:"vision_dtype"`
	EmbedDtype   string `json:"embed_dtype"`
	DecoderDtype string `json:"decoder_dtype"`
}

// hubOptions reads options_json over the environment's defaults.
func hubOptions(s string) (hub.Options, error) {
	var o managerOptions
	if err := decodeJSON("options", s, &o); err != nil {
		return hub.Options{}, err
	}
	ho := hub.OptionsFromEnv()
	if o.CacheDir != "" {
		ho.CacheDir = o.CacheDir
	}
	if o.Endpoint != "" {
		ho.Endpoint = o.Endpoint
	}
	if o.Token != "" {
		ho.Token = o.Token
	}
	if o.Offline {
		ho.Offline = true
	}
	if o.Dtype != "" {
		ho.Dtypes = []string{o.Dtype}
	}
	for g, d := range map[string]string{hub.Graphs()[0]: o.VisionDtype, hub.Graphs()[1]: o.EmbedDtype, hub.Graphs()[2]: o.DecoderDtype} {
		if d != "" {
			if ho.GraphDtypes == nil {
				ho.GraphDtypes = map[string]string{}
			}
			ho.GraphDtypes[g] = d
		}
	}
	return ho, nil
}

type revisionJSON struct {
	Commit    string   `json:"commit"`
	Refs      []string `json:"refs"`
	Dir       string   `json:"dir"`
	ModelType string   `json:"model_type"`
	Variants  []string `json:"variants"`
	Size      int64    `json:"size"`
	Files     int      `json:"files"`
}

type cachedJSON struct {
	Repo      string         `json:"repo"`
	Dir       string         `json:"dir"`
	Size      int64          `json:"size"`
	Revisions []revisionJSON `json:"revisions"`
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

//export snapvlm_models_list
func snapvlm_models_list(optionsJSON *C.snapvlm_cchar, out **C.char) (rc C.int) {
	defer guard(&rc)
	ho, err := hubOptions(goString(optionsJSON))
	if err != nil {
		return report(err)
	}
	models, err := hub.List(ho)
	if err != nil {
		return report(withCode(statusIO, err))
	}
	list := []cachedJSON{}
	for _, m := range models {
		c := cachedJSON{Repo: m.Repo, Dir: m.Dir, Size: m.Size, Revisions: []revisionJSON{}}
		for _, r := range m.Revisions {
			c.Revisions = append(c.Revisions, revisionJSON{r.Commit, nonNil(r.Refs), r.Dir, r.ModelType, nonNil(r.Variants), r.Size, r.Files})
		}
		list = append(list, c)
	}
	s, err := marshal(list)
	if err == nil {
		err = setOut(out, s)
	}
	return report(err)
}

//export snapvlm_models_pull
func snapvlm_models_pull(spec *C.snapvlm_cchar, optionsJSON *C.snapvlm_cchar, onProgress C.snapvlm_progress_fn, user unsafe.Pointer,
	cancel *C.snapvlm_cancel, out **C.char) (rc C.int) {
	defer guard(&rc)
	if out == nil {
		return report(invalid("snapvlm_models_pull: model_dir is NULL"))
	}
	*out = nil
	ho, err := hubOptions(goString(optionsJSON))
	if err != nil {
		return report(err)
	}
	c, err := cancelOf(cancel)
	if err != nil {
		return report(err)
	}
	repo, revision, err := hub.ParseSpec(goString(spec))
	if err != nil {
		return report(withCode(statusInvalidArgument, err))
	}
	ctx, release := c.watch(context.Background())
	defer release()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	dir, err := onCaller(func(call func(func())) (string, error) {
		if onProgress != nil {
			// Progress over the whole pull: the bytes of the files done
			// before plus those of the current one.
			var base, total int64 = 0, -1
			cur, curDone := "", int64(0)
			ho.OnProgress = func(file string, done, size int64) {
				if file != cur {
					base += curDone
					cur = file
				}
				curDone = done
				call(func() {
					cf := C.CString(file)
					defer C.free(unsafe.Pointer(cf))
					if C.snapvlm_call_progress(onProgress, cf, C.int64_t(base+done), C.int64_t(total), user) != 0 {
						stop()
					}
				})
			}
			if ho.Offline {
				return hub.Pull(ctx, repo, revision, ho)
			}
			plan, err := hub.Plan(ctx, repo, revision, ho)
			if err != nil {
				return "", err
			}
			total = plan.DownloadBytes
			if plan.Downloads > 0 && plan.DownloadBytes == 0 {
				total = -1
			}
			return hub.Download(ctx, plan, ho)
		}
		return hub.Pull(ctx, repo, revision, ho)
	})
	if err != nil {
		if ctx.Err() != nil {
			return report(withCode(statusCancelled, err))
		}
		return report(err)
	}
	return report(setOut(out, dir))
}

type verifyJSON struct {
	Repo  string          `json:"repo"`
	Dir   string          `json:"dir"`
	OK    bool            `json:"ok"`
	Files []hub.FileCheck `json:"files"`
}

//export snapvlm_models_verify
func snapvlm_models_verify(spec *C.snapvlm_cchar, optionsJSON *C.snapvlm_cchar, out **C.char) (rc C.int) {
	defer guard(&rc)
	ho, err := hubOptions(goString(optionsJSON))
	if err != nil {
		return report(err)
	}
	s := goString(spec)
	dir, files, err := hub.Verify(context.Background(), ho, s)
	if err != nil {
		return report(err)
	}
	v := verifyJSON{Repo: s, Dir: dir, OK: true, Files: files}
	if v.Files == nil {
		v.Files = []hub.FileCheck{}
	}
	for _, f := range files {
		v.OK = v.OK && f.OK
	}
	js, err := marshal(v)
	if err == nil {
		err = setOut(out, js)
	}
	return report(err)
}

//export snapvlm_models_remove
func snapvlm_models_remove(spec *C.snapvlm_cchar, optionsJSON *C.snapvlm_cchar) (rc C.int) {
	defer guard(&rc)
	ho, err := hubOptions(goString(optionsJSON))
	if err != nil {
		return report(err)
	}
	return report(hub.Remove(ho, goString(spec)))
}

type usageJSON struct {
	CacheDir    string `json:"cache_dir"`
	ModelsBytes int64  `json:"models_bytes"`
	FreeBytes   int64  `json:"free_bytes"`
}

//export snapvlm_models_disk_usage
func snapvlm_models_disk_usage(optionsJSON *C.snapvlm_cchar, out **C.char) (rc C.int) {
	defer guard(&rc)
	ho, err := hubOptions(goString(optionsJSON))
	if err != nil {
		return report(err)
	}
	models, err := hub.List(ho)
	if err != nil {
		return report(withCode(statusIO, err))
	}
	u := usageJSON{CacheDir: ho.CacheDir, FreeBytes: -1}
	for _, m := range models {
		u.ModelsBytes += m.Size
	}
	u.FreeBytes = freeBytes(ho.CacheDir)
	s, err := marshal(u)
	if err == nil {
		err = setOut(out, s)
	}
	return report(err)
}
