// modelport dashboard: a small, dependency-free SVG chart module (line, stacked bar, horizontal bar).
// Every chart draws into a container element, sizes itself to the container's width and marks its
// SVG with data-points (how many values it drew) so tests and people can tell data from emptiness.

const NS = "http://www.w3.org/2000/svg";
export const PALETTE = ["#5b7cfa", "#22b07d", "#f5a524", "#e5484d", "#a26bf2", "#12a5b5", "#f76b15", "#8d99ae"];
const MARGIN = { top: 14, right: 16, bottom: 28, left: 54 };

function svgEl(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  if (parent) parent.appendChild(node);
  return node;
}

function htmlEl(tag, attrs = {}, parent = null, text = null) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function addTitle(node, text) {
  svgEl("title", {}, node).textContent = text;
}

export function niceTicks(min, max, count = 5) {
  if (!isFinite(min) || !isFinite(max)) return [0, 1];
  if (min === max) {
    const pad = Math.abs(min) > 0 ? Math.abs(min) * 0.1 : 1;
    min -= pad;
    max += pad;
  }
  const raw = (max - min) / Math.max(count, 1);
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const unit = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => raw <= s) || 10 * power;
  const start = Math.floor(min / unit) * unit;
  const ticks = [];
  for (let v = start; v <= max + unit * 0.5; v += unit) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

export function formatNumber(value, digits = 3) {
  if (value === null || value === undefined || !isFinite(value)) return "–";
  const abs = Math.abs(value);
  if (abs >= 1e9) return (value / 1e9).toFixed(1) + "G";
  if (abs >= 1e6) return (value / 1e6).toFixed(1) + "M";
  if (abs >= 1e4) return (value / 1e3).toFixed(1) + "k";
  if (abs >= 100 || Number.isInteger(value)) return String(Math.round(value));
  return Number(value.toPrecision(digits)).toString();
}

export function formatPercent(value) {
  if (value === null || value === undefined || !isFinite(value)) return "–";
  const pct = value * 100;
  return (pct >= 10 || pct === 0 ? pct.toFixed(0) : pct.toPrecision(2)) + "%";
}

function formatTime(ms, spanMs) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const md = `${d.toLocaleString("en", { month: "short" })} ${d.getDate()}`;
  if (spanMs <= 36 * 3600e3) return hm;
  if (spanMs <= 10 * 86400e3) return `${md} ${hm}`;
  return md;
}

export function formatDateTime(ms) {
  return formatTime(ms, 3 * 86400e3);
}

function timeTicks(min, max, count = 6) {
  const steps = [60e3, 300e3, 900e3, 1800e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, 86400e3, 2 * 86400e3, 7 * 86400e3, 30 * 86400e3];
  const span = Math.max(max - min, 1);
  const step = steps.find((s) => span / s <= count) || steps[steps.length - 1];
  const offset = new Date(min).getTimezoneOffset() * 60e3;
  const ticks = [];
  for (let t = Math.ceil((min - offset) / step) * step + offset; t <= max; t += step) ticks.push(t);
  return ticks;
}

function frame(container, height) {
  container.replaceChildren();
  const width = Math.max(container.clientWidth || 480, 240);
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", height, role: "img", class: "mp-chart" }, container);
  return { svg, width, height, inner: { w: width - MARGIN.left - MARGIN.right, h: height - MARGIN.top - MARGIN.bottom } };
}

export function emptyState(container, message) {
  container.replaceChildren();
  htmlEl("div", { class: "mp-empty", "data-empty": "true" }, container, message);
}

function legend(container, entries) {
  if (entries.length < 2) return;
  const box = htmlEl("div", { class: "mp-legend" }, container);
  for (const entry of entries) {
    const item = htmlEl("span", { class: "mp-legend-item" }, box);
    const swatch = htmlEl("span", { class: "mp-swatch" + (entry.dashed ? " dashed" : "") }, item);
    swatch.style.borderColor = entry.color;
    swatch.style.background = entry.dashed ? "transparent" : entry.color;
    htmlEl("span", {}, item, entry.name);
  }
}

function yAxis(g, ticks, y, width, format) {
  for (const tick of ticks) {
    svgEl("line", { x1: 0, x2: width, y1: y(tick), y2: y(tick), class: "mp-grid" }, g);
    const label = svgEl("text", { x: -8, y: y(tick), dy: "0.32em", "text-anchor": "end", class: "mp-tick" }, g);
    label.textContent = format(tick);
  }
}

function xTimeAxis(g, min, max, x, height) {
  for (const tick of timeTicks(min, max)) {
    svgEl("line", { x1: x(tick), x2: x(tick), y1: height, y2: height + 4, class: "mp-axis" }, g);
    const label = svgEl("text", { x: x(tick), y: height + 17, "text-anchor": "middle", class: "mp-tick" }, g);
    label.textContent = formatTime(tick, max - min);
  }
  svgEl("line", { x1: 0, x2: x(max), y1: height, y2: height, class: "mp-axis" }, g);
}

// series: [{name, color?, dashed?, points: [[timeMs, value|null], ...]}]
// options: {height, yFormat, yMin, yMax, step, area, xMin, xMax, threshold: {value, label}}
export function lineChart(container, series, options = {}) {
  const drawn = series.map((s) => ({ ...s, points: s.points.filter((p) => p[1] !== null && isFinite(p[1])) }));
  const total = drawn.reduce((n, s) => n + s.points.length, 0);
  if (total === 0) return emptyState(container, options.empty || "No data in this window");
  const { svg, inner } = frame(container, options.height || 220);
  const all = drawn.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  if (options.threshold) ys.push(options.threshold.value);
  let xMin = options.xMin ?? Math.min(...xs);
  let xMax = options.xMax ?? Math.max(...xs);
  if (xMin === xMax) { xMin -= 3600e3; xMax += 3600e3; }
  const ticks = niceTicks(options.yMin ?? Math.min(0, ...ys), options.yMax ?? Math.max(...ys), 4);
  const yLo = options.yMin ?? ticks[0];
  const yHi = options.yMax ?? ticks[ticks.length - 1];
  const x = (t) => ((t - xMin) / (xMax - xMin)) * inner.w;
  const y = (v) => inner.h - ((v - yLo) / (yHi - yLo || 1)) * inner.h;
  const g = svgEl("g", { transform: `translate(${MARGIN.left},${MARGIN.top})` }, svg);
  yAxis(g, ticks.filter((t) => t >= yLo && t <= yHi), y, inner.w, options.yFormat || formatNumber);
  xTimeAxis(g, xMin, xMax, x, inner.h);
  if (options.threshold) {
    const ty = y(options.threshold.value);
    svgEl("line", { x1: 0, x2: inner.w, y1: ty, y2: ty, class: "mp-threshold" }, g);
    const label = svgEl("text", { x: inner.w - 2, y: ty - 4, "text-anchor": "end", class: "mp-threshold-label" }, g);
    label.textContent = options.threshold.label;
  }
  drawn.forEach((s, i) => {
    const color = s.color || PALETTE[i % PALETTE.length];
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    if (pts.length === 0) return;
    let d = `M${x(pts[0][0]).toFixed(1)},${y(pts[0][1]).toFixed(1)}`;
    for (let k = 1; k < pts.length; k++) {
      if (options.step) d += `H${x(pts[k][0]).toFixed(1)}`;
      d += `L${x(pts[k][0]).toFixed(1)},${y(pts[k][1]).toFixed(1)}`;
    }
    if (options.step) d += `H${inner.w.toFixed(1)}`;
    if (options.area && !s.dashed) {
      const lastX = options.step ? inner.w : x(pts[pts.length - 1][0]);
      const fill = `${d}L${lastX.toFixed(1)},${inner.h}L${x(pts[0][0]).toFixed(1)},${inner.h}Z`;
      svgEl("path", { d: fill, fill: color, opacity: 0.12, class: "mp-area" }, g);
    }
    svgEl("path", { d, stroke: color, class: "mp-line" + (s.dashed ? " dashed" : ""), "data-series": s.name }, g);
    for (const p of pts) {
      const dot = svgEl("circle", { cx: x(p[0]), cy: y(p[1]), r: pts.length > 60 ? 1.5 : 3, fill: color, class: "mp-dot" }, g);
      addTitle(dot, `${s.name} · ${formatDateTime(p[0])}: ${(options.yFormat || formatNumber)(p[1])}`);
    }
  });
  svg.setAttribute("data-points", String(total));
  legend(container, drawn.map((s, i) => ({ name: s.name, color: s.color || PALETTE[i % PALETTE.length], dashed: s.dashed })));
}

// Stacked bars over time. series: [{name, color?, points: [[timeMs, value], ...]}]; options.bucketMs: bar width.
export function barChart(container, series, options = {}) {
  const total = series.reduce((n, s) => n + s.points.filter((p) => p[1] > 0).length, 0);
  if (total === 0) return emptyState(container, options.empty || "No traffic in this window");
  const { svg, inner } = frame(container, options.height || 220);
  const bucket = options.bucketMs || 3600e3;
  const stacks = new Map();
  for (const s of series) for (const [t, v] of s.points) stacks.set(t, (stacks.get(t) || 0) + v);
  const times = [...stacks.keys()];
  const xMin = options.xMin ?? Math.min(...times);
  const xMax = Math.max(options.xMax ?? 0, Math.max(...times) + bucket);
  const ticks = niceTicks(0, Math.max(...stacks.values()), 4);
  const yHi = ticks[ticks.length - 1];
  const x = (t) => ((t - xMin) / (xMax - xMin || 1)) * inner.w;
  const y = (v) => inner.h - (v / (yHi || 1)) * inner.h;
  const g = svgEl("g", { transform: `translate(${MARGIN.left},${MARGIN.top})` }, svg);
  yAxis(g, ticks, y, inner.w, options.yFormat || formatNumber);
  xTimeAxis(g, xMin, xMax, x, inner.h);
  const base = new Map();
  const barWidth = Math.max(1, (bucket / (xMax - xMin || 1)) * inner.w - 2);
  series.forEach((s, i) => {
    const color = s.color || PALETTE[i % PALETTE.length];
    for (const [t, v] of s.points) {
      if (!(v > 0)) continue;
      const below = base.get(t) || 0;
      const rect = svgEl("rect", {
        x: x(t) + 1, y: y(below + v), width: barWidth, height: Math.max(y(below) - y(below + v), 0.5),
        fill: color, rx: 1.5, class: "mp-bar",
      }, g);
      addTitle(rect, `${s.name} · ${formatDateTime(t)}: ${formatNumber(v)}`);
      base.set(t, below + v);
    }
  });
  svg.setAttribute("data-points", String(total));
  legend(container, series.map((s, i) => ({ name: s.name, color: s.color || PALETTE[i % PALETTE.length] })));
}

// Horizontal bars, one per item: [{label, value, flagged, note, threshold?}]; options.threshold draws a marker.
export function hbarChart(container, items, options = {}) {
  if (items.length === 0) return emptyState(container, options.empty || "Nothing to show");
  const rowHeight = 26;
  const height = items.length * rowHeight + 34;
  container.replaceChildren();
  const width = Math.max(container.clientWidth || 480, 240);
  const labelWidth = Math.min(160, Math.max(...items.map((it) => it.label.length)) * 7 + 16);
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", height, role: "img", class: "mp-chart" }, container);
  const w = width - labelWidth - 70;
  const limit = Math.max(options.threshold || 0, ...items.map((it) => it.value || 0), 1e-9) * 1.1;
  const x = (v) => (Math.min(v, limit) / limit) * w;
  const g = svgEl("g", { transform: `translate(${labelWidth},8)` }, svg);
  items.forEach((item, i) => {
    const top = i * rowHeight;
    const label = svgEl("text", { x: -10, y: top + 10, dy: "0.32em", "text-anchor": "end", class: "mp-label" }, g);
    label.textContent = item.label;
    svgEl("rect", { x: 0, y: top + 1, width: w, height: 18, rx: 3, class: "mp-track" }, g);
    const bar = svgEl("rect", {
      x: 0, y: top + 1, width: Math.max(x(item.value || 0), 2), height: 18, rx: 3,
      class: "mp-hbar " + (item.flagged ? "flagged" : item.muted ? "muted" : "ok"),
    }, g);
    addTitle(bar, item.note || `${item.label}: ${formatNumber(item.value)}`);
    const value = svgEl("text", { x: w + 8, y: top + 10, dy: "0.32em", class: "mp-value" + (item.flagged ? " flagged" : "") }, g);
    value.textContent = item.muted ? "n/a" : (options.valueFormat || formatNumber)(item.value);
  });
  if (options.threshold) {
    const tx = x(options.threshold);
    svgEl("line", { x1: tx, x2: tx, y1: -4, y2: items.length * rowHeight, class: "mp-threshold" }, g);
    const label = svgEl("text", { x: tx, y: items.length * rowHeight + 14, "text-anchor": "middle", class: "mp-threshold-label" }, g);
    label.textContent = options.thresholdLabel || `threshold ${formatNumber(options.threshold)}`;
  }
  svg.setAttribute("data-points", String(items.length));
}

// Stacked columns over categories (e.g. batch runs). categories: [{key, label, note?}];
// series: [{name, color?, values: {key: number}}].
export function columnChart(container, categories, series, options = {}) {
  const total = categories.length;
  if (total === 0) return emptyState(container, options.empty || "Nothing to show");
  const { svg, inner } = frame(container, options.height || 220);
  const sums = categories.map((c) => series.reduce((n, s) => n + (s.values[c.key] || 0), 0));
  const ticks = niceTicks(0, Math.max(...sums, 1), 4);
  const yHi = ticks[ticks.length - 1];
  const slot = inner.w / categories.length;
  const barWidth = Math.max(Math.min(slot * 0.7, 48), 2);
  const y = (v) => inner.h - (v / (yHi || 1)) * inner.h;
  const g = svgEl("g", { transform: `translate(${MARGIN.left},${MARGIN.top})` }, svg);
  yAxis(g, ticks, y, inner.w, options.yFormat || formatNumber);
  svgEl("line", { x1: 0, x2: inner.w, y1: inner.h, y2: inner.h, class: "mp-axis" }, g);
  const every = Math.ceil(categories.length / Math.max(Math.floor(inner.w / 70), 1));
  categories.forEach((c, i) => {
    const cx = slot * i + slot / 2;
    let below = 0;
    series.forEach((s, k) => {
      const v = s.values[c.key] || 0;
      if (v <= 0) return;
      const rect = svgEl("rect", {
        x: cx - barWidth / 2, y: y(below + v), width: barWidth, height: Math.max(y(below) - y(below + v), 0.5),
        fill: s.color || PALETTE[k % PALETTE.length], rx: 2, class: "mp-bar",
      }, g);
      addTitle(rect, `${c.note || c.label} · ${s.name}: ${formatNumber(v)}`);
      below += v;
    });
    if (c.marker) {
      const mark = svgEl("circle", { cx, cy: y(below) - 7, r: 4, class: "mp-marker " + c.marker }, g);
      addTitle(mark, c.note || c.label);
    }
    if (i % every === 0) {
      const label = svgEl("text", { x: cx, y: inner.h + 17, "text-anchor": "middle", class: "mp-tick" }, g);
      label.textContent = c.label;
    }
  });
  svg.setAttribute("data-points", String(total));
  legend(container, series.map((s, k) => ({ name: s.name, color: s.color || PALETTE[k % PALETTE.length] })));
}

// Lanes over time (e.g. where each alias pointed). lanes: [{name, segments: [{start, end, label, color, note?}]}].
export function laneChart(container, lanes, options = {}) {
  const total = lanes.reduce((n, lane) => n + lane.segments.length, 0);
  if (total === 0) return emptyState(container, options.empty || "Nothing to show");
  const laneHeight = 34;
  const height = lanes.length * laneHeight + MARGIN.top + MARGIN.bottom;
  container.replaceChildren();
  const width = Math.max(container.clientWidth || 480, 240);
  const labelWidth = Math.min(140, Math.max(...lanes.map((l) => l.name.length)) * 7 + 20);
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", height, role: "img", class: "mp-chart" }, container);
  const innerW = width - labelWidth - MARGIN.right;
  const innerH = lanes.length * laneHeight;
  const starts = lanes.flatMap((l) => l.segments.map((s) => s.start));
  const xMin = Math.min(options.xMin ?? Infinity, ...starts);
  const xMax = Math.max(options.xMax ?? -Infinity, ...lanes.flatMap((l) => l.segments.map((s) => s.end)));
  const x = (t) => ((t - xMin) / (xMax - xMin || 1)) * innerW;
  const g = svgEl("g", { transform: `translate(${labelWidth},${MARGIN.top})` }, svg);
  xTimeAxis(g, xMin, xMax, x, innerH);
  lanes.forEach((lane, i) => {
    const top = i * laneHeight + 5;
    const label = svgEl("text", { x: -10, y: top + 12, dy: "0.32em", "text-anchor": "end", class: "mp-label" }, g);
    label.textContent = lane.name;
    svgEl("rect", { x: 0, y: top, width: innerW, height: 24, rx: 4, class: "mp-track" }, g);
    for (const segment of lane.segments) {
      const left = x(segment.start);
      const w = Math.max(x(segment.end) - left, 3);
      const rect = svgEl("rect", { x: left, y: top, width: w, height: 24, rx: 4, fill: segment.color, class: "mp-segment" }, g);
      addTitle(rect, segment.note || segment.label);
      if (w > 28) {
        const text = svgEl("text", { x: left + 8, y: top + 12, dy: "0.32em", class: "mp-segment-label" }, g);
        text.textContent = segment.label;
      }
    }
  });
  svg.setAttribute("data-points", String(total));
}
