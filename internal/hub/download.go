package hub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// verifier checks the bytes of one file against the hash its blob is named
// after: sha256 for LFS files, the git blob sha1 ("blob <len>\0" + content)
// for regular files. Other etags (some mirrors) are not checked.
type verifier struct {
	h    hash.Hash
	algo string
	want string
}

func newVerifier(f *PlanFile) *verifier {
	v := &verifier{want: strings.ToLower(f.Etag)}
	switch {
	case f.LFS && len(v.want) == 64:
		v.h, v.algo = sha256.New(), "sha256"
	case !f.LFS && len(v.want) == 40 && f.Size >= 0:
		v.h, v.algo = sha1.New(), "git blob sha1"
		fmt.Fprintf(v.h, "blob %d\x00", f.Size)
	}
	return v
}

func (v *verifier) Write(p []byte) (int, error) {
	if v.h != nil {
		v.h.Write(p)
	}
	return len(p), nil
}

// check returns "" when the content matches, else the hash it got.
func (v *verifier) check() (got string, ok bool) {
	if v.h == nil {
		return "", true
	}
	got = hex.EncodeToString(v.h.Sum(nil))
	return got, got == v.want
}

// fetch puts one file into the cache: blobs/<etag> (downloaded to
// blobs/<etag>.incomplete and renamed when complete and verified) and the
// snapshot link to it.
func (c *client) fetch(ctx context.Context, rdir string, plan *PullPlan, f *PlanFile, prog *progress) error {
	blob := filepath.Join(rdir, "blobs", f.Etag)
	if blobComplete(blob, f.Size) {
		return linkBlob(rdir, plan.Commit, f.Path, f.Etag)
	}
	unlock, err := lockFile(ctx, filepath.Join(c.opt.CacheDir, ".locks", repoFolderName(plan.Repo), f.Etag+".lock"))
	if err != nil {
		return fmt.Errorf("lock %s: %w", f.Path, err)
	}
	defer unlock()
	// Another process may have finished it while we waited for the lock.
	if !blobComplete(blob, f.Size) {
		if err := c.download(ctx, plan, f, blob, prog); err != nil {
			return err
		}
	}
	return linkBlob(rdir, plan.Commit, f.Path, f.Etag)
}

func blobComplete(path string, size int64) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && (size < 0 || fi.Size() == size)
}

// download streams the file into blob+".incomplete", resuming what an
// earlier attempt or run left there with an HTTP Range request, and renames
// it to blob once its size and hash are right.
func (c *client) download(ctx context.Context, plan *PullPlan, f *PlanFile, blob string, prog *progress) error {
	tmp := blob + ".incomplete"
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return fmt.Errorf("download %s: %w", f.Path, err)
	}
	out, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("download %s: %w", f.Path, err)
	}
	defer out.Close()

	v, offset, err := resumeState(out, f)
	if err != nil {
		return fmt.Errorf("download %s: read partial file %s: %w", f.Path, tmp, err)
	}
	url := c.resolveURL(plan.Repo, plan.Commit, f.Path)
	bar := prog.start(f.Path, f.Size, offset)
	failures := 0
	backoff := c.opt.RetryBackoff
	for f.Size < 0 || offset < f.Size {
		n, done, err := c.getRange(ctx, plan, f, url, out, v, &offset, bar)
		if err == nil && done {
			break
		}
		if err != nil {
			var he *hubError
			if ctx.Err() != nil || errors.As(err, &he) {
				bar.finish(err)
				return err // user-facing already, or cancelled: the partial file stays for a resume
			}
		}
		// A dropped connection: start over from where the bytes stopped.
		// Progress resets the count, as huggingface_hub does.
		if n > 0 {
			failures, backoff = 0, c.opt.RetryBackoff
		}
		failures++
		if failures > c.opt.Retries {
			err = newError(ErrUnavailable, err, "download %s from %s: gave up after %d attempts (run again to resume from %d bytes)", f.Path, plan.Repo, failures, offset)
			bar.finish(err)
			return err
		}
		bar.note(fmt.Sprintf("connection lost at %s, resuming", humanBytes(offset)))
		if err := sleep(ctx, backoff); err != nil {
			bar.finish(err)
			return err
		}
		backoff *= 2
	}
	if f.Size >= 0 && offset != f.Size {
		err := fmt.Errorf("download %s from %s: got %d bytes, want %d", f.Path, plan.Repo, offset, f.Size)
		bar.finish(err)
		return err
	}
	if got, ok := v.check(); !ok {
		out.Close()
		os.Remove(tmp)
		err := newError(ErrChecksum, nil, "download %s from %s: %s mismatch: want %s, got %s; the corrupted download was deleted, run the command again", f.Path, plan.Repo, v.algo, v.want, got)
		bar.finish(err)
		return err
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("download %s: %w", f.Path, err)
	}
	if err := os.Rename(tmp, blob); err != nil {
		return fmt.Errorf("download %s: %w", f.Path, err)
	}
	bar.finish(nil)
	return nil
}

// resumeState hashes what an earlier attempt left in out and positions out
// at its end.
func resumeState(out *os.File, f *PlanFile) (*verifier, int64, error) {
	fi, err := out.Stat()
	if err != nil {
		return nil, 0, err
	}
	if f.Size >= 0 && fi.Size() > f.Size {
		return restart(out, f)
	}
	v := newVerifier(f)
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	n, err := io.Copy(v, out)
	if err != nil {
		return nil, 0, err
	}
	return v, n, nil
}

// restart empties out.
func restart(out *os.File, f *PlanFile) (*verifier, int64, error) {
	if err := out.Truncate(0); err != nil {
		return nil, 0, err
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	return newVerifier(f), 0, nil
}

// getRange requests the bytes from *offset on and appends them to out. It
// returns how many bytes it added; done is true when the body ended cleanly.
// A nil error with done false never happens; a non-hubError error is a
// transport failure worth retrying.
func (c *client) getRange(ctx context.Context, plan *PullPlan, f *PlanFile, url string, out *os.File, v *verifier, offset *int64, bar *bar) (int64, bool, error) {
	hdr := http.Header{}
	if *offset > 0 {
		hdr.Set("Range", "bytes="+strconv.FormatInt(*offset, 10)+"-")
	}
	resp, err := c.do(ctx, http.MethodGet, url, hdr, followAll)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if !ok || start != *offset {
			// Not the bytes asked for: start over.
			nv, n, err := restart(out, f)
			if err != nil {
				return 0, false, err
			}
			*v, *offset = *nv, n
			bar.reset(0)
			return 0, false, errors.New("server answered a different range")
		}
	case http.StatusOK:
		if *offset > 0 {
			// The server ignored Range and sends everything.
			nv, n, err := restart(out, f)
			if err != nil {
				return 0, false, err
			}
			*v, *offset = *nv, n
			bar.reset(0)
		}
	case http.StatusRequestedRangeNotSatisfiable:
		nv, n, err := restart(out, f)
		if err != nil {
			return 0, false, err
		}
		*v, *offset = *nv, n
		bar.reset(0)
		return 0, false, errors.New("server refused the resume range")
	default:
		return 0, false, c.statusError(resp, plan.Repo, plan.Revision, f.Path)
	}
	w := io.MultiWriter(out, v, bar)
	n, err := io.Copy(w, resp.Body)
	*offset += n
	if err != nil {
		return n, false, err
	}
	if f.Size >= 0 && *offset < f.Size {
		return n, false, io.ErrUnexpectedEOF
	}
	return n, true, nil
}

// contentRangeStart parses the first byte of "bytes START-END/TOTAL".
func contentRangeStart(h string) (int64, bool) {
	s, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, false
	}
	s, _, ok = strings.Cut(s, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
