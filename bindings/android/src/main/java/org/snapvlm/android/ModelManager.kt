package org.snapvlm.android

import java.io.File
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext

/**
 * The models on the phone (the original app's ModelManager.kt), kept in a
 * Hugging Face cache under [cacheDir] — the layout the snapvlm CLI and
 * huggingface_hub use, so a cache prepared on a computer can be copied over.
 */
class ModelManager(val cacheDir: File, val endpoint: String = "", val token: String = "") {
    data class CachedModel(val repo: String, val dir: String, val sizeBytes: Long, val variants: List<String>)

    /** A pull in progress; [modelDir] is set on the last one. */
    data class PullProgress(val file: String, val doneBytes: Long, val totalBytes: Long, val modelDir: String? = null)

    data class DiskUsage(val modelsBytes: Long, val freeBytes: Long)

    data class FileCheck(val path: String, val ok: Boolean, val problem: String)

    private fun options(dtype: String = ""): ByteArray {
        val m = linkedMapOf<String, Any>("cache_dir" to cacheDir.path)
        if (endpoint.isNotEmpty()) m["endpoint"] = endpoint
        if (token.isNotEmpty()) m["token"] = token
        if (dtype.isNotEmpty()) m["dtype"] = dtype
        return Json.obj(m).utf8()
    }

    suspend fun list(): List<CachedModel> = withContext(Dispatchers.IO) {
        Json.parse(SnapVLMNative.modelsList(options()).utf8()).list().map {
            val m = it.obj()
            val rev = m["revisions"].list().firstOrNull()?.obj()
            CachedModel(m["repo"] as String, (rev?.get("dir") ?: m["dir"]) as String, m["size"].long(),
                rev?.get("variants")?.list()?.map { v -> v as String } ?: emptyList())
        }
    }

    /**
     * Downloads [repo] ("org/name[@revision]") with the [dtype] graphs,
     * resuming an interrupted download. Cancelling the collector cancels the
     * download (the partial file stays for the next pull).
     */
    fun pull(repo: String, dtype: String = "q4"): Flow<PullProgress> = flow {
        val cancel = SnapVLMNative.newCancel()
        try {
            coroutineScope {
                val events = Channel<PullProgress>(Channel.CONFLATED)
                launch(Dispatchers.IO) {
                    try {
                        val dir = SnapVLMNative.modelsPull(repo.utf8(), options(dtype), object : ProgressListener {
                            override fun onProgress(file: ByteArray, done: Long, total: Long): Boolean {
                                runBlocking { events.send(PullProgress(file.utf8(), done, total)) }
                                return true
                            }
                        }, cancel).utf8()
                        runBlocking { events.send(PullProgress("", -1, -1, dir)) }
                        events.close()
                    } catch (e: Throwable) {
                        events.close(e)
                    }
                }
                var done = false
                try {
                    for (e in events) emit(e)
                    done = true
                } finally {
                    if (!done) SnapVLMNative.cancel(cancel)
                }
            }
        } finally {
            SnapVLMNative.freeCancel(cancel)
        }
    }

    /** Re-hashes every file of a cached model; the damaged ones have ok = false. */
    suspend fun verify(repo: String): List<FileCheck> = withContext(Dispatchers.IO) {
        Json.parse(SnapVLMNative.modelsVerify(repo.utf8(), options()).utf8()).obj()["files"].list().map {
            val f = it.obj()
            FileCheck(f["path"] as String, f["ok"] as Boolean, (f["problem"] ?: "") as String)
        }
    }

    suspend fun remove(repo: String) = withContext(Dispatchers.IO) {
        SnapVLMNative.modelsRemove(repo.utf8(), options())
    }

    suspend fun diskUsage(): DiskUsage = withContext(Dispatchers.IO) {
        val u = Json.parse(SnapVLMNative.modelsDiskUsage(options()).utf8()).obj()
        DiskUsage(u["models_bytes"].long(), u["free_bytes"].long())
    }
}
