/* The parts of libsnapvlm that are plain C: the per-thread error message and
 * calls through the caller's function pointers (Go cannot call a C function
 * pointer directly). */
#include <pthread.h>
#include <string.h>
#include "capi.h"

static pthread_key_t err_key;
static pthread_once_t err_once = PTHREAD_ONCE_INIT;

static void err_init(void) { pthread_key_create(&err_key, free); }

/* snapvlm_set_last_error copies msg (NULL clears) into this thread's slot;
 * the copy is freed by the next call or when the thread exits. */
void snapvlm_set_last_error(const char *msg) {
	pthread_once(&err_once, err_init);
	char *old = pthread_getspecific(err_key);
	char *copy = NULL;
	if (msg != NULL && msg[0] != '\0') {
		size_t n = strlen(msg);
		copy = malloc(n + 1);
		if (copy != NULL) {
			memcpy(copy, msg, n + 1);
		}
	}
	pthread_setspecific(err_key, copy);
	free(old);
}

const char *snapvlm_last_error(void) {
	pthread_once(&err_once, err_init);
	const char *s = pthread_getspecific(err_key);
	return s != NULL ? s : "";
}

int snapvlm_call_token(snapvlm_token_fn fn, const char *text, size_t len, void *user_data) {
	return fn(text, len, user_data);
}

int snapvlm_call_progress(snapvlm_progress_fn fn, const char *file, int64_t done, int64_t total, void *user_data) {
	return fn(file, done, total, user_data);
}

/* The version string lives in static storage (not malloc'd memory only Go
 * points to); Go fills it once. */
static char version[64];

const char *snapvlm_store_version(const char *v) {
	if (version[0] == '\0') {
		strncpy(version, v, sizeof version - 1);
	}
	return version;
}
