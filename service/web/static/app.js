// Sortable tables and Plotly plots; everything is served by the app itself (works offline).
"use strict";

function cellValue(td, numeric) {
  const text = td.textContent.trim();
  if (!numeric) return text.toLowerCase();
  const v = parseFloat(text);
  return Number.isNaN(v) ? Infinity : v;  // empty cells sort last
}

function makeSortable(table) {
  table.querySelectorAll("th").forEach((th, col) => {
    th.addEventListener("click", () => {
      const numeric = th.dataset.type === "num";
      const asc = !th.classList.contains("asc");
      table.querySelectorAll("th").forEach((h) => h.classList.remove("asc", "desc"));
      th.classList.add(asc ? "asc" : "desc");
      const body = table.tBodies[0];
      const rows = Array.from(body.rows).filter((r) => !r.classList.contains("empty"));
      rows.sort((a, b) => {
        const x = cellValue(a.cells[col], numeric), y = cellValue(b.cells[col], numeric);
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach((r) => body.appendChild(r));
    });
  });
}

// Shared by every plot. The title sits top left in its own margin and the toolbar (modebar) top
// right, trimmed to a few buttons: a centred title used to sit under the toolbar, unreadable.
const GL_FROM = 2000;  // WebGL traces (scattergl) past this many points
const PLOT_CONFIG = {
  responsive: true, displaylogo: false,
  modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines",
    "hoverClosestCartesian", "hoverCompareCartesian", "zoomIn2d", "zoomOut2d"],
};

function plotLayout(title, extra = {}) {
  return {
    title: { text: title, x: 0, xref: "paper", xanchor: "left", y: 1, yref: "container", yanchor: "top",
             pad: { t: 10 }, font: { size: 15 } },
    margin: { t: 64, r: 20, l: 60, b: 40 },
    // Below the x axis title, not on it.
    legend: { orientation: "h", x: 0, y: -0.3, yanchor: "top" },
    ...extra,
  };
}

// Numbers as the server's templates write them (service/web/pages.py, _fmt_num).
function fmtNum(v, digits = 3) {
  if (v === null || v === undefined) return "";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-2 || a >= 1e4) ? v.toPrecision(digits) : v.toFixed(digits);
}

// What took effect in trial i of a TrialPoints: λ of the regularized layers, a baseline's
// strength, other searched parameters. The λ of other layers changed nothing and are not shown.
function effectiveText(P, i) {
  const parts = [];
  for (const k of Object.keys(P.lam).sort((a, b) => a - b)) {
    const lam = P.lam[k][i];
    if (lam !== null) parts.push("λ" + k + "=" + fmtNum(lam, 4));
  }
  if (P.strength[i] !== null) parts.push(P.family[i] + " strength=" + fmtNum(P.strength[i], 4));
  if (P.other[i]) parts.push(P.other[i]);
  return parts.join(" ");
}

function recommendationPlot(rec) {
  const byLayer = (rows, key) => ({ x: rows.map((r) => "layer " + r.layer), y: rows.map((r) => r[key]) });
  const v = byLayer(rec.variance_ranking, "mean_var");
  const e = byLayer(rec.empirical_ranking, "best_val_error");
  Plotly.newPlot("plot-recommendation", [
    { ...v, type: "bar", name: "mean variance (vanilla)" },
    { ...e, type: "scatter", mode: "markers", marker: { size: 12 }, name: "best val error %", yaxis: "y2" },
  ], plotLayout("Variance (paper's rule) and achieved error per layer", {
    yaxis: { title: { text: "intra-class variance" } },
    yaxis2: { title: { text: "val error %" }, overlaying: "y", side: "right" }, margin: { t: 64, r: 60, l: 60, b: 50 },
  }), PLOT_CONFIG);
}

// The model page's "confirm" buttons: POST from the page (same origin), show what started, or
// only the plan (start=false: nothing runs).
async function postWithToken(url) {
  const headers = {};
  const token = sessionStorage.getItem("nsr-token");
  if (token) headers.Authorization = "Bearer " + token;
  let resp = await fetch(url, { method: "POST", headers });
  if (resp.status === 401) {
    const given = window.prompt("This service needs its write token (NSR_API_TOKEN):");
    if (!given) return resp;
    sessionStorage.setItem("nsr-token", given);
    resp = await fetch(url, { method: "POST", headers: { Authorization: "Bearer " + given } });
  }
  return resp;
}

function confirmForm(form) {
  const out = document.getElementById("confirm-result");
  const planOut = document.getElementById("plan-yaml");
  document.getElementById("plan-button").addEventListener("click", async () => {
    const resp = await postWithToken(form.action.replace("start=true", "start=false"));
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) { out.textContent = "no plan: " + (body.detail || resp.status); return; }
    out.textContent = "The plan (nothing started): " + body.plan.n_trials + " trials over fresh seeds " +
      body.plan.seeds.join(", ") + "; run it with nnictl create --config on this YAML.";
    planOut.textContent = body.plan.yaml;
    planOut.hidden = false;
  });
  form.addEventListener("submit", (ev) => { ev.preventDefault(); startRun(form.action, out); });
  // "Add seeds": the same configurations as the last confirmation, over more fresh seeds.
  const extend = document.getElementById("extend-button");
  if (extend) extend.addEventListener("click", () => startRun(extend.dataset.url, out));
}

async function startRun(url, out) {
  out.textContent = "starting the confirmation experiment…";
  const resp = await postWithToken(url);
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) { out.textContent = "not started: " + (body.detail || resp.status); return; }
  out.textContent = "";
  const a = document.createElement("a");
  a.href = body.nni_url || "#";
  a.textContent = "NNI experiment " + body.nni_id;
  out.append("Started ", a, ": " + body.plan.n_trials + " trials (" +
    body.plan.configurations.length + " configurations × seeds " + body.plan.seeds.join(", ") +
    "); the verdict above uses them once the service has synced them.");
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("confirm-form");
  if (form) confirmForm(form);
  document.querySelectorAll("table.sortable").forEach(makeSortable);
  const recData = document.getElementById("rec-data");
  if (recData) recommendationPlot(JSON.parse(recData.textContent));
});
