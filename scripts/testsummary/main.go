// Command testsummary reads `go test -json` on stdin and prints what a CI
// log needs: each package's result line, every skipped test with the line
// that says why, and the full output of failed tests and packages. It exits
// 1 when anything failed.
//
//	go test -json ./... | go run ./scripts/testsummary
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	ImportPath string // build events
	Test       string
	Output     string
}

func main() {
	failed, err := summarize(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// summarize copies the interesting parts of the event stream r to w and
// reports whether any test, package or build failed.
func summarize(r io.Reader, w io.Writer) (failed bool, err error) {
	type key struct{ pkg, test string }
	out := map[key][]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not an event (go vet or linker noise): pass it through.
			fmt.Fprintln(w, string(line))
			continue
		}
		switch e.Action {
		case "build-output":
			fmt.Fprint(w, e.Output)
		case "build-fail":
			failed = true
		case "output":
			k := key{e.Package, e.Test}
			out[k] = append(out[k], e.Output)
		case "skip", "fail", "pass":
			k := key{e.Package, e.Test}
			lines := out[k]
			delete(out, k)
			if e.Action == "fail" {
				failed = true
			}
			switch {
			case e.Test == "" && e.Action == "fail":
				fmt.Fprint(w, strings.Join(lines, ""))
			case e.Test == "":
				// The package's own output ends with its result line
				// ("ok  \tpkg\t1.2s", "?   \tpkg\t[no test files]").
				for _, l := range lines {
					if strings.HasPrefix(l, "ok ") || strings.HasPrefix(l, "? ") || strings.HasPrefix(l, "FAIL") {
						fmt.Fprint(w, l)
					}
				}
			case e.Action == "fail":
				fmt.Fprint(w, strings.Join(lines, ""))
			case e.Action == "skip":
				fmt.Fprintf(w, "SKIP %s %s:", e.Package, e.Test)
				reason := false
				for _, l := range lines {
					t := strings.TrimSpace(l)
					if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") {
						continue
					}
					fmt.Fprint(w, " ", t)
					reason = true
				}
				if !reason {
					fmt.Fprint(w, " (no reason given)")
				}
				fmt.Fprintln(w)
			}
		}
	}
	return failed, sc.Err()
}
