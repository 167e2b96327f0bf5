// facemetric timeline (/events): who was seen where and when, newest first, with snapshots.
// Uses app.js's helpers ($, el, api, fmt, banner). Where the server needs the viewer token, the
// page asks for it once; the server answers with an HttpOnly cookie that also opens the images.
"use strict";

const timeline = { before: null, older: false, timer: null, seen: "" };

function eventsQuery(extra = {}) {
  const params = new URLSearchParams();
  const person = $("#events-person").value;
  const camera = $("#events-camera").value;
  if (person === "\u2063unknown") params.set("known", "false");
  else if (person) params.set("person", person);
  if (camera) params.set("camera", camera);
  for (const [key, value] of Object.entries(extra)) if (value != null) params.set(key, value);
  return params.toString();
}

function when(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

function eventCard(ev) {
  const who = ev.person ?? `unknown${ev.nearest ? ` (most like ${ev.nearest})` : ""}`;
  const card = el("li", { class: "event-card" + (ev.known ? " known" : ""), "data-id": ev.id });
  const snapshot = el("img", { class: "snapshot", alt: `snapshot of ${who} at ${ev.camera}`, loading: "lazy" });
  if (ev.snapshot_url) snapshot.src = ev.snapshot_url;
  const chip = el("img", { class: "chip", alt: `face of ${who}`, loading: "lazy" });
  if (ev.chip_url) chip.src = ev.chip_url;
  const name = el("div", { class: "who", text: who });
  if (!ev.closed) name.append(el("span", { class: "open", text: "in view" }));
  card.append(snapshot, chip, el("div", {},
    name,
    el("div", { class: "camera", text: `camera ${ev.camera}${ev.source === "browser" ? " (a browser's webcam)" : ""}` }),
    el("div", { class: "reason muted", text: eventReason(ev) }),
    el("div", { class: "time", text: `${when(ev.first_seen)} for ${ev.duration_s.toFixed(1)} s` }),
    el("div", { class: "similarity muted", text: `similarity ${fmt(ev.similarity)}, ${ev.frames} frames` }),
  ));
  return card;
}

// Why the event names its person (or nobody): the decision over its track's evidence.
function eventReason(ev) {
  const d = ev.decision || {};
  if (!d.reason) return "";
  // the decision's own phrase, as identify and the live page print it (events stored before it: below)
  if (d.explanation && d.reason !== "steadying") return `why (the track's evidence): ${d.explanation}`;
  const score = `score ${fmt(d.score)}, threshold ${fmt(d.threshold)}`;
  switch (d.reason) {
    case "match": return `why: the track's evidence reaches the threshold (${score})`;
    case "below_threshold": return `why: below the threshold (${score})`;
    case "ambiguous_margin": return `why: too close to ${d.second} (lead ${fmt(d.margin)})`;
    case "closer_to_negative": return `why: marked "not ${d.nearest}" before`;
    case "steadying": return "why: seen too briefly to be named";
    default: return `why: ${d.reason}`;
  }
}

function fillSelect(select, values, first) {
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "", text: first }));
  for (const [value, label] of values) select.append(el("option", { value, text: label }));
  select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "";
}

async function loadFacets() {
  const facets = await api("/api/events/facets");
  fillSelect($("#events-person"), [["\u2063unknown", "unknown faces"], ...facets.people.map((p) => [p, p])], "everyone");
  fillSelect($("#events-camera"), facets.cameras.map((c) => [c, c]), "every camera");
}

// The first page again (new events appear at the top); older pages only on request.
async function loadEvents(append = false) {
  const query = eventsQuery({ limit: 50, before: append ? timeline.before : null });
  let page;
  try {
    page = await api(`/api/events?${query}`);
  } catch (err) {
    if (err.message.startsWith("401") || err.message.startsWith("403")) { askToken(); return; }
    $("#events-status").textContent = `cannot load events: ${err.message}`;
    return;
  }
  const list = $("#events");
  if (!append) {
    const key = JSON.stringify(page.events.map((e) => [e.id, e.last_seen, e.closed]));
    if (key === timeline.seen) return; // nothing new: keep the images as they are
    timeline.seen = key;
    list.replaceChildren();
    timeline.older = false;
  }
  for (const ev of page.events) list.append(eventCard(ev));
  timeline.before = page.next_before;
  $("#events-older").hidden = !page.next_before;
  $("#events-empty").hidden = list.children.length > 0;
  $("#events-csv").href = `/api/events.csv?${eventsQuery()}`;
  $("#events-status").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

async function refresh() {
  if (timeline.older) return; // reading older pages: do not pull the list away
  try { await loadFacets(); } catch (err) { /* shown by loadEvents */ }
  await loadEvents(false);
}

function askToken() {
  clearInterval(timeline.timer);
  $("#events-timeline").hidden = true;
  $("#events-signin").hidden = false;
  $("#events-token").focus();
}

async function signIn(event) {
  event.preventDefault();
  const box = $("#events-signin-message");
  try {
    await api("/api/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: $("#events-token").value.trim() }),
    });
  } catch (err) {
    box.textContent = err.message.startsWith("403") ? "Wrong token." : err.message;
    box.className = "message error";
    return;
  }
  $("#events-token").value = "";
  box.textContent = "";
  showTimeline();
}

async function showTimeline() {
  $("#events-signin").hidden = true;
  $("#events-timeline").hidden = false;
  timeline.seen = "";
  await refresh();
  clearInterval(timeline.timer);
  timeline.timer = setInterval(refresh, 3000);
}

async function startEvents() {
  $("#events-page").hidden = false;
  $("#nav-events").classList.add("active");
  $("#events-signin-form").addEventListener("submit", signIn);
  for (const id of ["#events-person", "#events-camera"]) {
    $(id).addEventListener("change", () => { timeline.seen = ""; timeline.older = false; loadEvents(false); });
  }
  $("#events-older").addEventListener("click", () => { timeline.older = true; loadEvents(true); });
  try {
    const session = await api("/api/session");
    if (session.required && !session.authorized) askToken();
    else showTimeline();
  } catch (err) {
    banner(`The server does not answer: ${err.message}`, "error");
  }
}

if (location.pathname.startsWith("/events")) startEvents();
