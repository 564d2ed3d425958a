// generate.mjs runs a SmolVLM ONNX model directory with transformers.js
// (@huggingface/transformers, pinned in package.json), the independent
// implementation snapvlm is checked against. See README.md.
//
// Request mode (default): read ONE JSON request on stdin, write ONE JSON
// result on stdout.
//
//   request: {"model_dir": "/abs/dir",
//             "dtype": {"vision_encoder": "fp32", "embed_tokens": "q4",
//                       "decoder_model_merged": "fp16"},   // optional, default fp32
//             "input_ids": [1, 2, ...],
//             "pixel_values": {"shape": [1, F, 3, M, M],
//                              "file": "/path/raw_float32_le.bin"} | null,
//             "max_new_tokens": 20,
//             "load_vision": false}  // optional: load the vision encoder even
//                                    // for a text-only request
//   result:  {"generated_ids": [...new tokens only...],
//             "sessions": ["decoder_model_merged", "embed_tokens", ...],
//             "eos_token_ids": [...], "load_ms": ..., "elapsed_ms": ...}
//   error:   {"error": "..."} and exit status 1.
//
// Smoke mode: `node generate.mjs --smoke MODEL_DIR` runs the model on a
// synthetic image through transformers.js's own processor (image
// preprocessing, chat template, tokenizer) and prints
// {"generated_ids": [...], "text": "...", "prompt_tokens": N, ...}.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// Everything transformers.js or onnxruntime logs must stay off stdout, which
// carries exactly one JSON document.
console.log = console.error;
console.info = console.error;
console.warn = console.error;
console.debug = console.error;

const {
    env,
    LogLevel,
    AutoProcessor,
    SmolVLMForConditionalGeneration,
    LlavaQwen2ForCausalLM,
    RawImage,
    Tensor,
} = await import('@huggingface/transformers');

const SESSIONS = ['vision_encoder', 'embed_tokens', 'decoder_model_merged'];
const DTYPES = new Set(['fp32', 'fp16', 'q4', 'q4f16', 'q8', 'int8', 'uint8', 'bnb4']);

/** Configures transformers.js to read only the given local directory. */
function localOnly(modelDir) {
    const abs = path.resolve(modelDir);
    if (!fs.existsSync(path.join(abs, 'config.json'))) {
        throw new Error(`model_dir ${abs}: no config.json`);
    }
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    // transformers.js resolves a model id against localModelPath; the
    // directory's own name is the id. Caches are off: a stale cached file
    // from an earlier model at the same path must never be served.
    env.localModelPath = path.dirname(abs) + path.sep;
    env.useFSCache = false;
    env.useBrowserCache = false;
    env.logLevel = LogLevel.ERROR;
    return path.basename(abs);
}

/** Validates the per-session dtype map; missing sessions default to fp32. */
function dtypeMap(dtype) {
    const out = {};
    for (const name of SESSIONS) {
        const d = dtype?.[name] ?? 'fp32';
        if (!DTYPES.has(d)) {
            throw new Error(`dtype.${name}: ${JSON.stringify(d)} is not one of ${[...DTYPES].join(', ')}`);
        }
        out[name] = d;
    }
    for (const name of Object.keys(dtype ?? {})) {
        if (!SESSIONS.includes(name)) {
            throw new Error(`dtype: unknown session ${JSON.stringify(name)} (have ${SESSIONS.join(', ')})`);
        }
    }
    return out;
}

/**
 * Loads the model. With vision it is SmolVLMForConditionalGeneration. Without,
 * transformers.js has no SmolVLM text-only class, but its cross-architecture
 * rule (a *ForCausalLM class loading a config whose architectures[0] is a
 * *ForConditionalGeneration) loads only embed_tokens + decoder_model_merged
 * and runs the native architecture's forward. LlavaQwen2ForCausalLM is the
 * exported class that triggers it and that, like Idefics3/SmolVLM, extends
 * LlavaForConditionalGeneration; text-only they run the same code.
 */
async function loadModel(id, dtype, withVision) {
    const opts = { dtype, device: 'cpu', local_files_only: true };
    if (withVision) {
        return await SmolVLMForConditionalGeneration.from_pretrained(id, opts);
    }
    return await LlavaQwen2ForCausalLM.from_pretrained(id, opts);
}

/**
 * A streamer that only notes when each new token arrives. generate() first
 * puts the prompt ids, then one call per generated token, so the first put
 * is skipped: times[0] is the time to first token.
 */
function tokenClock() {
    let prompt = true;
    const times = [];
    return {
        times,
        put() {
            if (prompt) {
                prompt = false;
                return;
            }
            times.push(performance.now());
        },
        end() {},
    };
}

/** Reads a raw little-endian float32 file of exactly prod(shape) values. */
function readPixels(pv) {
    const shape = pv.shape;
    if (!Array.isArray(shape) || shape.length !== 5 || shape[0] !== 1 || shape[2] !== 3 || shape[3] !== shape[4]) {
        throw new Error(`pixel_values.shape: want [1, F, 3, M, M], got ${JSON.stringify(shape)}`);
    }
    const n = shape.reduce((a, b) => a * b, 1);
    const buf = fs.readFileSync(pv.file);
    if (buf.length !== 4 * n) {
        throw new Error(`pixel_values.file ${pv.file}: ${buf.length} bytes, want ${4 * n} for shape ${JSON.stringify(shape)}`);
    }
    const data = new Float32Array(n);
    const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
    for (let i = 0; i < n; i++) data[i] = view.getFloat32(4 * i, true);
    const [, f, , m] = shape;
    return {
        pixel_values: new Tensor('float32', data, shape),
        pixel_attention_mask: new Tensor('bool', new Uint8Array(f * m * m).fill(1), [1, f, m, m]),
    };
}

/** The eos ids generate() stops on: config, text_config, then generation_config.json. */
function eosIds(model) {
    const eos = model._prepare_generation_config(null, {}).eos_token_id;
    if (eos === null || eos === undefined) return [];
    return (Array.isArray(eos) ? eos : [eos]).map(Number);
}

async function runRequest(req) {
    if (!Array.isArray(req.input_ids) || req.input_ids.length === 0) {
        throw new Error('input_ids: want a non-empty array of token ids');
    }
    if (!Number.isInteger(req.max_new_tokens) || req.max_new_tokens < 1) {
        throw new Error(`max_new_tokens: want an integer >= 1, got ${JSON.stringify(req.max_new_tokens)}`);
    }
    const id = localOnly(req.model_dir);
    const dtype = dtypeMap(req.dtype);
    const pixels = req.pixel_values ? readPixels(req.pixel_values) : null;

    const t0 = performance.now();
    const model = await loadModel(id, dtype, pixels !== null || req.load_vision === true);
    const t1 = performance.now();

    const ids = req.input_ids.map((x) => BigInt(x));
    const inputs = {
        input_ids: new Tensor('int64', BigInt64Array.from(ids), [1, ids.length]),
        attention_mask: new Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]),
        ...(pixels ?? {}),
    };
    const clock = tokenClock();
    const out = await model.generate({ ...inputs, max_new_tokens: req.max_new_tokens, do_sample: false, streamer: clock });
    const t2 = performance.now();

    const seq = out.tolist()[0].map(Number);
    const result = {
        generated_ids: seq.slice(ids.length),
        sessions: Object.keys(model.sessions).sort(),
        eos_token_ids: eosIds(model),
        load_ms: t1 - t0,
        elapsed_ms: t2 - t1,
        first_token_ms: clock.times.length > 0 ? clock.times[0] - t1 : 0,
        last_token_ms: clock.times.length > 0 ? clock.times[clock.times.length - 1] - t1 : 0,
    };
    await model.dispose();
    return result;
}

/** A deterministic 640×480 RGB test pattern (gradients plus a square). */
function syntheticImage() {
    const w = 640;
    const h = 480;
    const data = new Uint8ClampedArray(w * h * 3);
    for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
            const i = 3 * (y * w + x);
            const inSquare = x > 200 && x < 400 && y > 150 && y < 330;
            data[i] = inSquare ? 250 : Math.floor((255 * x) / w);
            data[i + 1] = inSquare ? 20 : Math.floor((255 * y) / h);
            data[i + 2] = (x ^ y) & 0xff;
        }
    }
    return new RawImage(data, w, h, 3);
}

async function runSmoke(modelDir, maxNewTokens) {
    const id = localOnly(modelDir);
    const processor = await AutoProcessor.from_pretrained(id, { local_files_only: true });
    const messages = [
        {
            role: 'user',
            content: [{ type: 'image' }, { type: 'text', text: 'Can you describe this image?' }],
        },
    ];
    const text = processor.apply_chat_template(messages, { add_generation_prompt: true });
    const inputs = await processor(text, [syntheticImage()]);

    const t0 = performance.now();
    const model = await loadModel(id, dtypeMap({}), true);
    const t1 = performance.now();
    const out = await model.generate({ ...inputs, max_new_tokens: maxNewTokens, do_sample: false });
    const t2 = performance.now();

    const promptLen = inputs.input_ids.dims.at(-1);
    const seq = out.tolist()[0].map(Number);
    const generated = seq.slice(promptLen);
    const result = {
        generated_ids: generated,
        text: processor.batch_decode(out.slice(null, [promptLen, null]), { skip_special_tokens: true })[0],
        prompt_tokens: promptLen,
        pixel_values_shape: inputs.pixel_values.dims,
        sessions: Object.keys(model.sessions).sort(),
        eos_token_ids: eosIds(model),
        load_ms: t1 - t0,
        elapsed_ms: t2 - t1,
    };
    await model.dispose();
    return result;
}

async function readStdin() {
    const chunks = [];
    for await (const c of process.stdin) chunks.push(c);
    return Buffer.concat(chunks).toString('utf8');
}

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + os.EOL);
}

async function main(argv) {
    if (argv[0] === '--smoke') {
        if (argv.length < 2 || argv.length > 3) {
            throw new Error('usage: node generate.mjs --smoke MODEL_DIR [MAX_NEW_TOKENS]');
        }
        const n = argv.length === 3 ? Number(argv[2]) : 8;
        if (!Number.isInteger(n) || n < 1) throw new Error(`MAX_NEW_TOKENS: want an integer >= 1, got ${argv[2]}`);
        return await runSmoke(argv[1], n);
    }
    if (argv.length !== 0) {
        throw new Error('usage: node generate.mjs < request.json | node generate.mjs --smoke MODEL_DIR [MAX_NEW_TOKENS]');
    }
    let req;
    try {
        req = JSON.parse(await readStdin());
    } catch (e) {
        throw new Error(`request on stdin: ${e.message}`);
    }
    return await runRequest(req);
}

try {
    emit(await main(process.argv.slice(2)));
} catch (e) {
    emit({ error: String(e?.stack ?? e) });
    process.exitCode = 1;
}
