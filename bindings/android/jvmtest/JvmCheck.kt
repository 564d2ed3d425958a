// JvmCheck drives the JNI glue (SnapVLMNative, as SmolVLMAndroid calls it)
// on a desktop JVM with libsnapvlm_jni.so built for the host;
// bindings/android/android_test.go runs it:
//
//   JvmCheck MODEL_DIR IMAGE QUESTION MAX_TOKENS
//
// It prints "STREAMED <text>" (the listener's pieces joined), "RESULT
// <json>", "CANCELLED <json>" for an answer cancelled from another thread
// after its first piece, "ERROR <code>" for junk image bytes, and "USAGE".
// SmolVLMAndroid itself (coroutines, Flow) is only compiled here: Debian's
// kotlinx-coroutines 1.0.1 jar cannot run (it lacks kotlinx.atomicfu).
package org.snapvlm.android

import java.io.File
import java.util.concurrent.CountDownLatch

object JvmCheck {
    @JvmStatic
    fun main(args: Array<String>) {
        val model = args[0]
        val question = args[2]
        val max = args[3].toInt()
        println("VERSION " + SnapVLMNative.version().utf8())
        val m = SnapVLMNative.open(model.utf8(), SmolVLMAndroid.Settings(threads = 1).openJson().utf8())
        val img = SnapVLMNative.encodeImage(m, File(args[1]).readBytes(), "{\"no_split\": true}".utf8())
        val info = Json.parse(SnapVLMNative.imageInfo(img).utf8()).obj()
        println("IMAGE ${info["frames"]} ${info["image_tokens"]}")

        val text = StringBuilder()
        val request = Json.obj(linkedMapOf("question" to question, "max_new_tokens" to max))
        val result = SnapVLMNative.generate(m, request.utf8(), longArrayOf(img), object : TokenListener {
            override fun onToken(utf8: ByteArray): Boolean {
                text.append(utf8.utf8())
                return true
            }
        }, 0).utf8()
        println("STREAMED " + text.toString().replace("\n", "\\n"))
        println("RESULT $result")

        // The Stop button: a cancel handle requested from another thread.
        val cancel = SnapVLMNative.newCancel()
        val first = CountDownLatch(1)
        val stopper = Thread {
            first.await()
            SnapVLMNative.cancel(cancel)
        }
        stopper.start()
        val long = Json.obj(linkedMapOf("question" to question, "max_new_tokens" to 400))
        val cancelled = SnapVLMNative.generate(m, long.utf8(), longArrayOf(img), object : TokenListener {
            override fun onToken(utf8: ByteArray): Boolean {
                first.countDown()
                Thread.sleep(1)
                return true
            }
        }, cancel).utf8()
        stopper.join()
        SnapVLMNative.freeCancel(cancel)
        println("CANCELLED $cancelled")

        try {
            SnapVLMNative.encodeImage(m, "not an image".utf8(), null)
            println("FAIL junk image accepted")
        } catch (e: SnapVLMException) {
            println("ERROR ${e.code}")
        }
        SnapVLMNative.freeImage(img)
        SnapVLMNative.close(m)
        val usage = Json.parse(SnapVLMNative.modelsDiskUsage(("{\"cache_dir\": " + Json.quote(File(model, "no-cache").path) + "}").utf8()).utf8()).obj()
        println("USAGE ${usage["models_bytes"]}")
    }
}
