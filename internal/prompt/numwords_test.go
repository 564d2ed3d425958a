package prompt

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// goldenLine is one line of testdata/python_golden.tsv, written by
// testdata/gen_golden.py with Python's num2words and datetime.timedelta.
type goldenLine struct {
	kind, in, want string
	line           int
}

func readGolden(t *testing.T, kind string) []goldenLine {
	t.Helper()
	f, err := os.Open("testdata/python_golden.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []goldenLine
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) != 3 {
			t.Fatalf("python_golden.tsv:%d: want 3 tab-separated fields, got %d", n, len(fields))
		}
		if fields[0] == kind {
			out = append(out, goldenLine{fields[0], fields[1], fields[2], n})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("python_golden.tsv has no %q lines", kind)
	}
	return out
}

func TestNumberWords(t *testing.T) {
	for _, g := range readGolden(t, "words") {
		n, err := strconv.Atoi(g.in)
		if err != nil {
			t.Fatalf("line %d: %v", g.line, err)
		}
		got, err := numberWords(n)
		if err != nil || got != g.want {
			t.Errorf("numberWords(%d) = %q, %v; want %q (num2words)", n, got, err, g.want)
		}
	}
	for _, n := range []int{-1, maxWords + 1} {
		if _, err := numberWords(n); err == nil {
			t.Errorf("numberWords(%d) succeeded, want an out-of-range error", n)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for _, g := range readGolden(t, "duration") {
		s, err := strconv.ParseFloat(g.in, 64)
		if err != nil {
			t.Fatalf("line %d: %v", g.line, err)
		}
		if got := formatDuration(int64(s)); got != g.want {
			t.Errorf("formatDuration(int64(%v)) = %q, want %q (str(timedelta))", s, got, g.want)
		}
	}
}

func TestMinutesSeconds(t *testing.T) {
	for _, g := range readGolden(t, "mmss") {
		s, err := strconv.ParseFloat(g.in, 64)
		if err != nil {
			t.Fatalf("line %d: %v", g.line, err)
		}
		m, sec := minutesSeconds(s)
		if got := strings.TrimPrefix(fmt.Sprintf(frameMessage, m, sec), "\nFrame from "); got != g.want+":" {
			t.Errorf("frame time of %v s = %q, want %q", s, got, g.want+":")
		}
	}
}
