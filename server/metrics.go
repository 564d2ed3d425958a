package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus series, registered on its own
// registry (no global state): GET /metrics serves them.
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	queueDepth    prometheus.Gauge
	busySlots     prometheus.Gauge
	slots         prometheus.Gauge
	ttft          *prometheus.HistogramVec
	promptTokens  *prometheus.CounterVec
	cachedTokens  *prometheus.CounterVec
	completion    *prometheus.CounterVec
	decodeRate    *prometheus.HistogramVec
	vision        *prometheus.HistogramVec
	cacheHits     *prometheus.CounterVec
	cacheMisses   *prometheus.CounterVec
	loadSeconds   *prometheus.GaugeVec
	cancellations *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	const ns = "snapvlm"
	latency := []float64{.05, .1, .25, .5, 1, 2, 4, 8, 16, 32, 64, 128}
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "http_requests_total",
			Help: "HTTP requests by route and status code."}, []string{"route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "http_request_duration_seconds",
			Help: "Time from request to the end of the response, by route.", Buckets: latency}, []string{"route"}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "queue_depth",
			Help: "Requests waiting for a generation slot."}),
		busySlots: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "busy_slots",
			Help: "Generation slots in use (requests generating or encoding images)."}),
		slots: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "slots",
			Help: "Generation slots (--parallel)."}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "time_to_first_token_seconds",
			Help: "Time from the start of generation to the first token, by model.", Buckets: latency}, []string{"model"}),
		promptTokens: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "prompt_tokens_total",
			Help: "Prompt tokens processed, by model."}, []string{"model"}),
		cachedTokens: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "prompt_tokens_cached_total",
			Help: "Prompt tokens not prefilled because their decoder cache was kept (a conversation, the prompt cache), by model."}, []string{"model"}),
		completion: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "completion_tokens_total",
			Help: "Tokens generated, by model."}, []string{"model"}),
		decodeRate: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "decode_tokens_per_second",
			Help:    "Decoding speed of each request (tokens after the first), by model.",
			Buckets: []float64{1, 2, 5, 10, 20, 40, 80, 160, 320, 640, 1280}}, []string{"model"}),
		vision: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "vision_encode_seconds",
			Help: "Time spent preprocessing and encoding one request's (or upload's) images, when not cached.", Buckets: latency}, []string{"model"}),
		cacheHits: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "feature_cache_hits_total",
			Help: "Images whose features came from the cache (or from an encoding already running)."}, []string{"model"}),
		cacheMisses: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "feature_cache_misses_total",
			Help: "Images that ran the vision encoder."}, []string{"model"}),
		loadSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "model_load_seconds",
			Help: "How long loading each model took."}, []string{"model"}),
		cancellations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "cancelled_generations_total",
			Help: "Generations stopped before their end: client gone or server shutting down."}, []string{"model"}),
	}
	reg.MustRegister(m.requests, m.duration, m.queueDepth, m.busySlots, m.slots, m.ttft, m.promptTokens, m.cachedTokens, m.completion,
		m.decodeRate, m.vision, m.cacheHits, m.cacheMisses, m.loadSeconds, m.cancellations,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
