/*
 * capitest: drives libsnapvlm through snapvlm.h only, as an application
 * would. capi_test.go compiles it with the system cc (with ASan/LSan where
 * the compiler has them), links it with libsnapvlm.so and runs its modes;
 * `make test-arm64` cross-compiles it and runs it under qemu-aarch64.
 *
 *   capitest generate MODEL IMAGE QUESTION MAX_TOKENS
 *       one greedy answer with the image encoded with no_split; prints
 *       "RESULT <json>" (the Go test compares its tokens with the Go API's)
 *   capitest threads MODEL IMAGE QUESTION MAX_TOKENS N
 *       N threads generate on one model at once, decoding in one batch; prints
 *       N "RESULT" lines
 *   capitest cancel MODEL IMAGE QUESTION
 *       cancel from another thread, a handle cancelled before the call,
 *       snapvlm_model_cancel_all, a callback that stops generation, and
 *       close while a generation runs
 *   capitest cycles MODEL IMAGE N
 *       N x (open, encode, generate, free, close): run under LSan/valgrind
 *   capitest errors MODEL
 *       status codes and per-thread snapvlm_last_error of failing calls
 *   capitest manager CACHE_DIR ENDPOINT REPO
 *       pull with progress and cancel, list, verify, disk usage, remove
 *
 * Every check failure prints "FAIL ..." and exits 1. $CAPITEST_OPTIONS, when
 * set, is the options_json of every snapvlm_model_open (test-arm64 sets one
 * intra-op thread: spinning ONNX Runtime threads are costly under qemu).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snapvlm.h"

/* open_options is $CAPITEST_OPTIONS, or NULL. */
static const char *open_options(void) { return getenv("CAPITEST_OPTIONS"); }

static void fail(const char *what, int rc) {
	fprintf(stderr, "FAIL %s: status %d: %s\n", what, rc, snapvlm_last_error());
	exit(1);
}

#define CHECK(call)                     \
	do {                            \
		int rc_ = (call);       \
		if (rc_ != SNAPVLM_OK)  \
			fail(#call, rc_); \
	} while (0)

#define EXPECT(cond, ...)                                  \
	do {                                               \
		if (!(cond)) {                             \
			fprintf(stderr, "FAIL %s: ", #cond); \
			fprintf(stderr, __VA_ARGS__);      \
			fprintf(stderr, "\n");             \
			exit(1);                           \
		}                                          \
	} while (0)

static uint8_t *read_file(const char *path, size_t *len) {
	FILE *f = fopen(path, "rb");
	EXPECT(f != NULL, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *buf = malloc((size_t)n);
	EXPECT(buf != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n, "cannot read %s", path);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* A growing string the token callback appends to, with the thread it ran on. */
struct sink {
	char *text;
	size_t len, cap;
	int calls;
	pthread_t caller;
	int wrong_thread;
	/* cancel mode: signalled at the first token; stop_after > 0 returns
	 * nonzero at that call. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int started;
	int stop_after;
};

static void sink_init(struct sink *s) {
	memset(s, 0, sizeof *s);
	s->caller = pthread_self();
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
}

static void sink_free(struct sink *s) {
	free(s->text);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
}

static int on_token(const char *text, size_t len, void *user) {
	struct sink *s = user;
	if (!pthread_equal(pthread_self(), s->caller))
		s->wrong_thread = 1;
	if (strlen(text) != len)
		s->wrong_thread = 2; /* reported as a length mismatch below */
	if (s->len + len + 1 > s->cap) {
		s->cap = (s->len + len + 1) * 2;
		s->text = realloc(s->text, s->cap);
	}
	memcpy(s->text + s->len, text, len);
	s->len += len;
	s->text[s->len] = '\0';
	s->calls++;
	pthread_mutex_lock(&s->mu);
	s->started = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return s->stop_after > 0 && s->calls >= s->stop_after;
}

static void check_sink(struct sink *s) {
	EXPECT(s->wrong_thread != 1, "the token callback ran on another thread than the caller's");
	EXPECT(s->wrong_thread != 2, "the token callback's len differs from strlen(text)");
}

/* json_string finds "key":"value" in a flat result and returns a copy of
 * the raw (still escaped) value; enough for the checks here. */
static char *json_field(const char *json, const char *key) {
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = strstr(json, pat);
	if (p == NULL)
		return NULL;
	p += strlen(pat);
	const char *end;
	if (*p == '"') {
		p++;
		for (end = p; *end && !(*end == '"' && end[-1] != '\\'); end++) {
		}
	} else if (*p == '[') {
		end = strchr(p, ']') + 1;
	} else {
		for (end = p; *end && *end != ',' && *end != '}'; end++) {
		}
	}
	char *out = malloc((size_t)(end - p) + 1);
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
	return out;
}

static int count_tokens(const char *result) {
	char *toks = json_field(result, "tokens");
	int n = 0;
	if (toks != NULL && strcmp(toks, "[]") != 0) {
		n = 1;
		for (char *c = toks; *c; c++)
			n += *c == ',';
	}
	free(toks);
	return n;
}

static void expect_finish(const char *result, const char *want) {
	char *got = json_field(result, "finish_reason");
	EXPECT(got != NULL && strcmp(got, want) == 0, "finish_reason %s, want %s (result %s)", got ? got : "(none)", want, result);
	free(got);
}

static snapvlm_image *encode(snapvlm_model *m, const uint8_t *img, size_t len) {
	snapvlm_image *im = NULL;
	CHECK(snapvlm_image_encode(m, img, len, "{\"no_split\": true, \"name\": \"capitest image\"}", &im));
	return im;
}

static char *request_json(const char *question, int max_tokens) {
	char *req = malloc(strlen(question) + 128);
	/* The questions used by the tests need no JSON escaping. */
	sprintf(req, "{\"question\": \"%s\", \"max_new_tokens\": %d}", question, max_tokens);
	return req;
}

static int mode_generate(char **argv) {
	size_t len;
	uint8_t *img = read_file(argv[1], &len);
	snapvlm_model *m = NULL;
	CHECK(snapvlm_model_open(argv[0], open_options(), &m));
	snapvlm_image *im = encode(m, img, len);
	char *info = NULL;
	CHECK(snapvlm_image_info(im, &info));
	printf("IMAGE %s\n", info);
	snapvlm_string_free(info);
	char *req = request_json(argv[2], atoi(argv[3]));
	struct sink s;
	sink_init(&s);
	char *res = NULL;
	CHECK(snapvlm_generate(m, req, &im, 1, on_token, &s, NULL, &res));
	check_sink(&s);
	printf("RESULT %s\n", res);
	/* The streamed pieces, hex-encoded: the Go test compares them with the
	 * result's text byte for byte. */
	printf("STREAMED ");
	for (size_t i = 0; i < s.len; i++)
		printf("%02x", (unsigned char)s.text[i]);
	printf("\n");
	snapvlm_string_free(res);
	sink_free(&s);
	free(req);
	snapvlm_image_free(im);
	snapvlm_model_close(m);
	free(img);
	return 0;
}

struct job {
	snapvlm_model *m;
	snapvlm_image *im;
	const char *req;
	char *result;
	int rc;
	char err[512];
	struct sink s;
};

static void *run_job(void *arg) {
	struct job *j = arg;
	sink_init(&j->s);
	j->rc = snapvlm_generate(j->m, j->req, &j->im, 1, on_token, &j->s, NULL, &j->result);
	if (j->rc != SNAPVLM_OK)
		snprintf(j->err, sizeof j->err, "%s", snapvlm_last_error());
	return NULL;
}

static int mode_threads(char **argv) {
	size_t len;
	uint8_t *img = read_file(argv[1], &len);
	int n = atoi(argv[4]);
	snapvlm_model *m = NULL;
	CHECK(snapvlm_model_open(argv[0], "{\"threads\": 1, \"parallel\": 4}", &m));
	snapvlm_image *im = encode(m, img, len);
	char *req = request_json(argv[2], atoi(argv[3]));
	struct job *jobs = calloc((size_t)n, sizeof *jobs);
	pthread_t *th = calloc((size_t)n, sizeof *th);
	for (int i = 0; i < n; i++) {
		jobs[i] = (struct job){.m = m, .im = im, .req = req};
		EXPECT(pthread_create(&th[i], NULL, run_job, &jobs[i]) == 0, "pthread_create");
	}
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		EXPECT(jobs[i].rc == SNAPVLM_OK, "thread %d: status %d: %s", i, jobs[i].rc, jobs[i].err);
		check_sink(&jobs[i].s);
		printf("RESULT %s\n", jobs[i].result);
		snapvlm_string_free(jobs[i].result);
		sink_free(&jobs[i].s);
	}
	free(jobs);
	free(th);
	free(req);
	snapvlm_image_free(im);
	snapvlm_model_close(m);
	free(img);
	return 0;
}

struct canceller {
	struct sink *s;
	snapvlm_cancel *c;
	snapvlm_model *m; /* cancel_all when set */
	int close;        /* close m instead */
};

/* Waits for the first token of the watched generation, then cancels it. */
static void *cancel_later(void *arg) {
	struct canceller *c = arg;
	pthread_mutex_lock(&c->s->mu);
	while (!c->s->started)
		pthread_cond_wait(&c->s->cv, &c->s->mu);
	pthread_mutex_unlock(&c->s->mu);
	if (c->close)
		snapvlm_model_close(c->m);
	else if (c->m != NULL)
		CHECK(snapvlm_model_cancel_all(c->m));
	else
		snapvlm_cancel_request(c->c);
	return NULL;
}

/* slow_token makes each token take a millisecond, so a cancel arrives while
 * the generation is still running even on a fast machine. */
static int slow_token(const char *text, size_t len, void *user) {
	struct timespec ts = {0, 1000000};
	nanosleep(&ts, NULL);
	return on_token(text, len, user);
}

static int mode_cancel(char **argv) {
	size_t len;
	uint8_t *img = read_file(argv[1], &len);
	const int max = 400;
	char *req = request_json(argv[2], max);
	snapvlm_model *m = NULL;
	CHECK(snapvlm_model_open(argv[0], open_options(), &m));
	snapvlm_image *im = encode(m, img, len);

	/* 1: snapvlm_cancel_request from another thread. 2: snapvlm_model_cancel_all. */
	for (int variant = 0; variant < 2; variant++) {
		struct sink s;
		sink_init(&s);
		snapvlm_cancel *c = snapvlm_cancel_new();
		struct canceller cl = {.s = &s, .c = c, .m = variant == 1 ? m : NULL};
		pthread_t th;
		pthread_create(&th, NULL, cancel_later, &cl);
		char *res = NULL;
		CHECK(snapvlm_generate(m, req, &im, 1, slow_token, &s, c, &res));
		pthread_join(th, NULL);
		check_sink(&s);
		expect_finish(res, "cancelled");
		int n = count_tokens(res);
		EXPECT(n >= 1 && n < max, "cancelled generation has %d tokens (max %d)", n, max);
		printf("CANCELLED variant %d after %d tokens\n", variant, n);
		snapvlm_string_free(res);
		snapvlm_cancel_free(c);
		sink_free(&s);
	}

	/* 3: a handle requested before the call stops it at once. */
	{
		snapvlm_cancel *c = snapvlm_cancel_new();
		snapvlm_cancel_request(c);
		char *res = NULL;
		CHECK(snapvlm_generate(m, req, &im, 1, NULL, NULL, c, &res));
		expect_finish(res, "cancelled");
		EXPECT(count_tokens(res) <= 1, "pre-cancelled generation made tokens: %s", res);
		snapvlm_string_free(res);
		snapvlm_cancel_free(c);
	}

	/* 4: the callback stops generation by returning nonzero at its 3rd call. */
	{
		struct sink s;
		sink_init(&s);
		s.stop_after = 3;
		char *res = NULL;
		CHECK(snapvlm_generate(m, req, &im, 1, on_token, &s, NULL, &res));
		expect_finish(res, "cancelled");
		EXPECT(s.calls == 3, "the callback was called %d times after asking to stop at 3", s.calls);
		snapvlm_string_free(res);
		sink_free(&s);
	}

	/* 5: the model still answers after all that. */
	{
		char *res = NULL;
		char *short_req = request_json(argv[2], 4);
		CHECK(snapvlm_generate(m, short_req, &im, 1, NULL, NULL, NULL, &res));
		EXPECT(count_tokens(res) >= 1, "no tokens after cancellations: %s", res);
		snapvlm_string_free(res);
		free(short_req);
	}

	/* 6: snapvlm_model_close from another thread while generating: the
	 * generation returns cancelled, then the model is freed. */
	{
		struct sink s;
		sink_init(&s);
		struct canceller cl = {.s = &s, .m = m, .close = 1};
		pthread_t th;
		pthread_create(&th, NULL, cancel_later, &cl);
		char *res = NULL;
		CHECK(snapvlm_generate(m, req, &im, 1, slow_token, &s, NULL, &res));
		expect_finish(res, "cancelled");
		snapvlm_string_free(res);
		pthread_join(th, NULL);
		sink_free(&s);
	}
	snapvlm_image_free(im);
	free(req);
	free(img);
	return 0;
}

static int mode_cycles(char **argv) {
	size_t len;
	uint8_t *img = read_file(argv[1], &len);
	int n = atoi(argv[2]);
	char *req = request_json("What is in this picture?", 3);
	/* One intra-op thread: ONNX Runtime's thread-pool set-up would
	 * otherwise dominate the time of a cycle. */
	const char *opts = open_options() ? open_options() : "{\"threads\": 1}";
	for (int i = 0; i < n; i++) {
		snapvlm_model *m = NULL;
		CHECK(snapvlm_model_open(argv[0], opts, &m));
		snapvlm_image *im = encode(m, img, len);
		char *res = NULL;
		struct sink s;
		sink_init(&s);
		CHECK(snapvlm_generate(m, req, &im, 1, on_token, &s, NULL, &res));
		snapvlm_string_free(res);
		sink_free(&s);
		snapvlm_image_free(im);
		snapvlm_model_close(m);
	}
	printf("CYCLES %d\n", n);
	free(req);
	free(img);
	return 0;
}

static void *error_elsewhere(void *arg) {
	(void)arg;
	/* A fresh thread has no error, whatever other threads did. */
	EXPECT(strcmp(snapvlm_last_error(), "") == 0, "a new thread sees another thread's error: %s", snapvlm_last_error());
	snapvlm_model *m = NULL;
	EXPECT(snapvlm_model_open("/nonexistent/model", NULL, &m) == SNAPVLM_ERR_NOT_FOUND, "missing dir: %s", snapvlm_last_error());
	return NULL;
}

static int mode_errors(char **argv) {
	snapvlm_model *m = (snapvlm_model *)1; /* must be reset to NULL */
	static const struct {
		const char *model, *options;
		int want;
	} opens[] = {
		{"/nonexistent/model", NULL, SNAPVLM_ERR_NOT_FOUND},
		{"no-such-org/no-such-model", "{\"cache_dir\": \"/nonexistent/cache\"}", SNAPVLM_ERR_NOT_FOUND},
		{NULL, NULL, SNAPVLM_ERR_INVALID_ARGUMENT},
		{"MODEL", "{\"dtipe\": \"q4\"}", SNAPVLM_ERR_INVALID_ARGUMENT},
		{"MODEL", "{\"threads\": -1}", SNAPVLM_ERR_INVALID_ARGUMENT},
		{"MODEL", "not json", SNAPVLM_ERR_INVALID_ARGUMENT},
		{"MODEL", "{\"dtype\": \"q7\"}", SNAPVLM_ERR_INVALID_ARGUMENT},
	};
	for (size_t i = 0; i < sizeof opens / sizeof opens[0]; i++) {
		const char *model = opens[i].model && strcmp(opens[i].model, "MODEL") == 0 ? argv[0] : opens[i].model;
		int rc = snapvlm_model_open(model, opens[i].options, &m);
		EXPECT(rc == opens[i].want, "open case %zu: status %d, want %d (%s)", i, rc, opens[i].want, snapvlm_last_error());
		EXPECT(m == NULL, "open case %zu: out not NULL on failure", i);
		EXPECT(strlen(snapvlm_last_error()) > 0, "open case %zu: no message", i);
		printf("ERROR open %zu: %d %s\n", i, rc, snapvlm_last_error());
	}
	pthread_t th;
	pthread_create(&th, NULL, error_elsewhere, NULL);
	pthread_join(th, NULL);

	CHECK(snapvlm_model_open(argv[0], open_options(), &m));
	EXPECT(strcmp(snapvlm_last_error(), "") == 0, "a successful call left an error: %s", snapvlm_last_error());
	snapvlm_image *im = NULL;
	const uint8_t junk[] = "this is not an image";
	EXPECT(snapvlm_image_encode(m, junk, sizeof junk, NULL, &im) == SNAPVLM_ERR_IMAGE, "junk image: %s", snapvlm_last_error());
	EXPECT(im == NULL, "image out not NULL on failure");
	EXPECT(snapvlm_image_encode(m, NULL, 0, NULL, &im) == SNAPVLM_ERR_INVALID_ARGUMENT, "no bytes");
	EXPECT(snapvlm_image_encode(NULL, junk, sizeof junk, NULL, &im) == SNAPVLM_ERR_INVALID_ARGUMENT, "NULL model");
	char *res = (char *)1;
	static const char *bad_requests[] = {
		"{}",
		"{\"question\": \"hi\", \"messages\": []}",
		"{\"question\": \"hi\", \"max_new_tokens\": -1}",
		"{\"question\": \"hi\", \"temprature\": 1}",
		"{\"messages\": [{\"role\": \"robot\", \"content\": \"hi\"}]}",
		"{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image\", \"image\": 3}]}]}",
		"{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"video\"}]}]}",
	};
	for (size_t i = 0; i < sizeof bad_requests / sizeof bad_requests[0]; i++) {
		int rc = snapvlm_generate(m, bad_requests[i], NULL, 0, NULL, NULL, NULL, &res);
		EXPECT(rc == SNAPVLM_ERR_INVALID_ARGUMENT, "request %zu: status %d (%s)", i, rc, snapvlm_last_error());
		EXPECT(res == NULL, "request %zu: result not NULL on failure", i);
		printf("ERROR request %zu: %s\n", i, snapvlm_last_error());
	}
	EXPECT(snapvlm_generate(m, "{\"question\": \"hi\"}", NULL, 2, NULL, NULL, NULL, &res) == SNAPVLM_ERR_INVALID_ARGUMENT, "NULL images with n 2");
	EXPECT(snapvlm_generate(m, "{\"question\": \"hi\"}", NULL, 0, NULL, NULL, NULL, NULL) == SNAPVLM_ERR_INVALID_ARGUMENT, "NULL result");
	/* A text-only question works. */
	CHECK(snapvlm_generate(m, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_new_tokens\": 2}", NULL, 0, NULL, NULL, NULL, &res));
	snapvlm_string_free(res);
	char *info = NULL;
	CHECK(snapvlm_model_info(m, &info));
	printf("INFO %s\n", info);
	snapvlm_string_free(info);
	snapvlm_model_close(m);
	snapvlm_model_close(NULL);
	snapvlm_image_free(NULL);
	snapvlm_cancel_free(NULL);
	snapvlm_string_free(NULL);
	EXPECT(snapvlm_abi_version() == SNAPVLM_ABI_VERSION, "abi %d, header %d", snapvlm_abi_version(), SNAPVLM_ABI_VERSION);
	printf("VERSION %s\n", snapvlm_version());
	return 0;
}

struct progress {
	int calls;
	int64_t last, total;
	int stop_at; /* nonzero: return 1 at this call */
	pthread_t caller;
	int wrong_thread;
};

static int on_progress(const char *file, int64_t done, int64_t total, void *user) {
	struct progress *p = user;
	if (!pthread_equal(pthread_self(), p->caller))
		p->wrong_thread = 1;
	EXPECT(file != NULL && file[0] != '\0', "progress without a file name");
	p->calls++;
	p->last = done;
	p->total = total;
	return p->stop_at > 0 && p->calls >= p->stop_at;
}

static int mode_manager(char **argv) {
	char opts[1024];
	snprintf(opts, sizeof opts, "{\"cache_dir\": \"%s\", \"endpoint\": \"%s\"}", argv[0], argv[1]);
	const char *repo = argv[2];
	char *out = NULL;

	/* A pull cancelled from its progress callback. */
	struct progress p = {.stop_at = 2, .caller = pthread_self()};
	int rc = snapvlm_models_pull(repo, opts, on_progress, &p, NULL, &out);
	EXPECT(rc == SNAPVLM_ERR_CANCELLED, "cancelled pull: status %d (%s)", rc, snapvlm_last_error());
	EXPECT(out == NULL, "cancelled pull set model_dir");

	/* A pull with a cancel handle requested before: cancelled at once. */
	snapvlm_cancel *c = snapvlm_cancel_new();
	snapvlm_cancel_request(c);
	rc = snapvlm_models_pull(repo, opts, NULL, NULL, c, &out);
	EXPECT(rc == SNAPVLM_ERR_CANCELLED, "pre-cancelled pull: status %d (%s)", rc, snapvlm_last_error());
	snapvlm_cancel_free(c);

	/* The full pull (resuming what the cancelled one left). */
	p = (struct progress){.caller = pthread_self()};
	CHECK(snapvlm_models_pull(repo, opts, on_progress, &p, NULL, &out));
	EXPECT(!p.wrong_thread, "the progress callback ran on another thread");
	EXPECT(p.calls > 0 && p.total > 0 && p.last == p.total, "progress ended at %lld of %lld after %d calls",
	       (long long)p.last, (long long)p.total, p.calls);
	printf("PULLED %s (%d progress calls, %lld bytes)\n", out, p.calls, (long long)p.total);

	/* The pulled model opens by repo id. */
	snapvlm_model *m = NULL;
	char mopts[1024];
	snprintf(mopts, sizeof mopts, "{\"cache_dir\": \"%s\"}", argv[0]);
	CHECK(snapvlm_model_open(repo, mopts, &m));
	snapvlm_model_close(m);
	snapvlm_string_free(out);

	char *list = NULL;
	CHECK(snapvlm_models_list(opts, &list));
	EXPECT(strstr(list, repo) != NULL, "list lacks %s: %s", repo, list);
	printf("LIST %s\n", list);
	snapvlm_string_free(list);

	char *report = NULL;
	CHECK(snapvlm_models_verify(repo, opts, &report));
	printf("VERIFY %s\n", report);
	snapvlm_string_free(report);

	char *usage = NULL;
	CHECK(snapvlm_models_disk_usage(opts, &usage));
	printf("USAGE %s\n", usage);
	snapvlm_string_free(usage);
	return 0;
}

/* capitest verify/remove CACHE_DIR ENDPOINT REPO: single manager calls the
 * Go test runs around its own changes to the cache. */
static int mode_verify(char **argv) {
	char opts[1024];
	snprintf(opts, sizeof opts, "{\"cache_dir\": \"%s\", \"endpoint\": \"%s\"}", argv[0], argv[1]);
	char *report = NULL;
	CHECK(snapvlm_models_verify(argv[2], opts, &report));
	printf("VERIFY %s\n", report);
	snapvlm_string_free(report);
	return 0;
}

static int mode_remove(char **argv) {
	char opts[1024];
	snprintf(opts, sizeof opts, "{\"cache_dir\": \"%s\", \"endpoint\": \"%s\"}", argv[0], argv[1]);
	CHECK(snapvlm_models_remove(argv[2], opts));
	int rc = snapvlm_models_remove(argv[2], opts);
	EXPECT(rc == SNAPVLM_ERR_NOT_FOUND, "second remove: status %d (%s)", rc, snapvlm_last_error());
	char *report = NULL;
	rc = snapvlm_models_verify(argv[2], opts, &report);
	EXPECT(rc == SNAPVLM_ERR_NOT_FOUND && report == NULL, "verify after remove: status %d", rc);
	char *usage = NULL;
	CHECK(snapvlm_models_disk_usage(opts, &usage));
	printf("USAGE %s\n", usage);
	snapvlm_string_free(usage);
	return 0;
}

int main(int argc, char **argv) {
	static const struct {
		const char *name;
		int args;
		int (*run)(char **);
	} modes[] = {
		{"generate", 4, mode_generate}, {"threads", 5, mode_threads}, {"cancel", 3, mode_cancel},
		{"cycles", 3, mode_cycles},     {"errors", 1, mode_errors},   {"manager", 3, mode_manager},
		{"verify", 3, mode_verify},     {"remove", 3, mode_remove},
	};
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; argc > 1 && i < sizeof modes / sizeof modes[0]; i++) {
		if (strcmp(argv[1], modes[i].name) == 0) {
			if (argc - 2 != modes[i].args) {
				fprintf(stderr, "capitest %s: want %d arguments\n", argv[1], modes[i].args);
				return 2;
			}
			return modes[i].run(argv + 2);
		}
	}
	fprintf(stderr, "usage: capitest generate|threads|cancel|cycles|errors|manager|verify|remove ARGS...\n");
	return 2;
}
