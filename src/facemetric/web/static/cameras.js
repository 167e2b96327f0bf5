// facemetric cameras view (/cameras): every server-side camera's live labelled picture and state,
// and this browser's webcam as one more camera: started by its tile's button (never unasked), it
// streams to the server like the Live page (webcam.js) and its faces become events. No build step.
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
    img.hidden = true; // until a picture arrives: a down camera shows its state, not a broken image
    const placeholder = node("div", "camera-picture camera-placeholder");
    const caption = node("figcaption");
    const title = node("b", "", camera.name);
    const state = node("span", "camera-state");
    const detail = node("div", "muted camera-detail");
    caption.append(title, " ", state, detail);
    root.append(img, placeholder, caption);
    byId("camera-grid").append(root);
    const t = { root, img, placeholder, state, detail, busy: false, url: null };
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
    if (!t.live) { // the picture of a camera that is down would be stale: its state instead
      t.img.hidden = true;
      t.img.removeAttribute("src");
    }
    t.placeholder.hidden = !t.img.hidden;
    t.placeholder.textContent = camera.error ? `${camera.state}: ${camera.error}` : camera.state;
  }

  async function refreshPicture(name, t) {
    if (t.busy || !t.live) return;
    t.busy = true;
    try {
      const r = await fetch(`/api/cameras/${encodeURIComponent(name)}/frame.jpg`, { headers: headers(), cache: "no-store" });
      if (r.ok) {
        const url = URL.createObjectURL(await r.blob());
        t.img.src = url;
        t.img.hidden = false;
        t.placeholder.hidden = true;
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

  // This browser's webcam: its preview with the server's labels drawn over it.
  const webcam = { stream: null, media: null, answers: [] };

  function webcamState(text, state) {
    byId("webcam-state").textContent = text;
    byId("webcam-state").className = `camera-state state-${state}`;
  }

  function stopWebcam(why) {
    if (webcam.stream) webcam.stream.stop();
    if (webcam.media) webcam.media.getTracks().forEach((t) => t.stop());
    webcam.stream = webcam.media = null;
    byId("webcam-video").srcObject = null;
    const overlay = byId("webcam-overlay");
    overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
    byId("webcam-start").textContent = "Start webcam";
    webcamState(why ? "failed" : "off", why ? "failed" : "off");
    if (why) byId("webcam-detail").textContent = why;
  }

  async function startWebcam() {
    const cam = window.FacemetricWebcam;
    const video = byId("webcam-video");
    webcamState("connecting", "connecting");
    try {
      webcam.media = await cam.openCamera(video);
    } catch (err) {
      stopWebcam(cam.cameraError(err));
      return;
    }
    byId("webcam-start").textContent = "Stop webcam";
    webcam.stream = new cam.Stream(video, {
      onOpen: () => webcamState("live", "live"),
      onClose: (text) => webcamState(text, "reconnecting"),
      onFatal: (text) => stopWebcam(text),
      onError: (msg) => { byId("webcam-detail").textContent = `frame ${msg.frame}: ${msg.detail}`; },
      onResult: (msg) => {
        const now = performance.now();
        webcam.answers.push(now);
        while (webcam.answers.length && now - webcam.answers[0] > 2000) webcam.answers.shift();
        const fps = webcam.answers.length > 1 ? (webcam.answers.length - 1) / ((now - webcam.answers[0]) / 1000) : 0;
        const names = msg.faces.map((f) => f.identity ?? "unknown");
        byId("webcam-detail").textContent = `${fps.toFixed(1)} frames/s recognised · ${names.length ? names.join(", ") : "no face"}`;
        cam.drawFaces(byId("webcam-overlay"), video, msg);
      },
    });
    if (webcam.stream.camera) byId("webcam-name").textContent = webcam.stream.camera;
    webcam.stream.connect();
  }

  byId("webcam-start").addEventListener("click", () => (webcam.stream ? stopWebcam() : startWebcam()));

  byId("cameras-page").hidden = false;
  byId("nav-cameras").classList.add("active");
  poll();
  setInterval(poll, 2000);
  setInterval(() => tiles.forEach((t, name) => refreshPicture(name, t)), 250);
})();
