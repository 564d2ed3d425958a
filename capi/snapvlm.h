/*
 * snapvlm.h — the C interface of libsnapvlm: SmolVLM / SmolVLM2
 * vision-language models on ONNX Runtime, from any language that can call C.
 *
 * This header is the API. It is written by hand and kept stable: functions
 * are only ever added, never changed; SNAPVLM_ABI_VERSION counts breaking
 * changes (there has been none). Build the library with `make lib`
 * (build/lib/libsnapvlm.so and libsnapvlm.a); the header cgo generates there
 * is an implementation detail.
 *
 * Conventions
 * -----------
 * - Handles (snapvlm_model, snapvlm_image, snapvlm_cancel) are opaque
 *   pointers owned by the caller once a function hands them out; each has
 *   exactly one function that frees it.
 * - Strings in and out are NUL-terminated UTF-8. Strings the library returns
 *   through a `char **out` parameter are the caller's: free them with
 *   snapvlm_string_free(). Strings given to a callback belong to the library
 *   and are valid only until the callback returns. Strings the caller passes
 *   in are only read during the call.
 * - Every function that can fail returns a status (SNAPVLM_OK = 0, else one
 *   of the SNAPVLM_ERR_* codes) and sets a message readable with
 *   snapvlm_last_error() on the same thread. Output parameters are set only
 *   on success (and are NULL otherwise).
 * - Options and requests are JSON objects; unknown fields are an error
 *   (SNAPVLM_ERR_INVALID_ARGUMENT), so a misspelt option is never silently
 *   ignored. NULL or "" means "{}".
 * - No Go value, Go panic or C++ exception crosses this interface: an
 *   internal failure becomes SNAPVLM_ERR_INTERNAL with a message.
 *
 * Threading
 * ---------
 * - All functions may be called from any thread.
 * - One snapvlm_model serves several threads at once: snapvlm_image_encode
 *   and snapvlm_generate may run concurrently on the same model (each
 *   generation has its own cache; the ONNX Runtime sessions, tokenizer and
 *   image-feature cache are shared). Concurrent generations share the CPU
 *   cores; for one answer at a time, call from one worker thread.
 * - Callbacks (tokens, download progress) run on the thread that called the
 *   function that takes them, before that function returns. It is safe to
 *   call snapvlm_cancel_request() from a callback; calling other functions
 *   of this library from a callback is allowed except snapvlm_model_close()
 *   on the model in use.
 * - snapvlm_cancel_request() may be called from any thread at any time while
 *   the cancel handle is alive.
 * - snapvlm_model_close() may run while other threads are inside
 *   snapvlm_generate()/snapvlm_image_encode() on that model: it cancels
 *   them, waits for them to return, then frees the model. No call on the
 *   model may *start* after snapvlm_model_close() was called.
 * - snapvlm_last_error() is per thread: it describes the last failed call
 *   made on the calling thread.
 */
#ifndef SNAPVLM_H
#define SNAPVLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Breaking changes of this header since 1 (none so far). */
#define SNAPVLM_ABI_VERSION 1

/* Status codes. New codes may be added; treat unknown nonzero codes as
 * errors. */
enum {
	SNAPVLM_OK = 0,
	/* A NULL or closed handle, malformed JSON, an unknown or out-of-range
	 * option, an image handle index out of range. */
	SNAPVLM_ERR_INVALID_ARGUMENT = 1,
	/* A model directory, repo or cache entry that does not exist (a repo id
	 * that is not in the cache: pull it first). */
	SNAPVLM_ERR_NOT_FOUND = 2,
	/* The model's files are inconsistent or unsupported. */
	SNAPVLM_ERR_MODEL = 3,
	/* ONNX Runtime is missing, too old, or failed while running. */
	SNAPVLM_ERR_RUNTIME = 4,
	/* Image bytes that cannot be decoded (JPEG, PNG, GIF, WebP are read). */
	SNAPVLM_ERR_IMAGE = 5,
	/* The operation was cancelled (model manager calls; a cancelled
	 * generation is not an error: it returns SNAPVLM_OK with
	 * "finish_reason": "cancelled"). */
	SNAPVLM_ERR_CANCELLED = 6,
	/* The Hugging Face Hub cannot be reached, refused access, or offline
	 * mode forbids it. */
	SNAPVLM_ERR_NETWORK = 7,
	/* Downloaded or cached bytes do not match their checksum. */
	SNAPVLM_ERR_CHECKSUM = 8,
	/* A bug: a recovered panic or an impossible state. Please report it
	 * with the message. */
	SNAPVLM_ERR_INTERNAL = 9,
	/* Reading or writing files failed (disk full, permissions). */
	SNAPVLM_ERR_IO = 10
};

typedef struct snapvlm_model snapvlm_model;
typedef struct snapvlm_image snapvlm_image;
typedef struct snapvlm_cancel snapvlm_cancel;

/* ---- library ---------------------------------------------------------- */

/* The snapvlm version ("0.1.0-dev"). Static: do not free. */
const char *snapvlm_version(void);

/* SNAPVLM_ABI_VERSION of the library, to check against the header the
 * caller was compiled with. */
int snapvlm_abi_version(void);

/* A description of the last failed call on this thread ("" when none).
 * Valid until the next failing call on this thread; do not free. */
const char *snapvlm_last_error(void);

/* Frees a string the library returned through a `char **` parameter.
 * NULL is ignored. */
void snapvlm_string_free(char *s);

/* ---- cancellation ----------------------------------------------------- */

/* A cancel handle: pass it to snapvlm_generate() or snapvlm_models_pull()
 * and call snapvlm_cancel_request() from any thread to stop that call. Once
 * requested it stays requested (a later call given it stops at once); use a
 * new handle per operation. Returns NULL only when out of memory. */
snapvlm_cancel *snapvlm_cancel_new(void);

/* Requests cancellation. Thread-safe; may be called repeatedly. */
void snapvlm_cancel_request(snapvlm_cancel *c);

/* Frees the handle. It must not be in use by a running call. NULL is
 * ignored. */
void snapvlm_cancel_free(snapvlm_cancel *c);

/* ---- models ----------------------------------------------------------- */

/* Opens a model: `model` is a directory in the Hugging Face layout or a repo
 * id ("org/name[@revision]") already in the Hugging Face cache (see
 * snapvlm_models_pull; opening never downloads).
 *
 * options_json (all optional):
 *   "dtype": "q4"            variant of all three graphs (fp32, fp16, q4,
 *                            q4f16, int8, uint8, quantized, bnb4; default:
 *                            per graph, the fastest present, as the Go
 *                            library picks it: README, Choosing a variant)
 *   "vision_dtype", "embed_dtype", "decoder_dtype": per-graph overrides
 *   "threads": 0             ONNX Runtime intra-op threads (0 = cores)
 *   "provider": ""           execution provider ("" = CPU; "XNNPACK",
 *                            "NNAPI", "CoreML", ... when the ONNX Runtime
 *                            library was built with it)
 *   "opt_level": ""          graph optimisation: disable, basic, extended,
 *                            all ("" = all)
 *   "ort_lib": ""            path of libonnxruntime (default: as
 *                            `snapvlm setup` installs it, then the system)
 *   "vision_batch": 0        tiles per vision-encoder run (0 = 2); 1 uses
 *                            the least memory
 *   "prefill_chunk": 0       tokens per prefill run (0 = 256)
 *   "decoder_int8": false    faster, not bit-exact decoding of q4 models
 *   "parallel": 0            generations (on threads of their own) that
 *                            decode together in one batch (0, 1 = each
 *                            alone)
 *   "feature_cache_size": 0  images whose features are kept (0 = 32,
 *                            negative = none)
 *   "text_only": false       skip the vision encoder
 *   "cache_dir": ""          Hugging Face hub cache for repo ids (default
 *                            $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub)
 *
 * On success *out is a model to close with snapvlm_model_close(). */
int snapvlm_model_open(const char *model, const char *options_json, snapvlm_model **out);

/* Describes the model as JSON: {"dir", "files": {graph: path},
 * "image_seq_len", "ort_version", "load_ms"}. Free with snapvlm_string_free. */
int snapvlm_model_info(snapvlm_model *m, char **info_json);

/* Cancels every generation and encoding running on the model (from any
 * thread); they return as if their cancel handle had been requested. Calls
 * started afterwards are not affected. */
int snapvlm_model_cancel_all(snapvlm_model *m);

/* Closes the model (see Threading). NULL is ignored. */
void snapvlm_model_close(snapvlm_model *m);

/* ---- images ----------------------------------------------------------- */

/* Decodes and encodes an image (the app's processImage): the bytes of a
 * JPEG, PNG, GIF or WebP file are preprocessed and run through the vision
 * encoder now, and the features go to the model's feature cache, so a
 * snapvlm_generate() with this image skips the encoder.
 *
 * options_json (all optional):
 *   "no_split": false  one tile (e.g. 64 image tokens with the 512-px
 *                      models) instead of up to 4x4 tiles + a global view:
 *                      much faster, less detail — recommended on phones
 *   "image_size": 0    longest edge images are resized to before tiling
 *                      (0 = the model's preprocessor_config.json)
 *   "name": ""         shown in error messages
 *
 * The handle keeps a copy of the bytes and the options, so it stays usable
 * after its features leave the cache (they are then computed again) and
 * after `m` is closed (with another model). `data` is only read during the
 * call. On success *out is an image to free with snapvlm_image_free(). */
int snapvlm_image_encode(snapvlm_model *m, const uint8_t *data, size_t len, const char *options_json, snapvlm_image **out);

/* Describes how the image was tiled: {"rows", "cols", "frames",
 * "image_tokens", "no_split", "image_size", "preprocess_ms", "vision_ms",
 * "cached"}. Free with snapvlm_string_free. */
int snapvlm_image_info(snapvlm_image *img, char **info_json);

/* Frees the image. It must not be in use by a running call. NULL is
 * ignored. */
void snapvlm_image_free(snapvlm_image *img);

/* ---- generation ------------------------------------------------------- */

/* Receives the answer as it is generated: `text` is a NUL-terminated UTF-8
 * piece (never a split character) of `len` bytes, valid during the call.
 * Return 0 to continue; nonzero stops generation as a cancel would. */
typedef int (*snapvlm_token_fn)(const char *text, size_t len, void *user_data);

/* Answers a question about images (the app's generateResponse).
 *
 * request_json:
 *   "question": "..."     a user turn: all `images` (in order), then this text
 *   or "messages": [{"role": "system"|"user"|"assistant",
 *                    "content": "text" | [{"type": "text", "text": "..."},
 *                                            {"type": "image", "image": 0}]}]
 *                         ("image" indexes `images`)
 *   "max_new_tokens": 256, "temperature": 0 (greedy), "top_k", "top_p",
 *   "min_p", "repetition_penalty", "seed" (0 = random),
 *   "stop": ["..."]       strings that end the answer
 *
 * The images' "no_split"/"image_size" come from their handles (all images
 * of one request must agree). on_token may be NULL. cancel may be NULL; when
 * requested (from any thread) generation stops within one decoder step.
 *
 * On success *result_json (free with snapvlm_string_free) is
 *   {"text", "tokens": [ids], "prompt_tokens", "image_tokens", "tiles",
 *    "images": [{"rows","cols","frames","cached"}],
 *    "finish_reason": "stop"|"length"|"cancelled",
 *    "timings": {"load_ms","preprocess_ms","vision_ms","prefill_ms",
 *                "ttft_ms","decode_ms","decode_tokens_per_sec"}}
 * A cancelled generation (cancel handle, snapvlm_model_cancel_all, or
 * on_token returning nonzero) succeeds with the text so far and
 * "finish_reason": "cancelled". */
int snapvlm_generate(snapvlm_model *m, const char *request_json,
                     snapvlm_image *const *images, size_t n_images,
                     snapvlm_token_fn on_token, void *user_data,
                     snapvlm_cancel *cancel, char **result_json);

/* ---- model manager (the Hugging Face cache the snapvlm CLI uses) ------ */

/* manager options_json (all optional):
 *   "cache_dir": ""      hub cache (default as for snapvlm_model_open)
 *   "endpoint": ""       Hub URL (default $HF_ENDPOINT or https://huggingface.co)
 *   "token": ""          Hub token (default $HF_TOKEN or the token file)
 *   "offline": false     never contact the Hub
 *   "dtype": "q4"        ONNX variant to pull (all graphs)
 *   "vision_dtype", "embed_dtype", "decoder_dtype": per-graph overrides */

/* Lists cached SmolVLM models: [{"repo", "dir", "size", "revisions":
 * [{"commit", "refs", "dir", "model_type", "variants", "size", "files"}]}].
 * Sizes are bytes. */
int snapvlm_models_list(const char *options_json, char **list_json);

/* Download progress: the file being fetched, and bytes downloaded / to
 * download over the whole pull (total is -1 when unknown). Return 0 to
 * continue, nonzero to cancel the pull. */
typedef int (*snapvlm_progress_fn)(const char *file, int64_t done, int64_t total, void *user_data);

/* Downloads `spec` ("org/name[@revision]") into the cache: the configs and
 * the ONNX files of the chosen variant only; what is cached already is not
 * downloaded again, an interrupted download resumes. on_progress and cancel
 * may be NULL. A cancelled pull returns SNAPVLM_ERR_CANCELLED and keeps the
 * partial file for the next pull. On success *model_dir (free with
 * snapvlm_string_free) is the snapshot directory, usable with
 * snapvlm_model_open(). */
int snapvlm_models_pull(const char *spec, const char *options_json,
                        snapvlm_progress_fn on_progress, void *user_data,
                        snapvlm_cancel *cancel, char **model_dir);

/* Checks a cached model: every file of its snapshot is hashed and compared
 * with the checksum its cache name records (sha256 for LFS files, git blob
 * sha1 otherwise). *report_json is {"repo", "dir", "ok": bool, "files":
 * [{"path", "size", "ok", "problem"}]}; a damaged file is reported there
 * with SNAPVLM_OK (SNAPVLM_ERR_NOT_FOUND when the model is not cached). */
int snapvlm_models_verify(const char *spec, const char *options_json, char **report_json);

/* Removes "org/name" (all revisions) or "org/name@revision" from the cache. */
int snapvlm_models_remove(const char *spec, const char *options_json);

/* Disk use: {"cache_dir", "models_bytes" (all cached SmolVLM models),
 * "free_bytes" (free space on the cache's file system, -1 if unknown)}. */
int snapvlm_models_disk_usage(const char *options_json, char **usage_json);

#ifdef __cplusplus
}
#endif

#endif /* SNAPVLM_H */
