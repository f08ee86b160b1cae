// The operator's console. It paints and follows what the API answers; it computes nothing the
// server has (the matrix, its totals and every cell's cause come from /api/coverage/matrix).

// Okabe-Ito colours, told apart with every common colour-vision deficiency; the legend and the
// readout say each state in words as well.
const STATES = [
  ["detailed", "Detailed", "#009E73"],
  ["summary", "Summary only", "#56B4E9"],
  ["unavailable-final", "Unavailable (final)", "#7F7F7F"],
  ["unavailable-pending", "Unavailable (pending)", "#F0E442"],
  ["failed-transient", "Failed (transient)", "#E69F00"],
  ["failed-permanent", "Failed (permanent)", "#D55E00"],
  ["missing", "Missing", "#FFFFFF"],
  ["in-progress", "In progress", "#0072B2"],
];
const LABEL = Object.fromEntries(STATES.map(([s, label]) => [s, label]));
const COLOUR = Object.fromEntries(STATES.map(([s, , c]) => [s, c]));
const GRID = "#D0D0D0";
const REFRESH_MS = 5000;

const $ = (id) => document.getElementById(id);
const view = { matrix: null, byCode: {}, cursor: { row: 0, col: 0 }, anchor: null, cell: { w: 3, h: 5 } };

async function api(path, options = {}) {
  // Writes say where they came from: the backfill's requester reads "console".
  const init = { credentials: "same-origin", ...options, headers: { "X-Requested-By": "console", ...options.headers } };
  if (init.body !== undefined) init.headers["Content-Type"] = "application/json";
  const response = await fetch(path, init);
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // Not the API's JSON (a proxy's error page): say what came back instead of a parse error.
    body = { error: { message: `${response.status} ${response.statusText}: not JSON` } };
  }
  if (!response.ok) {
    const error = new Error((body && body.error && body.error.message) || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

// -- session ---------------------------------------------------------------------------------

async function showSession() {
  const { signedIn } = await api("/api/session");
  $("sign-in").hidden = signedIn;
  $("sign-out").hidden = !signedIn;
  $("session-state").textContent = signedIn ? "Signed in" : "Not signed in: reading only";
  return signedIn;
}

$("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("sign-in-error").textContent = "";
  try {
    await api("/api/session", { method: "POST", body: JSON.stringify({ token: $("token").value }) });
    $("token").value = "";
    await showSession();
    await loadCoverage();
  } catch (error) {
    $("sign-in-error").textContent = `Sign-in refused: ${error.message}`;
  }
});

$("sign-out").addEventListener("click", async () => {
  await api("/api/session", { method: "DELETE" });
  await showSession();
});

// -- coverage heatmap ------------------------------------------------------------------------

function legend(matrix, asking = false) {
  const totals = matrix ? { ...matrix.totals, "in-progress": matrix.inProgress } : null;
  const list = $("legend");
  list.replaceChildren();
  for (const [state, label, colour] of STATES) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour;
    swatch.setAttribute("aria-hidden", "true");
    item.append(swatch, `${label}: ${totals ? totals[state] : 0}`);
    item.dataset.state = state;
    list.append(item);
  }
  if (matrix && !matrix.inProgressKnown) {
    const item = document.createElement("li");
    item.textContent = asking
      ? "(asking Dagster what its runs are collecting now…)"
      : "(what runs are collecting now is not known: Dagster did not answer)";
    list.append(item);
  }
}

function coverageQuery() {
  const params = new URLSearchParams();
  for (const [id, name] of [["cov-start", "start"], ["cov-end", "end"], ["cov-districts", "districts"]]) {
    const value = $(id).value.trim();
    if (value) params.set(name, value);
  }
  return params.toString();
}

function showMatrix(matrix, asking = false) {
  view.matrix = matrix;
  view.byCode = Object.fromEntries(Object.entries(matrix.codes).map(([state, code]) => [code, state]));
  legend(matrix, asking);
  byDistrictTable(matrix);
  paint();
  readout();
}

let coverageAsked = 0;

async function loadCoverage() {
  $("coverage-error").textContent = "";
  const query = coverageQuery();
  const path = `/api/coverage/matrix?${query ? `${query}&` : ""}`;
  // Only the latest ask is shown: an earlier answer arriving late is dropped.
  const ask = ++coverageAsked;
  let first;
  try {
    // The store's states first, at once; then the same with what Dagster's runs are collecting
    // now laid over them: a busy Dagster never holds the first paint back.
    first = await api(`${path}inProgress=false`);
    if (ask !== coverageAsked) return;
    view.cursor = { row: 0, col: 0 };
    view.anchor = null;
    if (!$("cov-start").value) $("cov-start").value = first.start;
    if (!$("cov-end").value) $("cov-end").value = first.end;
    showMatrix(first, true);
    document.body.dataset.heatmapPainted = String(performance.now());
  } catch (error) {
    if (ask === coverageAsked) $("coverage-error").textContent = `Coverage could not be read: ${error.message}`;
    return;
  }
  try {
    const full = await api(path.slice(0, -1));
    if (ask === coverageAsked) showMatrix(full);
  } catch (error) {
    // The store's picture stays, and says that "in progress" is not known.
    if (ask === coverageAsked) legend(first);
  }
  if (ask === coverageAsked) document.body.dataset.heatmapComplete = String(performance.now());
}

function stateAt(row, col) {
  // Districts down (rows), dates across (columns); the API sends one string per date.
  const m = view.matrix;
  return view.byCode[m.rows[col][row]] || "missing";
}

// Room for the district labels on the left and the month labels on top.
const LEFT = 44;
const TOP = 18;

function paint() {
  const m = view.matrix;
  const canvas = $("heatmap");
  const width = Math.max(320, canvas.parentElement.clientWidth - 8 - LEFT);
  const w = Math.max(2, Math.floor(width / Math.max(1, m.dates.length)));
  const h = Math.max(4, Math.min(16, Math.floor(640 / Math.max(1, m.districts.length))));
  view.cell = { w, h };
  const ratio = window.devicePixelRatio || 1;
  const cssWidth = LEFT + m.dates.length * w;
  const cssHeight = TOP + m.districts.length * h;
  canvas.width = cssWidth * ratio;
  canvas.height = cssHeight * ratio;
  canvas.style.width = `${cssWidth}px`;
  canvas.style.height = `${cssHeight}px`;
  canvas.dataset.left = String(LEFT);
  canvas.dataset.top = String(TOP);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, cssWidth, cssHeight);
  labels(ctx, m, w, h);
  ctx.translate(LEFT, TOP);
  ctx.fillStyle = GRID;
  ctx.fillRect(0, 0, m.dates.length * w, m.districts.length * h);
  // One fillRect per cell, grouped by colour: 47,000 cells paint in a few milliseconds.
  for (const [state, , colour] of STATES) {
    ctx.fillStyle = colour;
    const code = m.codes[state];
    for (let col = 0; col < m.dates.length; col++) {
      const row = m.rows[col];
      for (let i = row.indexOf(code); i !== -1; i = row.indexOf(code, i + 1)) {
        ctx.fillRect(col * w, i * h, Math.max(1, w - (w > 2 ? 1 : 0)), h - 1);
      }
    }
  }
  const sel = selection();
  if (sel) {
    ctx.strokeStyle = "#000000";
    ctx.lineWidth = 2;
    ctx.strokeRect(sel.c0 * w, sel.r0 * h, (sel.c1 - sel.c0 + 1) * w, (sel.r1 - sel.r0 + 1) * h);
  }
  const { row, col } = view.cursor;
  ctx.strokeStyle = "#FFFFFF";
  ctx.lineWidth = 3;
  ctx.strokeRect(col * w - 1, row * h - 1, w + 2, h + 2);
  ctx.strokeStyle = "#000000";
  ctx.lineWidth = 1.5;
  ctx.strokeRect(col * w - 1, row * h - 1, w + 2, h + 2);
}

function labels(ctx, m, w, h) {
  ctx.fillStyle = "#1a1a1a";
  ctx.font = `${Math.min(11, Math.max(7, h - 1))}px system-ui, sans-serif`;
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  // Every district when they fit, else every nth.
  const every = Math.max(1, Math.ceil(9 / h));
  m.districts.forEach((d, i) => {
    if (i % every === 0) ctx.fillText(d, LEFT - 4, TOP + i * h + h / 2);
  });
  ctx.textAlign = "left";
  ctx.font = "10px system-ui, sans-serif";
  let last = -Infinity;
  m.dates.forEach((date, i) => {
    const x = LEFT + i * w;
    if ((i === 0 || date.endsWith("-01")) && x - last > 48) {
      ctx.fillText(i === 0 ? date : date.slice(0, 7), x, TOP / 2);
      last = x;
    }
  });
}

function describe(row, col) {
  const m = view.matrix;
  const date = m.dates[col];
  const district = m.districts[row];
  const state = stateAt(row, col);
  const detail = m.details[`${date}|${district}`];
  let text = `${date}, district ${district}: ${LABEL[state]}`;
  if (detail && detail.attempts) text += `, ${detail.attempts} attempt${detail.attempts === 1 ? "" : "s"}`;
  if (detail && detail.lastError) {
    const e = detail.lastError;
    text += `. Last error (${e.report}, ${e.retryable ? "transient" : "permanent"}): ${e.class}: ${e.message}`;
  }
  if (detail && detail.retryNotBefore) text += `. Not before ${detail.retryNotBefore}`;
  return { text, date, district, state };
}

function partitionLink(date, district) {
  const key = encodeURIComponent(`${date}|${district}`);
  return `${view.matrix.dagsterUrl}/assets/district_snapshot?view=partitions&partition=${key}`;
}

function readout() {
  const m = view.matrix;
  if (!m || !m.districts.length || !m.dates.length) {
    $("cell-readout").textContent = "No cells in this range.";
    return;
  }
  const { row, col } = view.cursor;
  const cell = describe(row, col);
  const out = $("cell-readout");
  out.replaceChildren(cell.text + " ");
  const link = document.createElement("a");
  link.href = partitionLink(cell.date, cell.district);
  link.textContent = "Open in Dagster";
  link.target = "_blank";
  link.rel = "noopener";
  out.append(link);
  out.dataset.date = cell.date;
  out.dataset.district = cell.district;
  out.dataset.state = cell.state;
  showSelection();
}

function selection() {
  if (!view.anchor) return null;
  const a = view.anchor;
  const b = view.cursor;
  return {
    r0: Math.min(a.row, b.row), r1: Math.max(a.row, b.row),
    c0: Math.min(a.col, b.col), c1: Math.max(a.col, b.col),
  };
}

function showSelection() {
  const sel = selection();
  $("selection").hidden = !sel;
  if (JSON.stringify(selectionBody()) !== JSON.stringify(collect.body)) {
    // Another selection: the plan shown was for the last one, and is not launched.
    collect.body = null;
    $("collect-launch").hidden = true;
    $("collect-result").textContent = "";
  }
  if (!sel) return;
  const m = view.matrix;
  const districts = m.districts.slice(sel.r0, sel.r1 + 1);
  const cells = districts.length * (sel.c1 - sel.c0 + 1);
  $("selection-text").textContent =
    `Selected ${cells} cells: ${m.dates[sel.c0]} to ${m.dates[sel.c1]}, districts ${districts.join(", ")}`;
}

function move(dRow, dCol, extend) {
  const m = view.matrix;
  if (!m) return;
  if (extend && !view.anchor) view.anchor = { ...view.cursor };
  if (!extend) view.anchor = null;
  view.cursor.row = Math.min(m.districts.length - 1, Math.max(0, view.cursor.row + dRow));
  view.cursor.col = Math.min(m.dates.length - 1, Math.max(0, view.cursor.col + dCol));
  paint();
  readout();
}

$("heatmap").addEventListener("keydown", (event) => {
  const steps = {
    ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1],
    PageUp: [0, -7], PageDown: [0, 7], Home: [0, -1e6], End: [0, 1e6],
  };
  if ((event.key === "Home" || event.key === "End") && event.ctrlKey) {
    // The grid's corners, as in a spreadsheet: Ctrl+Home the first cell, Ctrl+End the last.
    event.preventDefault();
    const far = event.key === "Home" ? -1e6 : 1e6;
    move(far, far, event.shiftKey);
  } else if (event.key in steps) {
    event.preventDefault();
    move(...steps[event.key], event.shiftKey);
  } else if (event.key === "Escape") {
    view.anchor = null;
    paint();
    readout();
  } else if (event.key === "Enter") {
    const { row, col } = view.cursor;
    window.open(partitionLink(view.matrix.dates[col], view.matrix.districts[row]), "_blank", "noopener");
  }
});

function cellAt(event) {
  const rect = $("heatmap").getBoundingClientRect();
  const col = Math.floor((event.clientX - rect.left - LEFT) / view.cell.w);
  const row = Math.floor((event.clientY - rect.top - TOP) / view.cell.h);
  const m = view.matrix;
  if (!m || row < 0 || col < 0 || row >= m.districts.length || col >= m.dates.length) return null;
  return { row, col };
}

$("heatmap").addEventListener("mousemove", (event) => {
  const at = cellAt(event);
  const tip = $("tooltip");
  if (!at) {
    tip.hidden = true;
    return;
  }
  tip.textContent = describe(at.row, at.col).text;
  tip.style.left = `${event.offsetX + 12}px`;
  tip.style.top = `${event.offsetY + 12}px`;
  tip.hidden = false;
});
$("heatmap").addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
$("heatmap").addEventListener("click", (event) => {
  const at = cellAt(event);
  if (!at) return;
  if (event.shiftKey) {
    if (!view.anchor) view.anchor = { ...view.cursor };
  } else {
    view.anchor = null;
  }
  view.cursor = at;
  $("heatmap").focus();
  paint();
  readout();
});

// The selection's plan, once previewed: "Collect these" launches exactly it.
const collect = { body: null, planHash: null, key: null };

function selectionBody() {
  const sel = selection();
  if (!sel) return null;
  const m = view.matrix;
  return {
    startDate: m.dates[sel.c0],
    endDate: m.dates[sel.c1],
    targetDistricts: m.districts.slice(sel.r0, sel.r1 + 1),
  };
}

function showCollectPlan(answer, note) {
  collect.planHash = answer.plan.planHash;
  collect.key = crypto.randomUUID();
  $("collect-result").textContent = (note ? `${note} ` : "") + planText(answer);
  $("collect-launch").hidden = answer.plan.partitions.total === 0;
  $("collect-launch").disabled = false;
}

$("collect-preview").addEventListener("click", async () => {
  const body = selectionBody();
  if (!body) return;
  const out = $("collect-result");
  $("collect-launch").hidden = true;
  out.textContent = "Planning…";
  try {
    const answer = await api("/api/backfills", { method: "POST", body: JSON.stringify({ ...body, dryRun: true }) });
    // The selection moved while the plan was asked for: this plan is not for what is selected.
    if (JSON.stringify(selectionBody()) !== JSON.stringify(body)) return;
    collect.body = body;
    showCollectPlan(answer);
  } catch (error) {
    out.textContent = error.status === 401
      ? "Sign in to plan or launch a collection."
      : `The plan was refused: ${error.message}`;
  }
});

$("collect-launch").addEventListener("click", async () => {
  const body = collect.body;
  if (!body) return;
  $("collect-launch").disabled = true;
  try {
    const result = await launchPlanned({ ...body, planHash: collect.planHash }, collect.key);
    if (result.backfillId) {
      location.hash = `#backfill/${result.backfillId}`;
    } else if (collect.body !== body) {
      // The selection changed meanwhile: a changed plan of the old one is not offered again.
      $("collect-result").textContent = "";
    } else if (result.changed) {
      showCollectPlan({ plan: result.changed }, CHANGED);
    } else {
      $("collect-result").textContent = result.nothing;
    }
  } catch (error) {
    $("collect-result").textContent = `The launch was refused: ${error.message}`;
    $("collect-launch").disabled = false;
  }
});

function planText(answer) {
  const p = answer.plan;
  const c = p.cost;
  const partitions = Object.entries(p.partitions).map(([asset, n]) => `${n} ${asset}`).join(", ");
  return `${p.strategy}: ${p.rationale} ${partitions}. ` +
    `${c.requests} requests (between ${c.lowerBound} and ${c.upperBound}), ${c.runs} runs, ` +
    `about ${Math.ceil(c.seconds)} s at ${p.ratePerRun} requests/s.`;
}

function byDistrictTable(matrix) {
  const rows = $("by-district-rows");
  rows.replaceChildren();
  for (const district of matrix.districts) {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = district;
    const td = document.createElement("td");
    const counts = matrix.byDistrict[district] || {};
    td.textContent = Object.entries(counts).map(([s, n]) => `${LABEL[s]} ${n}`).join(", ");
    tr.append(th, td);
    rows.append(tr);
  }
}

$("coverage-form").addEventListener("submit", (event) => {
  event.preventDefault();
  loadCoverage();
});
window.addEventListener("resize", () => { if (view.matrix) paint(); });

// -- backfills ------------------------------------------------------------------------------

function age(iso) {
  if (!iso) return "";
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

function progressText(p) {
  if (!p) return "no counts";
  let text = `${p.materialized} of ${p.targeted} partitions done`;
  if (p.failed) text += `, ${p.failed} failed`;
  if (p.inProgress) text += `, ${p.inProgress} in progress`;
  return text;
}

function progressBar(p) {
  const wrap = document.createElement("span");
  wrap.className = "bar";
  const bar = document.createElement("progress");
  bar.max = Math.max(1, p ? p.targeted : 1);
  bar.value = p ? p.materialized + p.failed : 0;
  const text = progressText(p);
  bar.setAttribute("aria-label", text);
  wrap.append(bar, ` ${text}`);
  return wrap;
}

function cell(tr, content) {
  const td = document.createElement("td");
  td.append(content);
  tr.append(td);
  return td;
}

async function loadBackfills() {
  try {
    const { backfills } = await api("/api/backfills");
    const rows = $("backfill-rows");
    rows.replaceChildren();
    for (const b of backfills) {
      const tr = document.createElement("tr");
      tr.dataset.backfillId = b.id;
      tr.dataset.state = b.state;
      const link = document.createElement("a");
      link.href = `#backfill/${b.id}`;
      link.textContent = b.title || b.id;
      cell(tr, link);
      cell(tr, b.state);
      cell(tr, progressBar(b.progress));
      cell(tr, b.strategy || "");
      cell(tr, b.requester || "");
      cell(tr, age(b.createdAt));
      rows.append(tr);
    }
    $("backfills-error").textContent = "";
  } catch (error) {
    $("backfills-error").textContent = `Backfills could not be read: ${error.message}`;
  }
}

function facts(list, pairs) {
  list.replaceChildren();
  for (const [name, value] of pairs) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = value === null || value === undefined ? "—" : String(value);
    list.append(dt, dd);
  }
}

const current = { backfill: null };

async function loadBackfill(id) {
  try {
    const b = await api(`/api/backfills/${encodeURIComponent(id)}`);
    current.backfill = b;
    $("backfill-title").textContent = `Backfill ${b.title || b.id}`;
    facts($("backfill-facts"), [
      ["Id", b.id], ["State", b.state], ["Dagster status", b.dagsterStatus], ["Strategy", b.strategy],
      ["Requested by", b.requester], ["Age", age(b.createdAt)], ["Retry of", b.retryOf],
      ["Runs", `${b.runs.total} (${Object.entries(b.runs.byStatus).map(([s, n]) => `${n} ${s}`).join(", ")})`],
    ]);
    const c = b.counts;
    $("backfill-progress").max = Math.max(1, c.targeted);
    $("backfill-progress").value = c.materialized + c.failed;
    const text = `${progressText(c)}; ${c.unavailable} unavailable, ${c.skipped} skipped by the plan`;
    $("backfill-progress").setAttribute("aria-label", text);
    $("backfill-progress-text").textContent = text;
    $("backfill-cancel").hidden = !["running", "failing"].includes(b.state);
    $("backfill-retry").hidden = !(["completed-with-failures", "failed"].includes(b.state) && c.failed > 0);
    const rows = $("backfill-districts");
    rows.replaceChildren();
    for (const [district, d] of Object.entries(b.districts)) {
      const tr = document.createElement("tr");
      tr.dataset.district = district;
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = district;
      tr.append(th);
      for (const value of [d.done, d.failed, d.unavailable, d.lastError || ""]) cell(tr, String(value));
      rows.append(tr);
    }
    const errors = $("backfill-errors");
    errors.replaceChildren();
    for (const e of b.districtErrors) {
      const li = document.createElement("li");
      li.textContent = `District ${e.district}, ${e.report || "?"}, attempt ${e.attempt} at ${e.timestamp}: ` +
        `${e.errorClass} (${e.retryable ? "transient" : "permanent"}): ${e.message}` +
        (e.runId ? ` [run ${e.runId}]` : "");
      errors.append(li);
    }
    if (!b.districtErrors.length) errors.append(Object.assign(document.createElement("li"), { textContent: "None" }));
    const p = b.performance;
    const planned = b.plan ? b.plan.cost.requests : null;
    facts($("backfill-performance"), [
      ["Requests made / planned", `${p.requestsMade} / ${planned === null ? "?" : planned}`],
      ["Budget share", b.plan ? `${b.plan.ratePerRun} requests/s` : null],
      ["Requests/s now (every run, last 10 s)", p.budgetRateNow === null ? "not known" :
        `${p.budgetRateNow} of the budget's ${p.budgetRate}`],
      ["Cache hits", `${p.cacheHits}${p.cacheHitRate === null ? "" : ` (${Math.round(p.cacheHitRate * 100)}%)`}`],
      ["Waited on the limiter", `${p.rateLimitWaitSeconds.toFixed(1)} s`],
      ["Retries", p.retries],
      ["Breaker", p.breakerState],
      ["Pool slots", p.poolLimit === null ? null : `${p.poolSlotsInUse} of ${p.poolLimit} in use`],
    ]);
    $("backfill-error").textContent = "";
  } catch (error) {
    $("backfill-error").textContent = `The backfill could not be read: ${error.message}`;
  }
}

$("backfill-cancel").addEventListener("click", async () => {
  const b = current.backfill;
  if (!window.confirm(`Cancel backfill ${b.title || b.id}? Runs not yet started will not run.`)) return;
  try {
    await api(`/api/backfills/${encodeURIComponent(b.id)}`, { method: "DELETE" });
    $("backfill-action-result").textContent = "Cancel requested.";
    await loadBackfill(b.id);
  } catch (error) {
    $("backfill-action-result").textContent = `Cancel refused: ${error.message}`;
  }
});

$("backfill-retry").addEventListener("click", async () => {
  const b = current.backfill;
  try {
    const retried = await api(`/api/backfills/${encodeURIComponent(b.id)}/retry`, {
      method: "POST", headers: { "Idempotency-Key": crypto.randomUUID() },
    });
    location.hash = `#backfill/${retried.backfillId}`;
  } catch (error) {
    $("backfill-action-result").textContent = `Retry refused: ${error.message}`;
  }
});

// -- launching -------------------------------------------------------------------------------

const launch = { planHash: null, key: null };

function launchBody(dryRun) {
  const picked = [...$("l-districts").selectedOptions].map((o) => o.value);
  const body = {
    startDate: $("l-start").value,
    collectionType: $("l-type").value,
    skipExisting: $("l-skip").checked,
    recheckUnavailable: $("l-recheck").checked,
    concurrency: Number($("l-concurrency").value || 3),
    dryRun,
  };
  if ($("l-end").value) body.endDate = $("l-end").value;
  if (picked.length) body.targetDistricts = picked;
  if ($("l-rate").value) body.rate = Number($("l-rate").value);
  if (!dryRun) body.planHash = launch.planHash;
  return body;
}

function showPlan(plan, note) {
  const out = $("launch-plan");
  out.replaceChildren();
  if (note) out.append(Object.assign(document.createElement("p"), { className: "note", textContent: note }));
  const c = plan.cost;
  const list = document.createElement("dl");
  list.className = "facts";
  facts(list, [
    ["Strategy", `${plan.strategy}: ${plan.rationale}`],
    ["Dates", `${plan.dates.start} to ${plan.dates.end} (${plan.dates.count})`],
    ["Districts", plan.districts.join(", ") || "—"],
    ["Partitions", `${plan.partitions.total} (${plan.partitions.all_districts_summary} summary, ` +
      `${plan.partitions.district_snapshot} district)`],
    ["Skipped", Object.entries(plan.skipped).map(([k, n]) => `${n} ${k}`).join(", ") || "none"],
    ["Requests", `${c.requests} (between ${c.lowerBound} and ${c.upperBound}; ${c.cachedCsvs} from the cache)`],
    ["Runs", c.runs],
    ["Time", `about ${Math.ceil(c.seconds)} s at ${plan.ratePerRun} requests/s`],
  ]);
  out.append(list);
  if (plan.outOfScope.length) {
    out.append(Object.assign(document.createElement("h3"), { textContent: "Out of scope" }));
    const ul = document.createElement("ul");
    ul.id = "launch-out-of-scope";
    for (const o of plan.outOfScope) ul.append(Object.assign(document.createElement("li"), {
      textContent: `${o.id}: ${o.reason} (${o.message})`,
    }));
    out.append(ul);
  }
  for (const n of c.notes) out.append(Object.assign(document.createElement("p"), { textContent: n }));
  launch.planHash = plan.planHash;
  $("l-launch").disabled = plan.partitions.total === 0;
}

$("launch-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("launch-error").textContent = "";
  $("l-launch").disabled = true;
  try {
    const answer = await api("/api/backfills", { method: "POST", body: JSON.stringify(launchBody(true)) });
    launch.key = crypto.randomUUID();  // one launch per previewed plan
    showPlan(answer.plan);
  } catch (error) {
    $("launch-error").textContent = `The preview was refused: ${error.message}`;
  }
});

// Launch a previewed plan: the body with its planHash, once per Idempotency-Key. The answer:
// { backfillId } launched, { changed: plan } when the plan changed since the preview (shown
// again, never launched), { nothing: message } when nothing was left to run.
async function launchPlanned(body, key) {
  const response = await fetch("/api/backfills", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "Idempotency-Key": key, "X-Requested-By": "console" },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({ error: { message: `${response.status}: not JSON` } }));
  if (response.status === 409 && answer.error && answer.error.code === "plan-changed") {
    return { changed: answer.error.plan };
  }
  if (!response.ok) throw new Error((answer.error && answer.error.message) || response.statusText);
  if (!answer.backfillId) return { nothing: answer.message || "Nothing to run." };
  return { backfillId: answer.backfillId };
}

const CHANGED = "The plan changed since the preview (other work collected some of it): review it and launch again.";

$("l-launch").addEventListener("click", async () => {
  $("launch-error").textContent = "";
  $("l-launch").disabled = true;
  try {
    const result = await launchPlanned(launchBody(false), launch.key);
    if (result.changed) {
      launch.key = crypto.randomUUID();
      showPlan(result.changed, CHANGED);
    } else if (result.nothing) {
      $("launch-error").textContent = result.nothing;
    } else {
      location.hash = `#backfill/${result.backfillId}`;
    }
  } catch (error) {
    $("launch-error").textContent = `The launch was refused: ${error.message}`;
    $("l-launch").disabled = false;
  }
});

function knownDistricts(districts) {
  const select = $("l-districts");
  if (select.options.length) return;
  for (const d of districts) select.append(new Option(d, d));
}

// -- pages -----------------------------------------------------------------------------------

let follow = null;

function route() {
  const [path, query] = (location.hash || "#coverage").slice(1).split("?");
  const [page, id] = path.split("/");
  if (page === "coverage" && query) {
    // A link to a range: #coverage?start=2025-07-01&end=2026-06-30&districts=42,61
    const params = new URLSearchParams(query);
    $("cov-start").value = params.get("start") || "";
    $("cov-end").value = params.get("end") || "";
    $("cov-districts").value = params.get("districts") || "";
    view.matrix = null;
  }
  for (const section of ["coverage", "backfills", "backfill", "launch"]) {
    $(section).hidden = section !== (page || "coverage");
  }
  clearInterval(follow);
  if (page === "backfills") {
    loadBackfills();
    follow = setInterval(loadBackfills, REFRESH_MS);
  } else if (page === "backfill" && id) {
    loadBackfill(id);
    follow = setInterval(() => loadBackfill(id), REFRESH_MS);
  } else if (page === "coverage" && !view.matrix) {
    return loadCoverage();
  }
  return Promise.resolve();
}

window.addEventListener("hashchange", route);
legend(null);
// The session and the first page's data are asked for at once: the first paint waits for the
// matrix only, and the matrix is asked for once.
showSession().catch(() => {});
route().then(async () => {
  if (!view.matrix) await loadCoverage();
  if (view.matrix) knownDistricts(view.matrix.districts);
});
