"use strict";
// The station page: a full state once, then per-bed diffs (server-sent events). No external
// asset: a ward network is isolated. Tiles say how old their data is and NO DATA when the
// station says the bed went quiet; they never keep showing a last heart rate as current.
const grid = document.getElementById("grid");
const beds = new Map();           // key -> the bed's state as the station last sent it
let ward = {}, me = null, lastMsg = 0;

// rewrite an element only when its content changes: a tile re-rendered every tick would
// otherwise replace its buttons under a finger about to tap them
function setHTML(el, html) { if (el._html !== html) { el._html = html; el.innerHTML = html; } }
function fmt(v, d) { return (v === null || v === undefined) ? "\u2013" : (d === undefined ? v : Number(v).toFixed(d)); }
function esc(s) { return String(s).replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c])); }

async function post(url, body) {
  const r = await fetch(url, {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify(body || {})});
  if (r.status === 401) location.replace("/login");
  return r;
}

// bed 2 before bed 10
const byBed = (a, b) => a.localeCompare(b, undefined, {numeric: true});

function tileEl(b) {
  let el = document.getElementById("bed-" + b.key);
  if (!el) {
    el = document.createElement("div");
    el.className = "tile"; el.id = "bed-" + b.key; el.dataset.bed = b.key;
    el.innerHTML = '<div class="top"><span class="bed"></span><span class="hr"></span></div>' +
      '<div class="age"></div><canvas width="600" height="168"></canvas><div class="info"></div>' +
      '<div class="alarms"></div><div class="actions"></div><div class="limits-edit"></div>';
    el.querySelector(".alarms").addEventListener("click", async ev => {
      const code = ev.target.dataset && ev.target.dataset.ack;
      if (code) await post("/api/beds/" + encodeURIComponent(b.key) + "/alarms/" + encodeURIComponent(code) + "/ack");
    });
    el.querySelector(".actions").addEventListener("click", async ev => {
      if (ev.target.dataset && ev.target.dataset.silence)
        await post("/api/beds/" + encodeURIComponent(b.key) + "/silence", {seconds: Number(ev.target.dataset.silence)});
    });
    el.querySelector(".limits-edit").addEventListener("click", ev => limitsClick(el, b.key, ev));
    const keys = [...beds.keys()].sort(byBed), i = keys.indexOf(b.key), next = keys[i + 1];
    const nextEl = next && document.getElementById("bed-" + next);
    nextEl ? grid.insertBefore(el, nextEl) : grid.appendChild(el);
  }
  return el;
}

function draw(cv, b) {
  const g = cv.getContext("2d"), w = cv.width, h = cv.height, s = b.strip || [];
  g.clearRect(0, 0, w, h);
  const vals = s.filter(v => v !== null);
  if (!vals.length) return;
  const n = b.strip_len || s.length, lo = Math.min(...vals), hi = Math.max(...vals);
  const span = Math.max(hi - lo, 0.5), x0 = w - s.length * w / n;
  g.strokeStyle = "#7CFC8A"; g.lineWidth = 1.5; g.beginPath();
  let pen = false;
  s.forEach((v, i) => {
    if (v === null) { pen = false; return; }         // a non-finite sample: a gap, not a line
    const x = x0 + i * w / n, y = h - 8 - (v - lo) / span * (h - 16);
    pen ? g.lineTo(x, y) : g.moveTo(x, y); pen = true;
  });
  g.stroke();
  g.fillStyle = "#ffd166";
  (b.beats_s || []).forEach(t => { g.fillRect(x0 + t * b.strip_hz * w / n - 1, 0, 2, 8); });
}

function renderHeader() {
  if (ward.disclaimer) document.getElementById("disclaimer").textContent = ward.disclaimer;
  const m = ward.model;
  if (m) {
    const el = document.getElementById("model");
    el.textContent = el.title = "Model " + m.bundle + ". Trained on: " + m.training_data;
  }
  const c = ward.counters, lat = ward.latency_ms;
  if (c) document.getElementById("counters").textContent = "beds " + beds.size + " \u00b7 events " + c.events +
    " \u00b7 dropped: other bundle " + c.other_bundle_events + ", unknown bed " + (c.unknown_bed_frames + c.unknown_bed_events) +
    ", malformed " + (c.malformed_frames + c.malformed_events) + " \u00b7 missing " + c.missing + " \u00b7 duplicates " + c.duplicates +
    (lat ? " \u00b7 frame-to-station p50 " + lat.p50 + " ms, p99 " + lat.p99 + " ms" : "");
}

// the limits a unit set away from the defaults (--alarm-limits), as the bed runs them
function limitsText(lim) {
  const keys = lim ? Object.keys(lim) : [];
  return keys.length ? esc(keys.map(k => k + " " + lim[k]).join(", ")) : "defaults";
}

// what the bed's worker last confirmed running, where it differs from the tile's (VF's timing
// acts there): a limits command not yet applied, or lost
function workerLimits(b) {
  if (!b.worker_limits) return "";
  const a = b.worker_limits.alarm_limits || {}, t = b.alarm_limits || {};
  const same = Object.keys(a).length === Object.keys(t).length && Object.keys(a).every(k => a[k] === t[k]);
  return same ? " (worker confirmed)" : " \u00b7 <b>worker runs " + limitsText(a) + "</b>";
}

// A clinician's limits for one bed: "tachy_bpm=130, vt_run=5" over its current ones, or the
// unit's again. The station checks them whole and says why it refuses; the editor stays open
// (and is not redrawn by the pushes) until they are set or it is closed.
async function limitsClick(el, key, ev) {
  const box = el.querySelector(".limits-edit"), act = ev.target.dataset && ev.target.dataset.limits;
  if (!act) return;
  if (act === "relearn") {         // the bed's worker forgets the patient's beat templates
    const r = await post("/api/beds/" + encodeURIComponent(key) + "/relearn");
    if (r.status !== 200) {
      box.dataset.editing = "1";
      box.innerHTML = '<p class="error limits-err">' + esc((await r.json().catch(() => ({}))).error || ("HTTP " + r.status)) +
        '</p><div class="limits-row"><button type="button" data-limits="close">Close</button></div>';
    }
    return;
  }
  if (act === "open") {
    const cur = beds.get(key) ? beds.get(key).alarm_limits || {} : {};
    box.dataset.editing = "1";
    box.innerHTML = '<input type="text" class="limits-in" aria-label="alarm limits" value="' +
      esc(Object.keys(cur).map(k => k + "=" + cur[k]).join(", ")) + '" placeholder="tachy_bpm=130, vt_run=5">' +
      '<div class="limits-row"><button type="button" data-limits="set">Set</button>' +
      '<button type="button" data-limits="reset">Unit\'s</button>' +
      '<button type="button" data-limits="close">Close</button></div><p class="error limits-err"></p>';
    return;
  }
  let body = null;
  if (act === "set") {
    const limits = {};
    for (const part of box.querySelector(".limits-in").value.split(",")) {
      if (!part.trim()) continue;
      const [k, v] = part.split("=").map(x => x.trim());
      limits[k] = v === undefined || v === "" ? v : Number(v);
    }
    body = {limits};
  } else if (act === "reset") body = {reset: true};
  if (body) {
    const r = await post("/api/beds/" + encodeURIComponent(key) + "/limits", body);
    if (r.status !== 200) {
      box.querySelector(".limits-err").textContent = (await r.json().catch(() => ({}))).error || ("HTTP " + r.status);
      return;
    }
  }
  delete box.dataset.editing;
  box.innerHTML = "";
  box._html = undefined;           // setHTML redraws it from the bed's state
  const b = beds.get(key);
  if (b) renderBed(b);
}

function renderBed(b) {
  const el = tileEl(b), top = b.alarms.length ? b.alarms[0].priority : "";
  const quietAlarm = b.silenced_s > 0 || (b.alarms.length && b.alarms[0].acknowledged);
  el.className = "tile " + top + " " + b.status + (top === "high" && !quietAlarm ? " blink" : "");
  el.querySelector(".bed").textContent = "Bed " + b.bed + " (" + b.unit + ")";
  el.querySelector(".hr").textContent = b.status === "no_data" ? "NO DATA" :
    (b.status === "no_analysis" ? "NO ANALYSIS" : fmt(b.hr_bpm, 0) + " bpm");
  const age = el.querySelector(".age");
  age.textContent = "data " + (b.event_age_s === null ? "none yet" : fmt(b.event_age_s, 1) + " s ago") +
    (b.frame_age_s !== null ? " \u00b7 signal " + fmt(b.frame_age_s, 1) + " s ago" : "") +
    (b.silenced_s > 0 ? " \u00b7 silenced " + b.silenced_s + " s by " + b.silenced_by : "");
  age.className = "age" + (b.status !== "live" ? " old" : "");
  draw(el.querySelector("canvas"), b);
  const r = b.rhythm ? esc(b.rhythm.label) + " (p " + fmt(b.rhythm.prob, 2) + ", model call)" : "\u2013";
  const ect = b.ectopic_per_min ? "V " + b.ectopic_per_min.V + "/min, S " + b.ectopic_per_min.S + "/min" : "not classed";
  const off = b.quality && b.quality.leads_off ? Object.keys(b.quality.leads_off) : [];
  const q = b.withheld ? '<span class="withheld">analysis withheld: ' + esc(b.withheld.join(", ")) + "</span>"
    : (b.quality ? "quality: " + (off.length ? "leads masked " + esc(off.join(",")) : "ok") : "\u2013");
  setHTML(el.querySelector(".info"), "rhythm: " + r + "<br>ectopy: " + ect + " \u00b7 QRS " + fmt(b.qrs_ms, 0) +
    " ms<br>" + q + '<br><span class="small">lead ' + esc(b.lead || "\u2013") + " \u00b7 alarm limits " + limitsText(b.alarm_limits) +
    workerLimits(b) + (b.relearned ? " \u00b7 relearned by " + esc(b.relearned.by) + " at " + fmt(b.relearned.time_s, 0) + " s" : "") +
    " \u00b7 events " + b.events +
    " \u00b7 worker " + esc(b.worker || "\u2013") + "</span>");
  const clin = me && me.may.includes("acknowledge");
  setHTML(el.querySelector(".alarms"), b.alarms.map(a => '<div class="alarm ' + esc(a.priority) +
    (a.acknowledged ? " acked" : "") + '"><span>' + esc(a.priority.toUpperCase()) + ": " + esc(a.text) +
    (a.acknowledged ? " (ack " + esc(a.acknowledged.by) + ")" : "") + "</span>" +
    (clin && !a.acknowledged ? '<button type="button" data-ack="' + esc(a.code) + '">Ack</button>' : "") +
    "</div>").join(""));
  const box = el.querySelector(".limits-edit");
  if (!box.dataset.editing)
    setHTML(box, clin ? '<button type="button" data-limits="open">Limits</button>' +
      ' <button type="button" data-limits="relearn">Relearn</button>' +
      (b.alarm_limits_set ? ' <span class="small">set by ' + esc(b.alarm_limits_set.by) + "</span>" : "") : "");
  const act = el.querySelector(".actions");
  const want = clin && b.alarms.length ? (b.silenced_s > 0 ? "0" : "120") : "";
  if (act.dataset.want !== want) {
    act.dataset.want = want;
    act.innerHTML = want === "" ? "" : '<button type="button" data-silence="' + want + '">' +
      (want === "0" ? "Unsilence" : "Silence 2 min") + "</button>";
  }
}

function bump() {
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  lastMsg = Date.now();
}

function onFull(st) {
  beds.clear();
  for (const el of [...grid.children]) el.remove();
  const {beds: list, ...rest} = st;
  ward = rest;
  for (const b of list) { beds.set(b.key, b); }
  for (const b of [...list].sort((x, y) => byBed(x.key, y.key))) renderBed(b);
  renderHeader(); bump();
}

function onDiff(d) {
  Object.assign(ward, d.ward || {});
  for (const key of d.removed || []) {
    beds.delete(key);
    const el = document.getElementById("bed-" + key); if (el) el.remove();
  }
  for (const [key, ch] of Object.entries(d.beds || {})) {
    const b = beds.get(key) || {strip: []};
    const {strip_add, ...rest} = ch;
    Object.assign(b, rest);
    if (strip_add) {
      b.strip = (b.strip || []).concat(strip_add);
      const n = b.strip_len || b.strip.length;
      if (b.strip.length > n) b.strip = b.strip.slice(b.strip.length - n);
    }
    beds.set(key, b);
    renderBed(b);
  }
  renderHeader(); bump();
}

async function start() {
  const r = await fetch("/api/whoami", {credentials: "same-origin"});
  if (r.status === 401) { location.replace("/login"); return; }
  me = await r.json();
  document.getElementById("who").textContent = me.user + " (" + me.role + ")";
  document.getElementById("logout").addEventListener("click", async () => {
    await post("/logout"); location.replace("/login");
  });
  const es = new EventSource("/api/stream");
  const conn = document.getElementById("conn");
  es.addEventListener("full", e => { conn.textContent = "live"; onFull(JSON.parse(e.data)); });
  es.addEventListener("diff", e => onDiff(JSON.parse(e.data)));
  es.onerror = async () => {
    conn.textContent = "station connection lost: reconnecting\u2026";
    const w = await fetch("/api/whoami", {credentials: "same-origin"}).catch(() => null);
    if (w && w.status === 401) location.replace("/login");
  };
  // the page itself says when the station has gone quiet (no diff for 5 s)
  setInterval(() => {
    if (lastMsg && Date.now() - lastMsg > 5000) conn.textContent = "NO UPDATES from the station for " +
      Math.round((Date.now() - lastMsg) / 1000) + " s";
  }, 1000);
}
start();
