// Package server serves snapvlm models over HTTP: an OpenAI-compatible
// chat-completions API (POST /v1/chat/completions, streaming or not, with
// images as data URLs), GET /v1/models, POST /v1/snapvlm/encode (compute an
// uploaded photo's features while the user types), GET /health, GET /metrics
// (Prometheus) and a snap-and-ask web page at /.
//
// A Server is an http.Handler: mount it on any mux or run it with
// http.Server. It admits Config.Parallel generations at once, lets
// Config.Queue more wait and answers 429 beyond that; a client that goes
// away cancels its generation within one decoder step. The `snapvlm serve`
// command is a thin wrapper around this package.
package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/snapvlm/snapvlm"
)

// Model is one model the server offers.
type Model struct {
	// ID is the name clients put in a request's "model" field and GET
	// /v1/models lists (a repo id, or the directory as given).
	ID string
	// Aliases are other names that pick this model (e.g. a short name).
	Aliases []string
	// Load loads the model; Server.Load calls it once.
	Load func(ctx context.Context) (*snapvlm.Model, error)
}

// Config configures a Server.
type Config struct {
	// Models served; the first is the default when a request names none.
	Models []Model
	// Defaults are the generation settings a request gets where it does
	// not set its own.
	Defaults snapvlm.GenerateOptions
	// Parallel is how many requests generate at once (0 = 1). Models
	// loaded with snapvlm.Options.Parallel set to it decode the answers of
	// those requests in one batch.
	Parallel int
	// Queue is how many more requests may wait for a slot (0 = 8,
	// negative = none); beyond that the server answers 429 with Retry-After.
	Queue int
	// APIKey, when set, is required as "Authorization: Bearer KEY" on the
	// /v1/ routes (the page, /health and /metrics need none).
	APIKey string
	// CORSOrigin, when set, is sent as Access-Control-Allow-Origin.
	CORSOrigin string
	// MaxBody bounds a request body and a remote image, in bytes
	// (0 = 20 MiB).
	MaxBody int64
	// AllowRemoteImages lets image_url be http(s); AllowPrivateURLs lets
	// those URLs reach loopback, private and link-local addresses.
	AllowRemoteImages, AllowPrivateURLs bool
	// RemoteTimeout bounds fetching a remote image (0 = 10 s).
	RemoteTimeout time.Duration
	// Logger gets one line per request (nil = slog.Default()).
	Logger *slog.Logger
	// Registry receives the server's metrics (nil = a new registry).
	Registry *prometheus.Registry
	// Sessions is how many conversations keep their decoder cache for a
	// follow-up request (0: none). Each holds its prompt's key/value cache:
	// about 46 KB per token on a 256M model (130 MB for a split photo
	// with room for more turns).
	Sessions int
}

// Server is the HTTP server. Create it with New, start loading with Load,
// serve Handler.
type Server struct {
	cfg     Config
	log     *slog.Logger
	met     *metrics
	lim     *limiter
	images  *imageFetcher
	handler http.Handler
	keyHash [32]byte

	mu      sync.RWMutex
	models  map[string]*served // by ID and alias
	order   []*served
	loadErr error

	ready    atomic.Bool
	draining atomic.Bool
	// genCtx is the parent of every generation and background encoding;
	// cancelling it (Cancel) stops them all within one decoder step.
	genCtx    context.Context
	cancelGen context.CancelFunc
	bg        sync.WaitGroup // background encodings
	sessions  *sessions      // nil when Config.Sessions is 0
	created   int64
}

// served is a loaded model.
type served struct {
	spec Model
	m    *snapvlm.Model
}

// New makes a Server. It answers /health with 503 until Load has loaded
// every model.
func New(cfg Config) (*Server, error) {
	if len(cfg.Models) == 0 {
		return nil, errors.New("server: no models configured")
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 1
	}
	switch {
	case cfg.Queue == 0:
		cfg.Queue = 8
	case cfg.Queue < 0:
		cfg.Queue = 0
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 20 << 20
	}
	if cfg.RemoteTimeout <= 0 {
		cfg.RemoteTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, models: map[string]*served{}, created: time.Now().Unix()}
	seen := map[string]bool{}
	for _, mc := range cfg.Models {
		if mc.ID == "" || mc.Load == nil {
			return nil, errors.New("server: a model needs an ID and a Load function")
		}
		sv := &served{spec: mc}
		for _, name := range append([]string{mc.ID}, mc.Aliases...) {
			if seen[name] {
				return nil, fmt.Errorf("server: model name %q used twice", name)
			}
			seen[name] = true
		}
		s.order = append(s.order, sv)
	}
	s.met = newMetrics(cfg.Registry)
	s.met.slots.Set(float64(cfg.Parallel))
	s.lim = newLimiter(cfg.Parallel, cfg.Queue, func(busy, waiting int) {
		s.met.busySlots.Set(float64(busy))
		s.met.queueDepth.Set(float64(waiting))
	})
	s.images = newImageFetcher(cfg.AllowRemoteImages, cfg.AllowPrivateURLs, cfg.MaxBody, cfg.RemoteTimeout)
	s.keyHash = sha256.Sum256([]byte(cfg.APIKey))
	s.genCtx, s.cancelGen = context.WithCancel(context.Background())
	if cfg.Sessions > 0 {
		s.sessions = newSessions(cfg.Sessions)
	}
	s.handler = s.routes()
	return s, nil
}

// Load loads every model, in order. /health turns 200 when it returns nil.
func (s *Server) Load(ctx context.Context) error {
	for _, sv := range s.order {
		t := time.Now()
		m, err := sv.spec.Load(ctx)
		if err != nil {
			s.mu.Lock()
			s.loadErr = fmt.Errorf("loading %s: %w", sv.spec.ID, err)
			s.mu.Unlock()
			return s.loadErr
		}
		s.met.loadSeconds.WithLabelValues(sv.spec.ID).Set(time.Since(t).Seconds())
		s.mu.Lock()
		sv.m = m
		s.models[sv.spec.ID] = sv
		for _, a := range sv.spec.Aliases {
			s.models[a] = sv
		}
		s.mu.Unlock()
	}
	s.ready.Store(true)
	return nil
}

// Handler is the server's http.Handler.
func (s *Server) Handler() http.Handler { return s.handler }

// ServeHTTP serves a request (Server is an http.Handler).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Drain makes the API answer 503 to new requests (and /health 503), while
// running ones go on: call it when shutdown starts, before
// http.Server.Shutdown.
func (s *Server) Drain() { s.draining.Store(true) }

// Cancel stops every running generation and background encoding within one
// decoder step (their clients get what was generated so far, finish reason
// "cancelled" in a stream). Call it when a graceful shutdown runs out of time.
func (s *Server) Cancel() { s.cancelGen() }

// Close cancels what is still running, waits for background encodings and
// releases the models. The Server must not serve requests afterwards.
func (s *Server) Close() error {
	s.Drain()
	s.cancelGen()
	s.bg.Wait()
	if s.sessions != nil {
		s.sessions.closeAll()
	}
	var errs []error
	for _, sv := range s.order {
		if sv.m != nil {
			errs = append(errs, sv.m.Close())
		}
	}
	return errors.Join(errs...)
}

// model picks the model a request names ("" = the first).
func (s *Server) model(name string) (*served, error) {
	if !s.ready.Load() {
		return nil, unavailable("the server is still loading its models; retry when GET /health answers 200")
	}
	if name == "" {
		return s.order[0], nil
	}
	s.mu.RLock()
	sv, ok := s.models[name]
	s.mu.RUnlock()
	if !ok {
		return nil, modelNotFound(name)
	}
	return sv, nil
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	api := func(route string, h func(http.ResponseWriter, *http.Request) error) {
		mux.Handle(route, s.wrap(route, true, h))
	}
	open := func(route string, h func(http.ResponseWriter, *http.Request) error) {
		mux.Handle(route, s.wrap(route, false, h))
	}
	api("POST /v1/chat/completions", s.handleChat)
	api("GET /v1/models", s.handleModels)
	api("GET /v1/models/{id...}", s.handleModel)
	api("POST /v1/snapvlm/encode", s.handleEncode)
	open("GET /health", s.handleHealth)
	metrics := promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})
	open("GET /metrics", func(w http.ResponseWriter, r *http.Request) error { metrics.ServeHTTP(w, r); return nil })
	open("GET /{$}", s.handlePage)
	open("GET /page/{file}", s.handleAsset)
	open("/v1/", func(w http.ResponseWriter, r *http.Request) error {
		return &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: strp("not_found"),
			Message: fmt.Sprintf("no route %s %s (the API has POST /v1/chat/completions, GET /v1/models, POST /v1/snapvlm/encode)", r.Method, r.URL.Path)}
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			s.handlePreflight(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// reqInfo collects what the request's log line reports.
type reqInfo struct {
	id               string
	model            string
	promptTokens     int
	completionTokens int
	ttft             time.Duration
	finish           string
	stream           bool
}

type infoKey struct{}

func info(r *http.Request) *reqInfo {
	if ri, ok := r.Context().Value(infoKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

// statusWriter remembers the status for the log line and metrics; Unwrap
// keeps http.ResponseController (flushing) working.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wrap adds what every route shares: CORS, the API key (when auth), the
// body limit, errors in OpenAI's shape, metrics and one log line.
func (s *Server) wrap(route string, auth bool, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &reqInfo{id: newID("req-")}
		r = r.WithContext(context.WithValue(r.Context(), infoKey{}, ri))
		sw := &statusWriter{ResponseWriter: w}
		w = sw
		w.Header().Set("X-Request-Id", ri.id)
		if s.cfg.CORSOrigin != "" {
			w.Header().Set("Access-Control-Allow-Origin", s.cfg.CORSOrigin)
			w.Header().Set("Vary", "Origin")
		}
		var err error
		switch {
		case auth && s.draining.Load():
			err = unavailable("the server is shutting down")
		case auth && !s.authorized(r):
			err = unauthorized("missing or wrong API key: send it as \"Authorization: Bearer KEY\"")
		default:
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
			err = h(w, r)
		}
		if err != nil {
			if sw.status == 0 {
				writeError(w, err)
			} else if !isCanceled(err) {
				s.log.Warn("error after the response started", "id", ri.id, "err", err)
			}
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		d := time.Since(start)
		s.met.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
		s.met.duration.WithLabelValues(route).Observe(d.Seconds())
		if route == "GET /metrics" || route == "GET /health" {
			return // probes would drown the log
		}
		attrs := []any{"id", ri.id, "method", r.Method, "path", r.URL.Path, "status", status, "duration_ms", d.Milliseconds()}
		if ri.model != "" {
			attrs = append(attrs, "model", ri.model, "stream", ri.stream, "prompt_tokens", ri.promptTokens,
				"completion_tokens", ri.completionTokens, "ttft_ms", ri.ttft.Milliseconds(), "finish", ri.finish)
		}
		if err != nil {
			attrs = append(attrs, "err", asAPIError(err).Message)
		}
		s.log.Info("request", attrs...)
	})
}

// authorized compares the bearer token with the key in constant time
// (hashes first, so the length leaks nothing either).
func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.APIKey == "" {
		return true
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	h := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(h[:], s.keyHash[:]) == 1
}

// handlePreflight answers CORS preflight requests (OPTIONS, any path):
// with a CORS origin configured, the methods and headers the API takes.
func (s *Server) handlePreflight(w http.ResponseWriter, r *http.Request) {
	if s.cfg.CORSOrigin != "" {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", s.cfg.CORSOrigin)
		h.Set("Vary", "Origin")
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		h.Set("Access-Control-Max-Age", "600")
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	s.mu.RLock()
	loadErr := s.loadErr
	s.mu.RUnlock()
	switch {
	case s.draining.Load():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
	case loadErr != nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "error", "error": loadErr.Error()})
	case !s.ready.Load():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "loading"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
	return nil
}

// modelObject is an entry of GET /v1/models.
type modelObject struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	OwnedBy string   `json:"owned_by"`
	Aliases []string `json:"aliases,omitempty"`
	Ready   bool     `json:"ready"`
}

func (s *Server) modelObject(sv *served) modelObject {
	s.mu.RLock()
	ready := sv.m != nil
	s.mu.RUnlock()
	return modelObject{ID: sv.spec.ID, Object: "model", Created: s.created, OwnedBy: "snapvlm", Aliases: sv.spec.Aliases, Ready: ready}
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) error {
	data := make([]modelObject, 0, len(s.order))
	for _, sv := range s.order {
		data = append(data, s.modelObject(sv))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
	return nil
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("id")
	for _, sv := range s.order {
		if sv.spec.ID == name || slices.Contains(sv.spec.Aliases, name) {
			writeJSON(w, http.StatusOK, s.modelObject(sv))
			return nil
		}
	}
	return modelNotFound(name)
}

func isCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
