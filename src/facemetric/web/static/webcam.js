// facemetric: this browser's webcam and the /ws/stream protocol, shared by the Live page (app.js),
// the Gallery page's snapshots and the Cameras view's webcam tile (cameras.js). No build step.
// The server treats each stream as one camera: its faces become events (camera "webcam", or the
// page's ?camera=NAME).
"use strict";

window.FacemetricWebcam = (() => {
  const fmt4 = (value) => (value == null ? "–" : value.toFixed(4));

  function cameraError(err) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      return "This browser gives no camera access here: open the page at http://localhost or over https.";
    }
    if (err && (err.name === "NotAllowedError" || err.name === "SecurityError")) {
      return "Camera permission was denied: allow the camera for this site and reload the page.";
    }
    if (err && (err.name === "NotFoundError" || err.name === "OverconstrainedError")) {
      return "No camera found: connect a webcam and reload the page.";
    }
    if (err && err.name === "NotReadableError") {
      return "The camera is busy in another application: close it and reload the page.";
    }
    return `Cannot start the camera: ${err && err.message ? err.message : err}`;
  }

  async function openCamera(video) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) throw new Error("no mediaDevices");
    const stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 } },
      audio: false,
    });
    video.srcObject = stream;
    await video.play();
    if (!video.videoWidth) await new Promise((resolve) => video.addEventListener("loadedmetadata", resolve, { once: true }));
    return stream;
  }

  function grabJpeg(video, canvas, quality = 0.8) {
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
  }

  // The label of a face: who, the score the decision compared (4 decimals) and the verdict.
  function label(face) {
    const name = face.identity ?? "unknown";
    const score = face.decision?.compared ?? face.similarity;
    // the track's decided label and why (below threshold, steadying, ...)
    const why = face.is_match ? "match" : (face.reason || "no match").replaceAll("_", " ");
    return `${name} ${fmt4(score)} ${why}`;
  }

  // Where each label goes: above its box where it fits, always inside the frame (W x H), and
  // never over another label (moved to the nearest free height: labels of faces side by side
  // stack). items: [{x, y, w, h}] wanted; returns the same list placed.
  function placeLabels(items, W, H) {
    const placed = [];
    const out = new Array(items.length);
    const order = items.map((_, i) => i).sort((a, b) => items[a].y - items[b].y || items[a].x - items[b].x);
    const free = (x, y, w, h) => placed.every((p) => x >= p.x + p.w || p.x >= x + w || y >= p.y + p.h || p.y >= y + h);
    for (const i of order) {
      const it = items[i];
      const w = Math.min(it.w, W);
      const h = Math.min(it.h, H);
      const x = Math.min(Math.max(0, it.x), W - w);
      const want = Math.min(Math.max(0, it.y), H - h);
      const heights = [want, ...placed.flatMap((p) => [p.y + p.h, p.y - h])]
        .filter((y) => y >= 0 && y <= H - h)
        .sort((a, b) => Math.abs(a - want) - Math.abs(b - want));
      const y = heights.find((c) => free(x, c, w, h)) ?? want;
      out[i] = { x, y, w, h };
      placed.push(out[i]);
    }
    return out;
  }

  // The answer's boxes and labels on `canvas`, laid over `video` (green: match, orange: not);
  // returns where the labels went.
  function drawFaces(canvas, video, msg) {
    const rect = video.getBoundingClientRect();
    canvas.width = rect.width;
    canvas.height = rect.height;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const sx = canvas.width / msg.width;
    const sy = canvas.height / msg.height;
    ctx.lineWidth = 3;
    ctx.font = "bold 15px system-ui, sans-serif";
    const texts = msg.faces.map(label);
    const wanted = msg.faces.map((face, i) => ({
      x: face.box[0] * sx, y: face.box[1] * sy - 22, w: ctx.measureText(texts[i]).width + 8, h: 22,
    }));
    const labels = placeLabels(wanted, canvas.width, canvas.height);
    msg.faces.forEach((face, i) => {
      const [x1, y1, x2, y2] = face.box;
      const color = face.is_match ? "#1a9c4a" : "#d9480f";
      ctx.strokeStyle = color;
      ctx.strokeRect(x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy);
      const at = labels[i];
      ctx.fillStyle = color;
      ctx.fillRect(at.x, at.y, at.w, at.h);
      ctx.fillStyle = "#fff";
      ctx.save();
      ctx.beginPath();
      ctx.rect(at.x, at.y, at.w, at.h); // a label wider than the frame is cut at its own edge
      ctx.clip();
      ctx.fillText(texts[i], at.x + 4, at.y + 16);
      ctx.restore();
    });
    return labels;
  }

  // The stream protocol: hello, then one frame in flight (the next frame is sent only once the
  // previous one is answered), reconnecting when the socket drops. Callbacks: onOpen(),
  // onClose(text), onHello(msg), onResult(msg, frameBlob), onError(msg), onFatal(text).
  class Stream {
    constructor(video, callbacks = {}, camera = new URLSearchParams(location.search).get("camera")) {
      this.video = video;
      this.on = callbacks;
      this.camera = camera;
      this.grab = document.createElement("canvas");
      this.ws = null;
      this.stopped = false;
      this.sent = null; // the frame in flight
    }

    call(name, ...args) { if (this.on[name]) this.on[name](...args); }

    connect() {
      if (this.stopped) return;
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      const query = this.camera ? `?camera=${encodeURIComponent(this.camera)}` : "";
      const ws = new WebSocket(`${scheme}://${location.host}/ws/stream${query}`);
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      ws.onopen = () => this.call("onOpen");
      ws.onclose = (event) => {
        if (this.stopped) return;
        const busy = event.code === 1013; // every max_connections slot taken: wait longer
        if (event.code === 1008 && event.reason) { // refused (a bad camera name): no retry
          this.stopped = true;
          this.call("onFatal", event.reason);
          return;
        }
        this.call("onClose", busy ? `${event.reason}; retrying…` : "disconnected, retrying…");
        setTimeout(() => this.connect(), busy ? 5000 : 1500);
      };
      ws.onmessage = (event) => {
        const msg = JSON.parse(event.data);
        if (msg.type === "hello") {
          if (!msg.model_loaded) {
            this.stop();
            this.call("onFatal", `No model is loaded: ${msg.model_error}`);
            return;
          }
          this.call("onHello", msg);
          this.send();
        } else if (msg.type === "result") {
          this.call("onResult", msg, this.sent);
          this.send();
        } else if (msg.type === "error") {
          this.call("onError", msg);
          if (msg.code !== "no_model") setTimeout(() => this.send(), 200);
        }
      };
    }

    async send() {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
      const blob = await grabJpeg(this.video, this.grab);
      this.sent = blob;
      if (blob && ws.readyState === WebSocket.OPEN) ws.send(await blob.arrayBuffer());
    }

    stop() {
      this.stopped = true;
      if (this.ws) this.ws.close(); // the server closes this camera's events
    }
  }

  return { cameraError, openCamera, grabJpeg, drawFaces, placeLabels, Stream };
})();
