"""The review page: one HTML file with its script, no build step and nothing fetched from elsewhere.

Sample texts are inserted with textContent only, never as HTML: a generation may contain anything.
"""

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>r1f review</title>
<style>
  :root { --fg:#1d232a; --dim:#66707a; --line:#d9dee3; --ok:#17803d; --bad:#b42318; --acc:#2358c4; }
  * { box-sizing: border-box; }
  body { font: 15px/1.45 system-ui, sans-serif; color: var(--fg); margin: 0; background: #f6f7f9; }
  header { background: #fff; border-bottom: 1px solid var(--line); padding: 10px 24px; display: flex;
           gap: 18px; align-items: baseline; flex-wrap: wrap; }
  header h1 { font-size: 17px; margin: 0; }
  header .dim, .dim { color: var(--dim); }
  main { max-width: 1100px; margin: 0 auto; padding: 16px 24px 90px; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; margin: 12px 0; }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .05em; color: var(--dim); margin: 0 0 6px; }
  pre { white-space: pre-wrap; word-break: break-word; margin: 0; font: 13.5px/1.5 ui-monospace, monospace; }
  details > summary { cursor: pointer; color: var(--acc); }
  details pre { margin-top: 8px; max-height: 480px; overflow: auto; }
  table { border-collapse: collapse; width: 100%; font-size: 13.5px; }
  td, th { text-align: left; padding: 3px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
  .pass { color: var(--ok); font-weight: 600; } .fail { color: var(--bad); font-weight: 600; }
  #message { min-height: 0; }
  #message.show { padding: 8px 12px; border-radius: 6px; margin: 12px 0; background: #eaf2ff; border: 1px solid #b7cdf5; }
  #message.error { background: #fdecea; border-color: #f2b8b5; color: var(--bad); }
  #actions { position: fixed; bottom: 0; left: 0; right: 0; background: #fff; border-top: 1px solid var(--line);
             padding: 10px 24px; display: flex; gap: 10px; justify-content: center; }
  button { font: inherit; padding: 6px 14px; border-radius: 6px; border: 1px solid var(--line); background: #fff; cursor: pointer; }
  button:focus-visible, textarea:focus, input:focus { outline: 2px solid var(--acc); outline-offset: 1px; }
  button.approve { border-color: var(--ok); color: var(--ok); } button.reject { border-color: var(--bad); color: var(--bad); }
  kbd { font: 12px ui-monospace, monospace; border: 1px solid var(--line); border-bottom-width: 2px; border-radius: 4px;
        padding: 0 5px; background: #f6f7f9; }
  .panel { display: none; } .panel.open { display: block; }
  .panel ol { margin: 6px 0; padding-left: 0; list-style: none; } .panel li { padding: 2px 0; }
  textarea { width: 100%; font: 13.5px/1.5 ui-monospace, monospace; padding: 8px; border: 1px solid var(--line); border-radius: 6px; }
  input[type=text] { font: inherit; width: 60%; padding: 4px 8px; }
  .edit-note { border-left: 3px solid var(--acc); padding-left: 10px; }
</style>
</head>
<body>
<header>
  <h1>r1f review</h1>
  <span id="who" class="dim"></span>
  <span id="queue-label" class="dim"></span>
  <span id="place" aria-live="polite"></span>
</header>
<main>
  <div id="message" role="alert"></div>
  <div id="sample"></div>
  <section id="reject-panel" class="panel" aria-label="Reject">
    <h2>Reject: why?</h2>
    <ol id="reasons"></ol>
    <label>6 · other: <input type="text" id="reject-note" placeholder="free text, Enter to reject"></label>
    <div class="dim">Press <kbd>1</kbd>–<kbd>5</kbd> to reject with that reason, <kbd>6</kbd> to type one,
      <kbd>Esc</kbd> to cancel.</div>
  </section>
  <section id="edit-panel" class="panel" aria-label="Edit">
    <h2>Edit (a new generation is made; the original stays)</h2>
    <label for="edit-reasoning">Reasoning</label>
    <textarea id="edit-reasoning" rows="14"></textarea>
    <label for="edit-answer">Summary / answer</label>
    <textarea id="edit-answer" rows="5"></textarea>
    <div class="dim"><kbd>Ctrl</kbd>+<kbd>Enter</kbd> saves the edit, <kbd>Esc</kbd> cancels.</div>
  </section>
  <section id="help" class="panel" aria-label="Keys">
    <h2>Keys</h2>
    <table>
      <tr><td><kbd>a</kbd></td><td>approve</td></tr>
      <tr><td><kbd>r</kbd></td><td>reject, then <kbd>1</kbd>–<kbd>5</kbd> for a reason or <kbd>6</kbd> for free text</td></tr>
      <tr><td><kbd>e</kbd></td><td>edit the reasoning or summary; <kbd>Ctrl</kbd>+<kbd>Enter</kbd> saves</td></tr>
      <tr><td><kbd>s</kbd></td><td>skip (comes back at the end)</td></tr>
      <tr><td><kbd>t</kbd></td><td>fold / unfold the reasoning</td></tr>
      <tr><td><kbd>Esc</kbd></td><td>cancel; <kbd>?</kbd> this help</td></tr>
    </table>
  </section>
</main>
<div id="actions">
  <button class="approve" id="btn-approve"><kbd>a</kbd> Approve</button>
  <button class="reject" id="btn-reject"><kbd>r</kbd> Reject</button>
  <button id="btn-edit"><kbd>e</kbd> Edit</button>
  <button id="btn-skip"><kbd>s</kbd> Skip</button>
  <button id="btn-fold"><kbd>t</kbd> Reasoning</button>
  <button id="btn-help"><kbd>?</kbd> Keys</button>
</div>
<script>
"use strict";
let state = null, mode = "view", busy = false;
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return node;
}
const fmt = (n) => Number(n).toLocaleString("en-US");

function say(text, isError) {
  const m = $("message");
  m.textContent = text || "";
  m.className = text ? (isError ? "show error" : "show") : "";
}

function table(headers, rows) {
  const t = el("table", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h))));
  for (const r of rows) t.appendChild(el("tr", {}, ...r));
  return t;
}
function passCell(passed) { return el("td", {class: passed ? "pass" : "fail"}, passed ? "pass" : "fail"); }

function render() {
  const q = state.queue, item = state.item, box = $("sample");
  $("who").textContent = "reviewer " + state.reviewer;
  $("queue-label").textContent = "queue: " + q.label;
  $("place").textContent = item ? `sample ${fmt(q.position)} of ${fmt(q.total)} · ${fmt(q.reviewed)} reviewed · ${fmt(q.left)} left`
                                : `${fmt(q.total)} of ${fmt(q.total)} reviewed`;
  box.replaceChildren();
  if (!item) { renderEnd(box); return; }
  const p = item.prompt || {};
  const prompt = el("section", {id: "prompt"}, el("h2", {}, "Prompt"),
    el("div", {class: "dim"}, `${p.source} · ${p.kind} · ${p.domain} · ${p.language} · ${item.generation_id}`),
    el("pre", {id: "problem"}, p.problem || (p.messages || []).map((m) => m.role + ": " + m.content).join("\n\n")));
  if (p.answer !== null && p.answer !== undefined) prompt.appendChild(el("p", {}, el("b", {}, "Reference answer: "), el("code", {id: "reference"}, String(p.answer))));
  if (p.tests) prompt.appendChild(el("details", {}, el("summary", {}, "Tests"), el("pre", {}, JSON.stringify(p.tests, null, 2))));
  box.appendChild(prompt);

  const resp = el("section", {id: "response"}, el("h2", {}, "Response"));
  if (item.edit_of) resp.appendChild(el("p", {class: "edit-note"},
    `An edit of ${item.edit_of.generation_id} by ${item.edited_by} at ${item.edited_at}.`));
  const fold = el("details", {id: "reasoning"},
    el("summary", {}, `Reasoning (${fmt(item.reasoning.length)} characters) — t to unfold`),
    el("pre", {id: "reasoning-text"}, item.reasoning || "(no reasoning)"));
  resp.appendChild(fold);
  resp.appendChild(el("h2", {style: "margin-top:10px"}, "Summary / answer"));
  resp.appendChild(el("pre", {id: "answer"}, item.answer));
  box.appendChild(resp);

  const judged = el("section", {id: "verdicts"}, el("h2", {}, "Verdicts and filter decisions"));
  judged.appendChild(item.verdicts.length ? table(["judge", "version", "", "reason"], item.verdicts.map((v) =>
    [el("td", {}, v.judge), el("td", {}, String(v.judge_version)), passCell(v.passed), el("td", {}, v.reason || "")]))
    : el("p", {class: "dim"}, "No verdicts yet (r1f judge)."));
  judged.appendChild(item.filter_decisions.length ? table(["filter", "version", "", "reason"], item.filter_decisions.map((f) =>
    [el("td", {}, f.filter), el("td", {}, String(f.filter_version)), passCell(f.passed), el("td", {}, f.reason || "")]))
    : el("p", {class: "dim"}, "No filter decisions yet (r1f filter)."));
  box.appendChild(judged);
}

function renderEnd(box) {
  const s = state.summary || {};
  const pct = (x) => (x === null || x === undefined) ? "—" : (100 * x).toFixed(1) + "%";
  const sec = el("section", {id: "end"}, el("h2", {}, "Queue finished"),
    el("p", {}, `Every sample in this queue has a human decision. Decided: ${s.decided} · approved ${s.approved} · rejected ${s.rejected} · edited ${s.edited}.`),
    el("p", {}, el("b", {}, "Accept rate: "), el("span", {id: "accept-rate"}, pct(s.accept_rate)),
      ` · agreement with the machine judges: `, el("span", {id: "agreement"}, pct(s.agreement_with_judges)),
      ` (over ${s.compared_with_judges} samples approved or rejected that have machine verdicts)`));
  if ((s.agreement_by_judge || []).length) sec.appendChild(table(["judge", "samples", "agreement"],
    s.agreement_by_judge.map((j) => [el("td", {}, j.judge), el("td", {}, String(j.samples)), el("td", {}, pct(j.agreement))])));
  box.appendChild(sec);
}

async function load(message, isError) {
  const r = await fetch("/api/state");
  state = await r.json();
  closePanels();
  render();
  say(message, isError);
}

async function post(path, body) {
  if (busy) return;
  busy = true;
  try {
    const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    const data = await r.json();
    if (!r.ok) { say(data.error || ("error " + r.status), true); return false; }
    await load(data.message, false);
    return true;
  } catch (e) {
    say("The review server did not answer (" + e + "). Nothing was lost: every decision is saved when made; restart `r1f review`.", true);
    return false;
  } finally { busy = false; }
}

function current() { return state && state.item ? state.item.generation_id : null; }
function closePanels() {
  for (const id of ["reject-panel", "edit-panel", "help"]) $(id).classList.remove("open");
  mode = "view";
  if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
}
function approve() { if (current()) post("/api/decide", {generation_id: current(), decision: "approve"}); }
function skip() { if (current()) post("/api/skip", {generation_id: current()}); }
function reject(reason, note) { post("/api/decide", {generation_id: current(), decision: "reject", reason: reason, note: note}); }
function openReject() {
  if (!current()) return;
  closePanels(); mode = "reject";
  const ol = $("reasons"); ol.replaceChildren();
  Object.entries(state.reject_reasons).forEach(([code, label], i) => {
    const b = el("button", {"data-reason": code}, el("kbd", {}, String(i + 1)), " " + label);
    b.addEventListener("click", () => reject(code, null));
    ol.appendChild(el("li", {}, b));
  });
  $("reject-note").value = "";
  $("reject-panel").classList.add("open");
  $("reject-panel").scrollIntoView({block: "nearest"});
}
function openEdit() {
  if (!current()) return;
  closePanels(); mode = "edit";
  $("edit-reasoning").value = state.item.reasoning;
  $("edit-answer").value = state.item.answer;
  $("edit-panel").classList.add("open");
  $("edit-reasoning").focus();
}
function saveEdit() {
  post("/api/decide", {generation_id: current(), decision: "edit",
                       reasoning: $("edit-reasoning").value, answer: $("edit-answer").value});
}
function toggleFold() { const d = $("reasoning"); if (d) d.open = !d.open; }
function toggleHelp() { const open = $("help").classList.contains("open"); closePanels(); if (!open) { $("help").classList.add("open"); mode = "help"; } }

document.addEventListener("keydown", (ev) => {
  const typing = ev.target && (ev.target.tagName === "TEXTAREA" || ev.target.tagName === "INPUT");
  if (ev.key === "Escape") { ev.preventDefault(); closePanels(); say(""); return; }
  if (mode === "edit") {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); saveEdit(); }
    return;
  }
  if (typing) {
    if (ev.target.id === "reject-note" && ev.key === "Enter") {
      ev.preventDefault();
      const note = $("reject-note").value.trim();
      if (!note) { say("Type a reason, or press 1–5 for one from the list.", true); return; }
      reject("other", note);
    }
    return;
  }
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (mode === "reject") {
    const codes = Object.keys(state.reject_reasons);
    const n = parseInt(ev.key, 10);
    if (n >= 1 && n <= codes.length) { ev.preventDefault(); reject(codes[n - 1], null); return; }
    if (n === codes.length + 1) { ev.preventDefault(); $("reject-note").focus(); return; }
  }
  const actions = {a: approve, r: openReject, e: openEdit, s: skip, t: toggleFold, "?": toggleHelp};
  const fn = actions[ev.key];
  if (fn) { ev.preventDefault(); fn(); }
});
$("btn-approve").addEventListener("click", approve);
$("btn-reject").addEventListener("click", openReject);
$("btn-edit").addEventListener("click", openEdit);
$("btn-skip").addEventListener("click", skip);
$("btn-fold").addEventListener("click", toggleFold);
$("btn-help").addEventListener("click", toggleHelp);
load();
</script>
</body>
</html>
"""
