// facemetric cameras view (/cameras): every server-side camera's live labelled picture and state,
// and this browser's webcam as one more camera (the Live page). No build step.
(() => {
  if (!location.pathname.startsWith("/cameras")) return;

  const byId = (id) => document.getElementById(id);
  // The viewer token, once the server asks for one (the events page keeps it for the tab).
  const headers = () => (typeof window.facemetricViewerHeaders === "function" ? window.facemetricViewerHeaders() : {});
  const tiles = new Map(); // name -> {root, img, state, busy, url}

  function node(tag, cls, text) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
  }

  function tile(camera) {
    const root = node("figure", "camera-tile");
    root.dataset.camera = camera.name;
    const img = node("img", "camera-picture");
    img.alt = `live picture of camera ${camera.name}`;
    const caption = node("figcaption");
    const title = node("b", "", camera.name);
    const state = node("span", "camera-state");
    const detail = node("div", "muted camera-detail");
    caption.append(title, " ", state, detail);
    root.append(img, caption);
    byId("camera-grid").append(root);
    const t = { root, img, state, detail, busy: false, url: null };
    tiles.set(camera.name, t);
    return t;
  }

  function show(camera) {
    const t = tiles.get(camera.name) || tile(camera);
    t.state.textContent = camera.state;
    t.state.className = `camera-state state-${camera.state}`;
    const parts = [camera.source];
    if (camera.state === "live") parts.push(`${camera.recognised_fps ?? 0} frames/s recognised`);
    if (camera.error) parts.push(camera.error);
    t.detail.textContent = parts.join(" · ");
    t.live = camera.state === "live";
  }

  async function refreshPicture(name, t) {
    if (t.busy || !t.live) return;
    t.busy = true;
    try {
      const r = await fetch(`/api/cameras/${encodeURIComponent(name)}/frame.jpg`, { headers: headers(), cache: "no-store" });
      if (r.ok) {
        const url = URL.createObjectURL(await r.blob());
        t.img.src = url;
        if (t.url) URL.revokeObjectURL(t.url);
        t.url = url;
      }
    } catch (err) {
      // the next poll tries again
    } finally {
      t.busy = false;
    }
  }

  async function poll() {
    try {
      const r = await fetch("/api/cameras", { headers: headers(), cache: "no-store" });
      const body = await r.json();
      if (r.status === 401 || r.status === 403) { // the viewer token: given once on /events
        byId("cameras-message").replaceChildren("This server needs the viewer token: give it on the ",
          Object.assign(document.createElement("a"), { href: "/events", textContent: "Timeline page" }), " once.");
        return;
      }
      if (!r.ok) throw new Error(`${r.status}: ${body.detail ?? r.statusText}`);
      byId("cameras-empty").hidden = body.cameras.length > 0;
      byId("cameras-message").textContent = "";
      for (const camera of body.cameras) show(camera);
    } catch (err) {
      byId("cameras-message").textContent = `The server does not answer: ${err.message}`;
    }
  }

  byId("cameras-page").hidden = false;
  byId("nav-cameras").classList.add("active");
  poll();
  setInterval(poll, 2000);
  setInterval(() => tiles.forEach((t, name) => refreshPicture(name, t)), 250);
})();
