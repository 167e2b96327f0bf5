// facemetric "Unknown faces" page (/unknown): the groups of faces nobody matched, largest first;
// name a group (enrols its faces), merge groups, split a face off, dismiss a group. No build step.
"use strict";

// $, el and TOKEN_KEY come from dom.js

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

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

function post(path, body) {
  return api(path, {
    method: "POST",
    headers: { "Authorization": `Bearer ${token()}`, "Content-Type": "application/json" },
    body: JSON.stringify(body ?? {}),
  });
}

function message(text, error = false) {
  const box = $("#unknown-message");
  box.textContent = text;
  box.className = "message" + (error ? " error" : "");
}

function when(seconds) { return new Date(seconds * 1000).toLocaleString(); }

const selected = new Set();

async function act(fn, done) {
  try {
    const result = await fn();
    message(done(result));
    await loadGroups();
  } catch (err) {
    message(err.message, true);
  }
}

function groupCard(group) {
  const title = el("span", { class: "group-title", text: `Group ${group.id}` });
  const count = el("span", { class: "muted", text: `${group.size} face(s), last seen ${when(group.updated)}` });
  const pick = el("input", { type: "checkbox", class: "select", "aria-label": `select group ${group.id}` });
  pick.checked = selected.has(group.id);
  pick.addEventListener("change", () => {
    if (pick.checked) selected.add(group.id); else selected.delete(group.id);
    $("#merge-selected").disabled = selected.size < 2;
  });
  const nameInput = el("input", { class: "name", placeholder: "name this person", maxlength: "100", required: "" });
  const form = el("form", { class: "name-form" }, nameInput, el("button", { type: "submit", class: "name-button", text: "Name" }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = nameInput.value.trim();
    if (!name) return;
    act(() => post(`/api/unknown/${group.id}/name`, { name }),
      (r) => `Group ${r.group} enrolled as ${r.name}: ${r.added} face(s) added; ${r.name} now has ${r.face_count} reference face(s).`);
  });
  const dismiss = el("button", { type: "button", class: "dismiss", text: "Dismiss" });
  dismiss.addEventListener("click", () => act(() => post(`/api/unknown/${group.id}/dismiss`),
    (r) => `Group ${r.id} dismissed.`));
  const chips = el("div", { class: "chips" });
  for (const face of group.faces) {
    const img = el("img", { src: face.image_url, alt: `unknown face ${face.id}`, title: `${face.source || face.camera || ""} ${when(face.seen_at)}` });
    const chip = el("figure", { class: "chip", "data-face": String(face.id) }, img);
    if (group.size > 1) {
      const split = el("button", { type: "button", class: "split", title: "not this person: split off", text: "×" });
      split.addEventListener("click", () => act(() => post(`/api/unknown/${group.id}/split`, { face_id: face.id }),
        (r) => `Face ${face.id} split off into group ${r.id}.`));
      chip.append(split);
    }
    chips.append(chip);
  }
  if (group.size > group.faces.length) chips.append(el("span", { class: "muted", text: `+${group.size - group.faces.length} more` }));
  return el("li", { class: "group-card", "data-group": String(group.id) },
    el("div", { class: "group-head" }, pick, title, count, form, dismiss), chips);
}

async function loadGroups() {
  const minFaces = $("#show-singles").checked ? 1 : 2;
  const data = await api(`/api/unknown?min_faces=${minFaces}`);
  const live = new Set(data.groups.map((g) => g.id));
  for (const id of [...selected]) if (!live.has(id)) selected.delete(id);
  $("#merge-selected").disabled = selected.size < 2;
  const keeping = data.keeping ? "This server keeps unknown faces." : "This server does not keep unknown faces now (serve --keep-unknown).";
  $("#unknown-summary").textContent = `${data.total_faces} unknown face(s) kept. ${keeping}`;
  $("#unknown-empty").hidden = data.groups.length > 0;
  $("#groups").replaceChildren(...data.groups.map(groupCard));
}

async function mergeSelected() {
  // into the largest selected group: the list is largest first
  const ids = [...document.querySelectorAll("#groups .group-card")]
    .map((card) => Number(card.dataset.group))
    .filter((id) => selected.has(id));
  if (ids.length < 2) return;
  const [into, ...others] = ids;
  selected.clear();
  await act(() => post(`/api/unknown/${into}/merge`, { others }),
    (r) => `Merged into group ${r.id}: ${r.size} face(s).`);
}

function startUnknown() {
  const input = $("#token");
  input.value = token();
  input.addEventListener("input", () => sessionStorage.setItem(TOKEN_KEY, input.value.trim()));
  $("#show-singles").addEventListener("change", () => loadGroups().catch((err) => message(err.message, true)));
  $("#refresh").addEventListener("click", () => loadGroups().catch((err) => message(err.message, true)));
  $("#merge-selected").addEventListener("click", mergeSelected);
  loadGroups().catch((err) => message(`The server does not answer: ${err.message}`, true));
}

startUnknown();
