package modelconfig_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/snapvlm/snapvlm/internal/imageproc"
	"github.com/snapvlm/snapvlm/internal/modelconfig"
	"github.com/snapvlm/snapvlm/internal/prompt"
)

// Seeds: SmolVLM-256M's files, trimmed.
const (
	seedConfig = `{"image_token_id": 49190, "model_type": "smolvlm", "scale_factor": 4,
 "text_config": {"hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9,
  "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49280, "eos_token_id": 2, "max_position_embeddings": 8192},
 "vision_config": {"hidden_size": 768, "image_size": 512, "patch_size": 16}}`
	seedPreprocessor = `{"do_image_splitting": true, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
 "max_image_size": {"longest_edge": 512}, "resample": 1, "rescale_factor": 0.00392156862745098,
 "size": {"longest_edge": 2048}, "video_sampling": {"fps": 1, "max_frames": 64, "video_size": {"longest_edge": 512}}}`
	seedProcessor       = `{"image_seq_len": 64, "processor_class": "SmolVLMProcessor"}`
	seedGeneration      = `{"bos_token_id": 0, "eos_token_id": [49279, 2], "pad_token_id": 2}`
	seedTokenizerConfig = `{"bos_token": "<|im_start|>", "eos_token": {"content": "<end_of_utterance>"}, "chat_template": "<|im_start|>{{ messages[0]['role'] }}"}`
)

// FuzzLoad loads a model directory whose JSON files are arbitrary (an empty
// input leaves the optional file out) and uses what loads the way the
// engine does: validation, the derived sizes, the image options and the
// chat template. Nothing may panic; a config that validates has positive
// sizes.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(seedConfig), []byte(seedPreprocessor), []byte(seedProcessor), []byte(seedGeneration), []byte(seedTokenizerConfig))
	f.Add([]byte(`{"image_token_id": 1, "scale_factor": 4294967296, "text_config": {"hidden_size": 1, "num_hidden_layers": 1, "num_key_value_heads": 1, "head_dim": 1}, "vision_config": {"image_size": 1, "patch_size": 1}}`),
		[]byte(`{"size": {"longest_edge": -1}, "max_image_size": {"longest_edge": 0}}`), []byte{}, []byte(`{"eos_token_id": "x"}`), []byte(`{"eos_token": 5}`))
	f.Add([]byte(`{}`), []byte(`null`), []byte(`[]`), []byte(`{"eos_token_id": null}`), []byte(`{"chat_template": [{"name": "default", "template": "{{"}]}`))
	dir := f.TempDir()
	files := []string{modelconfig.ConfigFile, modelconfig.PreprocessorFile, modelconfig.ProcessorFile, modelconfig.GenerationFile, modelconfig.TokenizerConfigFile}
	f.Fuzz(func(t *testing.T, config, preprocessor, processor, generation, tokenizerConfig []byte) {
		// Fuzz workers are separate processes, each with its own TempDir.
		for i, b := range [][]byte{config, preprocessor, processor, generation, tokenizerConfig} {
			p := filepath.Join(dir, files[i])
			os.Remove(p)
			if len(b) > 0 || i == 0 {
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		m, err := modelconfig.Load(dir)
		if err != nil {
			return
		}
		m.EOSTokenIDs()
		m.ImageSeqLen()
		imageproc.OptionsFromConfig(m.Preprocessor)
		prompt.FromModelOr(m, prompt.SmolVLMTemplate)
		if err := m.Validate(); err != nil {
			return
		}
		tc := m.Config.TextConfig
		if tc.HeadDimension() <= 0 || tc.Positions() <= 0 {
			t.Fatalf("validated config with head_dim %d, %d positions", tc.HeadDimension(), tc.Positions())
		}
	})
}
