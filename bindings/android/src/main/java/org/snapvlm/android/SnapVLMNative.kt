package org.snapvlm.android

/**
 * The JNI functions of libsnapvlm_jni.so (bindings/android/jni/snapvlm_jni.c),
 * one per function of snapvlm.h. Strings cross as UTF-8 byte arrays; handles
 * are the C pointers as Long. Failures throw [SnapVLMException].
 * Applications use [SmolVLMAndroid] and [ModelManager] instead.
 */
internal object SnapVLMNative {
    init {
        System.loadLibrary("snapvlm_jni")
    }

    @JvmStatic external fun version(): ByteArray
    @JvmStatic external fun abiVersion(): Int
    @JvmStatic external fun open(model: ByteArray, options: ByteArray?): Long
    @JvmStatic external fun info(model: Long): ByteArray
    @JvmStatic external fun cancelAll(model: Long)
    @JvmStatic external fun close(model: Long)
    @JvmStatic external fun encodeImage(model: Long, data: ByteArray, options: ByteArray?): Long
    @JvmStatic external fun imageInfo(image: Long): ByteArray
    @JvmStatic external fun freeImage(image: Long)
    @JvmStatic external fun newCancel(): Long
    @JvmStatic external fun cancel(cancel: Long)
    @JvmStatic external fun freeCancel(cancel: Long)
    @JvmStatic external fun generate(model: Long, request: ByteArray, images: LongArray, listener: TokenListener?, cancel: Long): ByteArray
    @JvmStatic external fun modelsList(options: ByteArray?): ByteArray
    @JvmStatic external fun modelsPull(spec: ByteArray, options: ByteArray?, listener: ProgressListener?, cancel: Long): ByteArray
    @JvmStatic external fun modelsVerify(spec: ByteArray, options: ByteArray?): ByteArray
    @JvmStatic external fun modelsRemove(spec: ByteArray, options: ByteArray?)
    @JvmStatic external fun modelsDiskUsage(options: ByteArray?): ByteArray
}

/** Receives answer pieces (UTF-8) on the generating thread; false stops. */
internal interface TokenListener {
    fun onToken(utf8: ByteArray): Boolean
}

/** Receives download progress on the pulling thread; false cancels. */
internal interface ProgressListener {
    fun onProgress(file: ByteArray, done: Long, total: Long): Boolean
}

internal fun String.utf8(): ByteArray = toByteArray(Charsets.UTF_8)

internal fun ByteArray.utf8(): String = String(this, Charsets.UTF_8)

/**
 * A failed libsnapvlm call: [code] is one of snapvlm.h's SNAPVLM_ERR_*
 * (the constants below), the message is snapvlm_last_error().
 */
class SnapVLMException(val code: Int, message: String) : Exception(message) {
    /** Called from JNI with the message as UTF-8. */
    constructor(code: Int, utf8: ByteArray) : this(code, utf8.utf8())

    companion object {
        const val INVALID_ARGUMENT = 1
        const val NOT_FOUND = 2
        const val MODEL = 3
        const val RUNTIME = 4
        const val IMAGE = 5
        const val CANCELLED = 6
        const val NETWORK = 7
        const val CHECKSUM = 8
        const val INTERNAL = 9
        const val IO = 10
    }
}
