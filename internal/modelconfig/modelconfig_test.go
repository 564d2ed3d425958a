package modelconfig

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestIDList(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    IDList
		wantErr bool
	}{
		{`49279`, IDList{49279}, false},
		{`[2, 49279]`, IDList{2, 49279}, false},
		{`null`, nil, false},
		{`"2"`, nil, true},
	} {
		var got IDList
		err := json.Unmarshal([]byte(c.in), &got)
		if (err != nil) != c.wantErr || !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, %v", c.in, got, err)
		}
	}
}

func TestTokenStringAndTemplate(t *testing.T) {
	var tc TokenizerConfig
	src := `{"bos_token": {"content": "<|im_start|>", "lstrip": false}, "eos_token": "<end_of_utterance>",
		"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}`
	if err := json.Unmarshal([]byte(src), &tc); err != nil {
		t.Fatal(err)
	}
	if tc.BOSToken != "<|im_start|>" || tc.EOSToken != "<end_of_utterance>" || tc.ChatTemplate != "D" {
		t.Errorf("got %+v", tc)
	}
}

func write(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The config of SmolVLM2-500M-Video-Instruct (spec §1.1, S10), trimmed.
const config500m = `{"image_token_id": 49190, "model_type": "smolvlm", "scale_factor": 4,
 "text_config": {"hidden_size": 960, "num_hidden_layers": 32, "num_attention_heads": 15,
  "num_key_value_heads": 5, "head_dim": 64, "vocab_size": 49280, "eos_token_id": 2, "rope_theta": 100000},
 "vision_config": {"hidden_size": 768, "image_size": 512, "patch_size": 16}}`

func TestLoad(t *testing.T) {
	cases := []struct {
		name         string
		files        map[string]string
		wantTemplate string
		wantSeqLen   int
		wantEOS      []int64
		wantErr      string
	}{
		{
			name: "template precedence chat_template.json first",
			files: map[string]string{ConfigFile: config500m,
				ChatTemplateFile: `{"chat_template": "A"}`, TokenizerConfigFile: `{"chat_template": "B"}`,
				ProcessorFile: `{"image_seq_len": 64, "chat_template": "C"}`, GenerationFile: `{"eos_token_id": 49279}`},
			wantTemplate: "A", wantSeqLen: 64, wantEOS: []int64{49279, 2},
		},
		{
			name: "tokenizer_config before processor_config; seq len computed",
			files: map[string]string{ConfigFile: config500m, TokenizerConfigFile: `{"chat_template": "B"}`,
				ProcessorFile: `{"chat_template": "C"}`, GenerationFile: `{"eos_token_id": [49279, 2]}`},
			wantTemplate: "B", wantSeqLen: 64, wantEOS: []int64{49279, 2},
		},
		{
			name:         "processor_config last",
			files:        map[string]string{ConfigFile: config500m, ProcessorFile: `{"chat_template": "C", "image_seq_len": 81}`},
			wantTemplate: "C", wantSeqLen: 81, wantEOS: []int64{2},
		},
		{name: "no config", files: map[string]string{}, wantErr: "config.json"},
		{name: "bad json names the file", files: map[string]string{ConfigFile: config500m, PreprocessorFile: `{"size": 3`}, wantErr: PreprocessorFile},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, b := range c.files {
				write(t, dir, n, b)
			}
			m, err := Load(dir)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.ChatTemplate != c.wantTemplate || m.ImageSeqLen() != c.wantSeqLen || !slices.Equal(m.EOSTokenIDs(), c.wantEOS) {
				t.Errorf("template %q seq %d eos %v", m.ChatTemplate, m.ImageSeqLen(), m.EOSTokenIDs())
			}
			if err := m.Validate(); err != nil {
				t.Error(err)
			}
			if m.Config.TextConfig.HeadDimension() != 64 {
				t.Errorf("head dim %d", m.Config.TextConfig.HeadDimension())
			}
		})
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, ConfigFile, strings.Replace(config500m, `"num_key_value_heads": 5,`, ``, 1))
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "text_config.num_key_value_heads") || !strings.Contains(err.Error(), ConfigFile) {
		t.Fatalf("err = %v", err)
	}
	// head_dim falls back to hidden / heads.
	tc := TextConfig{HiddenSize: 576, NumAttentionHeads: 9}
	if tc.HeadDimension() != 64 {
		t.Errorf("head dim %d", tc.HeadDimension())
	}
}
