// mlgate's /dashboard: polls dashboard/data (MetricsHistory.snapshot()) every interval_s
// and draws one model at a time with uPlot. Everything is built with DOM calls and
// textContent: model and feature names come from the server and are never parsed as HTML.
//
// For tests and for people reading the DOM: each chart's <section data-chart="..."> gets,
// after uPlot has drawn it, data-points (x positions holding at least one value),
// data-latest and data-max (JSON: series label -> its latest / largest value, in the
// chart's unit). A panel with a state line (quality) gives it data-state.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./dashboard.css";

const COLORS = {
  requests: "#2563eb",
  errors: "#dc2626",
  p50: "#16a34a",
  p95: "#d97706",
  p99: "#dc2626",
  queue: "#7c3aed",
  queue_full: "#db2777",
  shed: "#ea580c",
  deadline: "#475569",
  drift: "#0891b2",
  batches: "#2563eb",
  batchesLast: "#93c5fd",
  realised: "#2563eb",
  estimated: "#9333ea",
  baseline: "#475569",
  labelled: "#0d9488",
  coverage: "#ca8a04",
};
const SPARE = ["#0d9488", "#9333ea", "#ca8a04", "#64748b"]; // reasons added after this file
const HEIGHT = 230;
const AXIS = {
  stroke: "#4b5563",
  grid: { stroke: "#eceef1", width: 1 },
  ticks: { stroke: "#d1d5db", width: 1, size: 4 },
};

const state = { model: null, interval: 5, charts: new Map(), snapshot: null };

// ------------------------------------------------------------------ small helpers

function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function fmt(value, digits = 3) {
  if (value == null || !Number.isFinite(value)) return "–";
  if (value === 0) return "0";
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString("en");
  return String(Number(value.toPrecision(digits)));
}

function clock(unixSeconds, seconds = true) {
  const options = { hour: "2-digit", minute: "2-digit", ...(seconds ? { second: "2-digit" } : {}) };
  return new Date(unixSeconds * 1000).toLocaleTimeString("en-GB", options);
}

function ago(unixSeconds, now) {
  const s = Math.max(0, Math.round(now - unixSeconds));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

function lastValue(column) {
  for (let i = column.length - 1; i >= 0; i--) if (column[i] != null) return column[i];
  return null;
}

const scaled = (values, factor) => values.map((v) => (v == null ? null : v * factor));
const sum = (values) => values.reduce((a, b) => a + b, 0);
const numbers = (u, splits) => splits.map((v) => fmt(v));

// Every charted quantity is >= 0: the y axis starts at 0, with headroom above the data.
function fromZero(fixedMax) {
  return (u, min, max) => [0, fixedMax ?? (max > 0 ? max * 1.15 : 1)];
}

// Around the data (quality figures sit in a narrow band far from 0).
function aroundData(u, min, max) {
  if (min == null || max == null) return [0, 1];
  const pad = (max - min) * 0.15 || Math.abs(max) * 0.05 || 0.05;
  return [min - pad, max + pad];
}

function valueAxis(label, extra = {}) {
  return { ...AXIS, label, labelSize: 18, size: 52, values: numbers, ...extra };
}

// Whole seconds or round minutes on the time axis, whatever the sampling interval.
const TIME_AXIS = {
  ...AXIS,
  space: 64,
  incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200],
  values: (u, splits, axis, space, incr) => splits.map((t) => clock(t, incr < 60)),
};

// ------------------------------------------------------------------ time-series charts

// After each draw: what the chart shows, for tests and for anyone reading the DOM.
function markDrawn(section, u, labels) {
  const columns = u.data.slice(1);
  let points = 0;
  for (let i = 0; i < u.data[0].length; i++) if (columns.some((c) => c[i] != null)) points++;
  const latest = {};
  const max = {};
  columns.forEach((column, s) => {
    const value = lastValue(column);
    if (value == null) return;
    latest[labels[s]] = value;
    max[labels[s]] = Math.max(...column.filter((v) => v != null));
  });
  section.dataset.points = String(points);
  section.dataset.latest = JSON.stringify(latest);
  section.dataset.max = JSON.stringify(max);
  section.classList.toggle("nodata", points === 0);
}

// `spec.series(model)`: [{label, unit, values, color, fill?, dash?, step?, scale?}].
function timeChart(spec, name, model, holder) {
  const series = spec.series(model);
  const labels = series.map((s) => s.label);
  const right = series.some((s) => s.scale === "right");
  const unit = typeof spec.unit === "function" ? spec.unit(model) : spec.unit;
  const opts = {
    width: width(holder.body),
    height: HEIGHT,
    cursor: { drag: { x: false, y: false } }, // live data: no zoom for the next poll to undo
    scales: {
      x: { time: true },
      y: { range: spec.fit ? aroundData : fromZero(spec.max) },
      right: { range: fromZero(spec.max2) },
    },
    axes: [
      TIME_AXIS,
      valueAxis(unit),
      ...(right ? [valueAxis(spec.unit2, { scale: "right", side: 1, grid: { show: false } })] : []),
    ],
    series: [
      // Not hovering, the legend shows the latest values.
      { label: "time", value: (u, t, s, i) => (i == null ? "latest" : clock(t)) },
      ...series.map((s) => ({
        label: s.label,
        scale: s.scale ?? "y",
        stroke: s.color,
        width: s.width ?? 2,
        dash: s.dash,
        fill: s.fill ? `${s.color}1a` : undefined,
        paths: s.step ? uPlot.paths.stepped({ align: 1 }) : undefined,
        points: { size: 5 },
        value: (u, v, si, i) => {
          const shown = i == null ? lastValue(u.data[si]) : v;
          return shown == null ? "–" : `${fmt(shown)} ${s.unit}`;
        },
      })),
    ],
    hooks: { draw: [(u) => markDrawn(holder.section, u, labels)] },
  };
  const data = [model.t, ...series.map((s) => s.values)];
  return { signature: `${name}|${unit}|${labels.join("|")}`, data, opts };
}

// ------------------------------------------------------------------ batch sizes (bars)

function bucketLabels(le) {
  let below = 0;
  return le.map((edge) => {
    if (edge === "+Inf") return `>${below}`;
    const upper = Number(edge);
    const label = upper === below + 1 ? `${upper}` : `${below + 1}–${upper}`;
    below = upper;
    return label;
  });
}

function markBars(section, [total, totalLast]) {
  section.dataset.points = String(total > 0 ? 1 : 0);
  section.dataset.latest = JSON.stringify({ "since start": total, "last interval": totalLast });
  section.classList.toggle("nodata", total === 0);
}

// Shares (%) so that since-start and last-interval bars compare on one axis. The plot is
// rebuilt only when the bucket count changes; its callbacks read the latest numbers from
// `shared`, which every poll refreshes.
function batchChart(spec, name, model, holder) {
  const shared = holder.shared;
  const { le, count, count_last_interval: last } = model.batch_sizes;
  const used = Math.max(count.findLastIndex((c) => c > 0), last.findLastIndex((c) => c > 0));
  const n = Math.min(le.length, Math.max(used + 2, 6)); // one empty bucket past the largest
  const totals = [sum(count), sum(last)];
  const share = (values, total) => values.slice(0, n).map((v) => (total > 0 ? (100 * v) / total : 0));
  Object.assign(shared, { labels: bucketLabels(le).slice(0, n), counts: [count, last], totals });
  const bar = (which, align, color) => ({
    label: ["since start", "last interval"][which],
    stroke: color,
    fill: `${color}cc`,
    width: 1,
    paths: uPlot.paths.bars({ size: [0.42, 48], align, gap: 1 }),
    points: { show: false },
    value: (u, v, s, i) =>
      i == null
        ? `${fmt(shared.totals[which])} batches`
        : `${fmt(v)}% (${fmt(shared.counts[which][i])})`,
  });
  const opts = {
    width: width(holder.body),
    height: HEIGHT,
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    scales: { x: { time: false, range: () => [-0.6, n - 0.4] }, y: { range: fromZero(100) } },
    axes: [
      {
        ...AXIS,
        label: "rows per batch",
        labelSize: 18,
        grid: { show: false },
        splits: () => [...Array(n).keys()],
        values: (u, splits) => splits.map((i) => shared.labels[i] ?? ""),
      },
      valueAxis("% of batches"),
    ],
    series: [
      { label: "rows", value: (u, v, s, i) => (i == null ? "all sizes" : shared.labels[i]) },
      bar(0, -1, COLORS.batches),
      bar(1, 1, COLORS.batchesLast),
    ],
    hooks: { draw: [() => markBars(holder.section, shared.totals)] },
  };
  const data = [[...Array(n).keys()], share(count, totals[0]), share(last, totals[1])];
  return { signature: `${name}|bars|${n}`, data, opts };
}

// ------------------------------------------------------------------ the panels

// In reading order: traffic and latency, how it was batched and queued, then drift and
// whether it mattered (quality).
const PANELS = [
  {
    id: "requests",
    title: "Request rate",
    note: "requests answered per second; errors are non-2xx answers",
    unit: "req/s",
    chart: timeChart,
    series: (m) => [
      { label: "requests", unit: "req/s", values: m.request_rate, color: COLORS.requests, fill: true },
      { label: "errors", unit: "req/s", values: m.error_rate, color: COLORS.errors },
    ],
  },
  {
    id: "latency",
    title: "Latency",
    note: "time from arrival to response: quantiles over each interval",
    unit: "ms",
    chart: timeChart,
    series: (m) =>
      ["p50", "p95", "p99"].map((q) => ({
        label: q,
        unit: "ms",
        values: scaled(m[q], 1000),
        color: COLORS[q],
      })),
  },
  {
    id: "batch-size",
    title: "Batch sizes",
    note: "rows per batch sent to the runtime: share of batches per size",
    chart: batchChart,
  },
  {
    id: "queue",
    title: "Queue depth and rejections",
    note: "rows waiting in the batcher (left); requests refused per second, by reason (right)",
    unit: "rows",
    unit2: "rejected/s",
    chart: timeChart,
    series: (m) => [
      { label: "queue depth", unit: "rows", values: m.queue_depth, color: COLORS.queue, fill: true },
      ...Object.entries(m.rejected).map(([reason, values], i) => ({
        label: reason.replaceAll("_", " "),
        unit: "/s",
        values,
        color: COLORS[reason] ?? SPARE[i % SPARE.length],
        scale: "right",
        dash: [5, 4],
      })),
    ],
  },
  {
    id: "drift",
    title: "Drift share",
    note: "share of input features that drifted in the latest check",
    unit: "% of features",
    max: 100,
    chart: timeChart,
    series: (m) => [
      {
        label: "drifted",
        unit: "%",
        values: scaled(m.drift_share, 100),
        color: COLORS.drift,
        fill: true,
        step: true,
      },
    ],
  },
  {
    id: "quality",
    title: "Quality",
    note: "the primary metric of the version named in the line below: realised over the newest labelled predictions and its 95% interval (dashed), estimated from the model's confidence before labels (dotted), baseline at registration",
    unit: (m) => m.quality.metric ?? "quality",
    fit: true,
    chart: timeChart,
    status: qualityState,
    series: (m) => {
      const q = m.quality;
      const line = (label, values, color, extra = {}) => ({ label, unit: "", values, color, step: true, ...extra });
      const bound = { width: 1, dash: [5, 4] };
      const dotted = { dash: [2, 3] };
      return [
        line("realised", q.realised, COLORS.realised),
        line("realised lower", q.realised_lower, COLORS.realised, bound),
        line("realised upper", q.realised_upper, COLORS.realised, bound),
        line("estimated", q.estimated, COLORS.estimated, dotted),
        line("estimated lower", q.estimated_lower, COLORS.estimated, bound),
        line("estimated upper", q.estimated_upper, COLORS.estimated, bound),
        line("baseline", q.baseline, COLORS.baseline, { dash: [10, 5] }),
      ];
    },
  },
  {
    id: "labels",
    title: "Labelled rows and coverage",
    note: "labelled predictions behind the realised figure (left); the labelled share of their predictions (right)",
    unit: "rows",
    unit2: "% labelled",
    max2: 100,
    chart: timeChart,
    series: (m) => [
      { label: "labelled rows", unit: "rows", values: m.quality.labelled_rows, color: COLORS.labelled, fill: true, step: true },
      {
        label: "coverage",
        unit: "%",
        values: scaled(m.quality.coverage, 100),
        color: COLORS.coverage,
        scale: "right",
        dash: [5, 4],
        step: true,
      },
    ],
  },
];

// The quality panel's state line: what the monitor concluded last, in the decision
// policy's order (monitors/metrics/history_quality.py). Returns [state, text].
function qualityState(model) {
  const s = model.quality.state;
  if (!s) {
    return ["none", "No quality figures: they need a version registered with evaluation data (its baseline) and labels sent to POST /v1/models/{model}/feedback."];
  }
  const metric = s.metric ?? "quality";
  const figure = (what, value, lower, upper) => {
    if (value == null) return null;
    const interval = lower != null && upper != null ? ` [${fmt(lower)}, ${fmt(upper)}]` : "";
    return `${what} ${metric} ${fmt(value)}${interval}`;
  };
  const shown =
    figure("realised", s.realised, s.realised_lower, s.realised_upper) ??
    figure("estimated", s.estimated, s.estimated_lower, s.estimated_upper);
  const labels = s.labelled_rows ? ` on ${fmt(s.labelled_rows)} labels` : "";
  const baseline = s.baseline == null ? "" : `the baseline ${fmt(s.baseline)}`;
  const refused = s.refused_share ? `, ${fmt(100 * s.refused_share)}% of rows refused` : "";
  const texts = {
    breach: `Data-quality breach: ${s.breaches} check(s) breached in the latest window${refused}. A data_quality task waits for a person: retraining on broken inputs would learn the breakage.`,
    degraded: `Degraded: ${shown}${labels} is significantly worse than ${baseline || "its baseline"}. A retraining task opens while it holds.`,
    finding: `Finding: the inputs drifted but quality holds${shown ? ` (${shown}${baseline ? `, ${baseline}` : ""})` : ""}. No retraining task.`,
    holding: `Holding: ${shown}${labels}, not significantly below ${baseline}.`,
    "no-baseline": `No baseline: ${shown}${labels}. The version was registered without evaluation data, so a fall cannot be judged.`,
    unknown: "No quality figures yet: they need labels (POST /v1/models/{model}/feedback) or, for a classifier, enough predictions for an estimate.",
  };
  return [s.state, `v${s.version} · ${texts[s.state] ?? s.state}`];
}

function width(body) {
  return Math.max(280, Math.floor(body.clientWidth));
}

function holderFor(spec) {
  let holder = state.charts.get(spec.id);
  if (!holder) {
    const body = h("div", { class: "chart" });
    const section = h(
      "section",
      { class: "panel", "data-chart": spec.id, "data-points": "0" },
      h("h2", {}, spec.title),
      h("p", { class: "note" }, spec.note),
      body,
    );
    const line = spec.status ? h("p", { class: "state", role: "status" }) : null;
    if (line) section.insertBefore(line, body);
    holder = { section, body, line, plot: null, signature: null, shared: {} };
    state.charts.set(spec.id, holder);
  }
  return holder;
}

// New data into the same plot when its series are the same; otherwise a new plot.
function draw(holder, built) {
  if (holder.plot && holder.signature === built.signature) {
    holder.plot.setData(built.data);
    return;
  }
  holder.plot?.destroy();
  holder.body.replaceChildren();
  holder.signature = built.signature;
  holder.plot = new uPlot(built.opts, built.data, holder.body);
}

function driftTable(model, now) {
  const checked = model.drift_checked_at;
  const section = h(
    "section",
    { class: "panel", "data-chart": "top-drift", "data-rows": String(model.top_drift.length) },
    h("h2", {}, "Most drifted features"),
    h(
      "p",
      { class: "note" },
      checked == null ? "no drift check has run yet" : `latest check ${clock(checked)} (${ago(checked, now)})`,
    ),
  );
  if (!model.top_drift.length) {
    section.append(h("p", { class: "placeholder" }, "No drift scores yet: a check runs once enough requests were logged."));
    return section;
  }
  const cell = (text, numeric = false) => h("td", numeric ? { class: "num" } : {}, text);
  const heading = (text, numeric = false) => h("th", numeric ? { class: "num" } : {}, text);
  const rows = model.top_drift.map((d) =>
    h("tr", {}, cell(d.feature), cell(`v${d.version}`, true), cell(fmt(d.score, 4), true)),
  );
  section.append(
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, heading("feature"), heading("version", true), heading("severity", true))),
      h("tbody", {}, ...rows),
    ),
    h("p", { class: "note" }, "Severity: the column's drift score relative to its threshold; 1 or more means drifted. Raw scores and methods: /monitoring/models/{model}/drift."),
  );
  return section;
}

function tasksPanel(name, model) {
  const tasks = model.tasks ?? {};
  const total = Object.values(tasks).reduce((a, b) => a + b, 0);
  const section = h(
    "section",
    { class: "panel", "data-chart": "tasks", "data-open": String(total) },
    h("h2", {}, "Retraining tasks"),
    h("p", { class: "note" }, "tasks not yet ended: open, running (a worker is retraining), candidate (waiting for approval), needs-trainer (waiting for a person)"),
  );
  if (!total) {
    section.append(h("p", { class: "placeholder" }, "No open retraining task."));
    return section;
  }
  const rows = Object.entries(tasks).map(([status, n]) =>
    h("tr", {}, h("td", {}, status), h("td", { class: "num" }, String(n))),
  );
  section.append(
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "status"), h("th", { class: "num" }, "tasks"))), h("tbody", {}, ...rows)),
    h("p", { class: "note" }, `Details: /retraining/tasks?model=${name}`),
  );
  return section;
}

function shadowPanel(name, model) {
  const shadows = model.shadow ?? {};
  const versions = Object.keys(shadows);
  const section = h(
    "section",
    { class: "panel", "data-chart": "shadow", "data-shadows": String(versions.length) },
    h("h2", {}, "Shadow"),
    h("p", { class: "note" }, "requests mirrored to a shadow version since it loaded: ok (answered and logged), shed (live traffic first), error (the shadow failed); callers never get its answers"),
  );
  if (!versions.length) {
    section.append(h("p", { class: "placeholder" }, "No shadow: set one with mlgate shadow."));
    return section;
  }
  const cell = (text, numeric = false) => h("td", numeric ? { class: "num" } : {}, text);
  const heading = (text, numeric = false) => h("th", numeric ? { class: "num" } : {}, text);
  const rows = versions.map((v) => {
    const counts = shadows[v];
    return h("tr", {}, cell(`v${v}`), ...["ok", "shed", "error"].map((o) => cell(String(counts[o] ?? 0), true)));
  });
  section.append(
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, heading("shadow"), heading("ok", true), heading("shed", true), heading("error", true))),
      h("tbody", {}, ...rows),
    ),
    h("p", { class: "note" }, `Agreement, latency and quality of both: /monitoring/models/${name}/shadow`),
  );
  return section;
}

// ------------------------------------------------------------------ the page

function showEmpty(message) {
  document.body.dataset.state = "empty";
  const empty = document.getElementById("empty");
  empty.replaceChildren(h("h2", {}, "No data yet"), h("p", {}, message));
  empty.hidden = false;
  document.getElementById("panels").hidden = true;
}

function renderInfo(name, model) {
  const chips = model.versions.map((v) => {
    const aliases = v.aliases.length ? ` · ${v.aliases.join(", ")}` : "";
    const role = ["shadow", "canary"].includes(v.role) ? ` · ${v.role}` : "";
    return h("span", { class: "chip" }, `v${v.version} · ${v.format}${aliases}${role}`);
  });
  if (!chips.length) chips.push(h("span", { class: "chip muted" }, "not served"));
  document.getElementById("info").replaceChildren(h("strong", {}, name), ...chips);
}

function renderPicker(names) {
  const select = document.getElementById("model");
  if (select.dataset.names !== names.join("\n")) {
    select.replaceChildren(...names.map((n) => h("option", { value: n }, n)));
    select.dataset.names = names.join("\n");
  }
  select.value = state.model;
  document.getElementById("picker").hidden = names.length < 2;
}

function render(snapshot) {
  state.snapshot = snapshot;
  const names = Object.keys(snapshot.models);
  if (!names.includes(state.model)) state.model = names[0] ?? null;
  renderPicker(names);
  const every = `a point every ${fmt(state.interval)} s`;
  if (state.model == null) {
    document.getElementById("info").replaceChildren();
    showEmpty(`No model has reported metrics yet. The dashboard takes ${every} once the gateway serves a model.`);
    return;
  }
  const model = snapshot.models[state.model];
  renderInfo(state.model, model);
  if (!model.t.length) {
    showEmpty(`Waiting for the first interval: the dashboard takes ${every} (a rate needs two samples).`);
    return;
  }
  document.body.dataset.state = "ready";
  document.body.dataset.model = state.model;
  document.getElementById("empty").hidden = true;
  const grid = document.getElementById("panels");
  grid.hidden = false;
  for (const spec of PANELS) {
    const holder = holderFor(spec);
    if (!holder.section.isConnected) grid.append(holder.section); // in the grid before sizing
    draw(holder, spec.chart(spec, state.model, model, holder));
    if (holder.line) {
      const [kind, text] = spec.status(model);
      holder.line.textContent = text;
      holder.line.dataset.state = kind;
      holder.section.dataset.state = kind;
    }
  }
  const tables = [driftTable(model, snapshot.generated_at), tasksPanel(state.model, model), shadowPanel(state.model, model)];
  for (const panel of tables) {
    const old = grid.querySelector(`[data-chart="${panel.dataset.chart}"]`);
    if (old) old.replaceWith(panel);
    else grid.append(panel);
  }
}

function setStatus(text, failed = false) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.classList.toggle("failed", failed);
}

async function poll() {
  try {
    const response = await fetch("dashboard/data", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const snapshot = await response.json();
    if (snapshot.interval_s > 0) state.interval = snapshot.interval_s;
    render(snapshot);
    setStatus(`Updated ${clock(snapshot.generated_at)} · a point every ${fmt(state.interval)} s`);
  } catch (error) {
    setStatus(`Cannot read dashboard/data (${error.message}); retrying.`, true);
  }
  setTimeout(poll, Math.max(200, state.interval * 1000));
}

function start() {
  state.model = new URLSearchParams(location.hash.slice(1)).get("model");
  document.getElementById("model").addEventListener("change", (event) => {
    state.model = event.target.value;
    history.replaceState(null, "", `#model=${encodeURIComponent(state.model)}`);
    if (state.snapshot) render(state.snapshot);
  });
  // Charts follow their card's width; resizing in the next frame avoids observer loops.
  const observer = new ResizeObserver(() =>
    requestAnimationFrame(() => {
      for (const holder of state.charts.values()) {
        if (holder.plot?.root.isConnected) {
          holder.plot.setSize({ width: width(holder.body), height: HEIGHT });
        }
      }
    }),
  );
  observer.observe(document.getElementById("panels"));
  poll();
}

start();
