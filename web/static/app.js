// The backups page's script. It is a file of its own, not inline, so that
// the page's Content-Security-Policy can forbid inline script.
"use strict";
const $ = (s) => document.querySelector(s);
// Tracked tasks, newest first: {id, since} where since is when this page
// started it (ms), for the elapsed column; the API keeps no start time.
const tasks = JSON.parse(sessionStorage.getItem("pgbackup.tasks2") || "[]");
const lastBytes = new Map(); // task id -> {bytes, at}, for the rate
let role = "";

// A link may carry the token in its fragment (#token=...): fragments never
// reach the server, so the token stays out of access logs. It is moved to
// session storage and removed from the address bar at once.
if (location.hash.startsWith("#token=")) {
  sessionStorage.setItem("pgbackup.token", decodeURIComponent(location.hash.slice(7)));
  history.replaceState(null, "", location.pathname + location.search);
}
$("#token").value = sessionStorage.getItem("pgbackup.token") || "";

function humanBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function humanAge(seconds) {
  if (seconds == null) return "never";
  const units = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
  for (const [u, n] of units) if (seconds >= n) return Math.floor(seconds / n) + u;
  return Math.floor(seconds) + "s";
}

function say(text) { $("#msg").textContent = text || ""; }

async function api(method, path, body) {
  const headers = { "Authorization": "Bearer " + $("#token").value };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(resp.status + ": " + (data.error || resp.statusText));
  return data;
}

// cell adds a cell labelled with its column's heading, which the narrow
// layout shows beside the value (each row becomes a card).
function cell(tr, text, cls) {
  const td = tr.insertCell();
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  const th = tr.closest("table").tHead.rows[0].cells[td.cellIndex];
  if (th && th.textContent) td.dataset.label = th.textContent;
  return td;
}

function button(parent, label, action, cls, fn) {
  const x = document.createElement("button");
  x.type = "button";
  x.textContent = label;
  x.dataset.action = action;
  if (cls) x.className = cls;
  x.onclick = fn;
  parent.append(x, " ");
  return x;
}

// ask opens a dialog and resolves with the button the user chose ("ok" or
// "cancel"); Escape counts as cancel. In-page dialogs rather than prompt()
// and confirm(), which some browsers suppress and which cannot be styled
// for a phone.
function ask(dialog) {
  return new Promise((resolve) => {
    dialog.returnValue = "cancel";
    dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true });
    dialog.showModal();
  });
}

async function start(method, path, body) {
  try {
    const out = await api(method, path, body);
    track(out.task_id);
    say("");
  } catch (e) { say(e.message); }
}

async function restoreDialog(b) {
  const d = $("#restore-dialog");
  const f = d.querySelector("form");
  f.reset();
  $("#restore-name").textContent = b.backup_name;
  $("#restore-source").textContent = b.database;
  // A whole-server backup restores each database under its own name.
  const server = b.kind === "server";
  for (const el of f.querySelectorAll("label")) el.hidden = server;
  if (await ask(d) !== "ok") return;
  const req = { backup_name: b.backup_name };
  if (!server) {
    const target = f.elements.target_database.value.trim();
    if (f.elements.replace.checked) req.replace = true;
    else if (target) req.target_database = target;
    else { say("Give a new database name, or choose to replace " + b.database + "."); return; }
  }
  await start("POST", "/api/admin/backup/restore", req);
}

async function deleteDialog(b) {
  $("#confirm-text").textContent = "Delete " + b.backup_name + " from " + b.locations.join(" and ") + "?";
  if (await ask($("#confirm-dialog")) !== "ok") return;
  await start("DELETE", "/api/admin/backup/" + encodeURIComponent(b.backup_name));
}

async function loadBackups() {
  try {
    const data = await api("GET", "/api/admin/backup/list");
    const body = $("#backups tbody");
    body.replaceChildren();
    for (const b of data.backups) {
      const tr = body.insertRow();
      tr.dataset.name = b.backup_name;
      cell(tr, b.backup_name);
      cell(tr, b.format);
      cell(tr, b.kind === "server" ? "all (" + (b.databases || []).length + ")" : b.database || b.source_bucket);
      cell(tr, humanBytes(b.size_bytes), "size");
      cell(tr, new Date(b.created_at).toLocaleString());
      const where = cell(tr, "", "where");
      for (const l of b.locations) { const s = document.createElement("span"); s.className = "tag"; s.textContent = l; where.append(s); }
      cell(tr, b.sha256.slice(0, 12) + "…", "hash");
      const act = cell(tr, "", "actions");
      if (role !== "admin") continue;
      // Bucket backups restore through their own route, not offered here.
      if (b.kind !== "bucket") button(act, "Restore", "restore", "", () => restoreDialog(b));
      button(act, "Verify", "verify", "", () => start("POST", "/api/admin/backup/" + encodeURIComponent(b.backup_name) + "/verify", {}));
      button(act, "Delete", "delete", "danger", () => deleteDialog(b));
    }
  } catch (e) { say(e.message); }
}

// walText is a pitr target's WAL archive: how far archived_through is
// behind now, the WAL the server keeps for the slot, and how old the
// newest base backup is (a restore replays the WAL since).
function walText(p) {
  if (!p) return "none";
  const base = p.base_backup ? ", base backup " + humanAge(p.base_backup.age_seconds) + " old" : ", no base backup";
  if (!p.archived_through) return "catching up" + base;
  return humanAge(p.lag_seconds) + " behind, slot " + humanBytes(p.slot_lag_bytes) + base;
}

// baseText is a pitr target's base backup schedule and next run, for the
// WAL archive column: WAL replays only onto a base backup.
function baseText(t) {
  if (!t.base_backup_schedule) return "";
  return "; base backup " + t.base_backup_schedule + (t.next_base_backup ? ", next " + new Date(t.next_base_backup).toLocaleString() : "");
}

function retentionText(r) {
  const parts = [];
  for (const [k, label] of [["keep_last", "last"], ["keep_daily", "daily"], ["keep_weekly", "weekly"], ["keep_monthly", "monthly"]]) {
    if (r && r[k]) parts.push(label + " " + r[k]);
  }
  return parts.length ? parts.join(", ") : "keep all";
}

async function loadTargets() {
  try {
    const data = await api("GET", "/api/admin/targets");
    const body = $("#targets tbody");
    body.replaceChildren();
    for (const t of data.targets) {
      const tr = body.insertRow();
      tr.dataset.name = t.name;
      cell(tr, t.name);
      cell(tr, t.database);
      cell(tr, t.schedule || "manual only");
      cell(tr, t.newest_backup ? t.newest_backup.backup_name : "none");
      const age = cell(tr, humanAge(t.age_seconds) + (t.rpo_seconds ? " / " + humanAge(t.rpo_seconds) : ""));
      if (t.rpo_met === true) age.className = "ok";
      if (t.rpo_met === false) age.className = "bad";
      cell(tr, retentionText(t.retention));
      cell(tr, walText(t.pitr) + baseText(t), "wal");
      const d = t.last_drill;
      const drill = cell(tr, d ? (d.passed ? "passed" : "failed") + ", RTO " + d.rto_seconds.toFixed(1) + " s" : "never");
      if (d) drill.className = d.passed ? "ok" : "bad";
      const act = cell(tr, "", "actions");
      if (role !== "admin") continue;
      button(act, "Prune preview", "prune-preview", "", async () => {
        try {
          const p = await api("GET", "/api/admin/targets/" + encodeURIComponent(t.name) + "/prune");
          const lines = (p.decisions || []).map((x) => (x.keep ? "keep   " : "delete ") + x.backup_name + "  (" + x.reasons.join("; ") + ")");
          $("#prune-preview").textContent = t.name + ": " + (lines.length ? "\n" + lines.join("\n") : "nothing to prune");
          $("#prune-preview").hidden = false;
        } catch (e) { say(e.message); }
      });
      button(act, "Drill", "drill", "", () => start("POST", "/api/admin/targets/" + encodeURIComponent(t.name) + "/drill", {}));
      // Only a pitr target takes base backups: one whose archive the
      // archiver published, or with base backups scheduled.
      if (t.pitr || t.base_backup_schedule) {
        button(act, "Base backup", "basebackup", "", () => start("POST", "/api/admin/targets/" + encodeURIComponent(t.name) + "/basebackup", {}));
      }
    }
  } catch (e) { say(e.message); }
}

// asynq's states, in the words an operator expects.
const stateWords = { pending: "queued", scheduled: "queued", active: "running", retry: "retrying", completed: "done", archived: "failed" };

function progressText(t) {
  const p = t.progress;
  if (!p) return "";
  let s = p.phase + " · " + humanBytes(p.bytes);
  const prev = lastBytes.get(t.task_id);
  const now = Date.now();
  if (t.state === "active" && prev && now > prev.at && p.bytes >= prev.bytes) {
    s += " · " + humanBytes((p.bytes - prev.bytes) * 1000 / (now - prev.at)) + "/s";
  }
  lastBytes.set(t.task_id, { bytes: p.bytes, at: now });
  return s;
}

let polling = null;
function track(id) {
  const i = tasks.findIndex((x) => x.id === id);
  if (i >= 0) tasks.splice(i, 1);
  tasks.unshift({ id, since: Date.now() });
  tasks.length = Math.min(tasks.length, 20);
  sessionStorage.setItem("pgbackup.tasks2", JSON.stringify(tasks));
  pollTasks();
}

async function pollTasks(reload = true) {
  clearTimeout(polling);
  const rows = [];
  let running = false;
  for (const x of tasks) {
    try {
      const t = await api("GET", "/api/admin/tasks/" + encodeURIComponent(x.id));
      t.since = x.since;
      rows.push(t);
      if (t.state !== "completed" && t.state !== "archived") running = true;
    } catch (e) { rows.push({ task_id: x.id, state: e.message.startsWith("404") ? "expired" : "?", since: x.since }); }
  }
  const body = $("#tasks tbody");
  body.replaceChildren();
  for (const t of rows) {
    const tr = body.insertRow();
    tr.dataset.task = t.task_id;
    tr.dataset.state = t.state;
    cell(tr, t.task_id.slice(0, 13), "hash");
    cell(tr, t.type);
    cell(tr, stateWords[t.state] || t.state, "state " + t.state);
    cell(tr, progressText(t), "progress");
    const end = t.completed_at ? Date.parse(t.completed_at) : Date.now();
    cell(tr, t.since ? humanAge(Math.max(0, end - t.since) / 1000) : "");
    cell(tr, t.worker);
    cell(tr, t.error);
  }
  if (running) polling = setTimeout(pollTasks, 1000);
  else if (reload) { loadBackups(); loadTargets(); }
}

// useToken learns the token's role first, so that admin-only controls are
// never drawn for a viewer, not even for a moment.
async function useToken() {
  role = "";
  document.body.dataset.role = "";
  for (const el of document.querySelectorAll(".admin-only")) el.hidden = true;
  $("#role").hidden = true;
  if (!$("#token").value) return;
  try {
    role = (await api("GET", "/api/whoami")).role;
  } catch (e) { say(e.message); return; }
  document.body.dataset.role = role;
  $("#role").textContent = role;
  $("#role").hidden = false;
  for (const el of document.querySelectorAll(".admin-only")) el.hidden = role !== "admin";
  say("");
  loadBackups();
  loadTargets();
  pollTasks(false);
}

$("#create").onsubmit = async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const req = { format: f.get("format"), upload_to_minio: f.get("upload_to_minio") === "on" };
  if (f.get("backup_name")) req.backup_name = f.get("backup_name");
  if (f.get("database")) req.database = f.get("database");
  await start("POST", "/api/admin/backup/create", req);
};
$("#token-form").onsubmit = (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("pgbackup.token", $("#token").value);
  useToken();
};
$("#refresh").onclick = () => { loadBackups(); loadTargets(); };
useToken();
