// Package prompt turns a conversation into the text a SmolVLM model reads:
// it renders the model's Jinja chat template the way Hugging Face
// transformers does, then expands every <image> and <video> placeholder into
// the image-token runs the vision features are merged into.
//
// Rendering and expansion are separate steps because they need different
// inputs: the template needs only the messages, the expansion needs each
// image's tile grid (from the image processor) and each video's frame
// timestamps.
package prompt

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/ardanlabs/jinja"

	"github.com/snapvlm/snapvlm/internal/modelconfig"
)

// Role is the author of a message. Templates see it verbatim, so any string
// the template understands works; SmolVLM's capitalises it.
type Role string

// Roles used by the SmolVLM chat format.
const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
)

// PartType is the kind of one content item of a message.
type PartType string

// Content item kinds understood by the SmolVLM templates.
const (
	PartText  PartType = "text"
	PartImage PartType = "image"
	PartVideo PartType = "video"
)

// Part is one content item. Text is used only by text parts; image and
// video parts stand for the media passed separately to Expander.Expand, in
// order.
type Part struct {
	Type PartType
	Text string
}

// Message is one turn of a conversation. A plain-string message is one text
// Part: the template always receives content as a list of
// {"type": ..., "text": ...} dicts, as transformers' processors pass it
// (the SmolVLM template would drop a bare string's text).
type Message struct {
	Role    Role
	Content []Part
}

// Text returns a message whose content is a single text part.
func Text(role Role, text string) Message {
	return Message{Role: role, Content: []Part{{Type: PartText, Text: text}}}
}

// SmolVLMTemplate is transformers' DEFAULT_CHAT_TEMPLATE for SmolVLM
// (processing_smolvlm.py, the video-capable version after PR #38105). It is
// the 403-character template shipped with SmolVLM-256M-Instruct plus a
// 49-character branch rendering video items as <video>.
const SmolVLMTemplate = "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}" +
	"{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}" +
	"{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}" +
	"{% elif line['type'] == 'image' %}{{ '<image>' }}" +
	"{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}{% endfor %}" +
	"<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"

// ErrNoTemplate is returned (wrapped) by FromModel when a model directory
// holds no chat template in any of the files transformers looks at.
var ErrNoTemplate = errors.New("model has no chat template")

// Template is a parsed chat template. It is safe for concurrent use.
type Template struct {
	tmpl     *jinja.Template
	bos, eos string
	// video, when set, replaces tmpl for conversations containing a video
	// part: transformers' SmolVLMProcessor does this whenever the caller did
	// not pass a template explicitly, because the templates shipped with the
	// models predate video support.
	video *jinja.Template
}

// NewTemplate parses a Jinja chat template once. bosToken and eosToken are
// exposed to it as bos_token and eos_token. The template is rendered with
// Hugging Face's settings (trim_blocks, lstrip_blocks, raise_exception).
func NewTemplate(src, bosToken, eosToken string) (*Template, error) {
	if src == "" {
		return nil, errors.New("chat template: empty template source")
	}
	t, err := jinja.Compile(src)
	if err != nil {
		return nil, fmt.Errorf("chat template: %w", err)
	}
	return &Template{tmpl: t, bos: bosToken, eos: eosToken}, nil
}

// FromModel builds the template of a model directory: m.ChatTemplate (chosen
// with transformers' precedence chat_template.json > tokenizer_config.json >
// processor_config.json) with bos/eos from tokenizer_config.json.
// Conversations containing a video are rendered with SmolVLMTemplate
// instead, as transformers does. A model without a template is an error
// wrapping ErrNoTemplate; use FromModelOr to fall back to a built-in one.
func FromModel(m *modelconfig.Model) (*Template, error) {
	return FromModelOr(m, "")
}

// FromModelOr is FromModel, except that a model without a chat template gets
// fallback (typically SmolVLMTemplate) instead of an error. An empty
// fallback makes it identical to FromModel. The fallback is an explicit
// opt-in because a wrong template silently degrades answers.
func FromModelOr(m *modelconfig.Model, fallback string) (*Template, error) {
	if m == nil {
		return nil, errors.New("chat template: nil model")
	}
	src := m.ChatTemplate
	if src == "" {
		if fallback == "" {
			return nil, fmt.Errorf("%w: looked at %s, %s (chat_template) and %s (chat_template)",
				ErrNoTemplate,
				filepath.Join(m.Dir, modelconfig.ChatTemplateFile),
				filepath.Join(m.Dir, modelconfig.TokenizerConfigFile),
				filepath.Join(m.Dir, modelconfig.ProcessorFile))
		}
		src = fallback
	}
	bos, eos := string(m.Tokenizer.BOSToken), string(m.Tokenizer.EOSToken)
	t, err := NewTemplate(src, bos, eos)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Dir, err)
	}
	if src == SmolVLMTemplate {
		t.video = t.tmpl
	} else {
		v, err := jinja.Compile(SmolVLMTemplate)
		if err != nil {
			return nil, fmt.Errorf("built-in video chat template: %w", err)
		}
		t.video = v
	}
	return t, nil
}

// Render renders a conversation. With addGenerationPrompt the template
// appends the start of the assistant's turn the model should complete.
func (t *Template) Render(msgs []Message, addGenerationPrompt bool) (string, error) {
	list := make([]jinja.Value, len(msgs))
	hasVideo := false
	for i, m := range msgs {
		content := make([]jinja.Value, len(m.Content))
		for j, p := range m.Content {
			d := jinja.NewDict()
			dd := d.AsDict()
			// Keys in the order transformers users write them; templates
			// that iterate or serialise items see the same order.
			dd.Set("type", jinja.NewString(string(p.Type)))
			switch p.Type {
			case PartText:
				dd.Set("text", jinja.NewString(p.Text))
			case PartImage:
			case PartVideo:
				hasVideo = true
			default:
				return "", fmt.Errorf("chat template: message %d item %d: unknown content type %q (want text, image or video)", i, j, p.Type)
			}
			content[j] = d
		}
		d := jinja.NewDict()
		dd := d.AsDict()
		dd.Set("role", jinja.NewString(string(m.Role)))
		dd.Set("content", jinja.NewList(content))
		list[i] = d
	}
	data := map[string]jinja.Value{
		"messages":              jinja.NewList(list),
		"add_generation_prompt": jinja.NewBool(addGenerationPrompt),
		"bos_token":             jinja.NewString(t.bos),
		"eos_token":             jinja.NewString(t.eos),
	}
	tmpl := t.tmpl
	if hasVideo && t.video != nil {
		tmpl = t.video
	}
	out, err := tmpl.RenderValues(data)
	if err != nil {
		return "", fmt.Errorf("chat template: render: %w", err)
	}
	return out, nil
}
