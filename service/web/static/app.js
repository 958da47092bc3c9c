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

function experimentPlots(data) {
  const lam = Object.entries(data.lambda).map(([layer, p]) => ({
    x: p.lam, y: p.val_error, text: p.text, mode: "markers", type: "scatter", name: "layer " + layer,
  }));
  Plotly.newPlot("plot-lambda", lam, {
    title: { text: "Validation error vs λ" }, xaxis: { type: "log", title: { text: "λ (log)" } },
    yaxis: { title: { text: "validation error %" } }, margin: { t: 40 },
  }, { responsive: true });
  const variance = [];
  for (const [family, s] of Object.entries(data.variance)) {
    variance.push({ x: s.layer, y: s.var_end, type: "box", name: family + " (end)", boxpoints: "all", jitter: 0.3 });
  }
  const init = Object.values(data.variance)[0];
  if (init) variance.push({ x: init.layer, y: init.var_init, type: "box", name: "at init" });
  Plotly.newPlot("plot-variance", variance, {
    title: { text: "Intra-class variance per layer" }, boxmode: "group",
    xaxis: { title: { text: "layer" }, type: "category" }, yaxis: { title: { text: "variance" } }, margin: { t: 40 },
  }, { responsive: true });
  const curves = data.curves.map((c) => ({
    x: c.curve.map((_, i) => i + 1), y: c.curve, mode: "lines+markers", type: "scatter",
    name: c.trial + " (layers " + c.layers + ")",
  }));
  Plotly.newPlot("plot-curves", curves, {
    title: { text: "Validation error per epoch, best trials" },
    xaxis: { title: { text: "epoch" } }, yaxis: { title: { text: "validation error %" } }, margin: { t: 40 },
  }, { responsive: true });
}

function recommendationPlot(rec) {
  const byLayer = (rows, key) => ({ x: rows.map((r) => "layer " + r.layer), y: rows.map((r) => r[key]) });
  const v = byLayer(rec.variance_ranking, "mean_var");
  const e = byLayer(rec.empirical_ranking, "best_val_error");
  Plotly.newPlot("plot-recommendation", [
    { ...v, type: "bar", name: "mean variance (vanilla)" },
    { ...e, type: "scatter", mode: "markers", marker: { size: 12 }, name: "best val error %", yaxis: "y2" },
  ], {
    title: { text: "Variance (paper's rule) and achieved error per layer" },
    yaxis: { title: { text: "intra-class variance" } },
    yaxis2: { title: { text: "val error %" }, overlaying: "y", side: "right" }, margin: { t: 40 }, legend: { orientation: "h", y: -0.15 },
  }, { responsive: true });
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
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    out.textContent = "starting the confirmation experiment…";
    const resp = await postWithToken(form.action);
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) { out.textContent = "not started: " + (body.detail || resp.status); return; }
    out.textContent = "";
    const a = document.createElement("a");
    a.href = body.nni_url || "#";
    a.textContent = "NNI experiment " + body.nni_id;
    out.append("Started ", a, ": " + body.plan.n_trials + " trials (" +
      body.plan.configurations.length + " configurations × seeds " + body.plan.seeds.join(", ") +
      "); the verdict above uses them once the service has synced them.");
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("confirm-form");
  if (form) confirmForm(form);
  document.querySelectorAll("table.sortable").forEach(makeSortable);
  const plotData = document.getElementById("plot-data");
  if (plotData) experimentPlots(JSON.parse(plotData.textContent));
  const recData = document.getElementById("rec-data");
  if (recData) recommendationPlot(JSON.parse(recData.textContent));
});
