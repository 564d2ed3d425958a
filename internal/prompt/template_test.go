package prompt

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/modelconfig"
)

// videoBranch is the part of transformers' DEFAULT_CHAT_TEMPLATE that the
// image-only template of SmolVLM-256M-Instruct lacks (spec §3.1: 49 chars).
const videoBranch = "{% elif line['type'] == 'video' %}{{ '<video>' }}"

// imageOnlyTemplate is SmolVLM-256M-Instruct's chat_template.json (403 chars).
var imageOnlyTemplate = strings.Replace(SmolVLMTemplate, videoBranch, "", 1)

func TestSmolVLMTemplateLength(t *testing.T) {
	// Lengths from spec §3.1.
	if got := len(SmolVLMTemplate); got != 452 {
		t.Errorf("len(SmolVLMTemplate) = %d, want 452", got)
	}
	if got := len(videoBranch); got != 49 {
		t.Errorf("len(videoBranch) = %d, want 49", got)
	}
	if got := len(imageOnlyTemplate); got != 403 {
		t.Errorf("len(image-only template) = %d, want 403", got)
	}
}

func user(parts ...Part) Message      { return Message{Role: RoleUser, Content: parts} }
func assistant(parts ...Part) Message { return Message{Role: RoleAssistant, Content: parts} }
func txt(s string) Part               { return Part{Type: PartText, Text: s} }

var img = Part{Type: PartImage}
var vid = Part{Type: PartVideo}

// Expected strings are the rendered examples of spec §3.1 (Python jinja2).
var renderCases = []struct {
	name      string
	msgs      []Message
	genPrompt bool
	want      string
	video     bool // needs the video branch
}{
	{
		name:      "image then question",
		msgs:      []Message{user(img, txt("Can you describe this image?"))},
		genPrompt: true,
		want:      "<|im_start|>User:<image>Can you describe this image?<end_of_utterance>\nAssistant:",
	},
	{
		name:      "question then image",
		msgs:      []Message{user(txt("Can you describe this image?"), img)},
		genPrompt: true,
		want:      "<|im_start|>User: Can you describe this image?<image><end_of_utterance>\nAssistant:",
	},
	{
		name: "two images multi-turn",
		msgs: []Message{
			user(img, img, txt("Compare.")),
			assistant(txt(" They differ.")),
			user(txt("Why?")),
		},
		genPrompt: true,
		want:      "<|im_start|>User:<image><image>Compare.<end_of_utterance>\nAssistant:  They differ.<end_of_utterance>\nUser: Why?<end_of_utterance>\nAssistant:",
	},
	{
		name: "python test_apply_chat_template",
		msgs: []Message{
			user(txt("What do these images show?"), img, img),
			assistant(txt("The first image shows the statue of Liberty in New York. The second image picture depicts Idefix, the dog of Obelix in Asterix and Obelix.")),
			user(txt("And who is that?")),
		},
		genPrompt: true,
		want:      "<|im_start|>User: What do these images show?<image><image><end_of_utterance>\nAssistant: The first image shows the statue of Liberty in New York. The second image picture depicts Idefix, the dog of Obelix in Asterix and Obelix.<end_of_utterance>\nUser: And who is that?<end_of_utterance>\nAssistant:",
	},
	{
		name:      "video",
		msgs:      []Message{user(vid, txt("Describe this video in detail"))},
		genPrompt: true,
		want:      "<|im_start|>User: <video>Describe this video in detail<end_of_utterance>\nAssistant:",
		video:     true,
	},
	{
		// Spec §3.1 item 3 read backwards: without the generation prompt
		// nothing follows the last end-of-utterance line.
		name: "no generation prompt",
		msgs: []Message{user(img, txt("Can you describe this image?"))},
		want: "<|im_start|>User:<image>Can you describe this image?<end_of_utterance>\n",
	},
	{
		// Spec §3.1 item 2: roles are capitalised; text-first gives ": ".
		name:      "system and text-only user",
		msgs:      []Message{Text(RoleSystem, "Be brief."), Text(RoleUser, "Hi")},
		genPrompt: true,
		want:      "<|im_start|>System: Be brief.<end_of_utterance>\nUser: Hi<end_of_utterance>\nAssistant:",
	},
}

func TestRender(t *testing.T) {
	for _, tmpl := range []struct {
		name string
		src  string
	}{
		{"video template", SmolVLMTemplate},
		{"image-only template", imageOnlyTemplate},
	} {
		tp, err := NewTemplate(tmpl.src, "<|im_start|>", "<end_of_utterance>")
		if err != nil {
			t.Fatalf("%s: NewTemplate: %v", tmpl.name, err)
		}
		for _, tc := range renderCases {
			if tc.video && tmpl.src != SmolVLMTemplate {
				continue
			}
			t.Run(tmpl.name+"/"+tc.name, func(t *testing.T) {
				got, err := tp.Render(tc.msgs, tc.genPrompt)
				if err != nil {
					t.Fatalf("Render: %v", err)
				}
				if got != tc.want {
					t.Errorf("Render =\n%q\nwant\n%q", got, tc.want)
				}
			})
		}
	}
}

// TestRenderJinjaSettings checks the Hugging Face environment: expected
// values follow from the Jinja2 documentation of trim_blocks/lstrip_blocks
// and from transformers' chat-template globals.
func TestRenderJinjaSettings(t *testing.T) {
	msgs := []Message{Text(RoleUser, "hi"), Text(RoleAssistant, "yo")}
	cases := []struct {
		name    string
		src     string
		want    string
		wantErr string
	}{
		{
			name: "bos and eos variables",
			src:  "{{ bos_token }}{{ messages[0]['content'][0]['text'] }}{{ eos_token }}",
			want: "<s>hi</s>",
		},
		{
			name: "trim_blocks and lstrip_blocks",
			src:  "a\n  {% if add_generation_prompt %}\nB\n  {% endif %}\nc",
			want: "a\nB\nc",
		},
		{
			name: "loop over roles",
			src:  "{% for m in messages %}\n{{ m.role }}|{% endfor %}",
			want: "user|assistant|",
		},
		{
			name:    "raise_exception",
			src:     "{% if messages|length > 1 %}{{ raise_exception('Only one message allowed') }}{% endif %}",
			wantErr: "Only one message allowed",
		},
		{
			name: "content item keys",
			src:  "{% for c in messages[0]['content'] %}{% for k in c %}{{ k }},{% endfor %}{% endfor %}",
			want: "type,text,",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tp, err := NewTemplate(tc.src, "<s>", "</s>")
			if err != nil {
				t.Fatalf("NewTemplate: %v", err)
			}
			got, err := tp.Render(msgs, true)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Render error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if got != tc.want {
				t.Errorf("Render = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	if _, err := NewTemplate("", "", ""); err == nil {
		t.Error("NewTemplate(\"\") succeeded, want error")
	}
	if _, err := NewTemplate("{% for x in y %}", "", ""); err == nil {
		t.Error("NewTemplate(unclosed for) succeeded, want error")
	}
	tp, err := NewTemplate(SmolVLMTemplate, "", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = tp.Render([]Message{user(Part{Type: "audio"})}, true)
	if err == nil || !strings.Contains(err.Error(), `"audio"`) {
		t.Errorf("Render(audio part) error = %v, want one naming the type", err)
	}
}

// writeModel writes a minimal model directory with the given extra files.
func writeModel(t *testing.T, files map[string]string) *modelconfig.Model {
	t.Helper()
	dir := t.TempDir()
	files[modelconfig.ConfigFile] = `{"model_type": "smolvlm"}`
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := modelconfig.Load(dir)
	if err != nil {
		t.Fatalf("modelconfig.Load: %v", err)
	}
	return m
}

func TestFromModel(t *testing.T) {
	tokCfg := `{"bos_token": "<|im_start|>", "eos_token": {"content": "<end_of_utterance>"}}`
	imageOnlyJSON := `{"chat_template": ` + jsonString(imageOnlyTemplate) + `}`
	textVideo := []Message{user(txt("Describe"), vid)}
	imageQ := []Message{user(img, txt("What?"))}

	t.Run("no template", func(t *testing.T) {
		m := writeModel(t, map[string]string{modelconfig.TokenizerConfigFile: tokCfg})
		_, err := FromModel(m)
		if !errors.Is(err, ErrNoTemplate) {
			t.Fatalf("FromModel error = %v, want ErrNoTemplate", err)
		}
		for _, f := range []string{modelconfig.ChatTemplateFile, modelconfig.TokenizerConfigFile, modelconfig.ProcessorFile} {
			if !strings.Contains(err.Error(), f) {
				t.Errorf("error %q does not name %s", err, f)
			}
		}
	})

	t.Run("fallback", func(t *testing.T) {
		m := writeModel(t, map[string]string{modelconfig.TokenizerConfigFile: tokCfg})
		tp, err := FromModelOr(m, SmolVLMTemplate)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tp.Render(imageQ, true)
		want := "<|im_start|>User:<image>What?<end_of_utterance>\nAssistant:"
		if err != nil || got != want {
			t.Errorf("Render = %q, %v; want %q", got, err, want)
		}
	})

	t.Run("model template and video override", func(t *testing.T) {
		m := writeModel(t, map[string]string{
			modelconfig.TokenizerConfigFile: tokCfg,
			modelconfig.ChatTemplateFile:    imageOnlyJSON,
		})
		tp, err := FromModel(m)
		if err != nil {
			t.Fatal(err)
		}
		// The image-only template would drop the video item; transformers
		// switches to its default template for videos.
		got, err := tp.Render(textVideo, true)
		want := "<|im_start|>User: Describe<video><end_of_utterance>\nAssistant:"
		if err != nil || got != want {
			t.Errorf("Render(video) = %q, %v; want %q", got, err, want)
		}
	})

	t.Run("bos and eos from tokenizer_config", func(t *testing.T) {
		m := writeModel(t, map[string]string{
			modelconfig.TokenizerConfigFile: `{"bos_token": "<|im_start|>", "eos_token": {"content": "<end_of_utterance>"},
				"chat_template": "{{ bos_token }}{{ eos_token }}"}`,
		})
		tp, err := FromModel(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tp.Render(imageQ, false)
		if want := "<|im_start|><end_of_utterance>"; err != nil || got != want {
			t.Errorf("Render = %q, %v; want %q", got, err, want)
		}
	})
}

// jsonString quotes s as a JSON string (only the characters the templates
// contain need escaping).
func jsonString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
