package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/snapvlm/snapvlm"
	"golang.org/x/term"
)

const chatHelp = `Type a question and press Enter. Commands:
  /image PATH   attach an image to your next message (repeat for several)
  /reset        forget the conversation
  /quit         leave (or Ctrl-D)
Ctrl-C stops the current answer.`

func cmdChat(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	var f engineFlags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	m, err := f.load(ctx, false)
	if err != nil {
		return err
	}
	defer m.Close()
	return chatLoop(ctx, m, &f, os.Stdin, os.Stdout, os.Stderr)
}

// chatLoop runs the conversation until /quit or end of input. Interrupts
// cancel the answer being generated, not the loop.
func chatLoop(ctx context.Context, m *snapvlm.Model, f *engineFlags, in io.Reader, out, errOut io.Writer) error {
	chat := m.NewChat()
	pending, err := readImages(f.images)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)

	fmt.Fprintln(errOut, chatHelp)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for {
		fmt.Fprint(out, "\n> ")
		if !sc.Scan() {
			fmt.Fprintln(out)
			return sc.Err()
		}
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
			continue
		case line == "/quit" || line == "/exit":
			return nil
		case line == "/reset":
			chat.Reset()
			pending = nil
			fmt.Fprintln(errOut, "(conversation cleared)")
			continue
		case line == "/help":
			fmt.Fprintln(errOut, chatHelp)
			continue
		case strings.HasPrefix(line, "/image"):
			path := strings.TrimSpace(strings.TrimPrefix(line, "/image"))
			img, err := snapvlm.ImageFile(path)
			if err != nil {
				fmt.Fprintf(errOut, "error: %v\n", err)
				continue
			}
			pending = append(pending, img)
			fmt.Fprintf(errOut, "(image %s attached to your next message)\n", path)
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
		req := f.request()
		res, err := chat.Send(turnCtx, line, pending, req, func(s string) error {
			spin.stop()
			_, err := io.WriteString(out, s)
			return err
		})
		spin.stop()
		cancel()
		if err != nil {
			fmt.Fprintf(errOut, "\nerror: %v\n", err)
			continue
		}
		if res.FinishReason == snapvlm.FinishCancelled {
			fmt.Fprint(errOut, " [stopped]")
		}
		// A turn stopped before any text did not join the conversation; its
		// images stay attached to the next message.
		if res.FinishReason != snapvlm.FinishCancelled || res.Text != "" {
			pending = nil
		} else if len(pending) > 0 {
			fmt.Fprintf(errOut, " (%d image(s) still attached)", len(pending))
		}
		fmt.Fprintln(out)
		if f.verbose {
			printStats(errOut, res)
		}
	}
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
