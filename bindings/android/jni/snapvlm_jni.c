/*
 * snapvlm_jni.c — the JNI glue between the Kotlin class
 * org.snapvlm.android.SnapVLMNative and libsnapvlm (snapvlm.h).
 *
 * Built into libsnapvlm_jni.so next to libsnapvlm.so and libonnxruntime.so
 * in the APK (docs/android.md). Strings cross as UTF-8 byte arrays, not
 * through NewStringUTF/GetStringUTFChars, whose "modified UTF-8" mangles
 * characters outside the BMP (emoji): Kotlin encodes and decodes them.
 *
 * Handles are jlong values of the C pointers. Errors become a
 * org.snapvlm.android.SnapVLMException(code, message). Callbacks from the
 * library run on the calling thread (snapvlm.h guarantees it), so the
 * JNIEnv of the call is valid inside them.
 */
#include <jni.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snapvlm.h"

#define CLASS(name) "org/snapvlm/android/" name
#define JNI(name) Java_org_snapvlm_android_SnapVLMNative_##name

/* throw_status raises SnapVLMException(code, snapvlm_last_error()). */
static void throw_status(JNIEnv *env, int code) {
	jclass cls = (*env)->FindClass(env, CLASS("SnapVLMException"));
	if (cls == NULL)
		return; /* NoClassDefFoundError is pending */
	jmethodID ctor = (*env)->GetMethodID(env, cls, "<init>", "(I[B)V");
	if (ctor == NULL)
		return;
	const char *msg = snapvlm_last_error();
	jsize n = (jsize)strlen(msg);
	jbyteArray bytes = (*env)->NewByteArray(env, n);
	if (bytes == NULL)
		return;
	(*env)->SetByteArrayRegion(env, bytes, 0, n, (const jbyte *)msg);
	jobject ex = (*env)->NewObject(env, cls, ctor, (jint)code, bytes);
	if (ex != NULL)
		(*env)->Throw(env, (jthrowable)ex);
}

static void throw_oom(JNIEnv *env) {
	jclass cls = (*env)->FindClass(env, "java/lang/OutOfMemoryError");
	if (cls != NULL)
		(*env)->ThrowNew(env, cls, "snapvlm_jni: out of memory");
}

/* cstr copies a UTF-8 byte array into a NUL-terminated C string (NULL for a
 * null array); free with free(). NULL with an exception pending when out of
 * memory. */
static char *cstr(JNIEnv *env, jbyteArray a, int *failed) {
	*failed = 0;
	if (a == NULL)
		return NULL;
	jsize n = (*env)->GetArrayLength(env, a);
	char *s = malloc((size_t)n + 1);
	if (s == NULL) {
		throw_oom(env);
		*failed = 1;
		return NULL;
	}
	(*env)->GetByteArrayRegion(env, a, 0, n, (jbyte *)s);
	s[n] = '\0';
	return s;
}

/* bytes_of hands a C string to Java as a byte array. */
static jbyteArray bytes_of(JNIEnv *env, const char *s, size_t n) {
	jbyteArray a = (*env)->NewByteArray(env, (jsize)n);
	if (a != NULL)
		(*env)->SetByteArrayRegion(env, a, 0, (jsize)n, (const jbyte *)s);
	return a;
}

/* take_string hands a library-owned string to Java and frees it. */
static jbyteArray take_string(JNIEnv *env, char *s) {
	jbyteArray a = bytes_of(env, s, strlen(s));
	snapvlm_string_free(s);
	return a;
}

JNIEXPORT jbyteArray JNICALL JNI(version)(JNIEnv *env, jclass cls) {
	(void)cls;
	const char *v = snapvlm_version();
	return bytes_of(env, v, strlen(v));
}

JNIEXPORT jint JNICALL JNI(abiVersion)(JNIEnv *env, jclass cls) {
	(void)env;
	(void)cls;
	return snapvlm_abi_version();
}

JNIEXPORT jlong JNICALL JNI(open)(JNIEnv *env, jclass cls, jbyteArray model, jbyteArray options) {
	(void)cls;
	int f1, f2;
	char *m = cstr(env, model, &f1);
	char *o = cstr(env, options, &f2);
	snapvlm_model *out = NULL;
	if (!f1 && !f2) {
		int rc = snapvlm_model_open(m, o, &out);
		if (rc != SNAPVLM_OK)
			throw_status(env, rc);
	}
	free(m);
	free(o);
	return (jlong)(intptr_t)out;
}

JNIEXPORT jbyteArray JNICALL JNI(info)(JNIEnv *env, jclass cls, jlong model) {
	(void)cls;
	char *out = NULL;
	int rc = snapvlm_model_info((snapvlm_model *)(intptr_t)model, &out);
	if (rc != SNAPVLM_OK) {
		throw_status(env, rc);
		return NULL;
	}
	return take_string(env, out);
}

JNIEXPORT void JNICALL JNI(cancelAll)(JNIEnv *env, jclass cls, jlong model) {
	(void)cls;
	int rc = snapvlm_model_cancel_all((snapvlm_model *)(intptr_t)model);
	if (rc != SNAPVLM_OK)
		throw_status(env, rc);
}

JNIEXPORT void JNICALL JNI(close)(JNIEnv *env, jclass cls, jlong model) {
	(void)env;
	(void)cls;
	snapvlm_model_close((snapvlm_model *)(intptr_t)model);
}

JNIEXPORT jlong JNICALL JNI(encodeImage)(JNIEnv *env, jclass cls, jlong model, jbyteArray data, jbyteArray options) {
	(void)cls;
	if (data == NULL) {
		snapvlm_image *none = NULL;
		throw_status(env, snapvlm_image_encode((snapvlm_model *)(intptr_t)model, NULL, 0, NULL, &none));
		return 0;
	}
	int failed;
	char *o = cstr(env, options, &failed);
	if (failed)
		return 0;
	jsize n = (*env)->GetArrayLength(env, data);
	jbyte *bytes = (*env)->GetByteArrayElements(env, data, NULL);
	if (bytes == NULL) {
		free(o);
		return 0; /* OutOfMemoryError pending */
	}
	snapvlm_image *img = NULL;
	int rc = snapvlm_image_encode((snapvlm_model *)(intptr_t)model, (const uint8_t *)bytes, (size_t)n, o, &img);
	(*env)->ReleaseByteArrayElements(env, data, bytes, JNI_ABORT);
	free(o);
	if (rc != SNAPVLM_OK)
		throw_status(env, rc);
	return (jlong)(intptr_t)img;
}

JNIEXPORT jbyteArray JNICALL JNI(imageInfo)(JNIEnv *env, jclass cls, jlong image) {
	(void)cls;
	char *out = NULL;
	int rc = snapvlm_image_info((snapvlm_image *)(intptr_t)image, &out);
	if (rc != SNAPVLM_OK) {
		throw_status(env, rc);
		return NULL;
	}
	return take_string(env, out);
}

JNIEXPORT void JNICALL JNI(freeImage)(JNIEnv *env, jclass cls, jlong image) {
	(void)env;
	(void)cls;
	snapvlm_image_free((snapvlm_image *)(intptr_t)image);
}

JNIEXPORT jlong JNICALL JNI(newCancel)(JNIEnv *env, jclass cls) {
	(void)cls;
	snapvlm_cancel *c = snapvlm_cancel_new();
	if (c == NULL)
		throw_oom(env);
	return (jlong)(intptr_t)c;
}

JNIEXPORT void JNICALL JNI(cancel)(JNIEnv *env, jclass cls, jlong c) {
	(void)env;
	(void)cls;
	snapvlm_cancel_request((snapvlm_cancel *)(intptr_t)c);
}

JNIEXPORT void JNICALL JNI(freeCancel)(JNIEnv *env, jclass cls, jlong c) {
	(void)env;
	(void)cls;
	snapvlm_cancel_free((snapvlm_cancel *)(intptr_t)c);
}

/* listener is the user data of the token and progress callbacks: a Kotlin
 * object and its method, called on the thread of the JNI call. */
struct listener {
	JNIEnv *env;
	jobject obj;
	jmethodID method;
};

/* on_token calls TokenListener.onToken(ByteArray): Boolean; false or an
 * exception stops generation (the exception is rethrown to Kotlin when the
 * call returns). */
static int on_token(const char *text, size_t len, void *user) {
	struct listener *l = user;
	JNIEnv *env = l->env;
	if ((*env)->ExceptionCheck(env))
		return 1;
	jbyteArray piece = bytes_of(env, text, len);
	if (piece == NULL)
		return 1;
	jboolean more = (*env)->CallBooleanMethod(env, l->obj, l->method, piece);
	(*env)->DeleteLocalRef(env, piece);
	return (*env)->ExceptionCheck(env) || !more;
}

JNIEXPORT jbyteArray JNICALL JNI(generate)(JNIEnv *env, jclass cls, jlong model, jbyteArray request, jlongArray images,
                                           jobject listener, jlong cancel) {
	(void)cls;
	int failed;
	char *req = cstr(env, request, &failed);
	if (failed)
		return NULL;
	jsize n = images != NULL ? (*env)->GetArrayLength(env, images) : 0;
	snapvlm_image **imgs = NULL;
	if (n > 0) {
		imgs = calloc((size_t)n, sizeof *imgs);
		jlong *ids = imgs != NULL ? (*env)->GetLongArrayElements(env, images, NULL) : NULL;
		if (ids == NULL) {
			free(imgs);
			free(req);
			if (!(*env)->ExceptionCheck(env))
				throw_oom(env);
			return NULL;
		}
		for (jsize i = 0; i < n; i++)
			imgs[i] = (snapvlm_image *)(intptr_t)ids[i];
		(*env)->ReleaseLongArrayElements(env, images, ids, JNI_ABORT);
	}
	struct listener l = {env, listener, NULL};
	if (listener != NULL) {
		jclass lc = (*env)->GetObjectClass(env, listener);
		l.method = (*env)->GetMethodID(env, lc, "onToken", "([B)Z");
		if (l.method == NULL) {
			free(imgs);
			free(req);
			return NULL; /* NoSuchMethodError pending */
		}
	}
	char *out = NULL;
	int rc = snapvlm_generate((snapvlm_model *)(intptr_t)model, req, (snapvlm_image *const *)imgs, (size_t)n,
	                          listener != NULL ? on_token : NULL, &l, (snapvlm_cancel *)(intptr_t)cancel, &out);
	free(imgs);
	free(req);
	if (rc != SNAPVLM_OK) {
		if (!(*env)->ExceptionCheck(env))
			throw_status(env, rc);
		return NULL;
	}
	if ((*env)->ExceptionCheck(env)) {
		snapvlm_string_free(out); /* the listener threw: Kotlin sees that */
		return NULL;
	}
	return take_string(env, out);
}

/* on_progress calls ProgressListener.onProgress(ByteArray, Long, Long):
 * Boolean; false or an exception cancels the pull. */
static int on_progress(const char *file, int64_t done, int64_t total, void *user) {
	struct listener *l = user;
	JNIEnv *env = l->env;
	if ((*env)->ExceptionCheck(env))
		return 1;
	jbyteArray name = bytes_of(env, file, strlen(file));
	if (name == NULL)
		return 1;
	jboolean more = (*env)->CallBooleanMethod(env, l->obj, l->method, name, (jlong)done, (jlong)total);
	(*env)->DeleteLocalRef(env, name);
	return (*env)->ExceptionCheck(env) || !more;
}

JNIEXPORT jbyteArray JNICALL JNI(modelsPull)(JNIEnv *env, jclass cls, jbyteArray spec, jbyteArray options, jobject listener,
                                             jlong cancel) {
	(void)cls;
	int f1, f2;
	char *s = cstr(env, spec, &f1);
	char *o = cstr(env, options, &f2);
	jbyteArray result = NULL;
	struct listener l = {env, listener, NULL};
	if (!f1 && !f2 && listener != NULL) {
		jclass lc = (*env)->GetObjectClass(env, listener);
		l.method = (*env)->GetMethodID(env, lc, "onProgress", "([BJJ)Z");
	}
	if (!f1 && !f2 && (listener == NULL || l.method != NULL)) {
		char *dir = NULL;
		int rc = snapvlm_models_pull(s, o, listener != NULL ? on_progress : NULL, &l, (snapvlm_cancel *)(intptr_t)cancel, &dir);
		if (rc != SNAPVLM_OK) {
			if (!(*env)->ExceptionCheck(env))
				throw_status(env, rc);
		} else if ((*env)->ExceptionCheck(env)) {
			snapvlm_string_free(dir);
		} else {
			result = take_string(env, dir);
		}
	}
	free(s);
	free(o);
	return result;
}

/* manager_call runs one of the JSON-returning model manager calls. */
static jbyteArray manager_call(JNIEnv *env, jbyteArray spec, jbyteArray options, int which) {
	int f1, f2;
	char *s = cstr(env, spec, &f1);
	char *o = cstr(env, options, &f2);
	jbyteArray result = NULL;
	if (!f1 && !f2) {
		char *out = NULL;
		int rc;
		switch (which) {
		case 0:
			rc = snapvlm_models_list(o, &out);
			break;
		case 1:
			rc = snapvlm_models_verify(s, o, &out);
			break;
		case 2:
			rc = snapvlm_models_disk_usage(o, &out);
			break;
		default:
			rc = snapvlm_models_remove(s, o);
			break;
		}
		if (rc != SNAPVLM_OK)
			throw_status(env, rc);
		else if (out != NULL)
			result = take_string(env, out);
	}
	free(s);
	free(o);
	return result;
}

JNIEXPORT jbyteArray JNICALL JNI(modelsList)(JNIEnv *env, jclass cls, jbyteArray options) {
	(void)cls;
	return manager_call(env, NULL, options, 0);
}

JNIEXPORT jbyteArray JNICALL JNI(modelsVerify)(JNIEnv *env, jclass cls, jbyteArray spec, jbyteArray options) {
	(void)cls;
	return manager_call(env, spec, options, 1);
}

JNIEXPORT jbyteArray JNICALL JNI(modelsDiskUsage)(JNIEnv *env, jclass cls, jbyteArray options) {
	(void)cls;
	return manager_call(env, NULL, options, 2);
}

JNIEXPORT void JNICALL JNI(modelsRemove)(JNIEnv *env, jclass cls, jbyteArray spec, jbyteArray options) {
	(void)cls;
	manager_call(env, spec, options, 3);
}
