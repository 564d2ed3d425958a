package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/snapvlm/snapvlm"
	"github.com/snapvlm/snapvlm/server"
)

func cmdServe(ctx context.Context, args []string) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runServe(ctx, args, os.Stdout, os.Stderr, nil)
}

// defaultCacheMB is serve's prompt cache per model: a one-tile question
// with its answer takes about 10 MB on a 256M model (~45 KiB per token),
// a split photo about 60 MB (100 MB on 500M), so 256 MiB keeps a handful
// of recent photo conversations at a fraction of the server's memory.
const defaultCacheMB = 256

// serveFlags are serve's own flags; the engine flags of run are the
// defaults of every request.
type serveFlags struct {
	models          multiFlag
	host            string
	port            int
	parallel        int
	queue           int
	apiKey          string
	corsOrigin      string
	maxBody         string
	allowRemote     bool
	allowPrivate    bool
	shutdownTimeout time.Duration
	logJSON         bool
	sessions        int
	cacheMB         int
}

// runServe runs the server until ctx ends. ready, when not nil, receives the
// listening address once the models are loaded (for tests).
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f engineFlags
	f.register(fs)
	var sf serveFlags
	// serve takes --model several times: replace run's single-valued flag.
	mf := fs.Lookup("model")
	mf.Value, mf.Usage = &sf.models, "model directory or Hugging Face repo id, optionally NAME=MODEL to give it a short name; repeat to serve several (the first is the default)"
	fs.StringVar(&sf.host, "host", "127.0.0.1", "address to listen on (0.0.0.0: every interface)")
	fs.IntVar(&sf.port, "port", 8080, "port to listen on (0: any free port)")
	fs.IntVar(&sf.parallel, "parallel", 1, "requests that generate at once; above 1 their answers decode in one batch (see README)")
	fs.IntVar(&sf.queue, "queue", 16, "requests that may wait for a slot; beyond that the server answers 429")
	fs.StringVar(&sf.apiKey, "api-key", "", "require this key as 'Authorization: Bearer KEY' on /v1/ (default $SNAPVLM_API_KEY)")
	fs.StringVar(&sf.corsOrigin, "cors-origin", "", "send Access-Control-Allow-Origin with this origin (e.g. * or https://example.org)")
	fs.StringVar(&sf.maxBody, "max-body", "20MB", "largest request body and remote image (e.g. 20MB, 512KB)")
	fs.BoolVar(&sf.allowRemote, "allow-remote-images", false, "let image_url be an http(s) URL the server fetches")
	fs.BoolVar(&sf.allowPrivate, "allow-private-urls", false, "with --allow-remote-images: allow loopback, private and link-local addresses")
	fs.DurationVar(&sf.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM/SIGINT, how long running answers may finish before they are cancelled")
	fs.BoolVar(&sf.logJSON, "log-json", false, "log one JSON object per line instead of text")
	fs.IntVar(&sf.cacheMB, "cache-mb", defaultCacheMB, "MiB for the decoder caches of recent requests, per model: a request that starts like one of them (same system prompt and photo, a conversation sent back) prefills only the rest (~45 KiB per token on a 256M model; 0: none)")
	fs.IntVar(&sf.sessions, "sessions", 4, "conversations that keep their decoder cache, so a follow-up prefills only its new turn (each ~130 MB on a 256M model with a split photo; 0: none)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: snapvlm serve --model DIR|REPO [--model NAME=DIR|REPO]... [flags]")
		fmt.Fprintln(fs.Output(), "Serves an OpenAI-compatible API (/v1/chat/completions) and a snap-and-ask page at /.")
		fs.PrintDefaults()
	}
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q (serve takes flags only)", rest[0])
	}
	if len(sf.models) == 0 {
		return errors.New("--model is required (a model directory or a Hugging Face repo id; repeat it to serve several)")
	}
	if len(f.images) > 0 {
		return errors.New("--image does not apply to serve: requests carry their images")
	}
	if sf.apiKey == "" {
		sf.apiKey = os.Getenv("SNAPVLM_API_KEY")
	}
	maxBody, err := parseSize(sf.maxBody)
	if err != nil {
		return fmt.Errorf("--max-body: %w", err)
	}
	if sf.parallel < 1 {
		return fmt.Errorf("--parallel must be at least 1, got %d", sf.parallel)
	}
	if sf.cacheMB < 0 {
		return fmt.Errorf("--cache-mb %d: want 0 or more", sf.cacheMB)
	}
	if sf.queue < 0 {
		return fmt.Errorf("--queue must be 0 or more, got %d", sf.queue)
	}
	var handler slog.Handler = slog.NewTextHandler(stderr, nil)
	if sf.logJSON {
		handler = slog.NewJSONHandler(stderr, nil)
	}
	logger := slog.New(handler)

	queue := sf.queue
	if queue == 0 {
		queue = -1 // --queue 0: no waiting (Config's 0 is the default)
	}
	cfg := server.Config{
		Defaults: f.generateOptions(), Parallel: sf.parallel, Queue: queue, APIKey: sf.apiKey, CORSOrigin: sf.corsOrigin,
		MaxBody: maxBody, AllowRemoteImages: sf.allowRemote, AllowPrivateURLs: sf.allowPrivate, Logger: logger, Sessions: sf.sessions,
	}
	// The generations admitted at once decode their answers in one batch.
	f.parallel = sf.parallel
	seen := map[string]bool{}
	for _, spec := range sf.models {
		name, src := splitAlias(spec)
		aliases := []string{}
		for _, a := range []string{name, shortName(src)} {
			if a != "" && a != src && !seen[a] {
				aliases = append(aliases, a)
				seen[a] = true
			}
		}
		g := f
		g.model, g.promptCacheMB = src, sf.cacheMB
		cfg.Models = append(cfg.Models, server.Model{ID: src, Aliases: aliases, Load: func(ctx context.Context) (*snapvlm.Model, error) {
			return g.load(ctx, false)
		}})
	}
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(sf.host, strconv.Itoa(sf.port)))
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(handler, slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stderr, "loading %s (GET %s/health answers 503 until ready)\n", strings.Join(sf.models, ", "), base)
	if err := srv.Load(ctx); err != nil {
		hs.Close()
		srv.Close()
		return err
	}
	fmt.Fprintf(stdout, "snapvlm serving %s\n  page: %s/\n  API:  %s/v1 (OpenAI-compatible: POST /v1/chat/completions)\n", cfg.Models[0].ID, base, base)
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case err := <-served:
		srv.Close()
		return err
	case <-ctx.Done():
	}
	// Graceful: stop accepting, let running answers finish, then cancel.
	fmt.Fprintf(stderr, "shutting down (running answers have %s)\n", sf.shutdownTimeout)
	srv.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), sf.shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		srv.Cancel() // generations stop within one decoder step
		ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel2()
		if err := hs.Shutdown(ctx2); err != nil {
			hs.Close()
		}
	}
	return srv.Close()
}

// splitAlias splits NAME=MODEL; a plain MODEL has no name.
func splitAlias(spec string) (name, model string) {
	if n, m, ok := strings.Cut(spec, "="); ok && n != "" && !strings.ContainsAny(n, "/\\") {
		if st, err := os.Stat(spec); err != nil || !st.IsDir() {
			return n, m
		}
	}
	return "", spec
}

// shortName is a model's default alias: the last element of the repo id or
// directory, lower-cased (HuggingFaceTB/SmolVLM2-256M-Video-Instruct ->
// smolvlm2-256m-video-instruct).
func shortName(src string) string {
	src = strings.TrimRight(src, "/")
	if i := strings.IndexByte(src, '@'); i >= 0 && !strings.Contains(src[i:], "/") {
		src = src[:i]
	}
	return strings.ToLower(filepath.Base(src))
}

// parseSize reads sizes like 20MB, 512KB, 1GiB or 1048576.
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("want a size like 20MB, got %q", s)
	}
	return int64(n * float64(mult)), nil
}
