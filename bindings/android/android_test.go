package android

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/snapvlm/snapvlm"
	"github.com/snapvlm/snapvlm/internal/ort/orttest"
	"github.com/snapvlm/snapvlm/internal/testmodel"
)

// require finds a tool: skipped where it is absent, a failure under CI=true
// (make test installs it with scripts/sysdeps.sh).
func require(t *testing.T, what string, find func() (string, error)) string {
	t.Helper()
	p, err := find()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the Android binding check needs %s: %v", what, err)
		}
		t.Skipf("%s not found, skipping the Android binding check: %v", what, err)
	}
	return p
}

func lookPath(name string) func() (string, error) {
	return func() (string, error) { return exec.LookPath(name) }
}

func file(paths ...string) func() (string, error) {
	return func() (string, error) {
		for _, p := range paths {
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
		return "", os.ErrNotExist
	}
}

// javaHome is the JDK whose include/jni.h the glue compiles against:
// $JAVA_HOME, else the JDK javac belongs to.
func javaHome() (string, error) {
	if h := os.Getenv("JAVA_HOME"); h != "" {
		if _, err := os.Stat(filepath.Join(h, "include", "jni.h")); err == nil {
			return h, nil
		}
	}
	javac, err := exec.LookPath("javac")
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(javac)
	if err != nil {
		return "", err
	}
	h := filepath.Dir(filepath.Dir(real))
	if _, err := os.Stat(filepath.Join(h, "include", "jni.h")); err != nil {
		return "", err
	}
	return h, nil
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s\n%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

func sources(t *testing.T, ext string, dirs ...string) []string {
	t.Helper()
	var out []string
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() && strings.HasSuffix(p, ext) {
				out = append(out, p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestAndroidBinding compiles the JNI glue (with -Werror) and the Kotlin
// sources, then runs the JNI glue on the desktop JVM against libsnapvlm
// built for this machine (jvmtest/JvmCheck.kt): the streamed answer and its
// tokens must equal the Go API's for the same request; a cancel from another
// thread and an error code must arrive in Kotlin. (The coroutine layer is
// compiled, not run: Debian's kotlinx-coroutines jar lacks atomicfu.)
func TestAndroidBinding(t *testing.T) {
	cc := require(t, "a C compiler", lookPath("cc"))
	jdk := require(t, "a JDK with jni.h (Debian: default-jdk-headless)", javaHome)
	javac := require(t, "javac", lookPath("javac"))
	kotlinc := require(t, "kotlinc (Debian: kotlin)", lookPath("kotlinc"))
	java := require(t, "java", lookPath("java"))
	coroutines := require(t, "kotlinx-coroutines (Debian: libkotlinx-coroutines-java)", file("/usr/share/java/kotlinx-coroutines-core.jar"))
	stdlib := require(t, "the Kotlin standard library", file("/usr/share/java/kotlin-stdlib.jar"))

	dir := t.TempDir()
	// go test puts its own toolchain's bin directory first on PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	run(t, goBin, "build", "-buildmode=c-shared", "-o", filepath.Join(dir, "libsnapvlm.so"), "../../capi")
	jni := filepath.Join(dir, "libsnapvlm_jni.so")
	run(t, cc, "-shared", "-fPIC", "-std=c11", "-Wall", "-Wextra", "-Werror",
		"-I", filepath.Join(jdk, "include"), "-I", filepath.Join(jdk, "include", runtime.GOOS), "-I", "../../capi",
		"-o", jni, filepath.Join("jni", "snapvlm_jni.c"), "-L", dir, "-lsnapvlm", "-Wl,-rpath,"+dir)

	stubs := filepath.Join(dir, "stubs")
	run(t, javac, append([]string{"-d", stubs}, sources(t, ".java", "stubs")...)...)
	classes := filepath.Join(dir, "classes")
	// -nowarn: Kotlin 1.3 on JDK 17 warns about its own JVM flags.
	run(t, kotlinc, append([]string{"-nowarn", "-d", classes, "-cp", stubs + string(os.PathListSeparator) + coroutines},
		sources(t, ".kt", "src", "compat", "example", "jvmtest")...)...)

	// Running it needs ONNX Runtime and a model.
	orttest.Env(t)
	model := filepath.Join(dir, "tiny512")
	if err := testmodel.Generate(context.Background(), "tiny512", model, testmodel.Options{Seed: 1, Variants: []string{testmodel.Q4}, GenerateTokenizer: true}); err != nil {
		t.Fatal(err)
	}
	image := filepath.Join("..", "..", "assets", "sample.jpg")
	const question, maxTokens = "What is in this picture?", 24
	cp := strings.Join([]string{classes, stubs, stdlib, coroutines}, string(os.PathListSeparator))
	out := run(t, java, "-Djava.library.path="+dir, "-cp", cp, "org.snapvlm.android.JvmCheck", model, image, question, "24")
	got := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok {
			got[k] = v
		}
	}

	// The binding's Settings ask for q4 (and one thread, which changes no bits).
	m, err := snapvlm.Load(context.Background(), model, snapvlm.Options{Dtype: "q4"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	img, err := snapvlm.ImageFile(image)
	if err != nil {
		t.Fatal(err)
	}
	want, err := m.Generate(context.Background(), snapvlm.Request{Messages: []snapvlm.Message{snapvlm.UserMessage(question, img)}, GenerateOptions: snapvlm.GenerateOptions{MaxNewTokens: maxTokens, NoSplit: true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Text   string  `json:"text"`
		Tokens []int64 `json:"tokens"`
	}
	if err := json.Unmarshal([]byte(got["RESULT"]), &res); err != nil {
		t.Fatalf("RESULT %q: %v\n%s", got["RESULT"], err, out)
	}
	if !slices.Equal(res.Tokens, want.Tokens) {
		t.Errorf("Kotlin tokens %v, Go %v", res.Tokens, want.Tokens)
	}
	if res.Text != want.Text || got["STREAMED"] != strings.ReplaceAll(want.Text, "\n", `\n`) {
		t.Errorf("Kotlin text %q, streamed %q; Go %q", res.Text, got["STREAMED"], want.Text)
	}
	var cancelled struct {
		Tokens       []int64 `json:"tokens"`
		FinishReason string  `json:"finish_reason"`
	}
	if err := json.Unmarshal([]byte(got["CANCELLED"]), &cancelled); err != nil || cancelled.FinishReason != string(snapvlm.FinishCancelled) || len(cancelled.Tokens) >= 400 {
		t.Errorf("cancelled answer %q (%v): want finish_reason cancelled before 400 tokens", got["CANCELLED"], err)
	}
	if got["VERSION"] != snapvlm.Version || got["IMAGE"] != "1 64" || got["ERROR"] != "5" || got["USAGE"] != "0" {
		t.Errorf("JVM run output:\n%s", out)
	}
}
