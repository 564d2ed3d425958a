#!/usr/bin/env python3
"""Time to first token through `snapvlm serve` (standard library only).

Usage: scripts/serve-ttft/serve_ttft.py BIN MODEL_DIR IMAGE [RUNS [split]]

Starts `BIN serve --model MODEL_DIR` on a free loopback port and measures,
RUNS times (default 3), back to back, each run with a photo the server has not
seen (the JPEG with a run-specific trailer after its end marker, which changes
its hash but not its pixels):

  followup  first question about a photo (one tile, or split with "split"), then a follow-up question in a
            new HTTP request sending the conversation back: TTFT ratio;
  encode    POST /v1/snapvlm/encode, wait until encoded, then ask: TTFT
            against the prefill time;
  run       the same no-split question through `snapvlm run --json` and
            through the server (fresh photo each): TTFT of both.

Prints every measurement and the medians. The machine is shared, so compare
numbers measured back to back only.
"""
import base64, json, socket, statistics, subprocess, sys, tempfile, time, urllib.request, os

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def post(base, path, body):
    stream = body.get("stream", False)
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    t0 = time.monotonic()
    resp = urllib.request.urlopen(req, timeout=3600)
    if not stream:
        return json.load(resp), None, time.monotonic() - t0
    text, first, timings = "", None, None
    for line in resp:
        line = line.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        c = json.loads(line[6:])
        if c.get("timings"):
            timings = c["timings"]
        for ch in c.get("choices", []):
            if ch["delta"].get("content"):
                if first is None:
                    first = time.monotonic() - t0
                text += ch["delta"]["content"]
    return {"text": text, "timings": timings}, first, time.monotonic() - t0

def main():
    binary, model, image = sys.argv[1:4]
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    split = len(sys.argv) > 5 and sys.argv[5] == "split"
    photo = open(image, "rb").read()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    srv = subprocess.Popen([binary, "serve", "--model", model, "--port", str(port), "--max-tokens", "16"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        while True:
            try:
                if urllib.request.urlopen(base + "/health", timeout=5).status == 200:
                    break
            except Exception:
                time.sleep(0.5)
        res = {"followup_first": [], "followup_second": [], "followup_ratio": [], "encode_ttft": [], "encode_prefill": [],
               "run_ttft": [], "serve_ttft": [], "serve_client_ttft": []}
        tmp = tempfile.mkdtemp()
        for r in range(runs):
            def fresh(tag):
                return photo + f"snapvlm-{tag}-{r}-{time.time_ns()}".encode()
            # 1. follow-up
            url = "data:image/jpeg;base64," + base64.b64encode(fresh("f")).decode()
            user1 = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What is in this picture?"}]}
            a, c1, _ = post(base, "/v1/chat/completions", {"messages": [user1], "stream": True, "no_split": not split})
            msgs = [user1, {"role": "assistant", "content": a["text"]}, {"role": "user", "content": "And the colours?"}]
            b, c2, _ = post(base, "/v1/chat/completions", {"messages": msgs, "stream": True, "no_split": not split})
            t1, t2 = a["timings"]["ttft_ms"], b["timings"]["ttft_ms"]
            res["followup_first"].append(t1); res["followup_second"].append(t2); res["followup_ratio"].append(t1 / t2)
            print(f"run {r} followup: first ttft {t1:.0f} ms (vision {a['timings']['vision_ms']:.0f}, prefill {a['timings']['prefill_ms']:.0f}, "
                  f"{a['timings']['prompt_tokens']} tokens, {a['timings']['tiles']} tiles); follow-up ttft {t2:.0f} ms "
                  f"(reused {b['timings']['reused_tokens']} of {b['timings']['prompt_tokens']} tokens, prefill {b['timings']['prefill_ms']:.0f}); "
                  f"ratio {t1 / t2:.1f}; client-side {c1 * 1000:.0f} / {c2 * 1000:.0f} ms", flush=True)
            # 2. encode on upload, then ask
            url = "data:image/jpeg;base64," + base64.b64encode(fresh("e")).decode()
            if split:
                continue
            e, _, _ = post(base, "/v1/snapvlm/encode", {"image": url, "no_split": True})
            w, _, wt = post(base, "/v1/snapvlm/encode", {"image": url, "no_split": True, "wait": True})  # returns when the features are ready
            q = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What is in this picture?"}]}], "stream": True, "no_split": True}
            c, cc, _ = post(base, "/v1/chat/completions", q)
            res["encode_ttft"].append(c["timings"]["ttft_ms"]); res["encode_prefill"].append(c["timings"]["prefill_ms"])
            print(f"run {r} encode: id {e['id'][:12]} {e['status']}, ready after {wt:.1f} s ({w['tiles']} tiles); then ttft {c['timings']['ttft_ms']:.0f} ms, "
                  f"prefill {c['timings']['prefill_ms']:.0f} ms, vision {c['timings']['vision_ms']:.0f} ms, client-side {cc * 1000:.0f} ms", flush=True)
            # 3. run vs serve, same no-split request, fresh photo each
            p1 = os.path.join(tmp, f"run{r}.jpg"); open(p1, "wb").write(fresh("r"))
            out = subprocess.run([binary, "run", "--model", model, "--image", p1, "--no-split", "--max-tokens", "16", "--json", "What is in this picture?"],
                                 capture_output=True, text=True, check=True)
            rt = json.loads(out.stdout)["timings"]["ttft_ms"]
            url = "data:image/jpeg;base64," + base64.b64encode(fresh("s")).decode()
            s, sc, _ = post(base, "/v1/chat/completions", {"no_split": True, "stream": True, "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What is in this picture?"}]}]})
            st = s["timings"]["ttft_ms"]
            res["run_ttft"].append(rt); res["serve_ttft"].append(st); res["serve_client_ttft"].append(sc * 1000)
            print(f"run {r} run vs serve (no split): run ttft {rt:.0f} ms; serve ttft {st:.0f} ms (client-side {sc * 1000:.0f} ms)", flush=True)
        print("medians:")
        for k, v in res.items():
            if not v:
                continue
            print(f"  {k}: {statistics.median(v):.1f}  (all: {', '.join(f'{x:.1f}' for x in v)})")
        m = statistics.median
        if res["run_ttft"]:
            print(f"  serve/run ttft: {m(res['serve_ttft']) / m(res['run_ttft']):.3f} (server-side), {m(res['serve_client_ttft']) / m(res['run_ttft']):.3f} (client-side)")
    finally:
        srv.terminate()
        srv.wait(timeout=60)

if __name__ == "__main__":
    main()
