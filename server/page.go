package server

import (
	"embed"
	"io/fs"
	"net/http"
)

// web holds the snap-and-ask page: plain HTML, CSS and JS, no build step,
// nothing loaded from elsewhere (it works offline).
//
//go:embed web
var web embed.FS

func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) error {
	return serveAsset(w, r, "index.html")
}

func (s *Server) handleAsset(w http.ResponseWriter, r *http.Request) error {
	return serveAsset(w, r, r.PathValue("file"))
}

func serveAsset(w http.ResponseWriter, r *http.Request, name string) error {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		return err
	}
	if _, err := fs.Stat(sub, name); err != nil {
		http.NotFound(w, r)
		return nil
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; script-src 'self'; connect-src 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	http.ServeFileFS(w, r, sub, name)
	return nil
}
