package org.snapvlm.android

import android.graphics.Bitmap
import java.io.ByteArrayOutputStream
import java.io.Closeable
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext

/**
 * A SmolVLM / SmolVLM2 model on the phone, in the shape of the original
 * app's SmolVLMAndroid.kt: [load] once, [processImage] when a photo is
 * taken (the vision encoder runs then, and its features are kept), then
 * [generateResponse] for each question about it, streamed as a Flow of text
 * pieces; [cancel] stops the answer.
 *
 * All work runs on Dispatchers.IO; the suspend functions and the Flow may be
 * used from the main thread. Several answers may run at once (they share the
 * CPU cores); one at a time is what a phone wants.
 */
class SmolVLMAndroid private constructor(private val handle: Long, val settings: Settings) : Closeable {
    /**
     * Load and generation settings. The defaults are the phone settings of
     * docs/android.md: q4 graphs, one 512-px tile per photo (no_split: 64
     * image tokens instead of up to 1,088), one tile per vision run.
     */
    data class Settings(
        /** Variant of the three graphs: q4 (default), fp16, fp32, ... */
        val dtype: String = "q4",
        /** ONNX Runtime intra-op threads; 0 = one per physical core. */
        val threads: Int = 0,
        /** Execution provider: "" (CPU), "XNNPACK" or "NNAPI" (see docs/android.md). */
        val provider: String = "",
        /** Path of libonnxruntime.so; "" searches the default places. */
        val ortLib: String = "",
        /** Tiles per vision-encoder run: 1 uses the least memory. */
        val visionBatch: Int = 1,
        /** One tile per photo (much faster, less detail). */
        val noSplit: Boolean = true,
        /** Longest edge photos are resized to before tiling; 0 = the model's. */
        val imageSize: Int = 0,
        /** Photos whose features stay cached. */
        val featureCacheSize: Int = 4,
        val maxNewTokens: Int = 256,
        /** 0 = greedy. */
        val temperature: Float = 0f,
        /** Hugging Face cache, for a repo id as the model. */
        val cacheDir: String = ""
    ) {
        internal fun openJson(): String {
            val m = linkedMapOf<String, Any>("dtype" to dtype, "threads" to threads, "vision_batch" to visionBatch,
                "feature_cache_size" to featureCacheSize)
            if (provider.isNotEmpty()) m["provider"] = provider
            if (ortLib.isNotEmpty()) m["ort_lib"] = ortLib
            if (cacheDir.isNotEmpty()) m["cache_dir"] = cacheDir
            return Json.obj(m)
        }
    }

    /** How a photo was encoded. */
    data class ImageInfo(val rows: Int, val cols: Int, val frames: Int, val imageTokens: Int, val visionMs: Double)

    /** What the last answer cost; [json] is libsnapvlm's whole result. */
    data class Result(
        val text: String,
        val tokens: List<Long>,
        val finishReason: String,
        val promptTokens: Int,
        val ttftMs: Double,
        val decodeTokensPerSec: Double,
        val json: String
    )

    companion object {
        /** libsnapvlm's version. */
        val version: String get() = SnapVLMNative.version().utf8()

        /**
         * Opens a model: a directory in the Hugging Face layout (e.g. what
         * [ModelManager.pull] returned) or a repo id already in the cache
         * of [Settings.cacheDir].
         */
        suspend fun load(model: String, settings: Settings = Settings()): SmolVLMAndroid = withContext(Dispatchers.IO) {
            SmolVLMAndroid(SnapVLMNative.open(model.utf8(), settings.openJson().utf8()), settings)
        }
    }

    // Image handles and their users: the current photo holds one reference,
    // each running answer one more; a handle is freed at zero.
    private val refs = HashMap<Long, Int>()
    private var current = 0L
    private var closed = false

    /** The result of the last answer that finished. */
    @Volatile
    var lastResult: Result? = null
        private set

    /**
     * Encodes a photo (JPEG, PNG, WebP or GIF bytes) for the next questions:
     * runs the vision encoder now. Replaces the previous photo.
     */
    suspend fun processImage(image: ByteArray): ImageInfo = withContext(Dispatchers.IO) {
        val opts = linkedMapOf<String, Any>("no_split" to settings.noSplit, "name" to "photo")
        if (settings.imageSize > 0) opts["image_size"] = settings.imageSize
        val h = SnapVLMNative.encodeImage(handle, image, Json.obj(opts).utf8())
        val info = Json.parse(SnapVLMNative.imageInfo(h).utf8()).obj()
        synchronized(refs) {
            check(!closed) { "the model is closed" }
            refs[h] = 1
            val old = current
            current = h
            if (old != 0L) release(old)
        }
        ImageInfo(info["rows"].long().toInt(), info["cols"].long().toInt(), info["frames"].long().toInt(),
            info["image_tokens"].long().toInt(), info["vision_ms"].double())
    }

    /** Encodes a camera Bitmap (as JPEG, quality 95). */
    suspend fun processImage(bitmap: Bitmap): ImageInfo {
        val out = ByteArrayOutputStream()
        bitmap.compress(Bitmap.CompressFormat.JPEG, 95, out)
        return processImage(out.toByteArray())
    }

    /** Forgets the photo: the next questions are about text only. */
    fun clearImage() {
        synchronized(refs) {
            val old = current
            current = 0L
            if (old != 0L) release(old)
        }
    }

    private fun release(h: Long) {
        val n = (refs[h] ?: return) - 1
        if (n > 0) {
            refs[h] = n
        } else {
            refs.remove(h)
            SnapVLMNative.freeImage(h)
        }
    }

    private fun retainCurrent(): Long = synchronized(refs) {
        check(!closed) { "the model is closed" }
        if (current != 0L) refs[current] = refs.getValue(current) + 1
        current
    }

    /**
     * Answers [question] about the current photo (or without one), as a Flow
     * of text pieces in order. Collecting starts the generation; cancelling
     * the collecting coroutine, or [cancel], stops it. [lastResult] holds
     * the finished answer's text, tokens and timings.
     */
    fun generateResponse(question: String, maxNewTokens: Int = settings.maxNewTokens): Flow<String> = flow {
        val image = retainCurrent()
        val cancel = SnapVLMNative.newCancel()
        try {
            coroutineScope {
                val pieces = Channel<String>(Channel.UNLIMITED)
                val request = Json.obj(linkedMapOf("question" to question, "max_new_tokens" to maxNewTokens,
                    "temperature" to settings.temperature))
                launch(Dispatchers.IO) {
                    try {
                        val json = SnapVLMNative.generate(handle, request.utf8(),
                            if (image != 0L) longArrayOf(image) else LongArray(0),
                            object : TokenListener {
                                override fun onToken(utf8: ByteArray): Boolean {
                                    // Unlimited: send never suspends.
                                    runBlocking { pieces.send(utf8.utf8()) }
                                    return true
                                }
                            }, cancel).utf8()
                        lastResult = parseResult(json)
                        pieces.close()
                    } catch (e: Throwable) {
                        pieces.close(e)
                    }
                }
                var done = false
                try {
                    for (p in pieces) emit(p)
                    done = true
                } finally {
                    // The collector went away: stop the native call, which
                    // coroutineScope then waits for.
                    if (!done) SnapVLMNative.cancel(cancel)
                }
            }
        } finally {
            SnapVLMNative.freeCancel(cancel)
            if (image != 0L) synchronized(refs) { release(image) }
        }
    }

    private fun parseResult(json: String): Result {
        val r = Json.parse(json).obj()
        val t = r["timings"].obj()
        return Result(r["text"] as String, r["tokens"].list().map { it.long() }, r["finish_reason"] as String,
            r["prompt_tokens"].long().toInt(), t["ttft_ms"].double(), t["decode_tokens_per_sec"].double(), json)
    }

    /** Stops every answer and photo encoding running on this model. */
    fun cancel() = SnapVLMNative.cancelAll(handle)

    /** libsnapvlm's description of the model (files, ONNX Runtime version). */
    fun info(): String = SnapVLMNative.info(handle).utf8()

    /** Stops what runs, waits for it and frees the model and the photo. */
    override fun close() {
        synchronized(refs) {
            if (closed) return
            closed = true
        }
        SnapVLMNative.close(handle)
        synchronized(refs) {
            for (h in refs.keys) SnapVLMNative.freeImage(h)
            refs.clear()
            current = 0L
        }
    }
}
