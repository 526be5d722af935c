"""The central station's page: one file, no external assets (a ward network is isolated).

Tiles are drawn from `/api/ward` and kept live by `/api/stream` (server-sent events). Each
tile: the ECG strip with its beats, HR, the model's rhythm call, ectopic counts (when the
runtime classes beats), signal quality or why analysis is withheld, and the alarms, highest
priority first. The header says what the model is and is not.
"""

PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>edge-ecg central station</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{background:#0b0f14;color:#d8e1ea;font:14px/1.35 system-ui,sans-serif;margin:0}
 header{padding:8px 14px;background:#16202b;border-bottom:1px solid #2a3a4a}
 header h1{font-size:17px;margin:0 0 4px 0}
 .warn{color:#ffd166;font-weight:600}
 .small{font-size:12px;color:#9fb0c0}
 #grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:10px;padding:10px}
 .tile{background:#121a23;border:2px solid #2a3a4a;border-radius:6px;padding:8px}
 .tile.high{border-color:#ff4d4d;animation:blink 1s steps(2) infinite}
 .tile.medium{border-color:#ffd166}.tile.low{border-color:#4dc3ff}
 @keyframes blink{50%{border-color:#5a1a1a}}
 .top{display:flex;justify-content:space-between;align-items:baseline}
 .bed{font-weight:700;font-size:16px}.hr{font-size:30px;font-weight:700;color:#7CFC8A}
 canvas{width:100%;height:90px;background:#05080b;display:block;margin:4px 0}
 .alarm{padding:2px 6px;border-radius:3px;margin:2px 0;font-weight:600}
 .alarm.high{background:#ff4d4d;color:#000}.alarm.medium{background:#ffd166;color:#000}
 .alarm.low{background:#4dc3ff;color:#000}
 .withheld{color:#ff9f43}
</style></head><body>
<header><h1>edge-ecg central station</h1>
<div class="warn" id="disclaimer">Not a diagnostic device.</div>
<div class="small" id="model"></div><div class="small" id="counters"></div></header>
<div id="grid"></div>
<script>
"use strict";
const grid = document.getElementById("grid");
function fmt(v, d) { return (v === null || v === undefined) ? "\u2013" : (d === undefined ? v : Number(v).toFixed(d)); }
function esc(s) { return String(s).replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;"}[c])); }
function tileEl(b) {
  let el = document.getElementById("bed-" + b.key);
  if (!el) {
    el = document.createElement("div");
    el.className = "tile"; el.id = "bed-" + b.key; el.dataset.bed = b.key;
    el.innerHTML = '<div class="top"><span class="bed"></span><span class="hr"></span></div>' +
      '<canvas width="680" height="180"></canvas><div class="info"></div><div class="alarms"></div>';
    grid.appendChild(el);
  }
  return el;
}
function draw(cv, b) {
  const g = cv.getContext("2d"), w = cv.width, h = cv.height, s = b.strip || [];
  g.clearRect(0, 0, w, h);
  if (!s.length) return;
  const n = Math.round(6 * b.strip_hz), lo = Math.min(...s), hi = Math.max(...s);
  const span = Math.max(hi - lo, 0.5), x0 = w - s.length * w / n;
  g.strokeStyle = "#7CFC8A"; g.lineWidth = 1.5; g.beginPath();
  s.forEach((v, i) => { const x = x0 + i * w / n, y = h - 8 - (v - lo) / span * (h - 16);
    i ? g.lineTo(x, y) : g.moveTo(x, y); });
  g.stroke();
  g.fillStyle = "#ffd166";
  (b.beats_s || []).forEach(t => { g.fillRect(x0 + t * b.strip_hz * w / n - 1, 0, 2, 8); });
}
function render(st) {
  document.getElementById("disclaimer").textContent = st.disclaimer;
  const m = st.model;
  document.getElementById("model").textContent = "Model " + m.bundle + ". Trained on: " + m.training_data;
  const c = st.counters, lat = st.latency_ms;
  document.getElementById("counters").textContent = "beds " + st.beds.length + " \u00b7 events " + c.events +
    " \u00b7 dropped: other bundle " + c.other_bundle_events + ", unknown bed " + (c.unknown_bed_frames + c.unknown_bed_events) +
    ", malformed " + (c.malformed_frames + c.malformed_events) + " \u00b7 missing " + st.missing + " \u00b7 duplicates " + st.duplicates +
    (lat ? " \u00b7 frame-to-station p50 " + lat.p50 + " ms, p99 " + lat.p99 + " ms" : "");
  for (const b of st.beds) {
    const el = tileEl(b), top = b.alarms.length ? b.alarms[0].priority : "";
    el.className = "tile " + top;
    el.querySelector(".bed").textContent = "Bed " + b.bed + " (" + b.unit + ")";
    el.querySelector(".hr").textContent = fmt(b.hr_bpm, 0) + " bpm";
    draw(el.querySelector("canvas"), b);
    const r = b.rhythm ? esc(b.rhythm.label) + " (p " + fmt(b.rhythm.prob, 2) + ", model call)" : "\u2013";
    const ect = b.ectopic_per_min ? "V " + b.ectopic_per_min.V + "/min, S " + b.ectopic_per_min.S + "/min" : "not classed";
    const q = b.withheld ? '<span class="withheld">analysis withheld: ' + esc(b.withheld.join(", ")) + "</span>"
      : (b.quality ? "quality: " + (b.quality.masked && b.quality.masked.length ? "leads masked " + esc(b.quality.masked.join(",")) : "ok") : "\u2013");
    el.querySelector(".info").innerHTML = "rhythm: " + r + "<br>ectopy: " + ect + " \u00b7 QRS " + fmt(b.qrs_ms, 0) +
      " ms<br>" + q + '<br><span class="small">lead ' + esc(b.lead || "\u2013") + " \u00b7 events " + b.events +
      " \u00b7 worker " + esc(b.worker || "\u2013") + "</span>";
    el.querySelector(".alarms").innerHTML = b.alarms.map(a => '<div class="alarm ' + a.priority + '">' +
      a.priority.toUpperCase() + ": " + esc(a.text) + "</div>").join("");
  }
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}
fetch("/api/ward").then(r => r.json()).then(render);
const es = new EventSource("/api/stream");
es.onmessage = e => render(JSON.parse(e.data));
</script></body></html>
"""
