package hub

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// Redraw and report intervals: a terminal bar is redrawn at most 10 times a
// second; logs get a line every few seconds for long files.
const (
	redrawEvery = 100 * time.Millisecond
	plainEvery  = 5 * time.Second
)

// progress reports downloads to a writer: an in-place bar per file on a
// terminal, plain lines otherwise. A nil *progress is quiet.
type progress struct {
	w     io.Writer
	fn    func(file string, done, size int64) // Options.OnProgress
	tty   bool
	width int
	now   func() time.Time
}

func newProgress(w io.Writer, fn func(file string, done, size int64)) *progress {
	if w == nil && fn == nil {
		return nil
	}
	if w == nil {
		w = io.Discard
	}
	p := &progress{w: w, fn: fn, width: 80, now: time.Now}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 20 {
			p.width = cols
		}
	}
	return p
}

// isTerminal reports whether r or w is an interactive terminal.
func isTerminal(v any) bool {
	f, ok := v.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

func (p *progress) printf(format string, args ...any) {
	if p == nil {
		return
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

// bar is the progress of one file. Its methods are no-ops on nil.
type bar struct {
	p         *progress
	name      string
	size      int64 // -1 when unknown
	done      int64
	base      int64 // bytes present when this run started (not counted in the speed)
	started   time.Time
	lastDraw  time.Time
	lastPlain time.Time
}

func (p *progress) start(name string, size, offset int64) *bar {
	if p == nil {
		return nil
	}
	now := p.now()
	b := &bar{p: p, name: name, size: size, done: offset, base: offset, started: now, lastPlain: now}
	b.notify()
	switch {
	case p.tty:
		b.draw()
	case offset > 0:
		p.printf("resume %s at %s of %s", name, humanBytes(offset), sizeText(size))
	default:
		p.printf("get %s (%s)", name, sizeText(size))
	}
	return b
}

// Write counts downloaded bytes, so a bar can sit in an io.MultiWriter.
func (b *bar) Write(buf []byte) (int, error) {
	if b == nil {
		return len(buf), nil
	}
	b.done += int64(len(buf))
	b.notify()
	now := b.p.now()
	if b.p.tty && now.Sub(b.lastDraw) >= redrawEvery {
		b.draw()
	}
	if !b.p.tty && now.Sub(b.lastPlain) >= plainEvery {
		b.lastPlain = now
		b.p.printf("  %s", b.status(now))
	}
	return len(buf), nil
}

// reset sets the count after the server made us start over.
func (b *bar) reset(n int64) {
	if b == nil {
		return
	}
	b.done, b.base, b.started = n, n, b.p.now()
	b.notify()
}

// notify passes the count to Options.OnProgress.
func (b *bar) notify() {
	if b.p.fn != nil {
		b.p.fn(b.name, b.done, b.size)
	}
}

// note prints a remark about the download (a resume after a dropped
// connection) on its own line.
func (b *bar) note(s string) {
	if b == nil {
		return
	}
	if b.p.tty {
		fmt.Fprint(b.p.w, "\r\x1b[K")
	}
	b.p.printf("  %s: %s", b.name, s)
}

// finish ends the bar: a final line with the size, time and speed.
func (b *bar) finish(err error) {
	if b == nil {
		return
	}
	now := b.p.now()
	if b.p.tty {
		b.draw()
		fmt.Fprintln(b.p.w)
	}
	if err != nil {
		return // the error itself is reported by the caller
	}
	el := now.Sub(b.started)
	b.p.printf("done %s %s in %s (%s/s)", b.name, humanBytes(b.done), el.Round(100*time.Millisecond), humanBytes(rate(b.done-b.base, el)))
}

// status is "NAME 45% 120.3 MB/265.1 MB 12.4 MB/s ETA 12s".
func (b *bar) status(now time.Time) string {
	el := now.Sub(b.started)
	r := rate(b.done-b.base, el)
	s := fmt.Sprintf("%s %s/%s %s/s", b.name, humanBytes(b.done), sizeText(b.size), humanBytes(r))
	if b.size > 0 {
		s = fmt.Sprintf("%s %3d%% %s/%s %s/s", b.name, b.done*100/b.size, humanBytes(b.done), humanBytes(b.size), humanBytes(r))
		if r > 0 {
			s += " ETA " + (time.Duration(float64(b.size-b.done)/float64(r)) * time.Second).Round(time.Second).String()
		}
	}
	return s
}

// draw redraws the terminal line: name, bar, sizes, speed, ETA.
func (b *bar) draw() {
	now := b.p.now()
	b.lastDraw = now
	el := now.Sub(b.started)
	r := rate(b.done-b.base, el)
	name := b.name
	if len(name) > 40 {
		name = "…" + name[len(name)-39:]
	}
	tail := fmt.Sprintf(" %s/%s %s/s", humanBytes(b.done), sizeText(b.size), humanBytes(r))
	if b.size > 0 && r > 0 && b.done < b.size {
		tail += " ETA " + (time.Duration(float64(b.size-b.done)/float64(r)) * time.Second).Round(time.Second).String()
	}
	line := name
	if b.size > 0 {
		pct := float64(b.done) / float64(b.size)
		cells := b.p.width - len([]rune(name)) - len(tail) - 9
		if cells > 30 {
			cells = 30
		}
		if cells >= 5 {
			fill := int(pct * float64(cells))
			line += fmt.Sprintf(" %3d%% |%s%s|", int(pct*100), strings.Repeat("█", fill), strings.Repeat(" ", cells-fill))
		} else {
			line += fmt.Sprintf(" %3d%%", int(pct*100))
		}
	}
	line += tail
	fmt.Fprint(b.p.w, "\r\x1b[K"+line)
}

// rate is bytes per second.
func rate(n int64, el time.Duration) int64 {
	if el <= 0 {
		return 0
	}
	return int64(float64(n) / el.Seconds())
}

func sizeText(n int64) string {
	if n < 0 {
		return "?"
	}
	return humanBytes(n)
}

// humanBytes formats n with decimal units, as the Hub's web pages do.
func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// FormatBytes formats a size the way snapvlm's messages do ("265.1 MB").
func FormatBytes(n int64) string { return humanBytes(n) }
