// whisperq's page: plain JavaScript, no build step. Every URL is relative to the page, so it works on
// the local twin (/app) and behind API Gateway's stage (/v1/app) alike.
"use strict";

const TYPES = { wav: "audio/wav", flac: "audio/flac", mp3: "audio/mpeg", m4a: "audio/mp4", mp4: "audio/mp4",
  aac: "audio/aac", ogg: "audio/ogg", oga: "audio/ogg", opus: "audio/ogg", webm: "audio/webm" };
const FINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
const KEY = "whisperq.apiKey";
const $ = (id) => document.getElementById(id);

function apiKey() { return localStorage.getItem(KEY) || ""; }

function say(text) {
  const box = $("message");
  box.textContent = text || "";
  box.hidden = !text;
}

// What a person should read for an answer the API refused.
function explain(status, error) {
  if (status === 403) return "The API key was not accepted. Check it, then save it again.";
  if (status === 429) return "Too many requests just now: wait a few seconds and try again.";
  if (status === 413) return "That file is too large for this service.";
  if (status >= 500) return "The service had a problem (HTTP " + status + "). Try again in a minute.";
  return (error && error.message) || "The request was refused (HTTP " + status + ").";
}

class ApiError extends Error {}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(new URL(path, document.baseURI), {
      ...options, headers: { "x-api-key": apiKey(), ...(options.body ? { "Content-Type": "application/json" } : {}) },
    });
  } catch (err) {
    throw new ApiError("Cannot reach the whisperq API. Is it running?");
  }
  let payload = {};
  try { payload = await response.json(); } catch (err) { payload = {}; }
  if (!response.ok) throw new ApiError(explain(response.status, payload.error));
  return payload;
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function clock(seconds) {
  const s = Math.max(0, seconds);
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, "0")}`;
}

function describe(job) {
  const d = job.details || {};
  const parts = [];
  if (d.chunks) parts.push(`${d.chunksDone || 0} of ${d.chunks} chunks done`);
  if (d.queueWaitS !== undefined) parts.push(`waited ${d.queueWaitS.toFixed(1)} s in the queue`);
  if (d.realTimeFactor) parts.push(`${d.realTimeFactor}x real time`);
  if (d.speakers !== undefined) parts.push(`${d.speakers} speaker${d.speakers === 1 ? "" : "s"}` +
    (d.diarizeS !== undefined ? ` (told apart in ${d.diarizeS.toFixed(1)} s)` : ""));
  if (d.language) parts.push(`language ${d.language}` +
    (d.languageProbability !== undefined ? ` (${Math.round(d.languageProbability * 100)}% sure)` : ""));
  return parts.join(" · ");
}

// One file: its upload, then its job, then its transcript.
class FileCard {
  constructor(name, file) {
    this.file = file;
    this.status = el("span", { class: "status", text: "uploading" });
    this.bar = el("progress", { max: "1", value: "0", "aria-label": `progress of ${name}` });
    this.meta = el("p", { class: "meta" });
    this.body = el("div");
    this.node = el("article", { class: "file" }, el("h3", { text: name }),
      el("p", {}, this.status), this.bar, this.meta, this.body);
    $("uploads").prepend(this.node);
  }

  fail(text) {
    this.status.textContent = "not transcribed";
    this.status.className = "status FAILED";
    this.body.replaceChildren(el("p", { class: "error", text }));
    this.bar.hidden = true;
  }

  show(job) {
    this.job = job;
    this.status.textContent = job.status;
    this.status.className = `status ${job.status}`;
    this.meta.textContent = describe(job);
    const d = job.details || {};
    if (d.chunks) { this.bar.max = d.chunks; this.bar.value = d.chunksDone || 0; }
    if (FINAL.has(job.status)) this.bar.hidden = true;
    if (job.status === "FAILED") this.body.replaceChildren(el("p", { class: "error", text: job.error }));
  }

  async transcript(job) {
    const urls = job.transcriptUrls || {};
    const downloads = el("p", { class: "row" }, ...Object.keys(urls).sort().map((fmt) =>
      el("a", { class: "button secondary", href: urls[fmt], download: "", text: `Download ${fmt}` })));
    const player = this.file ? el("audio", { controls: "", src: URL.createObjectURL(this.file),
      "aria-label": "the audio" }) : null;
    let segments = [];
    let speakers = [];
    try {
      const response = await fetch(urls.json);
      const data = await response.json();
      segments = data.segments || [];
      speakers = (data.speakers || []).map((speaker) => speaker.label);
    } catch (err) {
      this.body.replaceChildren(downloads, el("p", { class: "error",
        text: "The transcript is ready but could not be shown here; download it instead." }));
      return;
    }
    // A diarized transcript: a colour per speaker, and a name field each that renames its tags in the view.
    const voice = (label) => `voice-${speakers.indexOf(label) % 8}`;
    const tag = (label) => el("span", { class: `speaker ${voice(label)}`, "data-speaker": label, text: label });
    const list = el("ol", { class: "segments", "aria-label": "transcript" }, ...segments.map((segment) =>
      el("li", {}, el("button", { type: "button", text: clock(segment.start),
        "aria-label": `play from ${clock(segment.start)}`,
        onclick: () => { if (player) { player.currentTime = segment.start; player.play().catch(() => {}); } } }),
      segment.speaker ? tag(segment.speaker) : null,
      document.createTextNode(segment.text.trim()))));
    const names = speakers.length ? el("p", { class: "speakers", "aria-label": "speakers" }, ...speakers.map((label) =>
      el("label", {}, `${label} `, el("input", { type: "text", class: voice(label), value: label,
        "aria-label": `name for ${label}`,
        oninput: (event) => list.querySelectorAll(`[data-speaker="${label}"]`).forEach((node) => {
          node.textContent = event.target.value.trim() || label; }) })))) : null;
    this.body.replaceChildren(player, names, list, downloads);
  }
}

async function follow(card, jobId) {
  for (;;) {
    let job;
    try { job = await api(`jobs/${jobId}`); } catch (err) { card.fail(err.message); return; }
    card.show(job);
    if (job.status === "COMPLETED") { await card.transcript(job); break; }
    if (FINAL.has(job.status)) break;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  refreshJobs();
}

function upload(form, file, onProgress) {
  return new Promise((resolve, reject) => {
    const data = new FormData();
    for (const [name, value] of Object.entries(form.fields)) data.append(name, value);
    data.append(form.fileField, file);
    const request = new XMLHttpRequest();
    request.open("POST", form.url);
    request.upload.onprogress = (event) => { if (event.lengthComputable) onProgress(event.loaded / event.total); };
    request.onload = () => (request.status < 300 ? resolve()
      : reject(new ApiError(`Storage refused the upload (HTTP ${request.status}).`)));
    request.onerror = () => reject(new ApiError("The upload did not reach storage. Check your connection."));
    request.send(data);
  });
}

// The deployment's models (GET /v1/models), each run by workers of its own; the choice shows when there are several.
async function loadModels() {
  if (!apiKey()) return;
  let listed;
  try { listed = await api("v1/models"); } catch (err) { return; }
  const models = listed.data.filter((m) => !m.aliasOf);
  $("model").replaceChildren(...models.map((m) => el("option", { value: m.id,
    text: `${m.id}${m.realTime ? ` (${m.realTime}x real time)` : ""}${m.default ? " - default" : ""}` })));
  const chosen = models.find((m) => m.default);
  if (chosen) $("model").value = chosen.id;
  $("model-choice").hidden = models.length < 2;
}

function chosenModel() {
  return $("model-choice").hidden || !$("model").value ? {} : { model: $("model").value };
}

function chosenOptions() {
  const options = {};
  if ($("language").value.trim()) options.language = $("language").value.trim().toLowerCase();
  if ($("words").checked) options.wordTimestamps = true;
  if ($("diarize").checked) options.diarize = true;
  return options;
}

// Audio that is already somewhere: the service copies (s3://) or fetches (https://) it itself.
async function transcribeSource(source) {
  const card = new FileCard(source.split("?")[0].split("/").pop() || source, null);
  card.status.textContent = "creating";
  try {
    const job = await api("jobs", { method: "POST", body: JSON.stringify({ source, ...chosenModel(), options: chosenOptions() }) });
    card.bar.value = 0;
    await follow(card, job.jobId);
  } catch (err) {
    card.fail(err.message);
  }
}

async function transcribe(file) {
  const card = new FileCard(file.name, file);
  const type = TYPES[(file.name.split(".").pop() || "").toLowerCase()];
  if (!type) { card.fail(`${file.name} is not a supported audio file (wav, flac, mp3, m4a, ogg or webm).`); return; }
  const options = chosenOptions();
  try {
    const job = await api("jobs", { method: "POST", body: JSON.stringify({ filename: file.name, contentType: type,
      ...chosenModel(), options }) });
    card.status.textContent = "uploading";
    await upload(job.upload, file, (share) => {
      card.bar.value = share;
      card.status.textContent = `uploading ${Math.round(share * 100)}%`;
    });
    card.bar.value = 0;
    await follow(card, job.jobId);
  } catch (err) {
    card.fail(err.message);
  }
}

function start(files) {
  say("");
  if (!apiKey()) { say("Enter your API key first (at the top of the page)."); return; }
  for (const file of files) transcribe(file);
}

async function refreshJobs() {
  if (!apiKey()) return;
  const status = $("status-filter").value;
  let page;
  try { page = await api(`jobs?limit=20${status ? `&status=${status}` : ""}`); } catch (err) { say(err.message); return; }
  $("jobs").replaceChildren(...page.jobs.map((job) => {
    const actions = el("td");
    if (!FINAL.has(job.status)) {
      actions.append(el("button", { type: "button", class: "secondary", text: "Cancel",
        "aria-label": `cancel ${job.filename}`,
        onclick: async () => { try { await api(`jobs/${job.jobId}`, { method: "DELETE" }); } catch (err) {
          say(err.message); } refreshJobs(); } }));
    } else if (job.status === "COMPLETED") {
      actions.append(el("button", { type: "button", class: "secondary", text: "Open",
        "aria-label": `open the transcript of ${job.filename}`,
        onclick: () => follow(new FileCard(job.filename, null), job.jobId) }));
    }
    const d = job.details || {};
    const progress = d.chunks && !FINAL.has(job.status) ? ` (${d.chunksDone || 0}/${d.chunks} chunks)` : "";
    return el("tr", {}, el("td", { text: job.filename }),
      el("td", {}, el("span", { class: `status ${job.status}`, text: job.status + progress }),
        job.error ? el("div", { class: "error", text: job.error }) : null),
      el("td", { class: "optional", text: job.createdAt.replace("T", " ").slice(0, 19) }),
      el("td", { class: "id optional", text: job.jobId }), actions);
  }));
}

async function refreshOps() {
  if (!apiKey()) return;
  try {
    const ops = await api("ops/queues");
    $("ops-visible").textContent = ops.queue.visible;
    $("ops-inflight").textContent = ops.queue.inFlight;
    $("ops-dead").textContent = ops.deadLetters.visible;
    $("ops-failures").replaceChildren(...ops.failures.map((job) =>
      el("li", { text: `${job.filename}: ${job.error}` })));
    if (!ops.failures.length) $("ops-failures").append(el("li", { text: "none" }));
    $("ops-at").textContent = `Last: ${new Date().toLocaleTimeString()}.`;
  } catch (err) {
    $("ops-at").textContent = err.message;
  }
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  localStorage.setItem(KEY, $("api-key").value.trim());
  say("");
  refreshJobs();
  refreshOps();
  loadModels();
});
$("api-key").value = apiKey();
$("source-form").addEventListener("submit", (event) => {
  event.preventDefault();
  say("");
  if (!apiKey()) { say("Enter your API key first (at the top of the page)."); return; }
  transcribeSource($("source").value.trim());
  $("source").value = "";
});
$("files").addEventListener("change", (event) => { start([...event.target.files]); event.target.value = ""; });
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  start([...event.dataTransfer.files]);
});
$("status-filter").addEventListener("change", refreshJobs);
$("refresh-jobs").addEventListener("click", refreshJobs);
if (!apiKey()) say("Enter your API key to start.");
loadModels();
refreshJobs();
refreshOps();
setInterval(refreshOps, 3000);
