package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/snapvlm/snapvlm"
	"golang.org/x/term"
)

const chatHelp = `Type a question and press Enter. Commands:
  /image PATH   attach an image to your next message (repeat for several;
                quotes, backslash-escaped spaces and ~/ work as in a shell)
  /video PATH   attach a video to your next message (needs ffmpeg)
  /reset        forget the conversation
  /quit         leave (or Ctrl-D, or Ctrl-C twice at the prompt)
Ctrl-C stops the current answer; at the prompt it clears the line.`

func cmdChat(ctx context.Context, args []string) error {
	return runChat(ctx, args, os.Stdin, os.Stdout, os.Stderr)
}

// runChat is `snapvlm chat` with its streams injected.
func runChat(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f engineFlags
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: snapvlm chat --model DIR|REPO [--image IMG]... [--video CLIP]... [flags] [QUESTION]\n\n"+
			"Multi-turn chat in the terminal. QUESTION, when given, is asked as the first turn;\n"+
			"--image and --video files are attached to the first message.\n\n%s\n\nFlags:\n", chatHelp)
		fs.PrintDefaults()
	}
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := f.validate(); err != nil {
		return err
	}
	in := stdin
	if q := strings.Join(rest, " "); q != "" {
		// Asked as if typed at the first prompt.
		in = io.MultiReader(strings.NewReader(strings.ReplaceAll(q, "\n", " ")+"\n"), in)
	}
	m, err := f.load(ctx, false)
	if err != nil {
		return err
	}
	defer m.Close()
	return chatLoop(ctx, m, &f, in, stdout, stderr)
}

// chatLoop runs the conversation until /quit, end of input or two Ctrl-C
// at the prompt. An interrupt while an answer is generated stops the answer;
// at the prompt it clears the line (the terminal discards it).
func chatLoop(ctx context.Context, m *snapvlm.Model, f *engineFlags, in io.Reader, out, errOut io.Writer) error {
	chat := m.NewChat()
	chat.SetSystem(f.system)
	var pending []snapvlm.Part // images and videos for the next message
	// Attached images are encoded at once, while the user types.
	enc := newPreencoder(ctx, m, snapvlm.ImageOptions{NoSplit: f.noSplit, ImageSize: f.imageSize})
	defer enc.stop()
	for _, p := range f.videos.paths {
		v, err := chatVideo(p)
		if err != nil {
			return err
		}
		pending = append(pending, snapvlm.Part{Video: v})
	}
	for _, p := range f.images {
		img, err := chatImage(f, p)
		if err != nil {
			return err
		}
		pending = append(pending, snapvlm.Part{Image: img})
		enc.start(img)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)

	done := make(chan struct{})
	defer close(done)
	lines, readErr := readLines(done, in)
	fmt.Fprintln(errOut, chatHelp)
	interrupts := 0
	for {
		fmt.Fprint(out, "\n> ")
		var line string
		select {
		case <-ctx.Done():
			return nil
		case <-sigs:
			interrupts++
			if interrupts >= 2 {
				fmt.Fprintln(out)
				return nil
			}
			fmt.Fprint(errOut, "^C (Ctrl-C again or Ctrl-D to leave)")
			continue
		case l, ok := <-lines:
			if !ok {
				fmt.Fprintln(out)
				return <-readErr
			}
			line = strings.TrimSpace(l)
		}
		interrupts = 0
		switch {
		case line == "":
			continue
		case line == "/quit" || line == "/exit":
			return nil
		case line == "/reset":
			chat.Reset()
			pending = nil
			enc.reset()
			fmt.Fprintln(errOut, "(conversation cleared)")
			continue
		case line == "/help":
			fmt.Fprintln(errOut, chatHelp)
			continue
		case line == "/image" || strings.HasPrefix(line, "/image "):
			path := shellPath(strings.TrimSpace(strings.TrimPrefix(line, "/image")))
			if path == "" {
				fmt.Fprintln(errOut, "usage: /image PATH")
				continue
			}
			img, err := chatImage(f, path)
			if err != nil {
				fmt.Fprintf(errOut, "error: %v (not attached)\n", err)
				continue
			}
			pending = append(pending, snapvlm.Part{Image: img})
			enc.start(img)
			fmt.Fprintf(errOut, "(image %s attached to your next message)\n", path)
			continue
		case line == "/video" || strings.HasPrefix(line, "/video "):
			path := shellPath(strings.TrimSpace(strings.TrimPrefix(line, "/video")))
			if path == "" {
				fmt.Fprintln(errOut, "usage: /video PATH")
				continue
			}
			v, err := chatVideo(path)
			if err != nil {
				fmt.Fprintf(errOut, "error: %v (not attached)\n", err)
				continue
			}
			pending = append(pending, snapvlm.Part{Video: v})
			fmt.Fprintf(errOut, "(video %s attached to your next message)\n", path)
			continue
		case strings.HasPrefix(line, "/"):
			fmt.Fprintf(errOut, "unknown command %s (/help lists them)\n", line)
			continue
		}
		turnCtx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-sigs:
				cancel()
			case <-turnCtx.Done():
			}
		}()
		spin := startSpinner(errOut, len(pending) > 0, isTerminal(errOut))
		// The images' encodings started when they were attached: the
		// answer waits for them, then finds their features cached.
		if enc.wait(turnCtx) != nil {
			spin.stop()
			cancel()
			fmt.Fprintf(errOut, " [stopped] (%d image(s)/video(s) still attached)\n", len(pending))
			continue
		}
		before := len(chat.History())
		res, err := chat.Send(turnCtx, snapvlm.Message{Role: snapvlm.User, Content: append(slices.Clone(pending), snapvlm.Part{Text: line})}, f.generateOptions(), func(tok snapvlm.Token) error {
			if tok.Text == "" {
				return nil // a token whose text is held back (or an end token)
			}
			spin.stop()
			_, err := io.WriteString(out, tok.Text)
			return err
		})
		spin.stop()
		cancel()
		if err != nil && !(res != nil && res.FinishReason == snapvlm.FinishCancelled) {
			fmt.Fprintf(errOut, "\nerror: %v\n", withFlagHints(err))
			if len(pending) > 0 {
				// The images may be what failed: do not fail every later turn.
				fmt.Fprintf(errOut, "(%d attached image(s)/video(s) dropped)\n", len(pending))
				pending = nil
			}
			continue
		}
		if res.FinishReason == snapvlm.FinishCancelled {
			fmt.Fprint(errOut, " [stopped]")
		}
		// A turn stopped before any text did not join the conversation; its
		// images stay attached to the next message.
		if res.FinishReason != snapvlm.FinishCancelled || res.Text != "" {
			pending = nil
			if dropped := before + 2 - len(chat.History()); dropped > 0 {
				fmt.Fprintf(errOut, "\n(the conversation outgrew the model's %d-token context: the %d oldest messages were left out)", m.ContextLength(), dropped)
			}
		} else if len(pending) > 0 {
			fmt.Fprintf(errOut, " (%d image(s)/video(s) still attached)", len(pending))
		}
		fmt.Fprintln(out)
		if f.verbose {
			printStats(errOut, res)
		}
	}
}

// preencoder encodes attached images in the background (Model.Encode, which
// keeps the features in the model's cache and shares one encoding between
// concurrent callers), so that the question the user is typing does not
// wait for the vision encoder from the start.
type preencoder struct {
	m      *snapvlm.Model
	opt    snapvlm.ImageOptions
	parent context.Context
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// running are the encodings of the images attached since the last
	// answer (each closed when done).
	running []chan struct{}
}

func newPreencoder(ctx context.Context, m *snapvlm.Model, opt snapvlm.ImageOptions) *preencoder {
	p := &preencoder{m: m, opt: opt, parent: ctx}
	p.ctx, p.cancel = context.WithCancel(ctx)
	return p
}

// start encodes img in the background. A failure is not reported here: the
// answer encodes the image again and reports it.
func (p *preencoder) start(img *snapvlm.Image) {
	done := make(chan struct{})
	p.running = append(p.running, done)
	p.wg.Add(1)
	go func(ctx context.Context) {
		defer p.wg.Done()
		defer close(done)
		p.m.Encode(ctx, img, p.opt)
	}(p.ctx)
}

// wait waits until the encodings started since the last wait are done, or
// ctx ends (then they go on, for the next attempt).
func (p *preencoder) wait(ctx context.Context) error {
	for len(p.running) > 0 {
		select {
		case <-p.running[0]:
			p.running = p.running[1:]
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// reset cancels the encodings under way (their images were dropped).
func (p *preencoder) reset() {
	p.cancel()
	p.running = nil
	p.ctx, p.cancel = context.WithCancel(p.parent)
}

// stop cancels the encodings under way and waits until they have returned.
func (p *preencoder) stop() {
	p.cancel()
	p.wg.Wait()
}

// readLines reads in line by line on its own goroutine, so that the chat can
// wait for a line and an interrupt at once; it stops when done is closed.
// The error channel yields the read error (nil at end of input) after lines
// is closed.
func readLines(done <-chan struct{}, in io.Reader) (<-chan string, <-chan error) {
	lines := make(chan string)
	errc := make(chan error, 1)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-done:
				errc <- nil
				return
			}
		}
		errc <- sc.Err()
	}()
	return lines, errc
}

// chatImage reads and decodes an image file, so that a bad one is refused
// when it is attached rather than failing the turns after it.
func chatImage(f *engineFlags, path string) (*snapvlm.Image, error) {
	img, err := f.readImage(path)
	if err != nil {
		return nil, err
	}
	if err := img.Check(); err != nil {
		return nil, err
	}
	return img, nil
}

// shellPath undoes the quoting a terminal adds to a dragged-in path or a
// user types as in a shell: surrounding single or double quotes, backslash
// escapes (\ , \(, ...) and a leading ~/ for the home directory.
func shellPath(s string) string {
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		s = s[1 : len(s)-1]
	} else if strings.Contains(s, "\\") {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
		}
		s = b.String()
	}
	if s == "~" || strings.HasPrefix(s, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			s = home + s[1:]
		}
	}
	return s
}

// isTerminal reports whether w is a terminal (the spinner's \r redraws are
// noise in a pipe or a log).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// spinner shows activity on stderr until the first token arrives.
type spinner struct {
	once sync.Once
	done chan struct{}
	wg   sync.WaitGroup
}

func startSpinner(w io.Writer, images, show bool) *spinner {
	s := &spinner{done: make(chan struct{})}
	if !show {
		close(s.done)
		s.once.Do(func() {})
		return s
	}
	label := "thinking"
	if images {
		label = "encoding image"
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		frames := `|/-\`
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			fmt.Fprintf(w, "\r%s %c", label, frames[i%len(frames)])
			select {
			case <-s.done:
				fmt.Fprintf(w, "\r%s\r", strings.Repeat(" ", len(label)+2))
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *spinner) stop() {
	s.once.Do(func() {
		close(s.done)
		s.wg.Wait()
	})
}
