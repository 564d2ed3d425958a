package server

import (
	"context"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"

	"github.com/snapvlm/snapvlm"
)

// encodeRequest is the JSON body of POST /v1/snapvlm/encode. The image is
// a data URL in "image" or "image_url.url" (or, in a multipart form, a file
// in the field "image" with the other fields as form values).
type encodeRequest struct {
	Model    string `json:"model"`
	Image    string `json:"image"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url"`
	NoSplit   *bool `json:"no_split"`
	ImageSize *int  `json:"image_size"`
	// Wait makes the call return when the features are ready, with the
	// tiles and tokens; by default it returns at once.
	Wait bool `json:"wait"`
}

// encodeResponse answers POST /v1/snapvlm/encode.
type encodeResponse struct {
	ID     string `json:"id"`
	Object string `json:"object"`
	Model  string `json:"model"`
	// Status is "encoding" (started in the background) or "ready".
	Status   string  `json:"status"`
	Tiles    int     `json:"tiles,omitempty"`
	Rows     int     `json:"rows,omitempty"`
	Cols     int     `json:"cols,omitempty"`
	Tokens   int     `json:"tokens,omitempty"`
	Cached   bool    `json:"cached,omitempty"`
	VisionMS float64 `json:"vision_ms,omitempty"`
}

func (s *Server) handleEncode(w http.ResponseWriter, r *http.Request) error {
	ri := info(r)
	er, img, err := s.readEncode(r)
	if err != nil {
		return err
	}
	sv, err := s.model(er.Model)
	if err != nil {
		return err
	}
	ri.model = sv.spec.ID
	opt := snapvlm.ImageOptions{NoSplit: s.cfg.Defaults.NoSplit, ImageSize: s.cfg.Defaults.ImageSize}
	if er.NoSplit != nil {
		opt.NoSplit = *er.NoSplit
	}
	if er.ImageSize != nil {
		if *er.ImageSize < 0 || *er.ImageSize > 8192 {
			return badRequest("image_size", "image_size must be 0 (model default) to 8192 pixels, got %d", *er.ImageSize)
		}
		opt.ImageSize = *er.ImageSize
	}
	resp := encodeResponse{ID: sv.m.ImageID(img, opt), Object: "snapvlm.image", Model: sv.spec.ID, Status: "encoding"}
	if er.Wait {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(s.genCtx, cancel)
		defer stop()
		enc, err := s.encode(ctx, sv, img, opt)
		if err != nil {
			return err
		}
		resp.ID, resp.Status, resp.Tiles, resp.Rows, resp.Cols, resp.Tokens, resp.Cached, resp.VisionMS =
			enc.ID, "ready", enc.Frames, enc.Rows, enc.Cols, enc.Tokens, enc.Cached, ms(enc.Vision+enc.Preprocess)
		writeJSON(w, http.StatusOK, resp)
		return nil
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		if _, err := s.encode(s.genCtx, sv, img, opt); err != nil && !isCanceled(err) {
			s.log.Warn("background encode failed", "id", ri.id, "model", sv.spec.ID, "err", asAPIError(err).Message)
		}
	}()
	writeJSON(w, http.StatusAccepted, resp)
	return nil
}

// encode runs Model.Encode in a generation slot and records it in the metrics.
func (s *Server) encode(ctx context.Context, sv *served, img *snapvlm.Image, opt snapvlm.ImageOptions) (*snapvlm.Encoded, error) {
	release, err := s.lim.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	enc, err := sv.m.Encode(ctx, img, opt)
	if err != nil {
		if isCanceled(err) {
			return nil, err
		}
		return nil, internal(err)
	}
	if enc.Cached {
		s.met.cacheHits.WithLabelValues(sv.spec.ID).Inc()
	} else {
		s.met.cacheMisses.WithLabelValues(sv.spec.ID).Inc()
		s.met.vision.WithLabelValues(sv.spec.ID).Observe((enc.Vision + enc.Preprocess).Seconds())
	}
	return enc, nil
}

func (s *Server) readEncode(r *http.Request) (*encodeRequest, *snapvlm.Image, error) {
	var er encodeRequest
	ct := r.Header.Get("Content-Type")
	if strings.HasPrefix(ct, "multipart/form-data") {
		if err := r.ParseMultipartForm(1 << 20); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, nil, err
			}
			return nil, nil, badRequest("", "invalid multipart form: %v", err)
		}
		defer r.MultipartForm.RemoveAll()
		er.Model = r.FormValue("model")
		er.Wait = r.FormValue("wait") == "true" || r.FormValue("wait") == "1"
		if v := r.FormValue("no_split"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, nil, badRequest("no_split", "no_split must be true or false, got %q", v)
			}
			er.NoSplit = &b
		}
		if v := r.FormValue("image_size"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, nil, badRequest("image_size", "image_size must be an integer, got %q", v)
			}
			er.ImageSize = &n
		}
		f, _, err := r.FormFile("image")
		if err != nil {
			return nil, nil, badRequest("image", "the form has no file in the field \"image\"")
		}
		defer f.Close()
		data, err := readAll(f)
		if err != nil {
			return nil, nil, err
		}
		if err := checkImage(data, "image"); err != nil {
			return nil, nil, err
		}
		return &er, &snapvlm.Image{Name: "image", Data: data}, nil
	}
	if err := decodeBody(r, &er); err != nil {
		return nil, nil, err
	}
	u, param := er.Image, "image"
	if u == "" && er.ImageURL != nil {
		u, param = er.ImageURL.URL, "image_url.url"
	}
	if u == "" {
		return nil, nil, badRequest("image", "image: a data:image/...;base64, URL is required (or a multipart form with a file in \"image\")")
	}
	img, err := s.images.fetch(r.Context(), u, param)
	return &er, img, err
}

func readAll(f multipart.File) ([]byte, error) {
	return io.ReadAll(f)
}
