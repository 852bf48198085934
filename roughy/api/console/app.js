// roughy console: plain JavaScript over the public /v1 API, with the API key the user pastes
// (kept in sessionStorage, sent as "Authorization: Bearer"). No framework, no build step.
// Everything from the API is put in the page as text (textContent), never as HTML.
"use strict";

const KEY_STORAGE = "roughy.apiKey";
const EVENT_TYPES = ["render.completed", "render.failed", "asset.ready", "asset.failed", "cut.completed", "cut.failed"];
const DEFAULT_EVENTS = ["render.completed", "render.failed"];
const VIDEO_EXTENSIONS = ["mp4", "mov", "m4v", "mkv", "webm", "avi", "flv", "mxf", "ts", "mts", "3gp", "wmv", "mpg"];
const AUDIO_EXTENSIONS = ["mp3", "m4a", "aac", "wav", "flac", "ogg", "opus", "aiff", "caf", "amr", "w64"];
const POLL_MS = 1000;
const URL_MARGIN_MS = 60_000; // a signed URL is replaced when it has less than this left

const state = {
  key: sessionStorage.getItem(KEY_STORAGE) || "",
  assets: [],
  selected: null, // asset id
  cuts: [],
  renders: [],
  endpoints: [],
  deliveriesOf: null, // endpoint id
  signed: new Map(), // "poster:<asset>" or "download:<render>" -> {url, expires}
  timer: null,
};

const $ = (id) => document.getElementById(id);

/** An element with attributes (`on*` functions become listeners) and children (strings become text). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// -- the API ---------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message, param, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
    this.requestId = requestId;
  }
}

/** The SPEC's error envelope ({"error": {"code", "message", "param"}}) as an ApiError. */
function errorFrom(status, data, requestId, fallback) {
  const error = (data && data.error) || {};
  return new ApiError(status, error.code || `http_${status}`, error.message || fallback || `HTTP ${status}`,
    error.param, error.request_id || requestId);
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.key}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (exc) {
    throw new ApiError(0, "network_error", `The service could not be reached (${exc.message}).`);
  }
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => null);
  if (!resp.ok) throw errorFrom(resp.status, data, resp.headers.get("X-Request-Id"), resp.statusText);
  return data;
}

/** PUT a file to a signed upload target with XHR (fetch reports no upload progress). */
function putFile(target, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(target.method || "PUT", target.url);
    for (const [name, value] of Object.entries(target.headers || {})) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) { onProgress(1); resolve(); return; }
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { /* S3 answers XML */ }
      reject(errorFrom(xhr.status, data, xhr.getResponseHeader("X-Request-Id"), `the upload was refused (HTTP ${xhr.status})`));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "upload_failed",
      "The upload did not go through: a network error, or object storage refused a cross-origin PUT (see the CORS rule in docs/console.md).")));
    xhr.send(file);
  });
}

// -- errors and status -----------------------------------------------------------------------

function showError(err) {
  console.error(err);
  $("error-code").textContent = err.code || "error";
  $("error-message").textContent = err.message;
  const detail = [];
  if (err.status) detail.push(`HTTP ${err.status}`);
  if (err.param) detail.push(`field: ${err.param}`);
  if (err.requestId) detail.push(`request id: ${err.requestId}`);
  $("error-detail").textContent = detail.join(" · ");
  $("error").hidden = false;
}

function clearError() { $("error").hidden = true; }

/** Run a user action: its errors are shown, never swallowed. */
async function act(fn) {
  try {
    clearError();
    await fn();
  } catch (err) {
    showError(err instanceof ApiError ? err : new ApiError(0, "console_error", String(err.message || err)));
  }
}

// -- formatting ------------------------------------------------------------------------------

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
const seconds = (s) => (s === null || s === undefined ? "–" : `${Number(s).toFixed(2)} s`);
function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "kB", "MB", "GB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
const badge = (text) => el("span", { class: `badge state-${text}` }, text);
// payment_required waits for an operator's grant: not worth a poll a second.
const FINAL_ASSET = ["ready", "failed", "payment_required"];
const FINAL_RENDER = ["completed", "failed"];
const FINAL_CUT = ["completed", "failed"];

/** A signed URL (poster, download) kept until close to its expiry: the same <img> stays loaded. */
function signed(name, url, expiresAt) {
  const known = state.signed.get(name);
  if (known && known.expires - Date.now() > URL_MARGIN_MS) return known.url;
  if (!url) return null;
  state.signed.set(name, { url, expires: new Date(expiresAt).getTime() });
  return url;
}

// -- key -------------------------------------------------------------------------------------

async function connect(key) {
  state.key = key.trim();
  const credits = await api("GET", "/v1/credits");
  sessionStorage.setItem(KEY_STORAGE, state.key);
  $("who").textContent = `Connected with key ${state.key.slice(0, 6)}…`;
  $("forget-key").hidden = false;
  $("api-key").value = "";
  $("console").hidden = false;
  renderCredits(credits);
  await Promise.all([loadAssets(), loadEndpoints()]);
  schedule();
}

function forget() {
  sessionStorage.removeItem(KEY_STORAGE);
  state.key = "";
  state.selected = null;
  clearTimeout(state.timer);
  $("console").hidden = true;
  $("forget-key").hidden = true;
  $("who").textContent = "Key forgotten. Paste an API key to connect.";
}

// -- uploads ---------------------------------------------------------------------------------

function kindOf(file) {
  if (file.type.startsWith("video/")) return "video";
  if (file.type.startsWith("audio/")) return "audio";
  const ext = file.name.includes(".") ? file.name.split(".").pop().toLowerCase() : "";
  if (VIDEO_EXTENSIONS.includes(ext)) return "video";
  if (AUDIO_EXTENSIONS.includes(ext)) return "audio";
  return null;
}

async function upload(file) {
  const progress = el("progress", { max: "1", value: "0", "aria-label": `Upload of ${file.name}` });
  const status = el("span", { class: "muted" }, "starting…");
  const item = el("li", { class: "upload" }, el("span", { class: "name" }, file.name), progress, status);
  $("uploads").prepend(item);
  try {
    const kind = kindOf(file);
    if (!kind) throw new ApiError(0, "unknown_kind", `Cannot tell whether ${file.name} is a video or an audio file (type "${file.type || "unknown"}").`);
    const asset = await api("POST", "/v1/assets", { kind, filename: file.name });
    status.textContent = `uploading ${bytes(file.size)} as ${kind}…`;
    await putFile(asset.upload[kind], file, (f) => { progress.value = f; });
    status.textContent = "completing…";
    await api("POST", `/v1/assets/${encodeURIComponent(asset.id)}/parts/${kind}/complete`);
    status.textContent = "uploaded: processing";
    status.dataset.asset = asset.id; // follows the asset's state from here (renderAssets)
    item.classList.add("done");
    if (!state.selected) state.selected = asset.id;
    await loadAssets();
  } catch (err) {
    status.textContent = "failed";
    item.classList.add("failed");
    throw err;
  }
}

function uploadAll(files) {
  for (const file of files) act(() => upload(file));
}

function setUpDropZone() {
  const zone = $("drop-zone");
  const input = $("file-input");
  input.addEventListener("change", () => { uploadAll([...input.files]); input.value = ""; });
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (e) => { e.preventDefault(); zone.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) zone.addEventListener(name, () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer && e.dataTransfer.files.length) uploadAll([...e.dataTransfer.files]);
  });
}

// -- assets ----------------------------------------------------------------------------------

async function loadAssets() {
  const page = await api("GET", "/v1/assets?limit=50");
  state.assets = page.data;
  renderAssets();
  if (state.selected && !state.assets.some((a) => a.id === state.selected)) state.selected = null;
  await loadDetail();
}

function posterOf(asset) {
  const url = asset.poster ? signed(`poster:${asset.id}`, asset.poster.url, asset.poster.expires_at) : null;
  if (url) return el("img", { class: "poster", src: url, alt: `Poster frame of ${asset.filename}`, width: "160" });
  return el("div", { class: "poster placeholder", "aria-hidden": "true" }, asset.kind === "audio" ? "♪" : "▶");
}

function facts(asset) {
  const parts = [asset.kind, seconds(asset.duration)];
  if (asset.video) parts.push(`${asset.video.width}×${asset.video.height}`, `${asset.video.fps} fps`, asset.video.codec);
  if (asset.audio) parts.push(`${asset.audio.codec} ${asset.audio.channels} ch`);
  return parts.join(" · ");
}

function renderAssets() {
  const list = $("assets");
  list.replaceChildren(...state.assets.map((asset) => el("li", {
    class: `card${asset.id === state.selected ? " selected" : ""}`, dataset: { id: asset.id, state: asset.state },
  },
  posterOf(asset),
  el("div", { class: "card-body" },
    el("p", { class: "name" }, asset.filename),
    el("p", {}, badge(asset.state), asset.cuttable ? el("span", { class: "muted" }, " cuttable") : null),
    el("p", { class: "muted small" }, facts(asset)),
    asset.error ? el("p", { class: "error-text" }, `${asset.error.code}: ${asset.error.message}`) : null,
    el("p", { class: "muted small" }, el("code", {}, asset.id)),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "open", onclick: () => act(() => select(asset.id)) }, "Open"),
      el("button", { type: "button", class: "danger delete", onclick: () => act(() => deleteAsset(asset)) }, "Delete"))))));
  $("assets-empty").hidden = state.assets.length > 0;
  for (const status of document.querySelectorAll("#uploads [data-asset]")) {
    const asset = state.assets.find((a) => a.id === status.dataset.asset);
    if (asset) status.textContent = `uploaded: ${asset.state.replace("_", " ")}`;
  }
}

async function select(assetId) {
  state.selected = assetId;
  renderAssets();
  await loadDetail();
}

async function deleteAsset(asset) {
  if (!window.confirm(`Delete ${asset.filename} with its cuts, renders and media?`)) return;
  await api("DELETE", `/v1/assets/${encodeURIComponent(asset.id)}`);
  if (state.selected === asset.id) state.selected = null;
  await loadAssets();
}

// -- one asset: cuts and renders -------------------------------------------------------------

async function loadDetail() {
  const asset = state.assets.find((a) => a.id === state.selected);
  $("detail").hidden = !asset;
  if (!asset) return;
  $("detail-name").textContent = asset.filename;
  $("detail-facts").textContent = `${asset.id} · ${asset.state} · ${facts(asset)}`;
  const id = encodeURIComponent(asset.id);
  const [cuts, renders] = await Promise.all([
    api("GET", `/v1/assets/${id}/cuts?limit=50`),
    api("GET", `/v1/renders?asset_id=${id}&limit=50`),
  ]);
  if (state.selected !== asset.id) return; // another asset was opened meanwhile
  state.cuts = cuts.data;
  state.renders = renders.data;
  await signDownloads();
  renderCuts();
  renderRenders();
}

function renderCuts() {
  $("cuts").replaceChildren(...state.cuts.map((cut) => el("li", { class: "cut", dataset: { id: cut.id, state: cut.state } },
    badge(cut.state), " ",
    el("span", {}, cut.method === "silence" ? "silences removed" : "segments"), " ",
    el("span", { class: "muted small" }, cut.segments.map((s) => `${s.start.toFixed(2)}–${s.end.toFixed(2)}`).join(", ")),
    cut.error ? el("span", { class: "error-text" }, ` ${cut.error.code}: ${cut.error.message}`) : null,
    " ", el("code", { class: "small" }, cut.id),
    el("button", { type: "button", class: "danger", onclick: () => act(async () => {
      await api("DELETE", `/v1/cuts/${encodeURIComponent(cut.id)}`);
      await loadDetail();
    }) }, "Delete"))));
  const picker = $("render-cut");
  const chosen = picker.value;
  picker.replaceChildren(el("option", { value: "" }, "Whole source"),
    ...state.cuts.filter((c) => c.state === "completed").map((c) => el("option", { value: c.id }, `${c.method} ${c.id}`)));
  picker.value = [...picker.options].some((o) => o.value === chosen) ? chosen : "";
}

function parseSegments(text) {
  const segments = text.split(",").map((s) => s.trim()).filter(Boolean).map((part) => {
    const m = part.match(/^(\d+(?:\.\d+)?)\s*[-–]\s*(\d+(?:\.\d+)?)$/);
    if (!m) throw new ApiError(0, "bad_segments", `"${part}" is not start-end in seconds (for example 1.5-10).`);
    return { start: Number(m[1]), end: Number(m[2]) };
  });
  if (!segments.length) throw new ApiError(0, "bad_segments", "Give at least one segment, for example 0-1.5.");
  return segments;
}

async function createCut(event) {
  event.preventDefault();
  const method = document.querySelector("input[name=cut-method]:checked").value;
  const body = method === "silence"
    ? { method: "silence", min_silence: Number($("cut-min-silence").value), threshold_db: Number($("cut-threshold").value), padding: Number($("cut-padding").value) }
    : { segments: parseSegments($("cut-segments").value) };
  await api("POST", `/v1/assets/${encodeURIComponent(state.selected)}/cuts`, body);
  await loadDetail();
}

async function createRender(event) {
  event.preventDefault();
  const output = { format: $("render-format").value };
  const resolution = $("render-resolution").value;
  if (resolution && ["mp4", "mov"].includes(output.format)) output.resolution = resolution;
  const body = { asset_id: state.selected, output };
  if ($("render-cut").value) body.cut_id = $("render-cut").value;
  await api("POST", "/v1/renders", body);
  await loadDetail();
}

/** Completed renders get a download URL (GET /v1/renders/{id}; lists never carry one). */
async function signDownloads() {
  await Promise.all(state.renders.filter((r) => r.state === "completed").map(async (r) => {
    if (signed(`download:${r.id}`)) return;
    const full = await api("GET", `/v1/renders/${encodeURIComponent(r.id)}`);
    signed(`download:${r.id}`, full.download_url, full.download_expires_at);
  }));
}

function describeOutput(render) {
  const o = render.output;
  return [o.format, o.resolution || "source size", render.cut_id ? `cut ${render.cut_id}` : "whole source"].join(" · ");
}

function renderRenders() {
  $("renders").replaceChildren(...state.renders.map((render) => {
    const done = FINAL_RENDER.includes(render.state);
    const url = render.state === "completed" ? signed(`download:${render.id}`) : null;
    const percent = Math.round(render.progress * 100);
    return el("li", { class: "render", dataset: { id: render.id, state: render.state } },
      badge(render.state), " ",
      el("span", {}, describeOutput(render)), " ",
      el("progress", { max: "1", value: String(render.progress), "aria-label": `Progress of ${render.id}` }),
      el("span", { class: "percent" }, `${percent} %`),
      render.result ? el("span", { class: "muted small" }, ` ${bytes(render.result.size_bytes)}, ${seconds(render.result.duration)}`) : null,
      render.error ? el("span", { class: "error-text" }, ` ${render.error.code}: ${render.error.message}`) : null,
      " ", el("code", { class: "small" }, render.id),
      url ? el("a", { class: "download", href: url, download: "" }, "Download") : null,
      el("button", { type: "button", class: "danger cancel", onclick: () => act(() => cancelRender(render)) }, done ? "Delete" : "Cancel"));
  }));
}

async function cancelRender(render) {
  await api("DELETE", `/v1/renders/${encodeURIComponent(render.id)}`);
  state.signed.delete(`download:${render.id}`);
  await loadDetail();
}

// -- credits ---------------------------------------------------------------------------------

async function loadCredits() { renderCredits(await api("GET", "/v1/credits")); }

function renderCredits(credits) {
  $("balance").textContent = String(credits.balance);
  $("ledger").tBodies[0].replaceChildren(...credits.entries.map((e) => el("tr", { class: `entry ${e.type}` },
    el("td", {}, when(e.created_at)), el("td", {}, e.type),
    el("td", { class: "number" }, e.type === "charge" ? `−${Math.abs(e.amount)}` : `+${e.amount}`),
    el("td", {}, e.asset_id ? el("code", {}, e.asset_id) : ""), el("td", {}, e.reason || ""))));
}

// -- webhooks --------------------------------------------------------------------------------

function setUpEventBoxes() {
  $("webhook-events").replaceChildren(...EVENT_TYPES.map((type) => el("label", {},
    el("input", { type: "checkbox", name: "events", value: type, checked: DEFAULT_EVENTS.includes(type) }), ` ${type}`)));
}

async function loadEndpoints() {
  const page = await api("GET", "/v1/webhook_endpoints?limit=50");
  state.endpoints = page.data;
  renderEndpoints();
  if (state.deliveriesOf) await loadDeliveries();
}

function renderEndpoints() {
  $("webhooks").replaceChildren(...state.endpoints.map((ep) => el("li", { class: "endpoint", dataset: { id: ep.id } },
    el("span", { class: "name" }, ep.url), " ",
    ep.enabled ? badge("enabled") : badge("disabled"),
    ep.disabled_reason ? el("span", { class: "error-text" }, ` ${ep.disabled_reason}`) : null,
    el("p", { class: "muted small" }, ep.events.join(", "), " · ", el("code", {}, ep.id)),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "deliveries", onclick: () => act(async () => { state.deliveriesOf = ep.id; await loadDeliveries(); }) }, "Deliveries"),
      el("button", { type: "button", class: "danger", onclick: () => act(() => deleteEndpoint(ep)) }, "Delete")))));
}

async function createEndpoint(event) {
  event.preventDefault();
  const events = [...document.querySelectorAll("#webhook-events input:checked")].map((i) => i.value);
  const created = await api("POST", "/v1/webhook_endpoints", { url: $("webhook-url").value.trim(), events });
  const notice = $("webhook-secret");
  notice.replaceChildren("Signing secret of ", el("code", {}, created.id), " (shown only now, keep it): ",
    el("code", { class: "secret" }, created.secret));
  notice.hidden = false;
  $("webhook-url").value = "";
  await loadEndpoints();
}

async function deleteEndpoint(ep) {
  if (!window.confirm(`Delete the endpoint ${ep.url}?`)) return;
  await api("DELETE", `/v1/webhook_endpoints/${encodeURIComponent(ep.id)}`);
  if (state.deliveriesOf === ep.id) { state.deliveriesOf = null; $("deliveries-panel").hidden = true; }
  await loadEndpoints();
}

async function loadDeliveries() {
  const ep = state.endpoints.find((e) => e.id === state.deliveriesOf);
  if (!ep) { $("deliveries-panel").hidden = true; return; }
  const page = await api("GET", `/v1/webhook_endpoints/${encodeURIComponent(ep.id)}/deliveries?limit=50`);
  $("deliveries-of").textContent = ep.url;
  $("deliveries-panel").hidden = false;
  $("deliveries-empty").hidden = page.data.length > 0;
  $("deliveries").tBodies[0].replaceChildren(...page.data.map((d) => {
    const last = d.attempts[d.attempts.length - 1];
    const answer = last ? (last.status_code ? `HTTP ${last.status_code}` : last.error || "no answer") : "not tried yet";
    return el("tr", { class: "delivery", dataset: { id: d.id, event: d.event_id, state: d.state } },
      el("td", {}, d.event_type, el("br"), el("code", { class: "small" }, d.event_id)),
      el("td", {}, badge(d.state)), el("td", { class: "number" }, String(d.attempts.length)),
      el("td", {}, answer, d.next_retry_at ? el("span", { class: "muted small" }, ` · retry ${when(d.next_retry_at)}`) : null),
      el("td", {}, el("button", { type: "button", class: "redeliver", onclick: () => act(() => redeliver(d.event_id)) }, "Redeliver")));
  }));
}

async function redeliver(eventId) {
  const out = await api("POST", `/v1/events/${encodeURIComponent(eventId)}/redeliver`);
  $("who").textContent = `Event ${out.event_id} queued again (${out.deliveries.length} deliver${out.deliveries.length === 1 ? "y" : "ies"}).`;
  await loadDeliveries();
}

// -- live updates ----------------------------------------------------------------------------

/** Poll while something moves (an asset processing, a cut or a render not final). */
function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(async () => {
    if (!state.key || $("console").hidden) return;
    const moving = state.assets.some((a) => !FINAL_ASSET.includes(a.state) && a.state !== "uploading")
      || state.renders.some((r) => !FINAL_RENDER.includes(r.state))
      || state.cuts.some((c) => !FINAL_CUT.includes(c.state));
    try {
      if (moving) {
        await loadAssets();
        await loadCredits();
      }
      if (state.deliveriesOf) await loadDeliveries();
    } catch (err) {
      showError(err);
    }
    schedule();
  }, POLL_MS);
}

// -- start -----------------------------------------------------------------------------------

function start() {
  setUpDropZone();
  setUpEventBoxes();
  $("key-form").addEventListener("submit", (e) => { e.preventDefault(); act(() => connect($("api-key").value)); });
  $("forget-key").addEventListener("click", forget);
  $("error-close").addEventListener("click", clearError);
  $("refresh").addEventListener("click", () => act(async () => { await loadAssets(); await loadCredits(); await loadEndpoints(); }));
  $("cut-form").addEventListener("submit", (e) => act(() => createCut(e)));
  $("render-form").addEventListener("submit", (e) => act(() => createRender(e)));
  $("webhook-form").addEventListener("submit", (e) => act(() => createEndpoint(e)));
  for (const radio of document.querySelectorAll("input[name=cut-method]")) {
    radio.addEventListener("change", () => {
      const silence = document.querySelector("input[name=cut-method]:checked").value === "silence";
      $("cut-silence-fields").hidden = !silence;
      $("cut-segments-fields").hidden = silence;
    });
  }
  if (state.key) act(() => connect(state.key));
}

document.addEventListener("DOMContentLoaded", start);
