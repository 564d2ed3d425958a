package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm"
)

// FuzzChatRequest: no request body makes the parser panic; whatever it
// refuses is an OpenAI-shaped 4xx error. (The model is never loaded: this
// exercises parsing and validation, which run before generation.)
func FuzzChatRequest(f *testing.F) {
	for _, seed := range []string{
		`{"messages":[{"role":"user","content":"Hi"}]}`,
		`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},{"type":"text","text":"x"}]}],"stop":["a","b"],"n":1}`,
		`{"messages":[{"role":"assistant","content":null},{"role":"user","content":[]}],"stop":"x","max_tokens":-1}`,
		`{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"schema":{}}},"temperature":1e309}`,
		`{"messages":[{"role":"user","content":{"a":1}}],"seed":-5,"top_k":-1,"image_size":99999}`,
		`[1,2,3]`, `{"messages":`, `null`,
	} {
		f.Add(seed)
	}
	s, err := New(Config{Logger: discardLogger(), Models: []Model{{ID: "m", Load: func(context.Context) (*snapvlm.Model, error) { return nil, nil }}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var cr chatRequest
		r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
		if err := decodeBody(r, &cr); err != nil {
			if ae := asAPIError(err); ae.Status != http.StatusBadRequest {
				t.Fatalf("body %q: status %d", body, ae.Status)
			}
			return
		}
		if _, err := s.toRequest(context.Background(), &cr); err != nil {
			if ae := asAPIError(err); ae.Status < 400 || ae.Status >= 500 || ae.Message == "" {
				t.Fatalf("body %q: %d %q", body, ae.Status, ae.Message)
			}
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body)))
		if w.Code < 400 || !strings.Contains(w.Body.String(), `"error"`) {
			t.Fatalf("body %q: %d %s (the model is not loaded: every request must fail)", body, w.Code, w.Body.String())
		}
	})
}
