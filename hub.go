package snapvlm

import (
	"context"
	"io"
	"net/http"

	"github.com/snapvlm/snapvlm/internal/hub"
)

// HubOptions configure LoadFromHub. The zero value follows the Hugging Face
// environment as huggingface_hub does: HF_HOME / HF_HUB_CACHE for the
// cache, HF_ENDPOINT, HF_TOKEN (or the token file) and HF_HUB_OFFLINE.
type HubOptions struct {
	// CacheDir is the hub cache directory (default as above).
	CacheDir string
	// Endpoint is the Hub URL (default $HF_ENDPOINT or https://huggingface.co).
	Endpoint string
	// Token is sent to Endpoint only (default $HF_TOKEN or the token file).
	Token string
	// Offline uses the cache only: a model that is not cached is an error.
	Offline bool
	// Progress, when not nil, receives download progress lines.
	Progress io.Writer
	// HTTPClient makes the requests (default: http.DefaultClient's transport).
	HTTPClient *http.Client
}

// LoadFromHub loads a model given as a Hugging Face repo id
// ("org/name" or "org/name@revision", e.g.
// "HuggingFaceTB/SmolVLM2-256M-Video-Instruct"): from the standard Hugging
// Face cache when it holds the variants opts asks for, else after
// downloading only the files those variants need. A spec that is an
// existing directory is loaded as Load loads it.
func LoadFromHub(ctx context.Context, spec string, opts Options, hubOpts HubOptions) (*Model, error) {
	dir, err := resolveHub(ctx, spec, opts, hubOpts)
	if err != nil {
		return nil, err
	}
	return Load(ctx, dir, opts)
}

// resolveHub is the first half of LoadFromHub: it returns the directory of
// spec's snapshot in the cache, downloading what is missing.
func resolveHub(ctx context.Context, spec string, opts Options, hubOpts HubOptions) (string, error) {
	ho := hub.OptionsFromEnv()
	if hubOpts.CacheDir != "" {
		ho.CacheDir = hubOpts.CacheDir
	}
	if hubOpts.Endpoint != "" {
		ho.Endpoint = hubOpts.Endpoint
	}
	if hubOpts.Token != "" {
		ho.Token = hubOpts.Token
	}
	ho.Offline = ho.Offline || hubOpts.Offline
	ho.Progress = hubOpts.Progress
	ho.HTTPClient = hubOpts.HTTPClient
	if d := firstNonEmpty(opts.Dtype); d != "" {
		ho.Dtypes = []string{d}
	}
	ho.GraphDtypes = map[string]string{}
	for g, d := range map[string]string{GraphVision: opts.VisionDtype, GraphEmbed: opts.EmbedDtype, GraphDecoder: opts.DecoderDtype} {
		if d = firstNonEmpty(d); d != "" {
			ho.GraphDtypes[g] = d
		}
	}
	return hub.Ensure(ctx, spec, ho, nil)
}
