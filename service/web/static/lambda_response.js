// The fitted λ-response of the model and experiment pages (templates/_lambda_response.html),
// drawn from GET …/lambda-response: per NSR layer subset of one layer the fitted mean with its
// ±2 sd band over the trials it was fitted on, the recommended λ and the near-optimal range; of
// two layers a contour of the fitted mean. Uses app.js's plotLayout, PLOT_CONFIG and fmtNum.
"use strict";

(function () {
  const box = document.getElementById("lambda-response");
  if (!box) return;
  const status = document.getElementById("lambda-response-status");
  const plots = document.getElementById("lambda-response-plots");
  const RETRIES = 20;  // a 503 says the fit is still being computed: ask again

  // The experiment page: the budget with the most full-budget trials of this experiment.
  function experimentBudget() {
    const el = document.getElementById("exp-data");
    if (!el) return "";
    try {
      const P = JSON.parse(el.textContent).points;
      const n = {};
      P.budget.forEach((b, i) => { if (b && !P.partial[i]) n[b] = (n[b] || 0) + 1; });
      return Object.keys(n).sort((a, b) => n[b] - n[a])[0] || "";
    } catch (e) {
      return "";
    }
  }

  const budget = box.dataset.budget || experimentBudget();
  const url = box.dataset.url + (budget ? "?budget=" + encodeURIComponent(budget) : "");

  function load(tries) {
    fetch(url).then((r) => {
      if (r.status === 503 && tries > 0) {
        status.textContent = "the fit is being computed…";
        setTimeout(() => load(tries - 1), 3000);
        return null;
      }
      if (!r.ok) return r.text().then((t) => { throw new Error(`${r.status} ${t.slice(0, 200)}`); });
      return r.json().then(draw);
    }).catch((e) => { status.textContent = `no λ-response: ${e.message}`; });
  }

  const lamText = (lams) => Object.entries(lams).map(([k, v]) => `λ${k} = ${fmtNum(v, 3)}`).join(", ");

  function note(text, cls) {
    const p = document.createElement("p");
    p.className = cls;
    p.textContent = text;
    plots.before(p);
  }

  function plotDiv(r) {
    const div = document.createElement("div");
    div.id = "lr-plot-" + r.layers.join("-");
    div.className = "plot lr-" + r.layers.length + "d";
    plots.appendChild(div);
    return div;
  }

  function oneLayer(r) {
    const k = String(r.layers[0]);
    const x = r.grid[k];
    const [lo, hi] = r.range[k];
    const traces = [
      { x, y: r.band_low, mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false },
      { x, y: r.band_high, mode: "lines", line: { width: 0 }, fill: "tonexty",
        fillcolor: "rgba(30,136,229,0.22)", name: "±2 sd band", hoverinfo: "skip" },
      { x, y: r.mean, mode: "lines", line: { color: "#1e88e5", width: 2 }, name: "fitted mean" },
      { x: r.trial_lambdas[k], y: r.trial_errors, mode: "markers", name: `${r.n_trials} trials`,
        marker: { size: 5, color: "rgba(96,125,139,0.6)" } },
    ];
    const layout = plotLayout(`layer ${k}: recommended λ = ${fmtNum(r.recommended[k], 3)} (range ${fmtNum(lo, 3)}–${fmtNum(hi, 3)})`, {
      xaxis: { type: "log", title: { text: `λ of layer ${k}` } },
      yaxis: { title: { text: "validation error %" } },
      shapes: [
        { type: "rect", xref: "x", yref: "paper", x0: lo, x1: hi, y0: 0, y1: 1, line: { width: 0 },
          fillcolor: "rgba(67,160,71,0.12)" },
        { type: "line", xref: "x", yref: "paper", x0: r.recommended[k], x1: r.recommended[k], y0: 0, y1: 1,
          line: { color: "#43a047", dash: "dash" } },
      ],
    });
    return Plotly.newPlot(plotDiv(r), traces, layout, PLOT_CONFIG);
  }

  function twoLayers(r) {
    // mean is row-major, the first layer along the rows: rows are y, columns x.
    const [a, b] = r.layers.map(String);
    const ya = r.grid[a].map(Math.log10), xb = r.grid[b].map(Math.log10);
    const z = ya.map((_, i) => r.mean.slice(i * xb.length, (i + 1) * xb.length));
    const traces = [
      { type: "contour", x: xb, y: ya, z, colorscale: "Viridis", reversescale: true, name: "fitted mean",
        colorbar: { title: { text: "val error %" } }, contours: { coloring: "heatmap" } },
      { x: r.trial_lambdas[b].map(Math.log10), y: r.trial_lambdas[a].map(Math.log10), mode: "markers",
        name: `${r.n_trials} trials`, text: r.trial_errors.map((e) => `val error ${fmtNum(e, 3)} %`),
        marker: { size: 4, color: "rgba(255,255,255,0.7)", line: { width: 0.5, color: "#333" } } },
      { x: [Math.log10(r.recommended[b])], y: [Math.log10(r.recommended[a])], mode: "markers",
        name: "recommended", marker: { symbol: "star", size: 14, color: "#e53935" } },
    ];
    const layout = plotLayout(`layers ${a},${b}: recommended ${lamText(r.recommended)}`, {
      xaxis: { title: { text: `log10 λ of layer ${b}` } },
      yaxis: { title: { text: `log10 λ of layer ${a}` } },
    });
    return Plotly.newPlot(plotDiv(r), traces, layout, PLOT_CONFIG);
  }

  function draw(body) {
    const drawn = [];
    for (const r of body.responses) {
      if (!r.fitted) {
        note(`layers ${r.layers.join(",")}: no fit — ${r.reason}`, "muted lr-unfitted");
      } else if (r.layers.length === 1) {
        drawn.push(oneLayer(r));
      } else if (r.layers.length === 2) {
        drawn.push(twoLayers(r));
      }
    }
    status.textContent = body.responses.length
      ? `budget ${body.budget}; near-optimal range: where the fitted mean is within one noise sd of its minimum (shaded)`
      : `budget ${body.budget}: no NSR trial on one or two layers yet`;
    Promise.all(drawn).then(() => box.setAttribute("data-drawn", ""));
  }

  load(RETRIES);
})();
