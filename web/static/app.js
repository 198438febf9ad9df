// The backups page's script. It is a file of its own, not inline, so that
// the page's Content-Security-Policy can forbid inline script.
"use strict";
const $ = (s) => document.querySelector(s);
const tasks = JSON.parse(sessionStorage.getItem("pgbackup.tasks") || "[]");
// A link may carry the token in its fragment (#token=...): fragments never
// reach the server, so the token stays out of access logs. It is moved to
// session storage and removed from the address bar at once.
if (location.hash.startsWith("#token=")) {
  sessionStorage.setItem("pgbackup.token", decodeURIComponent(location.hash.slice(7)));
  history.replaceState(null, "", location.pathname);
}
$("#token").value = sessionStorage.getItem("pgbackup.token") || "";

function humanBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
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

function cell(tr, text, cls) {
  const td = tr.insertCell();
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

function track(id) {
  if (!tasks.includes(id)) tasks.unshift(id);
  tasks.length = Math.min(tasks.length, 20);
  sessionStorage.setItem("pgbackup.tasks", JSON.stringify(tasks));
  pollTasks();
}

async function loadBackups() {
  try {
    const data = await api("GET", "/api/admin/backup/list");
    const body = $("#backups tbody");
    body.replaceChildren();
    for (const b of data.backups) {
      const tr = body.insertRow();
      cell(tr, b.backup_name);
      cell(tr, b.format);
      cell(tr, b.database);
      cell(tr, humanBytes(b.size_bytes));
      cell(tr, new Date(b.created_at).toLocaleString());
      const where = cell(tr, "");
      for (const l of b.locations) { const s = document.createElement("span"); s.className = "tag"; s.textContent = l; where.append(s); }
      cell(tr, b.sha256.slice(0, 12) + "…", "hash");
      const act = cell(tr, "");
      const btn = (label, cls, fn) => { const x = document.createElement("button"); x.textContent = label; if (cls) x.className = cls; x.onclick = fn; act.append(x, " "); };
      btn("Restore", "", async () => {
        const target = prompt("Restore " + b.backup_name + " into which database? (empty: the one it was taken from)", "");
        if (target === null) return;
        const clean = confirm("Drop existing objects first (clean)?");
        const req = { backup_name: b.backup_name, clean };
        if (target) req.target_database = target;
        try { track((await api("POST", "/api/admin/backup/restore", req)).task_id); say(""); } catch (e) { say(e.message); }
      });
      btn("Verify", "", async () => {
        try { track((await api("POST", "/api/admin/backup/" + encodeURIComponent(b.backup_name) + "/verify", {})).task_id); say(""); } catch (e) { say(e.message); }
      });
      btn("Delete", "danger", async () => {
        if (!confirm("Delete " + b.backup_name + " from " + b.locations.join(" and ") + "?")) return;
        try { track((await api("DELETE", "/api/admin/backup/" + encodeURIComponent(b.backup_name))).task_id); say(""); } catch (e) { say(e.message); }
      });
    }
    say("");
  } catch (e) { say(e.message); }
}

function humanAge(seconds) {
  if (seconds == null) return "never";
  const units = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
  for (const [u, n] of units) if (seconds >= n) return Math.floor(seconds / n) + u;
  return Math.floor(seconds) + "s";
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
      cell(tr, t.name);
      cell(tr, t.database);
      cell(tr, t.schedule || "manual only");
      cell(tr, t.newest_backup ? t.newest_backup.backup_name : "none");
      const age = cell(tr, humanAge(t.age_seconds) + (t.rpo_seconds ? " / " + humanAge(t.rpo_seconds) : ""));
      if (t.rpo_met === true) age.className = "ok";
      if (t.rpo_met === false) age.className = "bad";
      cell(tr, retentionText(t.retention));
      const d = t.last_drill;
      const drill = cell(tr, d ? (d.passed ? "passed" : "failed") + ", RTO " + d.rto_seconds.toFixed(1) + " s" : "never");
      if (d) drill.className = d.passed ? "ok" : "bad";
      const act = cell(tr, "");
      const btn = (label, fn) => { const x = document.createElement("button"); x.textContent = label; x.onclick = fn; act.append(x, " "); };
      btn("Prune preview", async () => {
        try {
          const p = await api("GET", "/api/admin/targets/" + encodeURIComponent(t.name) + "/prune");
          const lines = (p.decisions || []).map((x) => (x.keep ? "keep   " : "delete ") + x.backup_name + "  (" + x.reasons.join("; ") + ")");
          $("#prune-preview").textContent = t.name + ": " + (lines.length ? "\n" + lines.join("\n") : "nothing to prune");
          $("#prune-preview").hidden = false;
        } catch (e) { say(e.message); }
      });
      btn("Drill", async () => {
        try { track((await api("POST", "/api/admin/targets/" + encodeURIComponent(t.name) + "/drill", {})).task_id); say(""); } catch (e) { say(e.message); }
      });
    }
  } catch (e) { say(e.message); }
}

async function pollTasks() {
  const body = $("#tasks tbody");
  const rows = [];
  let running = false;
  for (const id of tasks) {
    try {
      const t = await api("GET", "/api/admin/tasks/" + encodeURIComponent(id));
      rows.push(t);
      if (t.state !== "completed" && t.state !== "archived") running = true;
    } catch (e) { rows.push({ task_id: id, state: e.message.startsWith("404") ? "expired" : "?" }); }
  }
  body.replaceChildren();
  for (const t of rows) {
    const tr = body.insertRow();
    cell(tr, t.task_id.slice(0, 13), "hash");
    cell(tr, t.type);
    cell(tr, t.state, "state " + t.state);
    cell(tr, t.progress && t.progress.phase);
    cell(tr, t.progress && t.progress.bytes);
    cell(tr, t.worker);
    cell(tr, t.error);
  }
  if (running) setTimeout(pollTasks, 1000); else { loadBackups(); loadTargets(); }
}

$("#create").onsubmit = async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const req = { format: f.get("format"), upload_to_minio: f.get("upload_to_minio") === "on" };
  if (f.get("backup_name")) req.backup_name = f.get("backup_name");
  if (f.get("database")) req.database = f.get("database");
  try { track((await api("POST", "/api/admin/backup/create", req)).task_id); say(""); } catch (e) { say(e.message); }
};
$("#save-token").onclick = () => { sessionStorage.setItem("pgbackup.token", $("#token").value); loadBackups(); pollTasks(); };
$("#refresh").onclick = () => { loadBackups(); loadTargets(); };
if ($("#token").value) { loadBackups(); pollTasks(); }
