// facemetric web page: live webcam recognition (/) and the gallery (/gallery). No build step.
"use strict";

// $, el and TOKEN_KEY come from dom.js

// Similarities and thresholds with 4 decimals: a stranger at 0.9970 and a match at 0.9998 must
// not both read "1.00".
function fmt(value) { return value == null ? "–" : value.toFixed(4); }

function banner(text, kind = "warn", box = $("#banner")) {
  if (!text) { box.hidden = true; return; }
  box.hidden = false;
  box.className = "banner" + (kind === "error" ? " error" : "");
  box.textContent = text;
}

async function api(path, options = {}) {
  // The admin token (if given) also opens the viewer-only reads; the viewer cookie from the
  // Timeline page's sign-in is sent by the browser itself.
  const given = token() ? { Authorization: `Bearer ${token()}` } : {};
  const response = await fetch(path, { ...options, headers: { ...given, ...(options.headers || {}) } });
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const detail = body && body.detail;
    const text = typeof detail === "string" ? detail : JSON.stringify(detail ?? response.statusText);
    const hint = response.status === 401 ? " (sign in once on the Timeline page, /events)" : "";
    throw new Error(`${response.status}: ${text}${hint}`);
  }
  return body;
}

// The webcam and the stream protocol: webcam.js (shared with the Cameras view).
const { cameraError, openCamera, grabJpeg } = window.FacemetricWebcam;

// ---- live page ------------------------------------------------------------------------------------
const live = {
  stream: null,
  video: null,
  answers: [],
  shown: null, // the frame whose answer is on screen (what a correction is about)
};

async function startLive() {
  $("#live-page").hidden = false;
  $("#nav-live").classList.add("active");
  live.video = $("#video");
  startTokenForm(); // livefaces.js
  let health = null;
  try {
    health = await api("/api/health");
  } catch (err) {
    banner(`The server does not answer: ${err.message}`, "error");
    return;
  }
  if (health.status === "no_model") {
    banner(`No model is loaded, so faces cannot be recognised. ${health.message}`, "error");
    return;
  }
  if (health.status === "empty_gallery") {
    banner("The gallery is empty: every face will be unknown. Enrol people on the Gallery page.");
  }
  await showModelWarning();
  try {
    await openCamera(live.video);
  } catch (err) {
    banner(cameraError(err), "error");
    return;
  }
  connect();
}

// Matches decided by a threshold that was never calibrated may call a stranger someone: say so.
async function showModelWarning() {
  try {
    const model = await api("/api/model");
    $("#threshold").textContent = fmt(model.threshold);
    if (model.loaded && !model.threshold_calibrated) {
      banner(`Matches may be wrong: ${model.warning}`, "warn", $("#model-warning"));
    }
  } catch (err) {
    banner(`Cannot read the model's threshold: ${err.message}`, "warn", $("#model-warning"));
  }
}

function connect() {
  live.stream = new window.FacemetricWebcam.Stream(live.video, {
    onOpen: () => { $("#conn").textContent = "connected"; },
    onClose: (text) => { $("#conn").textContent = text; },
    onFatal: (text) => banner(text, "error"),
    onHello: (msg) => { $("#threshold").textContent = fmt(msg.threshold); },
    onResult: showResult,
    onError: (msg) => {
      $("#conn").textContent = `frame ${msg.frame}: ${msg.detail}`;
      if (msg.code === "no_model") banner(msg.detail, "error");
    },
  });
  live.stream.connect();
}

function showResult(msg, frame) {
  const now = performance.now();
  live.answers.push(now);
  while (live.answers.length && now - live.answers[0] > 2000) live.answers.shift();
  if (live.answers.length > 1) {
    const fps = (live.answers.length - 1) / ((now - live.answers[0]) / 1000);
    $("#fps").textContent = fps.toFixed(1);
  }
  $("#server-ms").textContent = msg.server_ms.toFixed(0);
  $("#threshold").textContent = fmt(msg.threshold);
  live.shown = frame;
  window.FacemetricWebcam.drawFaces($("#overlay"), live.video, msg);
  listFaces(msg.faces);
}

// ---- gallery page ---------------------------------------------------------------------------------
const enrol = { snapshots: [], grab: document.createElement("canvas"), ready: false };

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
function authHeaders() { return token() ? { Authorization: `Bearer ${token()}` } : {}; }

function enrolMessage(text, isError = false) {
  const box = $("#enrol-message");
  box.textContent = text;
  box.className = "message" + (isError ? " error" : "");
}

function enrolFiles() {
  const files = [...$("#enrol-files").files];
  enrol.snapshots.forEach((blob, i) => files.push(new File([blob], `snapshot-${i + 1}.jpg`, { type: "image/jpeg" })));
  return files;
}

async function loadPeople() {
  const people = await api("/api/people");
  const list = $("#people");
  list.replaceChildren();
  $("#people-empty").hidden = people.length > 0;
  for (const person of people) {
    const remove = el("button", { type: "button", text: "Remove" });
    remove.addEventListener("click", () => removePerson(person.name));
    const head = el("div", { class: "person-head" },
      el("b", { class: "person-name", text: person.name }),
      el("span", { class: "muted", text: `${person.face_count} face(s)` }), remove);
    const thumbs = el("div", { class: "thumbs" });
    for (const face of person.faces) thumbs.append(el("img", { src: face.image_url, alt: person.name, loading: "lazy" }));
    list.append(el("li", {}, head, thumbs));
  }
}

// Every correction ("not NAME" / "confirmed"), newest first, each with its undo.
async function loadCorrections() {
  const corrections = await api("/api/corrections");
  const list = $("#corrections");
  list.replaceChildren();
  $("#corrections-empty").hidden = corrections.length > 0;
  for (const c of corrections) {
    const undo = el("button", { type: "button", text: "Undo" });
    undo.addEventListener("click", async () => {
      try {
        await api(`/api/corrections/${c.id}`, { method: "DELETE", headers: authHeaders() });
        enrolMessage(`Undid correction ${c.id}.`);
        await loadCorrections();
        await loadPeople();
      } catch (err) {
        enrolMessage(`Could not undo correction ${c.id}: ${err.message}`, true);
      }
    });
    const what = c.kind === "wrong" ? `not ${c.person}` : `confirmed ${c.person}`;
    const picture = c.image_url ? el("img", { src: c.image_url, alt: what, loading: "lazy", class: "thumb" }) : "";
    list.append(el("li", { "data-correction": c.id }, picture,
      el("span", { text: ` #${c.id} ${what} (${c.similarity == null ? "–" : fmt(c.similarity)}) ${c.created} ` }), undo));
  }
}

async function removePerson(name) {
  if (!confirm(`Remove ${name} and all their reference faces?`)) return;
  try {
    const result = await api(`/api/people/${encodeURIComponent(name)}`, { method: "DELETE", headers: authHeaders() });
    enrolMessage(`Removed ${result.name} (${result.faces_removed} faces).`);
    await loadPeople();
  } catch (err) {
    enrolMessage(`Could not remove ${name}: ${err.message}`, true);
  }
}

async function previewFaces() {
  const files = enrolFiles();
  if (!files.length) { enrolMessage("Choose photos or take snapshots first.", true); return; }
  const form = new FormData();
  files.forEach((f) => form.append("files", f));
  const person = $("#enrol-name").value.trim();
  if (person) form.append("name", person); // quality: checked against the person's faces too
  enrolMessage("Detecting faces…");
  try {
    const result = await api("/api/enroll/preview", { method: "POST", body: form });
    const box = $("#preview-list");
    box.replaceChildren();
    let usable = 0;
    for (const photo of result.photos) {
      if (!photo.faces.length) {
        box.append(el("figure", {}, el("figcaption", { text: `${photo.filename}: no face found, will be skipped` })));
        continue;
      }
      if (!photo.refused) usable += 1;
      for (const face of photo.faces) {
        box.append(el("figure", {},
          el("img", { src: face.crop, class: face.selected ? "selected" : "", alt: photo.filename }),
          el("figcaption", { text: `${photo.filename}${face.selected ? qualityNote(photo) : ""}` })));
      }
    }
    $("#save").disabled = usable === 0;
    enrolMessage(usable
      ? `${usable} of ${result.photos.length} photo(s) have a usable face. Nothing is saved yet: "Save person" saves the largest face of each (a photo the person already has is not added twice; one below the quality floors is refused).`
      : "No usable face in any photo: nothing can be saved.", usable === 0);
  } catch (err) {
    enrolMessage(err.message, true);
  }
}

async function saveEnrolment(event) {
  event.preventDefault();
  const name = $("#enrol-name").value.trim();
  if (!name) { enrolMessage("Enter the person's name.", true); return; }
  if (!token()) { enrolMessage("Enter the admin token first.", true); return; }
  const form = new FormData();
  form.append("name", name);
  enrolFiles().forEach((f) => form.append("files", f));
  enrolMessage("Saving…");
  try {
    const person = await api("/api/people", { method: "POST", body: form, headers: authHeaders() });
    clearEnrolment(false);
    showEnrolled(person);
    await loadPeople();
  } catch (err) {
    enrolMessage(`Not saved: ${err.message}`, true);
  }
}

// The enrolment quality checks' verdict on the face a photo would give (docs/quality.md).
function qualityNote(photo) {
  const problems = photo.problems || [];
  if (!problems.length) return " (to be saved)";
  return ` (${photo.refused ? "will be refused" : "saved, flagged"}: ${problems.join("; ")})`;
}

// What the server answered: faces added, photos it already had, photos skipped and why.
function showEnrolled(person) {
  const skipped = Object.entries(person.skipped || {});
  const flagged = Object.entries(person.flagged || {});
  const parts = [`${person.added} face(s) added`];
  if (person.duplicates) parts.push(`${person.duplicates} photo(s) already there, not added again`);
  if (skipped.length) parts.push(`${skipped.length} photo(s) skipped`);
  if (flagged.length) parts.push(`${flagged.length} saved below a quality floor`);
  enrolMessage(`Saved ${person.name}: ${parts.join(", ")}. ${person.name} now has ${person.face_count} reference face(s).`);
  const list = $("#enrol-skipped");
  list.replaceChildren(
    ...skipped.map(([file, why]) => el("li", { text: `${file}: ${why}` })),
    ...flagged.map(([file, why]) => el("li", { text: `${file}: saved, but ${why}` })));
  list.hidden = skipped.length + flagged.length === 0;
}

function clearEnrolment(clearMessage = true) {
  enrol.snapshots = [];
  $("#enrol-files").value = "";
  $("#snapshot-count").textContent = "";
  $("#preview-list").replaceChildren();
  $("#save").disabled = true;
  if (clearMessage) {
    enrolMessage("");
    $("#enrol-skipped").replaceChildren();
    $("#enrol-skipped").hidden = true;
  }
}

async function startGallery() {
  $("#gallery-page").hidden = false;
  $("#nav-gallery").classList.add("active");
  const input = $("#token");
  input.value = token();
  input.addEventListener("input", () => sessionStorage.setItem(TOKEN_KEY, input.value.trim()));
  $("#camera-start").addEventListener("click", async () => {
    const video = $("#enrol-video");
    video.hidden = false;
    try {
      await openCamera(video);
      $("#snapshot").disabled = false;
    } catch (err) {
      video.hidden = true;
      enrolMessage(cameraError(err), true);
    }
  });
  $("#snapshot").addEventListener("click", async () => {
    const blob = await grabJpeg($("#enrol-video"), enrol.grab, 0.92);
    if (blob) enrol.snapshots.push(blob);
    $("#snapshot-count").textContent = `${enrol.snapshots.length} snapshot(s)`;
    $("#save").disabled = true;
  });
  $("#enrol-files").addEventListener("change", () => { $("#save").disabled = true; });
  $("#preview").addEventListener("click", previewFaces);
  $("#clear").addEventListener("click", () => clearEnrolment());
  $("#enrol-form").addEventListener("submit", saveEnrolment);
  try {
    const health = await api("/api/health");
    if (health.status === "no_model") banner(`${health.message} (enrolment needs a model).`, "error");
    await loadPeople();
    await loadCorrections();
  } catch (err) {
    banner(`The server does not answer: ${err.message}`, "error");
  }
}

if (location.pathname.startsWith("/gallery")) startGallery();
else if (!/^\/(cameras|events)/.test(location.pathname)) startLive(); // cameras.js, events.js
