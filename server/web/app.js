// snapvlm's snap-and-ask page: a photo, a question, a streamed answer,
// follow-ups. Plain JS talking to the server's OpenAI-compatible API.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  model: "",        // the server's default model id
  image: null,      // data URL of the current photo
  video: null,      // data URL of the current video (instead of a photo)
  messages: [],     // the conversation, in OpenAI's shape
  controller: null, // AbortController of the answer being streamed
  key: localStorage.getItem("snapvlm-api-key") || "",
};

function headers() {
  const h = { "Content-Type": "application/json" };
  if (state.key) h["Authorization"] = "Bearer " + state.key;
  return h;
}

function setBusy(busy) {
  document.body.dataset.state = busy ? "streaming" : "idle";
  $("ask").disabled = busy;
  $("stop").disabled = !busy;
}

function showError(msg) { $("error").textContent = msg || ""; }

// api calls path, asking for the key once when the server wants one.
async function api(path, opts = {}) {
  for (;;) {
    const resp = await fetch(path, { ...opts, headers: headers() });
    if (resp.status !== 401) return resp;
    await askKey();
  }
}

function askKey() {
  return new Promise((resolve) => {
    const dlg = $("key-dialog");
    $("key-form").onsubmit = () => {
      state.key = $("key").value.trim();
      localStorage.setItem("snapvlm-api-key", state.key);
      $("forget-key").hidden = false;
      resolve();
    };
    dlg.showModal();
  });
}

async function errorText(resp) {
  try {
    const body = await resp.json();
    if (body.error) return body.error.message;
  } catch (e) { /* not JSON */ }
  return "HTTP " + resp.status;
}

async function loadModels() {
  try {
    const resp = await api("v1/models");
    if (!resp.ok) { showError(await errorText(resp)); return; }
    const list = await resp.json();
    if (list.data.length) {
      state.model = list.data[0].id;
      $("model").textContent = list.data[0].id;
    }
  } catch (e) {
    showError("The server is not reachable: " + e.message);
  }
}

function settings() {
  return {
    no_split: $("no-split").checked,
    max_tokens: Math.max(1, parseInt($("max-tokens").value, 10) || 256),
    temperature: Math.min(2, Math.max(0, parseFloat($("temperature").value) || 0)),
  };
}

// A new photo starts a new conversation; its encoding starts at once.
// A video (sent as a video_url; SmolVLM2 samples its frames when asked)
// takes the photo's place.
function setPhoto(file) {
  if (file && file.type.startsWith("video/")) { setVideo(file); return; }
  if (!file || !file.type.startsWith("image/")) {
    showError("That is not an image or a video.");
    return;
  }
  const reader = new FileReader();
  reader.onload = () => {
    state.image = reader.result;
    state.video = null;
    $("preview-video").hidden = true;
    const img = $("preview");
    img.src = state.image;
    img.alt = "Your photo: " + (file.name || "pasted image");
    img.hidden = false;
    newConversation();
    encode();
    $("question").focus();
  };
  reader.readAsDataURL(file);
}

function setVideo(file) {
  const reader = new FileReader();
  reader.onload = () => {
    state.video = reader.result;
    state.image = null;
    $("preview").hidden = true;
    const v = $("preview-video");
    if (v.src) URL.revokeObjectURL(v.src);
    v.src = URL.createObjectURL(file);
    v.setAttribute("aria-label", "Your video: " + (file.name || "recorded video"));
    v.hidden = false;
    newConversation();
    $("image-status").textContent = "Video ready: its frames are sampled and encoded when you ask (this takes a while).";
    $("question").placeholder = "What happens in this video?";
    $("question").focus();
  };
  reader.readAsDataURL(file);
}

async function encode() {
  if (!state.image) return;
  const image = state.image;
  $("image-status").textContent = "Encoding the photo…";
  try {
    const resp = await api("v1/snapvlm/encode", {
      method: "POST",
      body: JSON.stringify({ model: state.model, image, no_split: settings().no_split, wait: true }),
    });
    if (image !== state.image) return; // another photo came meanwhile
    if (!resp.ok) { $("image-status").textContent = "Encoding failed: " + (await errorText(resp)); return; }
    const r = await resp.json();
    $("image-status").textContent = `Photo ready: ${r.tiles} tile${r.tiles === 1 ? "" : "s"}, ${r.tokens} tokens` +
      (r.cached ? " (cached)" : `, encoded in ${(r.vision_ms / 1000).toFixed(2)} s`) + ".";
    document.body.dataset.image = "ready";
  } catch (e) {
    $("image-status").textContent = "Encoding failed: " + e.message;
  }
}

function newConversation() {
  if (state.controller) state.controller.abort();
  state.messages = [];
  $("log").replaceChildren();
  $("stats").textContent = "";
  showError("");
  delete document.body.dataset.answers;
}

function addBubble(role, text) {
  const li = document.createElement("li");
  li.className = role;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "user" ? "You" : "Answer";
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  li.append(who, body);
  $("log").append(li);
  li.scrollIntoView({ block: "nearest" });
  return body;
}

async function ask(question) {
  const s = settings();
  const first = state.messages.length === 0;
  let content = question;
  if (first && state.video) {
    content = [{ type: "video_url", video_url: { url: state.video } }, { type: "text", text: question }];
  } else if (first && state.image) {
    content = [{ type: "image_url", image_url: { url: state.image } }, { type: "text", text: question }];
  }
  const messages = [...state.messages, { role: "user", content }];
  addBubble("user", question);
  const out = addBubble("assistant", "");
  out.parentElement.setAttribute("aria-busy", "true");
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  showError("");
  let text = "", finish = "", timings = null, usage = null;
  try {
    const resp = await api("v1/chat/completions", {
      method: "POST",
      signal: controller.signal,
      body: JSON.stringify({ model: state.model, messages, stream: true, stream_options: { include_usage: true },
        max_tokens: s.max_tokens, temperature: s.temperature, no_split: s.no_split }),
    });
    if (!resp.ok) throw new Error(await errorText(resp));
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, i);
        buf = buf.slice(i + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          if (chunk.usage) usage = chunk.usage;
          if (chunk.timings) timings = chunk.timings;
          const c = chunk.choices && chunk.choices[0];
          if (!c) continue;
          if (c.delta && c.delta.content) {
            text += c.delta.content;
            out.textContent = text;
          }
          if (c.finish_reason) finish = c.finish_reason;
        }
      }
    }
  } catch (e) {
    if (e.name === "AbortError") {
      finish = "stopped";
    } else {
      showError(e.message);
      finish = "error";
    }
  } finally {
    out.parentElement.removeAttribute("aria-busy");
    if (state.controller === controller) state.controller = null;
    setBusy(false);
  }
  out.parentElement.dataset.finish = finish;
  if (finish === "error" && text === "") return;
  // The answer (even a stopped one) joins the conversation.
  state.messages = [...messages, { role: "assistant", content: text }];
  document.body.dataset.answers = String(state.messages.length / 2);
  showStats(timings, usage, finish);
}

function showStats(t, u, finish) {
  const parts = [];
  if (state.model) parts.push(state.model);
  if (t) {
    if (t.tiles) parts.push(`${t.tiles} tile${t.tiles === 1 ? "" : "s"}${t.cached_images ? " (cached)" : ""}`);
    parts.push(`prompt ${t.prompt_tokens} tokens`);
    parts.push(`first token ${(t.ttft_ms / 1000).toFixed(2)} s`);
    parts.push(`${t.decode_tokens_per_sec.toFixed(1)} tokens/s`);
  }
  if (u) parts.push(`${u.completion_tokens} tokens generated`);
  if (finish === "stopped") parts.push("stopped");
  else if (finish === "length") parts.push("hit the max tokens");
  $("stats").textContent = parts.join(" · ");
}

function init() {
  for (const id of ["camera", "camera-video", "file"]) {
    $(id).addEventListener("change", (e) => { setPhoto(e.target.files[0]); e.target.value = ""; });
  }
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) setPhoto(e.dataTransfer.files[0]);
  });
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); }
  });
  document.addEventListener("paste", (e) => {
    for (const item of e.clipboardData.items) {
      if (item.kind === "file" && (item.type.startsWith("image/") || item.type.startsWith("video/"))) { setPhoto(item.getAsFile()); e.preventDefault(); return; }
    }
  });
  $("ask-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("question").value.trim();
    if (!q || state.controller) return;
    $("question").value = "";
    ask(q);
  });
  $("question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("ask-form").requestSubmit(); }
  });
  $("stop").addEventListener("click", () => { if (state.controller) state.controller.abort(); });
  $("new").addEventListener("click", newConversation);
  $("no-split").addEventListener("change", () => { newConversation(); encode(); });
  $("forget-key").hidden = !state.key;
  $("forget-key").addEventListener("click", () => {
    localStorage.removeItem("snapvlm-api-key");
    state.key = "";
    $("forget-key").hidden = true;
  });
  loadModels();
}

init();
