// The llmemo dashboard: reads the admin API with the page's cookie and builds the DOM with
// textContent and SVG elements (never HTML from data). Changes are POSTs with the CSRF header.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const STATUSES = ["exact", "semantic", "stale", "miss", "bypass"];
const COLOURS = {
  exact: "#2e7d32", semantic: "#1565c0", stale: "#f9a825", miss: "#c62828", bypass: "#757575",
  hit: "#2e7d32", upstream: "#6a1b9a", saved: "#2e7d32", near: "#ef6c00", served: "#1565c0",
};
const REFRESH_MS = 30000;
const showPrompts = document.body.dataset.showPrompts === "on";

// -- small DOM helpers ---------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  return node;
}

function setText(id, text) {
  document.getElementById(id).textContent = text;
}

function figure(id, value, format) {
  // a headline figure: its text, and the number itself in data-value (for tools and tests)
  const node = document.getElementById(id);
  node.textContent = format(value);
  node.dataset.value = String(value);
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

// -- formatting (the same numbers as /metrics, rounded for reading) -------------------------

function count(n) {
  return Math.round(Number(n) || 0).toLocaleString("en-US");
}

function dollars(x) {
  // cents from $1, else 4 decimals from 1 cent, else 6 (a few cached answers)
  const v = Number(x) || 0;
  const a = Math.abs(v);
  return "$" + v.toFixed(a >= 1 ? 2 : a >= 0.01 || a === 0 ? 4 : 6);
}

function short(v) {
  // an axis label: 2 significant digits
  if (v === 0) return "0";
  if (Math.abs(v) >= 1000) return count(v);
  return String(Number(v.toPrecision(2)));
}

function ratio(x) {
  return ((Number(x) || 0) * 100).toFixed(1) + "%";
}

function ms(x) {
  const v = Number(x) || 0;
  return v >= 100 ? v.toFixed(0) : v.toFixed(2);
}

function seconds(s) {
  if (s === null || s === undefined) return "never";
  const v = Math.max(0, Number(s));
  if (v < 60) return v.toFixed(0) + "s";
  if (v < 3600) return (v / 60).toFixed(0) + "m";
  if (v < 86400) return (v / 3600).toFixed(1) + "h";
  return (v / 86400).toFixed(1) + "d";
}

function bytes(n) {
  const v = Number(n) || 0;
  if (v < 1024) return v + " B";
  if (v < 1048576) return (v / 1024).toFixed(1) + " KB";
  return (v / 1048576).toFixed(1) + " MB";
}

function clock(epoch) {
  return new Date(epoch * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
}

// -- the admin API -------------------------------------------------------------------------

function status(message, problem) {
  const node = document.getElementById("status");
  node.textContent = message;
  node.className = problem ? "status problem" : "status";
}

async function api(path, body) {
  const options = { credentials: "same-origin", headers: { accept: "application/json" } };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["content-type"] = "application/json";
    options.headers["x-llmemo-csrf"] = "1";
    options.body = JSON.stringify(body);
  }
  const answer = await fetch(path, options);
  if (answer.status === 401 && body === undefined) {
    window.location.reload(); // the cookie expired or was cleared: back to the login form
    throw new Error("signed out");
  }
  if (answer.status === 404 || answer.status === 405) return null; // not served by this build
  const data = await answer.json();
  if (!answer.ok) throw new Error((data.error && data.error.message) || answer.statusText);
  return data;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value) search.set(name, value);
  const text = search.toString();
  return text ? "?" + text : "";
}

function filterValues() {
  // the window, and at most one of namespace, model and tenant (as /admin/stats takes them)
  const values = { window: document.getElementById("window").value };
  values[document.getElementById("f-kind").value] = document.getElementById("f-value").value.trim();
  return values;
}

// -- charts (SVG) --------------------------------------------------------------------------

const W = 600;
const H = 180;
const PAD = { left: 64, right: 8, top: 8, bottom: 22 };

function frame(box, maxY, format) {
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", preserveAspectRatio: "none" });
  for (const f of [0, 0.5, 1]) {
    const y = PAD.top + (1 - f) * (H - PAD.top - PAD.bottom);
    chart.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: "grid" }));
    const label = svg("text", { x: PAD.left - 4, y: y + 4, "text-anchor": "end", class: "axis" });
    label.textContent = format(maxY * f);
    chart.append(label);
  }
  clear(box).append(chart);
  return chart;
}

function timeLabels(chart, series) {
  if (!series.length) return;
  const first = svg("text", { x: PAD.left, y: H - 6, class: "axis" });
  first.textContent = clock(series[0].t).slice(5, 16);
  const last = svg("text", { x: W - PAD.right, y: H - 6, "text-anchor": "end", class: "axis" });
  last.textContent = clock(series[series.length - 1].t).slice(5, 16);
  chart.append(first, last);
}

function bars(box, points, keys, title) {
  // points: [{label, values: {key: n}}]; stacked bars, one per point
  const totals = points.map((p) => keys.reduce((s, k) => s + (Number(p.values[k]) || 0), 0));
  const maxY = Math.max(1, ...totals);
  const chart = frame(box, maxY, short);
  const width = (W - PAD.left - PAD.right) / Math.max(1, points.length);
  const scale = (H - PAD.top - PAD.bottom) / maxY;
  points.forEach((p, i) => {
    let y = H - PAD.bottom;
    for (const k of keys) {
      const h = (Number(p.values[k]) || 0) * scale;
      if (h <= 0) continue;
      y -= h;
      const rect = svg("rect", {
        x: PAD.left + i * width + width * 0.1, y, width: Math.max(1, width * 0.8), height: h,
        fill: COLOURS[k] || "#1565c0",
      });
      const tip = svg("title", {});
      tip.textContent = `${title(p)}: ${k} ${count(p.values[k])}`;
      rect.append(tip);
      chart.append(rect);
    }
  });
  return chart;
}

function lines(box, series, lineSpecs, format) {
  // lineSpecs: [{name, colour, dash, value: (point) => number}]
  const maxY = Math.max(1e-9, ...series.flatMap((p) => lineSpecs.map((s) => s.value(p))));
  const chart = frame(box, maxY, format);
  const stepX = (W - PAD.left - PAD.right) / Math.max(1, series.length - 1);
  const scale = (H - PAD.top - PAD.bottom) / maxY;
  for (const spec of lineSpecs) {
    const path = series
      .map((p, i) => `${PAD.left + i * stepX},${H - PAD.bottom - spec.value(p) * scale}`)
      .join(" ");
    if (!path) continue;
    chart.append(svg("polyline", {
      points: path, fill: "none", stroke: spec.colour, "stroke-width": 2,
      "stroke-dasharray": spec.dash || "none", "vector-effect": "non-scaling-stroke",
    }));
  }
  timeLabels(chart, series);
  return chart;
}

function legend(id, entries) {
  const box = clear(document.getElementById(id));
  for (const [name, colour, dash] of entries) {
    const swatch = el("span", { class: dash ? "swatch dashed" : "swatch" });
    swatch.style.borderColor = colour;
    swatch.style.backgroundColor = dash ? "transparent" : colour;
    box.append(el("span", { class: "key" }, swatch, name));
  }
}

function histogram(box, buckets, colour) {
  const points = (buckets || []).map(([lo, hi, n]) => ({ label: `${lo}-${hi}`, values: { v: n } }));
  if (!points.length) {
    clear(box).append(el("p", { class: "empty", text: "no data in this window" }));
    return;
  }
  COLOURS.v = colour;
  const chart = bars(box, points, ["v"], (p) => `similarity ${p.label}`);
  const first = svg("text", { x: PAD.left, y: H - 6, class: "axis" });
  first.textContent = String(buckets[0][0]);
  const last = svg("text", { x: W - PAD.right, y: H - 6, "text-anchor": "end", class: "axis" });
  last.textContent = String(buckets[buckets.length - 1][1]);
  chart.append(first, last);
}

// -- tables --------------------------------------------------------------------------------

function table(id, head, rows, empty) {
  const node = document.getElementById(id);
  const caption = node.querySelector("caption");
  clear(node);
  if (caption) node.append(caption);
  node.append(el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { text: h })))));
  const body = el("tbody", {});
  for (const row of rows) {
    body.append(el("tr", {}, ...row.map(cellOf)));
  }
  if (!rows.length) {
    body.append(el("tr", {}, el("td", { colspan: String(head.length), class: "empty", text: empty })));
  }
  node.append(body);
}

function cellOf(cell) {
  // a string or number, a DOM node, or {wrap: text} for a long text that may wrap
  if (cell instanceof Node) return el("td", { class: cell.tagName === "CODE" ? "wrap" : "" }, cell);
  if (cell !== null && typeof cell === "object") return el("td", { class: "wrap", text: cell.wrap });
  return el("td", { text: String(cell) });
}

function breakdown(id, rows) {
  table(id, ["name", "requests", "hit ratio", "tokens saved", "$ saved"],
    (rows || []).map((r) => [r.name, count(r.requests), ratio(r.hit_ratio), count(r.tokens_saved),
      dollars(r.dollars_saved)]),
    "no requests in this window");
}

// -- sections ------------------------------------------------------------------------------

function unavailable(what) {
  for (const id of ["total-requests", "total-hits", "total-misses", "hit-ratio", "tokens-saved",
    "dollars-saved", "store-ms", "breaker", "singleflight", "rate-limited", "warm", "instances",
    "wrong-hit-reports"]) setText(id, "n/a");
  for (const id of ["chart-requests", "chart-saved", "chart-latency", "chart-served", "chart-near"]) {
    clear(document.getElementById(id)).append(el("p", { class: "empty", text: `not available: ${what}` }));
  }
}

function showStats(stats) {
  const t = stats.totals;
  const hits = t.exact + t.semantic + t.stale;
  figure("total-requests", t.requests, count);
  figure("total-hits", hits, count);
  setText("total-hit-split", `exact ${count(t.exact)} · semantic ${count(t.semantic)} · stale ${count(t.stale)}`);
  figure("total-misses", t.miss, count);
  setText("total-bypass", `bypass ${count(t.bypass)}`);
  figure("hit-ratio", t.requests ? hits / t.requests : 0, ratio);
  figure("tokens-saved", t.tokens_saved, count);
  figure("dollars-saved", t.dollars_saved, dollars);
  setText("dollars-spent", `spent upstream ${dollars(t.dollars_spent)}`);
  setText("instances", count(stats.instances));

  const series = stats.series || [];
  bars(document.getElementById("chart-requests"),
    series.map((p) => ({ t: p.t, values: p })), STATUSES, (p) => clock(p.t));
  timeLabels(document.querySelector("#chart-requests svg"), series);
  legend("legend-requests", STATUSES.map((s) => [s, COLOURS[s]]));
  lines(document.getElementById("chart-saved"), series,
    [{ name: "saved", colour: COLOURS.saved, value: (p) => Number(p.dollars_saved) || 0 }],
    (v) => "$" + short(v));
  const latency = [];
  for (const kind of ["hit", "miss", "upstream"]) {
    for (const q of ["p50", "p99"]) {
      latency.push({
        name: `${kind} ${q}`, colour: COLOURS[kind], dash: q === "p99" ? "6 4" : null,
        value: (p) => Number(p.latency_ms && p.latency_ms[kind] && p.latency_ms[kind][q]) || 0,
      });
    }
  }
  lines(document.getElementById("chart-latency"), series, latency, short);
  legend("legend-latency", latency.map((s) => [s.name, s.colour, s.dash]));
  const lat = t.latency_ms;
  const tbody = clear(document.querySelector("#latency-table tbody"));
  for (const kind of ["hit", "miss", "upstream"]) {
    tbody.append(el("tr", {}, el("th", { text: kind }), el("td", { text: ms(lat[kind].p50) }),
      el("td", { text: ms(lat[kind].p99) })));
  }

  breakdown("by-namespace", stats.by.namespace);
  breakdown("by-model", stats.by.model);
  breakdown("by-tenant", stats.by.tenant);

  const sem = stats.semantic;
  histogram(document.getElementById("chart-served"), sem.served, COLOURS.served);
  histogram(document.getElementById("chart-near"), sem.near_miss, COLOURS.near);
  table("guard-refusals", ["reason", "refusals"],
    Object.entries(sem.guard_refusals || {}).map(([k, v]) => [k, count(v)]), "none");
  setText("wrong-hit-reports", count(sem.wrong_hit_reports));

  const h = stats.health;
  setText("store-ms", `${ms(h.store_ms.p50)} / ${ms(h.store_ms.p99)}`);
  setText("breaker", h.breaker);
  document.getElementById("breaker").className = h.breaker === "closed" ? "value good" : "value bad";
  const sf = h.singleflight;
  setText("singleflight", sf.leaders ? (sf.followers / sf.leaders).toFixed(2) : "0");
  setText("rate-limited", count(h.rate_limited));
  setText("warm", count(h.warm.runs));
  setText("warm-items", `${count(h.warm.items_ok)} ok, ${count(h.warm.items_failed)} failed`);
  table("store-errors", ["at", "error"], (h.store_errors || []).map((e) => [clock(e.at), { wrap: e.error }]),
    "none");
}

async function loadStats() {
  const f = filterValues();
  const stats = await api("admin/stats" + query(f));
  if (stats === null) unavailable("this service has no /admin/stats");
  else showStats(stats);
}

async function report(hit, button) {
  if (!window.confirm(`Report this semantic hit as wrong? Its answer (${hit.key}) is deleted ` +
    "and the pair is kept as feedback for llmemo calibrate.")) return;
  button.disabled = true;
  const answer = await api("admin/feedback", { key: hit.key });
  if (answer === null) throw new Error("this service has no /admin/feedback");
  button.textContent = "reported";
  status(`reported: ${count(answer.deleted)} entry deleted`);
}

async function loadSemanticHits() {
  const data = await api("admin/semantic-hits?limit=50");
  setText("prompts-note", showPrompts
    ? "Prompts are shown (--dashboard-show-prompts): they may hold personal data."
    : "Prompts are hidden; start llmemo serve with --dashboard-show-prompts to see them.");
  if (data === null) {
    table("semantic-hits", ["recent semantic hits"], [], "not available: this service has no /admin/semantic-hits");
    return;
  }
  const head = ["at", "namespace", "model", "similarity"];
  if (showPrompts) head.push("query", "matched prompt");
  head.push("key", "");
  const rows = data.hits.map((hit) => {
    const button = el("button", { type: "button", class: "danger report", text: "report wrong hit" });
    button.addEventListener("click", () => report(hit, button).catch((e) => status(e.message, true)));
    const row = [clock(hit.at), hit.namespace, hit.model || "-", Number(hit.similarity).toFixed(3)];
    if (showPrompts) {
      row.push({ wrap: hit.query === null ? "(hidden)" : hit.query },
        { wrap: hit.matched === null ? "(hidden)" : hit.matched });
    }
    row.push(el("code", { text: hit.key }), button);
    return row;
  });
  table("semantic-hits", head, rows, "no semantic hit yet");
}

function entryFilters() {
  return {
    namespace: document.getElementById("e-namespace").value.trim(),
    tag: document.getElementById("e-tag").value.trim(),
    model: document.getElementById("e-model").value.trim(),
    tenant: document.getElementById("e-tenant").value.trim(),
  };
}

async function invalidate(body, what) {
  if (!window.confirm(`Invalidate ${what}? The matching entries are deleted for every caller.`)) {
    return;
  }
  const answer = await api("admin/invalidate", body);
  status(`invalidated ${what}: ${count(answer.deleted)} deleted`);
  await loadEntries();
}

async function loadEntries() {
  const f = entryFilters();
  const data = await api("admin/entries" + query({ ...f, limit: "100" }));
  if (!f.namespace) { // the service's own namespace, as the API chose it
    document.getElementById("e-namespace").placeholder = data.namespace;
    document.getElementById("i-namespace").placeholder = data.namespace;
  }
  const rows = data.entries.map((e) => {
    const button = el("button", { type: "button", class: "danger", text: "invalidate" });
    button.addEventListener("click", () =>
      invalidate({ key: e.key }, `the entry ${e.key}`).catch((x) => status(x.message, true)));
    return [el("code", { text: e.key }), e.model || "-", e.tenant || "-", e.tags.join(", ") || "-",
      bytes(e.size), seconds(e.age), seconds(e.ttl_left), button];
  });
  table("entry-list", ["key", "model", "tenant", "tags", "size", "age", "TTL left", ""], rows,
    `no entry in namespace ${data.namespace} matches`);
  if (data.more) status(`more than ${rows.length} entries match: narrow the search`);
}

// -- wiring --------------------------------------------------------------------------------

async function refresh() {
  const results = await Promise.allSettled([loadStats(), loadSemanticHits(), loadEntries()]);
  const failed = results.filter((r) => r.status === "rejected").map((r) => r.reason.message);
  if (failed.length) status("could not load: " + failed.join("; "), true);
  else status("updated " + new Date().toLocaleTimeString());
  document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
}

document.getElementById("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  refresh();
});
document.getElementById("window").addEventListener("change", () => refresh());
document.getElementById("find").addEventListener("submit", (event) => {
  event.preventDefault();
  loadEntries().catch((e) => status(e.message, true));
});
document.getElementById("invalidate").addEventListener("submit", (event) => {
  event.preventDefault();
  const kind = document.getElementById("i-kind").value;
  const value = document.getElementById("i-value").value.trim();
  const namespace = document.getElementById("i-namespace").value.trim();
  const body = { [kind]: value };
  if (namespace && kind !== "key") body.namespace = namespace;
  invalidate(body, `${kind} ${value}`).catch((e) => status(e.message, true));
});
refresh();
setInterval(refresh, REFRESH_MS);
