/* Private to libsnapvlm's implementation: the handle layouts and the C
 * helpers the Go code calls. Not installed; the API is snapvlm.h. */
#ifndef SNAPVLM_CAPI_H
#define SNAPVLM_CAPI_H

#include <stdint.h>
#include <stdlib.h>
#include "snapvlm.h"

/* Handles are small C blocks holding a runtime/cgo.Handle of the Go object,
 * so C holds no Go pointer. */
struct snapvlm_model { uintptr_t h; };
struct snapvlm_image { uintptr_t h; };
struct snapvlm_cancel { uintptr_t h; };

/* Aliases with the const qualifiers of snapvlm.h: cgo writes exported
 * prototypes with the type names the Go code uses, and these keep them
 * compatible with the hand-written header. */
typedef const char snapvlm_cchar;
typedef const uint8_t snapvlm_cbyte;
typedef snapvlm_image *const snapvlm_image_cptr;

/* capi.c; hidden: not part of the library's exported symbols. */
#define SNAPVLM_INTERNAL __attribute__((visibility("hidden")))
SNAPVLM_INTERNAL void snapvlm_set_last_error(const char *msg);
SNAPVLM_INTERNAL int snapvlm_call_token(snapvlm_token_fn fn, const char *text, size_t len, void *user_data);
SNAPVLM_INTERNAL const char *snapvlm_store_version(const char *v);
SNAPVLM_INTERNAL int snapvlm_call_progress(snapvlm_progress_fn fn, const char *file, int64_t done, int64_t total, void *user_data);

#endif
