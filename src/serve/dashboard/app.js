// The managers' dashboard: reads GET /v1/segments with a manager key kept in
// session storage and draws it with plain DOM and inline SVG (no libraries,
// no network but this server).
"use strict";

const KEY = "prioritize.managerKey";
const SVG = "http://www.w3.org/2000/svg";
const STRATEGY_LABELS = {
  none: "No action", email_reminder: "Email reminder", sms_reminder: "SMS reminder",
  call: "Call", demand_letter: "Demand letter", settlement_offer: "Settlement offer",
  installment_plan: "Instalment plan", field_visit: "Field visit", legal: "Legal", agency: "Agency",
};
const RULE_LABELS = {
  eligibility_floor: "Not past due long enough", no_contact: "No contact allowed",
  dispute_open: "Dispute open", channel_opt_out: "Opted out of the channel",
  call_attempt_limit: "Call attempt limit", conversation_cool_off: "Conversation cool-off",
  promise_pending: "Promise pending", calling_hours: "Outside calling hours",
};
// Riskiest (red) to safest (blue), colour-blind safe (ColorBrewer RdYlBu).
const RISK_STOPS = [[215, 48, 39], [252, 141, 89], [254, 224, 144], [145, 191, 219], [69, 117, 180]];

let data = null;
let metric = "accounts";

const $ = (id) => document.getElementById(id);
// Charts are drawn at the width of their box, so that text keeps its size on a phone.
const widthOf = (id) => Math.max(300, Math.floor($(id).clientWidth || 560));

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

// ---- numbers: money stays a decimal string; only separators are added ----

function groupDigits(text) {
  let sign = "";
  if (text.startsWith("-")) { sign = "−"; text = text.slice(1); }
  const [whole, fraction] = text.split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return sign + grouped + (fraction !== undefined ? "." + fraction : "");
}

function money(text) { return groupDigits(text); }
function count(n) { return groupDigits(String(n)); }
function isZero(text) { return /^-?0*(\.0*)?$/.test(String(text)); }
function isNegative(text) { return String(text).startsWith("-"); }

function changeSpan(value, kind) {
  if (value === null || value === undefined) return el("span", { class: "change flat", text: "no previous plan" });
  const text = String(value);
  if (isZero(text)) return el("span", { class: "change flat", text: "no change" });
  const shown = kind === "money" ? money(text.replace(/^-/, "")) : count(text.replace(/^-/, ""));
  const down = isNegative(text);
  return el("span", { class: "change " + (down ? "down" : "up"), text: (down ? "▼ " : "▲ ") + shown });
}

function riskColour(index, tiers) {
  const last = RISK_STOPS.length - 1;
  // Up to five tiers take distinct stops; more are interpolated between them.
  if (tiers <= RISK_STOPS.length) return RISK_STOPS[tiers <= 1 ? 0 : Math.round((index * last) / (tiers - 1))];
  const x = (index / (tiers - 1)) * last;
  const i = Math.min(Math.floor(x), RISK_STOPS.length - 2);
  const f = x - i;
  const c = RISK_STOPS[i].map((v, k) => Math.round(v + (RISK_STOPS[i + 1][k] - v) * f));
  return c;
}
const rgb = (c, a = 1) => `rgba(${c[0]},${c[1]},${c[2]},${a})`;

function tierLabel(name) { return name.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase()); }
function tierRange(tiers, i) {
  const from = tiers[i].p_pay_from;
  const to = i + 1 < tiers.length ? tiers[i + 1].p_pay_from : 1;
  return `P(pay) ${from.toFixed(2)}–${to.toFixed(2)}`;
}

// ---- loading ----

async function load(key) {
  let response;
  try {
    response = await fetch("/v1/segments", { headers: { Authorization: "Bearer " + key }, cache: "no-store" });
  } catch (e) {
    return { error: "Cannot reach the server: " + e.message };
  }
  if (response.status === 401) return { error: "That key was refused (401). Check it and try again.", forget: true };
  if (response.status === 403) return { error: "That key does not have the manager role (403).", forget: true };
  if (response.status === 503) return { error: "The plan is still being built; the page retries every few seconds.", retry: true };
  if (!response.ok) {
    let detail = "";
    try { detail = (await response.json()).detail || ""; } catch (_) { /* not JSON */ }
    return { error: `The server answered ${response.status}. ${detail}` };
  }
  return { data: await response.json() };
}

let retryTimer = null;

async function open(key) {
  clearTimeout(retryTimer);
  const result = await load(key);
  if (result.data) {
    sessionStorage.setItem(KEY, key);
    data = result.data;
    $("login").hidden = true;
    $("board").hidden = false;
    $("forget").hidden = false;
    $("refresh").hidden = false;
    $("status").hidden = true;
    render();
    return;
  }
  if (result.forget) {
    sessionStorage.removeItem(KEY);
    showLogin(result.error);
    return;
  }
  if (data) {
    $("status").textContent = result.error;
    $("status").hidden = false;
  } else {
    showLogin(result.error);
  }
  if (result.retry) retryTimer = setTimeout(() => open(key), 3000);
}

function showLogin(message) {
  data = null;
  $("board").hidden = true;
  $("forget").hidden = true;
  $("refresh").hidden = true;
  $("login").hidden = false;
  $("plan-line").textContent = "prioritize · managers' view";
  const error = $("login-error");
  error.hidden = !message;
  error.textContent = message || "";
  $("key").focus();
}

// ---- drawing ----

function render() {
  const d = data;
  const prev = d.previous ? `, compared with plan ${d.previous.plan_id} of ${d.previous.day}` : ", the first plan (nothing to compare with)";
  $("plan-line").textContent = `Plan ${d.plan_id} of ${d.day} · model ${d.model_version}${prev}`;
  renderCards(d);
  renderHeatmap(d);
  renderLegend(d);
  renderMix(d);
  renderQueues(d);
  renderCalibration(d);
  renderBlocked(d);
  renderTable(d);
}

function card(label, figure, unit, change, kind, id) {
  return el("div", { class: "card", id },
    el("div", { class: "label", text: label }),
    el("div", { class: "figure" }, el("span", { class: "value", text: figure }), unit ? el("span", { class: "unit", text: " " + unit }) : null),
    changeSpan(change, kind));
}

function renderCards(d) {
  const c = d.totals.change;
  const leased = d.queues.reduce((s, q) => s + q.leased, 0);
  const open = d.queues.filter((q) => q.strategy !== "none").reduce((s, q) => s + q.open, 0);
  $("cards").replaceChildren(
    card("Accounts", count(d.totals.accounts), "", c && c.accounts, "count", "card-accounts"),
    card("Balance", money(d.totals.balance), d.currency, c && c.balance, "money", "card-balance"),
    card("Expected net value of the plan", money(d.totals.expected_value), d.currency, c && c.expected_value, "money", "card-value"),
    el("div", { class: "card", id: "card-queues" },
      el("div", { class: "label", text: "Open in work queues" }),
      el("div", { class: "figure" }, el("span", { class: "value", text: count(open) }), el("span", { class: "unit", text: " accounts" })),
      el("span", { class: "change flat", text: `${count(leased)} leased to agents now; blocked since the plan left out` })),
  );
}

function metricValue(cell) {
  return metric === "accounts" ? Number(cell.accounts) : Number(cell[metric]);
}
function metricText(value) { return metric === "accounts" ? count(value) : money(String(value)); }

function renderHeatmap(d) {
  const unit = metric === "accounts" ? "accounts" : `${metric === "balance" ? "balance" : "expected net value"}, ${d.currency}`;
  $("heat-sub").textContent = `Risk tiers by the model's calibrated P(pay), riskiest first; cells show ${unit}, and under each figure its change against the previous plan. Darker is more.`;
  const max = Math.max(1e-9, ...d.segments.map((s) => Math.abs(metricValue(s))));
  const table = $("heatmap");
  const head = el("tr", {}, el("th", { class: "tier", scope: "col", text: "Risk tier" }));
  for (const b of d.dpd_buckets) head.append(el("th", { scope: "col", text: b === "current" ? "Current" : b }));
  head.append(el("th", { class: "total", scope: "col", text: "All" }));
  const body = el("tbody");
  const columnTotals = d.dpd_buckets.map(() => 0);
  d.risk_tiers.forEach((tier, ti) => {
    const colour = riskColour(ti, d.risk_tiers.length);
    const row = el("tr", {}, el("th", { class: "tier", scope: "row", title: tierRange(d.risk_tiers, ti) },
      el("span", { class: "swatch", style: `background:${rgb(colour)}` }), tierLabel(tier.name),
      el("div", { class: "change flat", text: tierRange(d.risk_tiers, ti) })));
    let rowTotal = 0;
    d.dpd_buckets.forEach((bucket, bi) => {
      const cell = d.segments.find((s) => s.risk_tier === tier.name && s.dpd_bucket === bucket);
      const value = metricValue(cell);
      rowTotal += value;
      columnTotals[bi] += value;
      const shade = 0.08 + 0.82 * Math.abs(value) / max;
      const lum = (0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]) / 255;
      const dark = shade > 0.55 && lum < 0.75;
      const change = cell.change ? (metric === "accounts" ? cell.change.accounts : cell.change[metric]) : null;
      const shown = metric === "accounts" ? String(cell.accounts) : cell[metric];
      row.append(el("td", {
        "data-tier": tier.name, "data-bucket": bucket, "data-value": shown,
        style: `background:${rgb(colour, shade)};color:${dark ? "#fff" : "var(--ink)"}`,
        title: `${tierLabel(tier.name)}, ${bucket} days past due: ${count(cell.accounts)} accounts, balance ${money(cell.balance)} ${d.currency}, expected ${money(cell.expected_value)} ${d.currency}`,
      }, el("span", { class: "v", text: metric === "accounts" ? count(cell.accounts) : money(cell[metric]) }),
      el("span", { class: "d" }, changeSpan(change, metric === "accounts" ? "count" : "money"))));
    });
    row.append(el("td", { class: "total" }, el("span", { class: "v", text: metricText(metric === "accounts" ? rowTotal : rowTotal.toFixed(2)) })));
    body.append(row);
  });
  const foot = el("tr", {}, el("th", { class: "tier total", scope: "row", text: "All tiers" }));
  columnTotals.forEach((v) => foot.append(el("td", { class: "total" }, el("span", { class: "v", text: metricText(metric === "accounts" ? v : v.toFixed(2)) }))));
  foot.append(el("td", { class: "total" }, el("span", { class: "v", text: metric === "accounts" ? count(d.totals.accounts) : money(d.totals[metric]) })));
  body.append(foot);
  table.replaceChildren(
    el("caption", { class: "sub", style: "caption-side:bottom;text-align:left;padding-top:.4rem", text: metric === "accounts" ? "" : "Row and column totals add the rounded cell figures; the corner is the API's exact total." }),
    el("thead", {}, head), body);
}

function renderLegend(d) {
  $("tier-legend").replaceChildren(...d.risk_tiers.map((t, i) =>
    el("span", {}, el("span", { class: "swatch", style: `background:${rgb(riskColour(i, d.risk_tiers.length))}` }), tierLabel(t.name) + " risk")));
}

function renderMix(d) {
  const strategies = d.queues.map((q) => q.strategy);
  const rows = strategies.map((s) => ({
    strategy: s,
    byTier: d.risk_tiers.map((t) => d.segments.filter((c) => c.risk_tier === t.name).reduce((n, c) => n + (c.strategy_mix[s] || 0), 0)),
  })).map((r) => ({ ...r, total: r.byTier.reduce((a, b) => a + b, 0) })).filter((r) => r.total > 0);
  const max = Math.max(1, ...rows.map((r) => r.total));
  const W = widthOf("mix"), label = W < 420 ? 110 : 130, right = 60, bar = 18, gap = 10;
  const H = rows.length * (bar + gap) + 4;
  const svg = el("svg:svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": "Accounts by planned strategy, split by risk tier" });
  rows.forEach((r, i) => {
    const y = i * (bar + gap) + 2;
    svg.append(el("svg:text", { x: label - 8, y: y + bar * 0.72, "text-anchor": "end", "font-size": 12, text: STRATEGY_LABELS[r.strategy] || r.strategy }));
    let x = label;
    r.byTier.forEach((n, ti) => {
      const w = (n / max) * (W - label - right);
      if (w > 0) {
        const rect = el("svg:rect", { x, y, width: w, height: bar, fill: rgb(riskColour(ti, d.risk_tiers.length)) });
        rect.append(el("svg:title", { text: `${STRATEGY_LABELS[r.strategy] || r.strategy}, ${tierLabel(d.risk_tiers[ti].name)} risk: ${count(n)} accounts` }));
        svg.append(rect);
      }
      x += w;
    });
    svg.append(el("svg:text", { x: x + 6, y: y + bar * 0.72, "font-size": 12, "data-strategy": r.strategy, text: count(r.total) }));
  });
  $("mix").replaceChildren(svg);
}

function renderQueues(d) {
  const queues = d.queues.filter((q) => q.strategy !== "none" && q.capacity !== null);
  const unlimited = d.queues.filter((q) => q.strategy !== "none" && q.capacity === null && q.planned > 0);
  const W = widthOf("queues"), label = W < 420 ? 110 : 130, right = W < 420 ? 105 : 130, bar = 18, gap = 16;
  const H = queues.length * (bar + gap) + 4;
  const svg = el("svg:svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": "Planned accounts against capacity, by strategy" });
  const span = W - label - right;
  queues.forEach((q, i) => {
    const y = i * (bar + gap) + 2;
    const full = Math.max(q.capacity, q.planned, 1);
    svg.append(el("svg:text", { x: label - 8, y: y + bar * 0.72, "text-anchor": "end", "font-size": 12, text: STRATEGY_LABELS[q.strategy] || q.strategy }));
    svg.append(el("svg:rect", { x: label, y, width: span, height: bar, fill: "#e9edf3", rx: 3 }));
    svg.append(el("svg:rect", { x: label, y, width: span * q.planned / full, height: bar, fill: "#8fb3dc", rx: 3 }));
    svg.append(el("svg:rect", { x: label, y, width: span * q.leased / full, height: bar, fill: "#1f5fa8", rx: 3 }));
    const fill = q.capacity ? ` (${Math.round(100 * q.planned / q.capacity)} %)` : "";
    const t = el("svg:text", { x: label + span + 8, y: y + bar * 0.72, "font-size": 12, "data-strategy": q.strategy, text: `${count(q.planned)} of ${count(q.capacity)}${fill}` });
    t.append(el("svg:title", { text: `${q.open} open, ${q.leased} leased now; expected ${money(q.expected_value)} ${d.currency}` }));
    svg.append(t);
  });
  const legend = el("div", { class: "legend" },
    el("span", {}, el("span", { class: "swatch", style: "background:#8fb3dc" }), "planned"),
    el("span", {}, el("span", { class: "swatch", style: "background:#1f5fa8" }), "leased now"),
    el("span", {}, el("span", { class: "swatch", style: "background:#e9edf3;border:1px solid #ccd" }), "capacity left"));
  const free = el("p", { class: "sub", style: "margin-top:.6rem" },
    unlimited.length ? "No daily limit: " + unlimited.map((q) => `${STRATEGY_LABELS[q.strategy] || q.strategy} ${count(q.planned)} (${count(q.leased)} leased)`).join(" · ") : "");
  $("queues").replaceChildren(legend, queues.length ? svg : el("p", { class: "sub", text: "No strategy has a daily capacity in the configuration." }), free);
}

function renderCalibration(d) {
  const box = $("calibration");
  const c = d.calibration;
  if (!c) { box.replaceChildren(el("p", { class: "sub", text: "This plan has no calibration figures." })); return; }
  const series = [];
  if (c.outcomes) series.push({ name: `Logged outcomes in the data folder (${count(c.outcomes.rows)} rows)`, set: c.outcomes, colour: "#1f5fa8", dash: null });
  series.push({ name: `Held out at training (${count(c.held_out.rows)} rows)`, set: c.held_out, colour: "#d95f02", dash: "5 4" });
  // Both axes from 0 to just above the largest figure, so the deciles spread out.
  const top = Math.min(1, Math.ceil(10 * Math.max(0.1, ...series.flatMap((s) => s.set.deciles.flatMap((q) => [q.mean_predicted, q.observed_rate])))) / 10);
  const S = Math.min(320, widthOf("calibration") - 60), pad = 48;
  const svg = el("svg:svg", { viewBox: `0 0 ${S + pad + 12} ${S + pad + 12}`, width: S + pad + 12, role: "img", "aria-label": "Predicted against observed P(pay) by decile" });
  const X = (p) => pad + (p / top) * S, Y = (p) => 10 + S - (p / top) * S;
  const step = top <= 0.5 ? 0.1 : 0.2;
  for (let g = 0; g <= top + 1e-9; g += step) {
    svg.append(el("svg:line", { class: "gridline", x1: X(0), x2: X(top), y1: Y(g), y2: Y(g) }));
    svg.append(el("svg:line", { class: "gridline", x1: X(g), x2: X(g), y1: Y(0), y2: Y(top) }));
    svg.append(el("svg:text", { x: X(0) - 6, y: Y(g) + 4, "text-anchor": "end", "font-size": 11, text: g.toFixed(1) }));
    svg.append(el("svg:text", { x: X(g), y: Y(0) + 16, "text-anchor": "middle", "font-size": 11, text: g.toFixed(1) }));
  }
  svg.append(el("svg:line", { x1: X(0), y1: Y(0), x2: X(top), y2: Y(top), stroke: "#9aa4b2", "stroke-dasharray": "2 3" }));
  svg.append(el("svg:text", { x: X(top / 2), y: Y(0) + 36, "text-anchor": "middle", "font-size": 12, text: "Predicted P(pay)" }));
  svg.append(el("svg:text", { x: 14, y: Y(top / 2), "text-anchor": "middle", "font-size": 12, transform: `rotate(-90 14 ${Y(top / 2)})`, text: "Share that paid" }));
  for (const s of series) {
    const points = s.set.deciles.map((q) => [X(q.mean_predicted), Y(q.observed_rate)]);
    svg.append(el("svg:polyline", { points: points.map((p) => p.join(",")).join(" "), fill: "none", stroke: s.colour, "stroke-width": 2, "stroke-dasharray": s.dash }));
    s.set.deciles.forEach((q, i) => {
      const dot = el("svg:circle", { cx: points[i][0], cy: points[i][1], r: 3.5, fill: s.colour });
      dot.append(el("svg:title", { text: `decile ${q.decile}: predicted ${q.mean_predicted.toFixed(3)}, observed ${q.observed_rate.toFixed(3)} (${count(q.rows)} rows)` }));
      svg.append(dot);
    });
  }
  const legend = el("div", { class: "legend" }, ...series.map((s) =>
    el("span", {}, el("span", { class: "swatch", style: `background:${s.colour}` }), s.name)),
    el("span", {}, "dotted: perfect calibration"));
  const figures = el("table", { class: "table" },
    el("thead", {}, el("tr", {}, el("th", { class: "l", text: "" }), el("th", { text: "rows" }), el("th", { text: "ROC AUC" }), el("th", { text: "Brier" }), el("th", { text: "predicted" }), el("th", { text: "observed" }))),
    el("tbody", {}, ...series.map((s) => el("tr", {},
      el("td", { class: "l", text: s.set === c.held_out ? "held out" : "outcomes" }),
      el("td", { text: count(s.set.rows) }), el("td", { text: s.set.roc_auc.toFixed(3) }), el("td", { text: s.set.brier.toFixed(3) }),
      el("td", { text: s.set.mean_predicted.toFixed(3) }), el("td", { text: s.set.observed_rate.toFixed(3) })))));
  const notes = [];
  if (c.roc_auc_change !== null && c.roc_auc_change !== undefined) {
    notes.push(el("p", { class: "sub", text: `Against the previous plan, ROC AUC on the outcomes moved ${c.roc_auc_change >= 0 ? "+" : "−"}${Math.abs(c.roc_auc_change).toFixed(3)} and the Brier score ${c.brier_change >= 0 ? "+" : "−"}${Math.abs(c.brier_change).toFixed(3)} (lower is better).` }));
  }
  if (c.outcomes && c.outcomes_in_training) {
    notes.push(el("p", { class: "note", text: "The model was trained on this data folder, so its fit to these outcomes flatters it; the held-out line is the honest one." }));
  }
  $("cal-sub").textContent = `Predicted P(pay) against the share that paid, by tenth of the predictions; model ${d.model_version}.`;
  box.replaceChildren(legend, svg, figures, ...notes);
}

function renderBlocked(d) {
  const rules = Object.keys(d.blocked).sort((a, b) => d.blocked[b] - d.blocked[a]);
  if (rules.length === 0) { $("blocked").replaceChildren(el("p", { class: "sub", text: "No strategy was blocked." })); return; }
  const max = Math.max(1, ...rules.map((r) => d.blocked[r]));
  const rows = rules.map((r) => el("tr", {},
    el("td", { class: "l", text: RULE_LABELS[r] || r, title: r }),
    el("td", { style: "width:45%" }, el("div", { style: `height:.7rem;border-radius:2px;background:#6b7a90;width:${(100 * d.blocked[r] / max).toFixed(1)}%` })),
    el("td", { text: count(d.blocked[r]) }),
    el("td", {}, changeSpan(d.blocked_change ? (d.blocked_change[r] ?? 0) : null, "count"))));
  $("blocked").replaceChildren(el("table", { class: "table" },
    el("thead", {}, el("tr", {}, el("th", { class: "l", text: "rule" }), el("th", { text: "" }), el("th", { text: "blocks" }), el("th", { text: "change" }))),
    el("tbody", {}, ...rows)));
}

function tableColumns(d) {
  const strategies = d.queues.map((q) => q.strategy);
  return [
    ["risk_tier", (s) => s.risk_tier], ["dpd_bucket", (s) => s.dpd_bucket],
    ["accounts", (s) => String(s.accounts)], [`balance_${d.currency}`, (s) => s.balance],
    [`expected_value_${d.currency}`, (s) => s.expected_value],
    ["accounts_change", (s) => (s.change ? String(s.change.accounts) : "")],
    ["balance_change", (s) => (s.change ? s.change.balance : "")],
    ["expected_value_change", (s) => (s.change ? s.change.expected_value : "")],
    ...strategies.map((st) => [`mix_${st}`, (s) => String(s.strategy_mix[st] || 0)]),
  ];
}

function renderTable(d) {
  const cols = tableColumns(d).filter(([name]) => !name.startsWith("mix_") || d.segments.some((s) => s.strategy_mix[name.slice(4)]));
  const head = el("tr", {}, ...cols.map(([name]) => el("th", { text: name.replace(/_/g, " ") })));
  const rows = d.segments.filter((s) => s.accounts > 0 || (s.change && s.change.accounts !== 0)).map((s) =>
    el("tr", {}, ...cols.map(([, get], i) => el("td", { class: i < 2 ? "l" : "", text: i < 2 ? get(s) : (get(s) === "" ? "" : groupDigits(get(s))) }))));
  $("segment-table").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
}

function csv(d) {
  const cols = tableColumns(d);
  const quote = (v) => (/[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  const lines = [cols.map(([name]) => quote(name)).join(",")];
  for (const s of d.segments) lines.push(cols.map(([, get]) => quote(get(s))).join(","));
  return lines.join("\n") + "\n";
}

function download() {
  if (!data) return;
  const blob = new Blob([csv(data)], { type: "text/csv" });
  const a = el("a", { href: URL.createObjectURL(blob), download: `segments-plan-${data.plan_id}-${data.day}.csv` });
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

// ---- wiring ----

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const key = $("key").value.trim();
  $("key").value = "";
  if (key) open(key);
});
$("forget").addEventListener("click", () => { sessionStorage.removeItem(KEY); showLogin(""); });
$("refresh").addEventListener("click", () => { const key = sessionStorage.getItem(KEY); if (key) open(key); });
$("download").addEventListener("click", download);
for (const radio of document.querySelectorAll("input[name=metric]")) {
  radio.addEventListener("change", () => { metric = radio.value; if (data) renderHeatmap(data); });
}
let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { if (data) render(); }, 150);
});
setInterval(() => { const key = sessionStorage.getItem(KEY); if (key && data && !document.hidden) open(key); }, 60000);

const saved = sessionStorage.getItem(KEY);
if (saved) open(saved); else showLogin("");
