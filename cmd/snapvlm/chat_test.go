package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestChatEncodesOnAttach: an image attached with /image or --image is
// encoded when it is attached, so the first answer about it finds its
// features in the cache and spends no time in the vision encoder; /reset
// and leaving cancel an encoding under way.
func TestChatEncodesOnAttach(t *testing.T) {
	dir := tinyModel(t)
	cases := []struct {
		name  string
		args  []string
		input string
	}{
		{"/image", nil, "/image " + sampleImage + "\nWhat is this?\n/quit\n"},
		{"--image", []string{"--image", sampleImage}, "What is this?\n/quit\n"},
		{"--image and /image, no split", []string{"--image", sampleImage, "--no-split"}, "/image " + sampleImage + "\nWhat is this?\n/quit\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := append([]string{"--model", dir, "--max-tokens", "2", "--verbose"}, c.args...)
			if err := runChat(context.Background(), args, strings.NewReader(c.input), &out, &errOut); err != nil {
				t.Fatalf("%v\n%s", err, errOut.String())
			}
			log := errOut.String()
			images := strings.Count(c.input, "/image ") + strings.Count(strings.Join(c.args, " "), "--image")
			for _, want := range []string{
				"vision 0s,",
				fmt.Sprintf("[%d of %d image(s) from the feature cache]", images, images),
			} {
				if !strings.Contains(log, want) {
					t.Errorf("stderr lacks %q:\n%s", want, log)
				}
			}
		})
	}
	// Dropped before any answer: the encodings are cancelled and the chat
	// leaves without waiting for them.
	for _, input := range []string{
		"/image " + sampleImage + "\n/reset\nHello\n/quit\n",
		"/image " + sampleImage + "\n/quit\n",
	} {
		var out, errOut bytes.Buffer
		if err := runChat(context.Background(), []string{"--model", dir, "--max-tokens", "2", "--verbose"}, strings.NewReader(input), &out, &errOut); err != nil {
			t.Fatalf("%q: %v\n%s", input, err, errOut.String())
		}
		if strings.Contains(errOut.String(), "feature cache") {
			t.Errorf("%q: an answer used the dropped image:\n%s", input, errOut.String())
		}
	}
}
