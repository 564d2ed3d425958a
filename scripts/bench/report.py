#!/usr/bin/env python3
"""Assemble bench-report.sh's measurements into markdown (stdout).

usage: report.py WORK_DIR BANDWIDTH_GBS THREADS LLAMA_TAG SNAPVLM_VERSION
"""
import json
import os
import statistics
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load_rounds(prefix):
    """The median of each number over prefix-1.json, prefix-2.json, ...
    (bench-report's rounds), else prefix.json."""
    reps, i = [], 1
    while (rep := load(f"{prefix}-{i}.json")) is not None:
        reps.append(rep)
        i += 1
    if not reps:
        return load(f"{prefix}.json") or {}
    out = dict(reps[0])
    for k, v in reps[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = statistics.median(r[k] for r in reps if isinstance(r.get(k), (int, float)))
    out["runs"] = len(reps)
    return out


def llama_rates(path):
    """llama-bench JSON -> {("tg", depth) | ("pp", depth): tokens/s}, model bytes."""
    rows = load(path) or []
    out, size = {}, None
    for r in rows:
        size = r.get("model_size", size)
        kind = "pp" if r.get("n_prompt", 0) > 0 else "tg"
        out[(kind, r.get("n_depth", 0))] = r.get("avg_ts")
    return out, size


def fmt(x, unit="", digits=1):
    if x is None:
        return "—"
    return f"{x:.{digits}f}{unit}"


def main():
    work, bw, threads, tag, version = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    mm = load(f"{work}/matmul.json") or {}
    print(f"# snapvlm bench-report\n")
    print(f"{version}; transformers.js 4.3.1 (q4 files); llama.cpp {tag} (node-llama-cpp@3.21.1's source, "
          f"built with GGML_NATIVE); {threads} threads; read bandwidth {bw:.1f} GB/s (scripts/bench/membw.c). "
          "Random-weight models of the real sizes; decode tokens/s; the split photo is assets/sample.jpg "
          "in 13 tiles (876 prompt tokens), one tile is 81. "
          f"Matmul throughput (scripts/bench/matmul, {mm.get('m', '?')}×{mm.get('k', '?')}×{mm.get('n', '?')}): "
          f"ONNX Runtime float32 {fmt(mm.get('fp32_gops'), '', 0)} GFLOP/s, int8 {fmt(mm.get('int8_gops'), '', 0)} GOP/s, "
          f"4-bit with int8 activations (accuracy_level 4) {fmt(mm.get('q4i8_gops'), '', 0)} GOP/s; "
          f"snapvlm's 4-bit kernel {fmt(mm.get('q4snapvlm_gops'), '', 0)} GOP/s.\n")
    for preset, name in (("real256m", "SmolVLM2-256M size"), ("real500m", "SmolVLM2-500M size")):
        s1 = load_rounds(f"{work}/{preset}-snapvlm-one")
        s13 = load_rounds(f"{work}/{preset}-snapvlm-split")
        cold = load(f"{work}/{preset}-snapvlm-cold.json") or {}
        j1 = load(f"{work}/{preset}-jsref-one.json") or {}
        j13 = load(f"{work}/{preset}-jsref-split.json") or {}
        q4, q4size = llama_rates(f"{work}/{preset}-llama-Q4_0.json")
        q8, q8size = llama_rates(f"{work}/{preset}-llama-Q8_0.json")
        dec = (s13.get("files") or {}).get("decoder_model_merged")
        dec_bytes = None
        if dec:
            dec_bytes = os.path.getsize(dec) + (os.path.getsize(dec + "_data") if os.path.exists(dec + "_data") else 0)
        cfg = load(f"{work}/{preset}/config.json")
        text = (cfg.get("text_config") or cfg) if cfg else {}

        def cache_bytes(rep):
            """The key/value cache a decoding step reads besides the weights,
            at the middle of the decoded tokens: every layer's keys and
            values in float32, as the q4 exports keep them."""
            n, layers, kvh = rep.get("prompt_tokens"), text.get("num_hidden_layers"), text.get("num_key_value_heads")
            hd = text.get("head_dim") or (text.get("hidden_size") // text["num_attention_heads"] if text.get("hidden_size") and text.get("num_attention_heads") else None)
            if not (n and layers and kvh and hd):
                return None
            return (n + (rep.get("new_tokens") or 0) / 2) * layers * 2 * kvh * hd * 4

        def limit_for(rep):
            kv = cache_bytes(rep)
            return bw * 1e9 / (dec_bytes + kv) if dec_bytes and kv is not None else None

        limit, limit13 = limit_for(s1), limit_for(s13)
        # Prefill: two operations per weight at the matmul rate of the
        # decoder's kind (a 4-bit file holds two weights per byte and runs
        # on snapvlm's 4-bit kernel; an 8-bit one on ONNX Runtime's).
        q4dec = dec and "_q4" in os.path.basename(dec)
        rate = mm.get("q4snapvlm_gops") if q4dec else mm.get("int8_gops")
        weights = dec_bytes * (2 if q4dec else 1) if dec_bytes else None
        plimit = rate * 1e9 / (2 * weights) if weights and rate else None
        a1 = load(f"{work}/{preset}-snapvlm-alt-one.json") or {}
        a13 = load(f"{work}/{preset}-snapvlm-alt-split.json") or {}
        st = load(f"{work}/{preset}-snapvlm-streams.json") or {}
        sta = load(f"{work}/{preset}-snapvlm-alt-streams.json") or {}

        def streams(rep):
            rates = [x.get("tokens_per_sec") for x in rep.get("streams") or []]
            if not rates:
                return "—"
            s = " / ".join(fmt(r) for r in rates)
            if len(rates) > 1 and rates[0]:
                # The 8-bit decoders refuse to batch (one activation scale
                # for all rows); their load reason says so.
                why = (rep.get("file_reasons") or {}).get("decoder_model_merged", "")
                alone = not rep.get("batched") or "decodes alone" in why
                s += f" ({rates[-1] / rates[0]:.2f}×{', each alone' if alone else ', batched'})"
            return s

        def ratio(a, b):
            return f"{a / b * 100:.0f} %" if a and b else "—"

        sd1, sd13 = s1.get("decode_tokens_per_sec"), s13.get("decode_tokens_per_sec")
        jd1, jd13 = j1.get("transformers_js_decode_tokens_per_sec"), j13.get("transformers_js_decode_tokens_per_sec")
        vocab = text.get("vocab_size")
        print(f"## {name}, vocabulary {vocab if vocab else '?'}\n")
        print("| | transformers.js q4 | llama.cpp Q4_0 | llama.cpp Q8_0 | snapvlm (no --dtype) | limit for snapvlm's decoder |")
        print("|---|---|---|---|---|---|")
        print(f"| decode, 81-token context | {fmt(jd1)} | {fmt(q4.get(('tg', 0)))} | {fmt(q8.get(('tg', 0)))} | {fmt(sd1)} ({ratio(sd1, limit)} of limit) | {fmt(limit)} |")
        print(f"| decode, 876-token context | {fmt(jd13)} | {fmt(q4.get(('tg', 876)))} | {fmt(q8.get(('tg', 876)))} | {fmt(sd13)} ({ratio(sd13, limit13)} of limit) | {fmt(limit13)} |")
        print(f"| 876 / 81 | {ratio(jd13, jd1)} | {ratio(q4.get(('tg', 876)), q4.get(('tg', 0)))} | {ratio(q8.get(('tg', 876)), q8.get(('tg', 0)))} | {ratio(sd13, sd1)} | {ratio(limit13, limit)} |")
        print(f"| decode, 81 / 876-token context, `--decoder-dtype int8` | | | | {fmt(a1.get('decode_tokens_per_sec'))} / {fmt(a13.get('decode_tokens_per_sec'))} | |")
        print(f"| prefill, 876 tokens, tok/s | — | {fmt(q4.get(('pp', 0)), '', 0)} | {fmt(q8.get(('pp', 0)), '', 0)} | {fmt(s13.get('prefill_tokens_per_sec'), '', 0)} ({ratio(s13.get('prefill_tokens_per_sec'), plimit)} of limit) | {fmt(plimit, '', 0)} |")
        print(f"| prefill, 81 / 876 tokens, tok/s, `--decoder-dtype int8` | | | | {fmt(a1.get('prefill_tokens_per_sec'), '', 0)} / {fmt(a13.get('prefill_tokens_per_sec'), '', 0)} | |")
        print(f"| prefill, 81 tokens, tok/s | | | | {fmt(s1.get('prefill_tokens_per_sec'), '', 0)} | |")
        print(f"| text answers at once, total tok/s: 1 / 2 / 4 streams | | | | {streams(st)} | |")
        print(f"| the same, `--decoder-dtype int8` | | | | {streams(sta)} | |")
        print(f"| time to first token, split photo | {fmt((j13.get('transformers_js_ttft_ms') or 0) / 1e3 or None, ' s', 2)} | — | — | {fmt((s13.get('ttft_ms') or 0) / 1e3 or None, ' s', 2)} | |")
        print(f"| load: warm / cold (empty cache) | {fmt((j13.get('transformers_js_load_ms') or 0) / 1e3 or None, ' s', 2)} | — | — | {fmt((s13.get('load_ms') or 0) / 1e3 or None, ' s', 2)} / {fmt((cold.get('load_ms') or 0) / 1e3 or None, ' s', 2)} | |")
        print(f"| peak RSS, one tile / split photo (warm loads) | — | — | — | {fmt((s1.get('peak_rss_mb') or 0) / 1024 or None, '', 2)} / {fmt((s13.get('peak_rss_mb') or 0) / 1024 or None, ' GB', 2)} | |")
        print(f"| the same, `--decoder-dtype int8`; its warm load | — | — | — | {fmt((a1.get('peak_rss_mb') or 0) / 1024 or None, '', 2)} / {fmt((a13.get('peak_rss_mb') or 0) / 1024 or None, ' GB', 2)}; {fmt((a13.get('load_ms') or 0) / 1e3 or None, ' s', 2)} | |")
        sizes = []
        if dec_bytes:
            sizes.append(f"snapvlm's decoder file {dec_bytes / 2**20:.0f} MiB ({os.path.basename(dec)})")
        kv1, kv13 = cache_bytes(s1), cache_bytes(s13)
        if kv1 is not None and kv13 is not None:
            sizes.append(f"the float32 key/value cache {kv1 / 1e6:.1f} MB (81-token context) and {kv13 / 1e6:.1f} MB (876)")
        if q4size:
            sizes.append(f"Q4_0 {q4size / 2**20:.0f} MiB")
        if q8size:
            sizes.append(f"Q8_0 {q8size / 2**20:.0f} MiB")
        print(f"\nRead per token: {'; '.join(sizes)}.\n")


if __name__ == "__main__":
    main()
