// modelport dashboard: fetches the JSON API next to this page and draws one chart per concern.
import {
  PALETTE, barChart, columnChart, emptyState, formatDateTime, formatNumber, formatPercent, hbarChart, laneChart, lineChart,
} from "./charts.js";

const base = document.body.dataset.base || "./";
const state = { model: null, version: "", window: document.body.dataset.window || "24h", models: [] };
const $ = (id) => document.getElementById(id);

async function getJSON(path, params = {}) {
  const url = new URL(base + path, window.location.href);
  for (const [key, value] of Object.entries(params)) if (value !== "" && value !== null) url.searchParams.set(key, value);
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function allVersions() {
  const model = state.models.find((m) => m.name === state.model);
  return model ? model.versions : [];
}

// One colour per version, the same in every chart.
function versionColor(version) {
  const versions = allVersions();
  const index = versions.indexOf(version);
  return PALETTE[(index < 0 ? versions.length + (version || 0) : index) % PALETTE.length];
}

function showNotice(message) {
  const notice = $("notice");
  notice.hidden = !message;
  notice.textContent = message || "";
}

function setTile(id, text, tone = "") {
  const tile = $(id);
  tile.textContent = text;
  tile.className = "mp-tile-value" + (tone ? " " + tone : "");
}

function byVersion(points, versions, pick) {
  return versions.map((v) => ({
    name: `v${v}`,
    color: versionColor(v),
    points: points.filter((p) => p.version === v).map((p) => [Date.parse(p.t), pick(p)]),
  }));
}

function renderTraffic(data) {
  const versions = data.versions;
  const bucketMs = data.bucket_s * 1000;
  const xMin = data.window.start ? Date.parse(data.window.start) : undefined;
  const xMax = data.window.end ? Date.parse(data.window.end) : undefined;
  barChart($("chart-traffic"), byVersion(data.points, versions, (p) => p.predictions), { bucketMs, xMin, xMax });
  const latency = [];
  versions.forEach((v) => {
    const color = versionColor(v);
    const mine = data.points.filter((p) => p.version === v);
    latency.push({ name: `v${v} p50`, color, points: mine.map((p) => [Date.parse(p.t), p.p50_ms]) });
    latency.push({ name: `v${v} p99`, color, dashed: true, points: mine.map((p) => [Date.parse(p.t), p.p99_ms]) });
  });
  lineChart($("chart-latency"), latency, { yFormat: (v) => formatNumber(v) + " ms", xMin, xMax });
  lineChart($("chart-errors"), byVersion(data.points, versions, (p) => (p.predictions ? p.errors / p.predictions : null)), {
    yFormat: formatPercent, yMin: 0, area: true, xMin, xMax, empty: "No traffic in this window",
  });
  const totals = data.totals;
  setTile("tile-predictions", formatNumber(totals.predictions));
  setTile("tile-errors", formatPercent(totals.error_rate), totals.error_rate > 0.05 ? "bad" : totals.predictions ? "good" : "");
  setTile("tile-p50", totals.p50_ms === null ? "–" : formatNumber(totals.p50_ms) + " ms");
  setTile("tile-p99", totals.p99_ms === null ? "–" : formatNumber(totals.p99_ms) + " ms");
}

function renderDrift(data) {
  const box = $("chart-drift");
  if (!data.available) {
    $("drift-caption").textContent = "PSI against the reference";
    setTile("tile-drift", "–");
    return emptyState(box, data.reason || "No drift report");
  }
  $("drift-caption").textContent = `PSI against v${data.version}'s reference · ${formatNumber(data.rows)} rows`;
  const measured = data.features.filter((f) => f.status === "ok" || f.status === "drift");
  if (data.rows === 0 || measured.length === 0) {
    setTile("tile-drift", "–");
    const why = data.rows === 0 ? `No prediction of v${data.version} in this window` : "Too few predictions in this window for a verdict";
    return emptyState(box, why);
  }
  const items = data.features.map((f) => ({
    label: f.feature, value: f.psi ?? 0, flagged: f.drift, note: describeFeature(f), muted: f.psi === undefined,
  }));
  if (data.prediction) {
    items.push({ label: "⟨prediction⟩", value: data.prediction.psi ?? 0, flagged: data.prediction.drift, note: describeFeature(data.prediction) });
  }
  const threshold = data.thresholds ? data.thresholds.psi : 0.2;
  hbarChart(box, items, { threshold, thresholdLabel: `PSI ${threshold}`, valueFormat: (v) => formatNumber(v, 2) });
  const drifting = data.features.filter((f) => f.drift).length;
  setTile("tile-drift", `${drifting} / ${measured.length}`, drifting ? "bad" : "good");
}

function describeFeature(f) {
  if (f.status !== "ok" && f.status !== "drift") return `${f.feature}: ${f.status.replace("_", " ")}`;
  const parts = [`${f.feature} (${f.kind})`, `PSI ${formatNumber(f.psi, 3)} (limit ${formatNumber(f.psi_threshold, 3)})`];
  if (f.ks_statistic !== undefined && f.ks_statistic !== null) parts.push(`KS ${formatNumber(f.ks_statistic, 3)}, p=${formatNumber(f.ks_pvalue, 2)}`);
  if (f.chi2_pvalue !== undefined && f.chi2_pvalue !== null) parts.push(`chi² p=${formatNumber(f.chi2_pvalue, 2)}`);
  parts.push(`missing ${formatPercent(f.missing_rate)} (ref ${formatPercent(f.reference_missing_rate)})`);
  if (f.reasons && f.reasons.length) parts.push("drift: " + f.reasons.join(", "));
  return parts.join("\n");
}

const QUALITY = {
  classification: [["accuracy", "accuracy"], ["roc_auc", "ROC AUC"]],
  regression: [["rmse", "RMSE"], ["mae", "MAE"]],
};

function renderQuality(data) {
  const box = $("chart-quality");
  if (!data.task || data.points.length === 0) {
    setTile("tile-quality", "–");
    $("tile-quality-label").textContent = "Live quality";
    $("quality-caption").textContent = "from ground-truth feedback";
    return emptyState(box, "No labelled predictions in this window: send ground-truth feedback to see live accuracy");
  }
  const metrics = QUALITY[data.task];
  const versions = [...new Set(data.points.map((p) => p.version))].sort((a, b) => a - b);
  const series = [];
  versions.forEach((v) => {
    metrics.forEach(([key, label], mi) => {
      const points = data.points.filter((p) => p.version === v).map((p) => [Date.parse(p.t), p[key]]);
      if (points.every((p) => p[1] === null || p[1] === undefined)) return;
      series.push({ name: `v${v} ${label}`, color: versionColor(v), dashed: mi > 0, points });
    });
  });
  const isClass = data.task === "classification";
  lineChart(box, series, isClass ? { yMin: 0, yMax: 1, yFormat: (v) => formatNumber(v, 2) } : { yMin: 0 });
  $("quality-caption").textContent = `${data.task} · ${formatNumber(data.labelled)} labelled predictions`;
  const overall = data.overall.reduce((a, b) => (b.n > (a ? a.n : -1) ? b : a), null);
  $("tile-quality-label").textContent = isClass ? "Live accuracy" : "Live RMSE";
  if (overall) setTile("tile-quality", isClass ? formatPercent(overall.accuracy) : formatNumber(overall.rmse));
}

function renderAliases(data) {
  const history = [...data.history].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  if (history.length === 0) return emptyState($("chart-aliases"), "No alias has been set for this model");
  const now = Date.now();
  const aliases = [...new Set(history.map((e) => e.alias))].sort((a, b) => (a === "production" ? -1 : b === "production" ? 1 : a.localeCompare(b)));
  const lanes = aliases.map((alias) => {
    const events = history.filter((e) => e.alias === alias);
    const segments = [];
    events.forEach((e, i) => {
      if (e.new_version === null) return;
      const end = i + 1 < events.length ? Date.parse(events[i + 1].at) : now;
      const since = formatDateTime(Date.parse(e.at));
      segments.push({
        start: Date.parse(e.at), end, label: `v${e.new_version}`, color: versionColor(e.new_version),
        note: `${alias} → v${e.new_version} since ${since} by ${e.actor}${e.reason ? ": " + e.reason : ""}`,
      });
    });
    return { name: alias, segments };
  });
  const windowMs = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 }[state.window] || 86400e3;
  laneChart($("chart-aliases"), lanes, { xMin: now - windowMs, xMax: now });
}

function renderRuns(data) {
  const runs = [...data.runs].sort((a, b) => Date.parse(a.started_at) - Date.parse(b.started_at));
  if (runs.length === 0) return emptyState($("chart-runs"), "No batch run has scored this model");
  const categories = runs.map((r) => ({
    key: r.run_id,
    label: formatDateTime(Date.parse(r.started_at)),
    marker: r.status,
    note: `run ${r.run_id.slice(0, 8)} · v${r.model_version ?? "?"} · ${r.status}${r.error_type ? " (" + r.error_type + ")" : ""}`,
  }));
  const written = Object.fromEntries(runs.map((r) => [r.run_id, r.rows_written]));
  const rejected = Object.fromEntries(runs.map((r) => [r.run_id, r.rows_rejected]));
  columnChart($("chart-runs"), categories, [
    { name: "rows written", color: PALETTE[1], values: written },
    { name: "rows rejected", color: PALETTE[3], values: rejected },
  ]);
}

async function panel(promise, render, boxId) {
  try {
    render(await promise);
  } catch (error) {
    if (boxId) emptyState($(boxId), `Could not load: ${error.message}`);
  }
}

async function refresh() {
  if (!state.model) return;
  const params = { window: state.window, version: state.version };
  const path = `api/models/${encodeURIComponent(state.model)}`;
  await Promise.all([
    panel(getJSON(`${path}/traffic`, params), renderTraffic, "chart-traffic"),
    panel(getJSON(`${path}/drift`, params), renderDrift, "chart-drift"),
    panel(getJSON(`${path}/performance`, params), renderQuality, "chart-quality"),
    panel(getJSON(`${path}/aliases`), renderAliases, "chart-aliases"),
    panel(getJSON(`${path}/runs`), renderRuns, "chart-runs"),
  ]);
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  document.body.dataset.ready = "true";
}

function fillVersions() {
  const model = state.models.find((m) => m.name === state.model);
  const select = $("version-select");
  select.replaceChildren(new Option("all", ""));
  for (const v of model ? model.versions : []) {
    const aliases = Object.entries(model.aliases || {}).filter(([, target]) => target === v).map(([a]) => a);
    select.add(new Option(`v${v}${aliases.length ? " (" + aliases.join(", ") + ")" : ""}`, String(v)));
  }
  select.value = state.version;
}

function readHash() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  if (params.get("model")) state.model = params.get("model");
  if (params.has("version")) state.version = params.get("version");
  if (params.get("window")) state.window = params.get("window");
}

function writeHash() {
  const params = new URLSearchParams({ model: state.model || "", version: state.version, window: state.window });
  history.replaceState(null, "", "#" + params.toString());
}

async function start() {
  readHash();
  try {
    const data = await getJSON("api/models");
    state.models = data.models;
  } catch (error) {
    showNotice(`Could not list models: ${error.message}`);
    return;
  }
  const select = $("model-select");
  for (const m of state.models) select.add(new Option(m.name, m.name));
  if (state.models.length === 0) {
    showNotice("No model has logged predictions yet. Serve a model or run a batch job, then refresh.");
    document.body.dataset.ready = "true";
    return;
  }
  if (!state.models.some((m) => m.name === state.model)) state.model = state.models[0].name;
  select.value = state.model;
  $("window-select").value = state.window;
  fillVersions();
  select.addEventListener("change", () => { state.model = select.value; state.version = ""; fillVersions(); writeHash(); refresh(); });
  $("version-select").addEventListener("change", (e) => { state.version = e.target.value; writeHash(); refresh(); });
  $("window-select").addEventListener("change", (e) => { state.window = e.target.value; writeHash(); refresh(); });
  $("refresh").addEventListener("click", refresh);
  let resizeTimer = null;
  window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(refresh, 250); });
  writeHash();
  await refresh();
}

start();
