// The live page's face cards (/): one card per track, kept while the track lasts, so its
// buttons stay the same elements (a click never lands on a card drawn again); a correction asks
// for the admin token where it is made, and "Not NAME" turns into its own Undo. No build step.
"use strict";

// $, el and TOKEN_KEY come from dom.js; fmt, api, live, token and authHeaders from app.js.
const faceCards = new Map(); // "t<track id>" (or "f<i>" without one) -> the card's parts
let pendingCorrection = null; // what to send once the admin token is given

function listFaces(faces) {
  const list = $("#faces");
  $("#no-faces").hidden = faces.length > 0;
  const seen = new Set();
  faces.forEach((face, i) => {
    const key = face.track_id != null ? `t${face.track_id}` : `f${i}`;
    seen.add(key);
    let entry = faceCards.get(key);
    if (!entry) {
      entry = makeCard(key);
      faceCards.set(key, entry);
    }
    updateCard(entry, face);
    if (list.children[i] !== entry.card) list.insertBefore(entry.card, list.children[i] || null);
  });
  for (const [key, entry] of faceCards) {
    if (!seen.has(key)) {
      entry.card.remove();
      faceCards.delete(key);
    }
  }
}

function makeCard(key) {
  const parts = {
    picture: el("img", { class: "gallery-face", alt: "" }),
    caption: el("figcaption", { class: "picture-caption muted" }),
    name: el("div", { class: "face-name" }),
    verdict: el("div", { class: "verdict" }),
    score: el("div", { class: "similarity" }),
    nearest: el("div", { class: "nearest muted" }),
    reason: el("div", { class: "reason muted" }),
    actions: el("div", { class: "corrections" }),
    candidates: el("ol", { class: "candidates" }),
  };
  const figure = el("figure", { class: "gallery-figure" }, parts.picture, parts.caption);
  const info = el("div", {}, parts.name, parts.verdict, parts.score, parts.nearest, parts.reason,
    parts.actions, parts.candidates);
  const card = el("li", { class: "face-card", "data-track": key }, figure, info);
  return { key, card, ...parts, face: null, faceId: undefined, buttonsFor: null, corrected: null };
}

function setText(node, text) { if (node.textContent !== text) node.textContent = text; }

function updateCard(entry, face) {
  entry.face = face;
  entry.frame = live.shown;
  const d = face.decision || {};
  entry.card.classList.toggle("match", Boolean(face.is_match));
  if (face.gallery_face_id !== entry.faceId) { // a new picture only when the face changes
    entry.faceId = face.gallery_face_id;
    if (face.gallery_face_id != null) entry.picture.src = `/api/faces/${face.gallery_face_id}/image`;
    else entry.picture.removeAttribute("src");
    entry.picture.hidden = face.gallery_face_id == null;
  }
  // Beside "unknown", the nearest person's photo must not read as that person.
  const caption = face.gallery_face_id == null ? ""
    : face.is_match ? `${face.identity} in the gallery` : `${face.nearest}: most similar, not a match`;
  setText(entry.caption, caption);
  entry.picture.alt = caption;
  setText(entry.name, face.identity ?? "unknown");
  setText(entry.verdict, face.is_match ? "match" : "no match");
  const compared = d.compared ?? face.similarity;
  setText(entry.score, d.threshold != null
    ? `score ${fmt(compared)} · threshold ${fmt(d.threshold)}` : `similarity ${fmt(face.similarity)}`);
  setText(entry.nearest, face.nearest ? `most similar: ${face.nearest}` : "gallery is empty");
  setText(entry.reason, reasonText(face));
  const others = (face.top_k || []).filter((c) => c.identity !== face.nearest);
  const listed = others.map((c) => `${c.identity} ${fmt(c.similarity)}`).join("\n");
  if (entry.candidates.dataset.listed !== listed) {
    entry.candidates.dataset.listed = listed;
    entry.candidates.replaceChildren(...others.map((c) => el("li", { text: `${c.identity} ${fmt(c.similarity)}` })));
  }
  updateButtons(entry);
}

// Why an answer is what it is: the decision's own phrase (the same as the CLI's text and CSV),
// or the track's reason when the track decides (steadying).
function reasonText(face) {
  const d = face.decision || {};
  if (d.explanation && d.reason === face.reason) return `why: ${d.explanation}`;
  switch (face.reason) {
    case "steadying": return `why: the decision names ${(face.decision || {}).nearest || "someone"}; shown from this face's 2nd frame`;
    case "empty_gallery": return "why: the gallery is empty";
    default: return face.reason ? `why: ${face.reason}` : "";
  }
}

// "Not NAME" / "Confirm" (or "This is NAME" for an unknown face), drawn again only when the
// person they are about changes; after a correction, the correction and its Undo instead.
function updateButtons(entry) {
  if (entry.corrected) return;
  const face = entry.face;
  const name = face.is_match ? face.identity : face.nearest;
  const about = name ? `${face.is_match ? "match" : "nearest"}:${name}` : "";
  if (about === entry.buttonsFor) return;
  entry.buttonsFor = about;
  if (!name) { entry.actions.replaceChildren(); return; }
  const button = (text, kind) => {
    const b = el("button", { type: "button", class: `correct-${kind}`, text });
    b.addEventListener("click", () => sendCorrection(entry, name, kind));
    return b;
  };
  if (face.is_match) entry.actions.replaceChildren(button(`Not ${name}`, "wrong"), button("Confirm", "confirmed"));
  else entry.actions.replaceChildren(button(`This is ${name}`, "confirmed"));
}

async function sendCorrection(entry, name, kind) {
  if (!token()) { askAdminToken(() => sendCorrection(entry, name, kind)); return; }
  if (!entry.frame) return;
  const form = new FormData();
  form.append("person", name);
  form.append("kind", kind);
  form.append("box", entry.face.box.join(","));
  form.append("file", new File([entry.frame], "frame.jpg", { type: "image/jpeg" }));
  try {
    const done = await api("/api/corrections", { method: "POST", body: form, headers: authHeaders() });
    const what = kind === "wrong" ? `not ${name}` : `is ${name}`;
    $("#conn").textContent = `correction ${done.id} saved: ${what}`;
    showCorrected(entry, done, what);
  } catch (err) {
    if (err.message.startsWith("401") || err.message.startsWith("403")) {
      sessionStorage.removeItem(TOKEN_KEY);
      askAdminToken(() => sendCorrection(entry, name, kind), `That token was refused (${err.message}).`);
      return;
    }
    $("#conn").textContent = `correction not saved: ${err.message}`;
  }
}

function showCorrected(entry, correction, what) {
  entry.corrected = correction;
  const undo = el("button", { type: "button", class: "correct-undo", text: "Undo" });
  undo.addEventListener("click", async () => {
    try {
      await api(`/api/corrections/${correction.id}`, { method: "DELETE", headers: authHeaders() });
      $("#conn").textContent = `correction ${correction.id} undone`;
      entry.corrected = null;
      entry.buttonsFor = null;
      updateButtons(entry);
    } catch (err) {
      $("#conn").textContent = `could not undo correction ${correction.id}: ${err.message}`;
    }
  });
  entry.actions.replaceChildren(el("span", { class: "corrected", text: `marked ${what} ` }), undo);
}

// The admin token, asked for beside the faces when a correction needs it (kept for this tab).
function askAdminToken(then, why = "") {
  pendingCorrection = then;
  const form = $("#live-token-form");
  form.hidden = false;
  $("#live-token-why").textContent = `${why} Corrections change the gallery: they need the admin ` +
    "token printed by facemetric serve at start-up.";
  $("#live-token").focus();
}

function startTokenForm() {
  const form = $("#live-token-form");
  if (!form) return;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("#live-token").value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    form.hidden = true;
    const then = pendingCorrection;
    pendingCorrection = null;
    if (then) then();
  });
}
