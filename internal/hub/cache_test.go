package hub

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm/internal/hub/hubtest"
)

const testCommit2 = "fedcba9876543210fedcba9876543210fedcba98"

// pullTwoRevisions pulls testRepo at testCommit (q4 and fp32), then at
// testCommit2 where config.json changed and the fp32 variant is not pulled.
func pullTwoRevisions(t *testing.T) (Options, map[string][]byte) {
	t.Helper()
	srv := hubtest.New(t, testToken, testRepoDef())
	opt := testOptions(srv)
	opt.CacheDir = t.TempDir()
	opt.Dtypes = []string{"q4", "fp32"}
	if _, err := Pull(context.Background(), testRepo, "main", opt); err != nil {
		t.Fatalf("Pull 1: %v", err)
	}
	files2 := testFiles()
	files2["config.json"] = []byte(`{"model_type": "smolvlm", "image_token_id": 1}`)
	srv.SetRepo(hubtest.Repo{ID: testRepo, Commit: testCommit2, Files: files2})
	opt.Dtypes = []string{"q4"}
	if _, err := Pull(context.Background(), testRepo, "main", opt); err != nil {
		t.Fatalf("Pull 2: %v", err)
	}
	return opt, files2
}

func TestList(t *testing.T) {
	opt, files2 := pullTwoRevisions(t)
	// A cached repo that is not a SmolVLM export must not be listed.
	bert := filepath.Join(opt.CacheDir, "models--google--bert", "snapshots", testCommit)
	if err := os.MkdirAll(bert, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bert, "config.json"), []byte(`{"model_type": "bert"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	models, err := List(opt)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(models) != 1 || models[0].Repo != testRepo {
		t.Fatalf("List = %+v, want only %s", models, testRepo)
	}
	m := models[0]
	// Distinct contents of both snapshots, summed independently.
	files1 := testFiles()
	distinct := map[string]int64{}
	var rev1, rev2 int64
	for _, p := range concat(configPaths, q4Paths, fp32Paths) {
		distinct[expectedEtag(p, files1[p])] = int64(len(files1[p]))
		rev1 += int64(len(files1[p]))
	}
	for _, p := range concat(configPaths, q4Paths) {
		distinct[expectedEtag(p, files2[p])] = int64(len(files2[p]))
		rev2 += int64(len(files2[p]))
	}
	var total int64
	for _, n := range distinct {
		total += n
	}
	if m.Size != total {
		t.Errorf("Size = %d, want %d", m.Size, total)
	}
	byCommit := map[string]CachedRevision{}
	for _, r := range m.Revisions {
		byCommit[r.Commit] = r
	}
	r1, r2 := byCommit[testCommit], byCommit[testCommit2]
	if !slices.Equal(r1.Variants, []string{"fp32", "q4"}) || r1.Size != rev1 || len(r1.Refs) != 0 || r1.ModelType != "smolvlm" {
		t.Errorf("revision 1 = %+v; want variants [fp32 q4], size %d, no refs", r1, rev1)
	}
	if !slices.Equal(r2.Variants, []string{"q4"}) || r2.Size != rev2 || !slices.Equal(r2.Refs, []string{"main"}) {
		t.Errorf("revision 2 = %+v; want variants [q4], size %d, refs [main]", r2, rev2)
	}
	if r1.Files != len(configPaths)+len(q4Paths)+len(fp32Paths) {
		t.Errorf("revision 1 has %d files", r1.Files)
	}
}

func TestListEmptyCache(t *testing.T) {
	models, err := List(Options{CacheDir: filepath.Join(t.TempDir(), "none")})
	if err != nil || len(models) != 0 {
		t.Errorf("List of a missing cache = %v, %v; want empty, nil", models, err)
	}
}

func TestRemoveRevision(t *testing.T) {
	opt, files2 := pullTwoRevisions(t)
	rdir := filepath.Join(opt.CacheDir, "models--TestOrg--TinyVLM")
	if err := Remove(opt, testRepo+"@"+testCommit); err != nil {
		t.Fatalf("Remove revision: %v", err)
	}
	if _, err := os.Stat(filepath.Join(rdir, "snapshots", testCommit)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("snapshot 1 still there: %v", err)
	}
	files1 := testFiles()
	// Blobs only snapshot 1 used are gone; shared ones stay.
	for _, p := range concat(configPaths, q4Paths, fp32Paths) {
		blob := filepath.Join(rdir, "blobs", expectedEtag(p, files1[p]))
		_, err := os.Stat(blob)
		shared := slices.Contains(concat(configPaths, q4Paths), p) && string(files1[p]) == string(files2[p])
		if shared && err != nil {
			t.Errorf("shared blob of %s removed", p)
		}
		if !shared && err == nil {
			t.Errorf("blob of %s (only in the removed snapshot) kept", p)
		}
	}
	// Snapshot 2 still resolves through refs/main.
	dir, err := Resolve(context.Background(), testRepo, Options{CacheDir: opt.CacheDir, Offline: true})
	if err != nil || filepath.Base(dir) != testCommit2 {
		t.Errorf("Resolve after removing revision 1 = %q, %v", dir, err)
	}
	if err := Remove(opt, testRepo+"@"+testCommit); !errors.Is(err, ErrNotCached) {
		t.Errorf("second Remove of revision 1 = %v, want ErrNotCached", err)
	}
	// Removing a revision by ref drops the ref too.
	if err := Remove(opt, testRepo+"@main"); err != nil {
		t.Fatalf("Remove @main: %v", err)
	}
	if _, err := os.Stat(filepath.Join(rdir, "refs", "main")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refs/main kept after removing its snapshot: %v", err)
	}
	blobs, _ := os.ReadDir(filepath.Join(rdir, "blobs"))
	if len(blobs) != 0 {
		t.Errorf("%d blobs left with no snapshot", len(blobs))
	}
}

func TestRemoveRepo(t *testing.T) {
	opt, _ := pullTwoRevisions(t)
	if err := Remove(opt, testRepo); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	for _, p := range []string{
		filepath.Join(opt.CacheDir, "models--TestOrg--TinyVLM"),
		filepath.Join(opt.CacheDir, ".locks", "models--TestOrg--TinyVLM"),
	} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
	if err := Remove(opt, testRepo); !errors.Is(err, ErrNotCached) {
		t.Errorf("Remove of a missing repo = %v, want ErrNotCached", err)
	}
	if err := Remove(opt, "not a repo"); err == nil {
		t.Errorf("Remove of an invalid spec succeeded")
	}
}

func TestResolve(t *testing.T) {
	opt, _ := pullTwoRevisions(t)
	local := t.TempDir()
	file := filepath.Join(local, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	snap := func(c string) string { return filepath.Join(opt.CacheDir, "models--TestOrg--TinyVLM", "snapshots", c) }
	cases := []struct {
		spec    string
		dtypes  []string
		graphs  map[string]string
		want    string
		wantErr error
		msg     string
	}{
		{spec: local, want: local},
		{spec: testRepo, want: snap(testCommit2)},
		{spec: testRepo + "@main", want: snap(testCommit2)},
		{spec: testRepo + "@" + testCommit, dtypes: []string{"fp32"}, want: snap(testCommit)},
		// Revision 2 was pulled without fp32: it must be pulled first.
		{spec: testRepo, dtypes: []string{"fp32"}, wantErr: ErrNotCached, msg: "lacks onnx/vision_encoder.onnx (dtype fp32)"},
		{spec: testRepo + "@" + testCommit, graphs: map[string]string{"vision_encoder": "fp32"}, want: snap(testCommit)},
		{spec: testRepo, graphs: map[string]string{"vision_encoder": "fp32"}, wantErr: ErrNotCached, msg: "lacks onnx/vision_encoder.onnx (dtype q4, vision_encoder=fp32)"},
		{spec: testRepo, graphs: map[string]string{"vision": "fp32"}, msg: `unknown graph "vision"`},
		{spec: testRepo + "@v2", wantErr: ErrNotCached, msg: "run 'snapvlm pull TestOrg/TinyVLM'"},
		{spec: "TestOrg/Other", wantErr: ErrNotCached, msg: "TestOrg/Other (revision main) is not in the Hugging Face cache"},
		{spec: file, msg: "not a directory"},
		{spec: "./no/such/dir", msg: "neither an existing directory nor a Hub repo id"},
		{spec: testRepo, dtypes: []string{"q8"}, msg: `unknown dtype "q8"`},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprint(i, tc.spec), func(t *testing.T) {
			o := Options{CacheDir: opt.CacheDir, Dtypes: tc.dtypes, GraphDtypes: tc.graphs}
			dir, err := Resolve(context.Background(), tc.spec, o)
			if tc.want != "" {
				if err != nil || dir != tc.want {
					t.Errorf("Resolve = %q, %v; want %q", dir, err, tc.want)
				}
				return
			}
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Resolve error = %v; want %v containing %q", err, tc.wantErr, tc.msg)
			}
		})
	}
}

// A snapshot link whose blob is gone (deleted by hand) is not "cached".
func TestResolveDanglingLink(t *testing.T) {
	opt, _ := pullTwoRevisions(t)
	files := testFiles()
	p := "onnx/decoder_model_merged_q4.onnx"
	if err := os.Remove(filepath.Join(opt.CacheDir, "models--TestOrg--TinyVLM", "blobs", expectedEtag(p, files[p]))); err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve(context.Background(), testRepo, Options{CacheDir: opt.CacheDir}); !errors.Is(err, ErrNotCached) {
		t.Errorf("Resolve with a missing blob = %v, want ErrNotCached", err)
	}
}
