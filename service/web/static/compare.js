// The compare page: several experiments or (model, data set, budget) groups, each a TrialPoints
// series, drawn on top of each other: best-so-far curves, λ–error slices per layer, and the
// best configuration of each.
"use strict";

(function () {
  const el = document.getElementById("compare-data");
  if (!el) return;
  const SERIES = JSON.parse(el.textContent);
  const COLORS = ["#1e88e5", "#e53935", "#43a047", "#fb8c00", "#8e24aa", "#00acc1", "#6d4c41", "#c0ca33"];
  const color = (s) => COLORS[s % COLORS.length];
  const total = SERIES.reduce((n, s) => n + s.points.trial.length, 0);
  const type = total > GL_FROM ? "scattergl" : "scatter";

  // Best so far against the trial's rank in completion order within its series.
  const best = SERIES.map((s, c) => {
    const P = s.points;
    const x = [], y = [];
    let n = 0, b = Infinity;
    P.val_error.forEach((v) => {
      if (v === null) return;
      n++;
      if (v < b) b = v;
      x.push(n);
      y.push(b);
    });
    return { x, y, type, mode: "lines", line: { shape: "hv", color: color(c), width: 2 }, name: s.label };
  });
  Plotly.newPlot("plot-best", best, plotLayout("Best validation error so far", {
    showlegend: true, xaxis: { title: { text: "trials completed" } },
    yaxis: { title: { text: "best validation error %" } },
  }), PLOT_CONFIG);

  const layers = [...new Set(SERIES.flatMap((s) => Object.keys(s.points.lam)))].sort((a, b) => a - b);
  const box = document.getElementById("slices");
  for (const k of layers) {
    const div = document.createElement("div");
    div.id = "plot-slice-" + k;
    div.className = "plot";
    box.append(div);
    const traces = SERIES.map((s, c) => {
      const P = s.points;
      const col = P.lam[k] || [];
      const idx = [];
      col.forEach((lam, i) => { if (lam !== null && P.val_error[i] !== null) idx.push(i); });
      return {
        x: idx.map((i) => col[i]), y: idx.map((i) => P.val_error[i]), text: idx.map((i) => P.trial[i] + " · layers " + P.layers[i]),
        type, mode: "markers", name: s.label, marker: { color: color(c), size: total > GL_FROM ? 4 : 7, opacity: 0.6 },
        hovertemplate: "λ%{x:.3g}: %{y:.3f}%<br>%{text}<extra>" + s.label + "</extra>",
      };
    });
    Plotly.newPlot(div, traces, plotLayout("Validation error vs λ of layer " + k, {
      showlegend: true, xaxis: { type: "log", title: { text: "λ" + k + " (log), where it took effect" } },
      yaxis: { title: { text: "validation error %" } },
    }), PLOT_CONFIG);
  }

  const body = document.querySelector("#best-configs tbody");
  SERIES.forEach((s, c) => {
    const P = s.points;
    let bi = -1;
    P.val_error.forEach((v, i) => { if (v !== null && (bi < 0 || v < P.val_error[bi])) bi = i; });
    const tr = document.createElement("tr");
    const cells = bi < 0
      ? [s.label, P.trial.length, "no trial with a validation error", "", "", "", "", ""]
      : [s.label, P.trial.length, P.experiments[P.experiment[bi]] + " / " + P.trial[bi], P.layers[bi], P.family[bi],
         fmtNum(P.val_error[bi]), fmtNum(P.test_error[bi]), effectiveText(P, bi)];
    cells.forEach((text, j) => {
      const td = document.createElement("td");
      td.textContent = String(text);
      if (j === 0) td.style.color = color(c);
      if (j === 7) td.className = "params";
      tr.append(td);
    });
    body.append(tr);
  });
})();
