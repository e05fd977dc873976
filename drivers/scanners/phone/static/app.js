// traceway phone scanner page: camera -> decoder -> WebSocket -> verdict from the gateway.
// No build step; one file. The decoder keeps the AIM symbology identifier and GS (FNC1).
"use strict";

const PROTOCOL = "traceway-phone-v1";
const STORE = "traceway-phone";
const REPEAT_MS = 2500; // the same code again within this is the same look at one label
const $ = (id) => document.getElementById(id);

const app = {
  ws: null,
  authed: false,
  retry: 1000,
  nextId: 1,
  pending: new Map(), // scan id -> history entry
  pairToken: null,
  lastText: "",
  lastAt: 0,
  decoding: false,
  native: null,
  stopped: false,
  stats: { decodes: 0, decodeMs: 0, slowestMs: 0 }, // WebAssembly decode times (frames tried)
};
window.traceway = app; // for people debugging on the phone, and for tests (app.send)

// -- device credentials: a non-extractable ECDSA key in IndexedDB, id + token in localStorage --
function idb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(STORE, 1);
    req.onupgradeneeded = () => req.result.createObjectStore("keys");
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}
async function idbDo(mode, fn) {
  const db = await idb();
  return new Promise((resolve, reject) => {
    const tx = db.transaction("keys", mode);
    const req = fn(tx.objectStore("keys"));
    tx.oncomplete = () => resolve(req.result);
    tx.onerror = () => reject(tx.error);
  });
}
const loadKey = () => idbDo("readonly", (s) => s.get("device"));
const saveKey = (k) => idbDo("readwrite", (s) => s.put(k, "device"));
function loadDevice() {
  try { return JSON.parse(localStorage.getItem(STORE) || "null"); } catch { return null; }
}
function forgetDevice() {
  localStorage.removeItem(STORE);
  idbDo("readwrite", (s) => s.delete("device")).catch(() => {});
}
const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)));

async function keyPair(create) {
  let k = await loadKey().catch(() => null);
  if (!k && create) {
    k = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
    await saveKey(k);
  }
  return k;
}
async function sign(priv, nonce) {
  const data = new TextEncoder().encode(`${PROTOCOL}\n${nonce}`);
  return b64(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, priv, data));
}

// -- feedback: flash, vibration, beeps ----------------------------------------------------
let audio = null;
function beep(pattern) {
  try {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    let t = audio.currentTime;
    for (const [freq, ms] of pattern) {
      const o = audio.createOscillator(), g = audio.createGain();
      o.frequency.value = freq; o.type = "square"; g.gain.value = 0.15;
      o.connect(g).connect(audio.destination);
      o.start(t); o.stop(t + ms / 1000); t += ms / 1000 + 0.05;
    }
  } catch { /* no audio: the flash and vibration still tell */ }
}
const FEEDBACK = {
  accept: { vibrate: [80], tones: [[1800, 90]] },
  warn: { vibrate: [80, 60, 80], tones: [[1200, 90], [1200, 90]] },
  reject: { vibrate: [300, 100, 300], tones: [[330, 450]] },
  not_sent: { vibrate: [150, 80, 150, 80, 150], tones: [[500, 120], [400, 120], [300, 120]] },
  unknown: { vibrate: [150, 80, 150], tones: [[600, 150], [600, 150]] },
};
let flashTimer = 0;
function flash(verdict, headline, reason) {
  const f = $("flash");
  f.dataset.verdict = verdict;
  $("headline").textContent = headline;
  $("reason").textContent = reason || "";
  f.classList.add("show");
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => f.classList.remove("show"), verdict === "accept" ? 1200 : 3500);
  const fb = FEEDBACK[verdict] || FEEDBACK.unknown;
  if (navigator.vibrate) navigator.vibrate(fb.vibrate);
  beep(fb.tones);
}

// -- history (newest first) ---------------------------------------------------------------
function visible(text) {
  return text.replace(/[\x00-\x1f\x7f]/g, (c) => (c === "\x1d" ? "<GS>" : `<${c.charCodeAt(0).toString(16).padStart(2, "0")}>`));
}
function addEntry(text, verdict, what) {
  const li = document.createElement("li");
  li.dataset.verdict = verdict;
  const w = document.createElement("div"); w.className = "what"; w.textContent = what;
  const why = document.createElement("div"); why.className = "why";
  const c = document.createElement("div"); c.className = "code"; c.textContent = visible(text);
  li.append(w, why, c);
  $("history").prepend(li);
  while ($("history").children.length > 30) $("history").lastChild.remove();
  return li;
}
function settle(li, verdict, what, why) {
  li.dataset.verdict = verdict;
  li.querySelector(".what").textContent = what;
  li.querySelector(".why").textContent = why || "";
}

// -- station ------------------------------------------------------------------------------
function showStation(st) {
  if (!st) return;
  $("step").textContent = st.step || "–";
  $("location").textContent = st.location || "–";
  $("qty").textContent = st.quantity == null ? "–" : String(st.quantity);
}

// -- the socket ---------------------------------------------------------------------------
function setConn(state, text) {
  const c = $("conn");
  c.className = state; c.dataset.state = state; c.textContent = text;
}
function connect() {
  if (app.stopped) return;
  setConn("connecting", "connecting…");
  const ws = new WebSocket(`wss://${location.host}/ws`);
  app.ws = ws;
  ws.onmessage = (ev) => onMessage(ws, ev).catch((e) => console.error(e));
  ws.onclose = (ev) => onClose(ws, ev);
}
async function onMessage(ws, ev) {
  let m;
  try { m = JSON.parse(ev.data); } catch { return; }
  if (m.type === "challenge") {
    const dev = loadDevice();
    const keys = await keyPair(!dev);
    if (dev && keys) {
      ws.send(JSON.stringify({ type: "hello", device_id: dev.id, token: dev.token, sig: await sign(keys.privateKey, m.nonce) }));
    } else if (app.pairToken && keys) {
      const pub = b64(await crypto.subtle.exportKey("spki", keys.publicKey));
      ws.send(JSON.stringify({
        type: "pair", pair_token: app.pairToken, name: $("pair-name").value.trim(),
        public_key: pub, sig: await sign(keys.privateKey, m.nonce),
      }));
      app.triedToken = app.pairToken; app.pairToken = null; // kept only to try another name
    } else {
      ws.close();
    }
  } else if (m.type === "paired") {
    localStorage.setItem(STORE, JSON.stringify({ id: m.device_id, token: m.token, name: m.name }));
  } else if (m.type === "welcome") {
    app.authed = true; app.retry = 1000;
    setConn("online", "online");
    $("who").textContent = m.scanner;
    showStation(m.station);
    show("scan");
    startCamera();
  } else if (m.type === "verdict") {
    const li = app.pending.get(m.id); app.pending.delete(m.id);
    const why = (m.reasons || []).map((r) => r.message).join("; ");
    const codes = (m.reasons || []).map((r) => r.code).join(", ");
    showStation(m.station);
    if (li) {
      settle(li, m.verdict, `${m.headline}: ${m.summary}`, why);
      li.dataset.reasons = codes;
      if (codes) li.querySelector(".why").append(` (${codes})`);
    }
    flash(m.verdict, m.headline, why || m.summary);
  } else if (m.type === "not_sent" || m.type === "unknown") {
    const li = app.pending.get(m.id); app.pending.delete(m.id);
    const verdict = m.type === "not_sent" ? "not_sent" : "unknown";
    if (li) settle(li, verdict, m.type === "not_sent" ? "Not sent" : "No answer", m.message);
    flash(verdict, m.type === "not_sent" ? "Not sent" : "No answer", m.message);
  } else if (m.type === "station") {
    showStation(m.station);
  } else if (m.type === "error") {
    console.warn("gateway:", m.code, m.message);
    if (m.code === "name_taken" || m.code === "bad_name") { // the same code, another name
      app.stopped = true; app.pairToken = app.triedToken;
      $("pair-help").textContent = m.message;
      setConn("offline", "not paired");
      show("pair");
    } else if (["revoked", "unauthorized", "pairing_refused", "too_many_devices", "bad_signature"].includes(m.code)) {
      app.stopped = true;
      if (m.code === "revoked" || m.code === "unauthorized") forgetDevice();
      $("unpaired-why").textContent = `${m.message}. Scan a new pairing QR code from the gateway.`;
      show("unpaired");
    }
  }
}
function onClose(ws, ev) {
  if (app.ws !== ws) return;
  app.authed = false;
  for (const [id, li] of app.pending) settle(li, "unknown", "Answer lost", "connection lost before the answer: check before scanning again");
  app.pending.clear();
  if (ev.code === 4403 || ev.code === 4401 || app.stopped) {
    app.stopped = true;
    setConn("offline", "not paired");
    return;
  }
  setConn("offline", "offline – reconnecting");
  setTimeout(connect, app.retry);
  app.retry = Math.min(app.retry * 2, 10000);
}

// -- scanning -----------------------------------------------------------------------------
// A scan goes out only on an open, authenticated socket; otherwise it is shown "not sent"
// and dropped: never queued (a late scan could be applied to the wrong step or pallet).
app.send = send;
function send(text) {
  const now = Date.now();
  if (text === app.lastText && now - app.lastAt < REPEAT_MS) { app.lastAt = now; return; }
  app.lastText = text; app.lastAt = now;
  if (!app.authed || !app.ws || app.ws.readyState !== WebSocket.OPEN) {
    addEntry(text, "not_sent", "Not sent: offline");
    flash("not_sent", "Not sent", "the phone is offline; scan again when it is online");
    return;
  }
  const id = app.nextId++;
  app.pending.set(id, addEntry(text, "", "Sent, waiting for the gateway…"));
  app.ws.send(JSON.stringify({ type: "scan", id, text }));
}

const NATIVE_DIRECT = { ean_13: "]E0", ean_8: "]E4", upc_a: "]E0" };
async function setupDecoder() {
  if ("BarcodeDetector" in window) {
    try {
      const formats = await BarcodeDetector.getSupportedFormats();
      if (formats.length) app.native = new BarcodeDetector({ formats });
    } catch { app.native = null; }
  }
  if (window.ZXingWASM) {
    ZXingWASM.prepareZXingModule({
      overrides: { locateFile: (path, prefix) => (path.endsWith(".wasm") ? "/vendor/zxing-wasm/zxing_reader.wasm" : prefix + path) },
    });
  }
  $("decoder").textContent = app.native ? "decoder: BarcodeDetector + WebAssembly" : "decoder: WebAssembly";
}
const WASM_OPTIONS = { textMode: "Plain", tryHarder: true, maxNumberOfSymbols: 1, formats: [] };
async function decode(video, canvas) {
  if (!video.videoWidth) return null;
  if (app.native) { // cheap "nothing here"; EAN/UPC directly; GS1 symbols need the AIM id: WASM
    const found = await app.native.detect(video);
    if (!found.length) return null;
    const b = found[0];
    if (NATIVE_DIRECT[b.format]) return NATIVE_DIRECT[b.format] + (b.format === "upc_a" ? "0" : "") + b.rawValue;
  }
  if (!window.ZXingWASM) return null;
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(video, 0, 0);
  const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const t0 = performance.now();
  const results = await ZXingWASM.readBarcodes(img, WASM_OPTIONS);
  const ms = performance.now() - t0;
  app.stats.decodes += 1; app.stats.decodeMs += ms; app.stats.slowestMs = Math.max(app.stats.slowestMs, ms);
  const r = results.find((x) => x.isValid && x.text);
  return r ? (r.symbologyIdentifier || "") + r.text : null;
}
let cameraStarted = false;
async function startCamera() {
  if (cameraStarted) return;
  const video = $("video"), canvas = $("canvas");
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: "environment", width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false,
    });
    video.srcObject = stream;
    await video.play().catch(() => {});
    cameraStarted = true;
    $("start").hidden = true;
  } catch (e) {
    $("decoder").textContent = `camera: ${e.message || e}`;
    return;
  }
  await setupDecoder();
  const loop = async () => {
    try {
      const text = await decode(video, canvas);
      if (text) send(text);
    } catch (e) { $("decoder").textContent = `decoder: ${e.message || e}`; }
    setTimeout(loop, 120);
  };
  loop();
}

// -- start --------------------------------------------------------------------------------
function show(which) {
  for (const id of ["pair", "unpaired", "scan"]) $(id).hidden = id !== which;
}
function main() {
  $("start").addEventListener("click", () => { beep([[1, 1]]); startCamera(); });
  const m = /[#&]pair=([A-Za-z0-9_-]{16,128})/.exec(location.hash);
  setConn("offline", "not connected");
  if (m) {
    app.pairToken = m[1];
    history.replaceState(null, "", location.pathname); // the code is not left in the address bar
  }
  if (loadDevice()) { show("scan"); connect(); return; }
  if (app.pairToken) {
    show("pair");
    $("pair-name").value = `phone-${Math.random().toString(36).slice(2, 6)}`;
    $("pair-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      beep([[1, 1]]); // unlocks audio on iOS (needs a tap)
      app.stopped = false;
      show("scan");
      connect();
    });
    return;
  }
  show("unpaired");
}
main();
