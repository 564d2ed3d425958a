package org.snapvlm.example

import android.app.Activity
import android.content.Intent
import android.graphics.Bitmap
import android.os.Bundle
import android.provider.MediaStore
import android.widget.Button
import android.widget.EditText
import android.widget.LinearLayout
import android.widget.TextView
import java.io.File
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.flow.FlowCollector
import kotlinx.coroutines.launch
import org.snapvlm.android.ModelManager
import org.snapvlm.android.SmolVLMAndroid

/**
 * The smallest useful app: take a photo, ask about it, read the answer as it
 * streams. The model is pulled into the app's files on first start
 * (SmolVLM2-256M, q4: about 0.27 GB) and opened with the phone settings of
 * docs/android.md.
 */
class MainActivity : Activity() {
    private val job = Job()
    private val scope = CoroutineScope(Dispatchers.Main + job)
    private var vlm: SmolVLMAndroid? = null
    private lateinit var status: TextView
    private lateinit var question: EditText
    private lateinit var answer: TextView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        status = TextView(this)
        question = EditText(this)
        answer = TextView(this)
        question.setText("What is in this picture?")
        val photo = Button(this)
        photo.text = "Take a photo"
        photo.setOnClickListener { startActivityForResult(Intent(MediaStore.ACTION_IMAGE_CAPTURE), TAKE_PHOTO) }
        val ask = Button(this)
        ask.text = "Ask"
        ask.setOnClickListener { ask() }
        val stop = Button(this)
        stop.text = "Stop"
        stop.setOnClickListener { vlm?.cancel() }
        val layout = LinearLayout(this)
        layout.orientation = LinearLayout.VERTICAL
        for (v in listOf(status, photo, question, ask, stop, answer)) layout.addView(v)
        setContentView(layout)
        scope.launch { loadModel() }
    }

    private suspend fun loadModel() {
        val manager = ModelManager(File(filesDir, "huggingface/hub"))
        var dir = manager.list().firstOrNull { it.repo == MODEL && "q4" in it.variants }?.dir
        if (dir == null) {
            manager.pull(MODEL, "q4").collect(object : FlowCollector<ModelManager.PullProgress> {
                override suspend fun emit(value: ModelManager.PullProgress) {
                    if (value.modelDir != null) dir = value.modelDir
                    else status.text = "Downloading ${value.file}: ${value.doneBytes / 1_000_000} of ${value.totalBytes / 1_000_000} MB"
                }
            })
        }
        status.text = "Loading the model…"
        // libonnxruntime.so comes from the onnxruntime-android AAR, unpacked
        // by the installer into the app's native library directory.
        vlm = SmolVLMAndroid.load(dir!!, SmolVLMAndroid.Settings(ortLib = applicationInfo.nativeLibraryDir + "/libonnxruntime.so"))
        status.text = "Ready: take a photo"
    }

    override fun onActivityResult(requestCode: Int, resultCode: Int, data: Intent?) {
        super.onActivityResult(requestCode, resultCode, data)
        val bitmap = data?.extras?.get("data") as? Bitmap
        if (requestCode != TAKE_PHOTO || resultCode != RESULT_OK || bitmap == null) return
        val model = vlm ?: return
        scope.launch {
            status.text = "Looking at the photo…"
            val info = model.processImage(bitmap)
            status.text = "Photo ready (${info.imageTokens} image tokens, vision ${info.visionMs.toInt()} ms)"
        }
    }

    private fun ask() {
        val model = vlm ?: return
        answer.text = ""
        scope.launch {
            model.generateResponse(question.text.toString()).collect(object : FlowCollector<String> {
                override suspend fun emit(value: String) {
                    answer.append(value)
                }
            })
            model.lastResult?.let { status.text = "First token ${it.ttftMs.toInt()} ms, ${"%.1f".format(it.decodeTokensPerSec)} tokens/s" }
        }
    }

    override fun onDestroy() {
        job.cancel()
        vlm?.close()
        super.onDestroy()
    }

    companion object {
        const val MODEL = "HuggingFaceTB/SmolVLM2-256M-Video-Instruct"
        const val TAKE_PHOTO = 1
    }
}
