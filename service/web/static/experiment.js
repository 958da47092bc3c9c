// The experiment page. The trials come embedded in the page as columns (TrialPoints); the
// filters run here, in the browser, and the table and every plot redraw from the same filtered
// set. Importance is computed by the server (optuna) and fetched with the same filters as query
// parameters, so a notebook calling the REST endpoint gets the page's numbers.
"use strict";

(function () {
  const DATA = JSON.parse(document.getElementById("exp-data").textContent);
  const P = DATA.points;  // replaced in place when the page reloads the trials (running NNI)
  let N, LAM_LAYERS, VAR_LAYERS, ALL;
  const ROWS_PER_PAGE = 50;
  const PARCOORDS_MAX = 2000;
  const FAMILY_COLORS = { vanilla: "#607d8b", nsr: "#1e88e5", unknown: "#9e9e9e" };
  const PALETTE = ["#1e88e5", "#e53935", "#43a047", "#fb8c00", "#8e24aa", "#00acc1", "#6d4c41", "#c0ca33"];

  const distinct = (col) => [...new Set(col.filter((v) => v !== null))].sort();

  function derive() {
    N = P.trial.length;
    LAM_LAYERS = Object.keys(P.lam).sort((a, b) => a - b);
    VAR_LAYERS = Object.keys(P.var_end).sort((a, b) => a - b);
    ALL = {
      status: distinct(P.status), regularizer: distinct(P.family),
      layers: distinct(P.layers), budget: distinct(P.budget),
    };
  }
  derive();
  const state = {
    status: new Set(ALL.status), regularizer: new Set(ALL.regularizer),
    layers: new Set(), budget: new Set(), min: null, max: null,
    sort: "val_error", desc: false, page: 0,
  };

  // ------------------------------------------------------------------ filters
  // Same meaning as storage.queries.TrialSelection: a checkbox group with every box ticked and
  // an empty multi-select mean "any"; an error bound drops trials without a validation error.
  function matches(i) {
    if (state.status.size < ALL.status.length && !state.status.has(P.status[i])) return false;
    if (state.regularizer.size < ALL.regularizer.length && !state.regularizer.has(P.family[i])) return false;
    if (state.layers.size && !state.layers.has(P.layers[i])) return false;
    if (state.budget.size && !state.budget.has(P.budget[i])) return false;
    const v = P.val_error[i];
    if (state.min !== null && !(v !== null && v >= state.min)) return false;
    if (state.max !== null && !(v !== null && v <= state.max)) return false;
    return true;
  }

  function selected() {
    const out = [];
    for (let i = 0; i < N; i++) if (matches(i)) out.push(i);
    return out;
  }

  function queryString() {
    const q = new URLSearchParams();
    if (state.status.size < ALL.status.length) state.status.forEach((v) => q.append("status", v));
    if (state.regularizer.size < ALL.regularizer.length) state.regularizer.forEach((v) => q.append("regularizer", v));
    state.layers.forEach((v) => q.append("layers", v));
    state.budget.forEach((v) => q.append("budget", v));
    if (state.min !== null) q.set("min_error", state.min);
    if (state.max !== null) q.set("max_error", state.max);
    return q.toString();
  }

  function readQuery() {
    const q = new URLSearchParams(location.search);
    const pick = (key, all) => {
      const vals = q.getAll(key).filter((v) => all.includes(v));
      return vals.length ? new Set(vals) : null;
    };
    state.status = pick("status", ALL.status) || state.status;
    state.regularizer = pick("regularizer", ALL.regularizer) || state.regularizer;
    state.layers = pick("layers", ALL.layers) || new Set();
    state.budget = pick("budget", ALL.budget) || new Set();
    const num = (key) => (q.get(key) !== null && q.get(key) !== "" && !isNaN(+q.get(key)) ? +q.get(key) : null);
    state.min = num("min_error");
    state.max = num("max_error");
  }

  function checkboxes(id, key) {
    const box = document.getElementById(id);
    box.replaceChildren();
    for (const v of ALL[key]) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "checkbox";
      input.value = v;
      input.checked = state[key].has(v);
      input.name = key;
      input.addEventListener("change", () => {
        input.checked ? state[key].add(v) : state[key].delete(v);
        changed();
      });
      label.append(input, " " + v + " ", countBadge(key, v));
      box.append(label);
    }
  }

  function countBadge(key, v) {
    const col = { status: P.status, regularizer: P.family, layers: P.layers, budget: P.budget }[key];
    const span = document.createElement("span");
    span.className = "muted";
    span.textContent = "(" + col.filter((x) => x === v).length + ")";
    return span;
  }

  function multiSelect(id, key) {
    const sel = document.getElementById(id);
    sel.replaceChildren();
    for (const v of ALL[key]) {
      const opt = document.createElement("option");
      opt.value = v;
      opt.textContent = v;
      opt.selected = state[key].has(v);
      sel.append(opt);
    }
    sel.onchange = () => {
      state[key] = new Set([...sel.selectedOptions].map((o) => o.value));
      changed();
    };
  }

  function buildFilters() {
    checkboxes("f-status", "status");
    checkboxes("f-regularizer", "regularizer");
    multiSelect("f-layers", "layers");
    multiSelect("f-budget", "budget");
    const min = document.getElementById("f-min"), max = document.getElementById("f-max");
    min.value = state.min ?? "";
    max.value = state.max ?? "";
    const bound = (input, key) => input.addEventListener("input", () => {
      state[key] = input.value === "" || isNaN(+input.value) ? null : +input.value;
      changed();
    });
    bound(min, "min");
    bound(max, "max");
    document.getElementById("f-reset").onclick = () => {
      history.replaceState(null, "", location.pathname);
      state.status = new Set(ALL.status);
      state.regularizer = new Set(ALL.regularizer);
      state.layers = new Set();
      state.budget = new Set();
      state.min = state.max = null;
      buildFilters();
      changed();
    };
  }

  // ------------------------------------------------------------------ text helpers
  const fmt = fmtNum;
  const effective = (i) => effectiveText(P, i);

  const hover = (i) => P.trial[i] + " · layers " + P.layers[i] + (effective(i) ? " · " + effective(i) : "");

  // ------------------------------------------------------------------ table
  function sortKey(i) {
    const col = P[state.sort];
    return col[i];
  }

  function renderTable(rows) {
    const sorted = rows.slice().sort((a, b) => {
      const x = sortKey(a), y = sortKey(b);
      if (x === null && y === null) return a - b;
      if (x === null) return 1;  // missing values last in both directions
      if (y === null) return -1;
      const c = x < y ? -1 : x > y ? 1 : a - b;
      return state.desc ? -c : c;
    });
    const pages = Math.max(1, Math.ceil(sorted.length / ROWS_PER_PAGE));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * ROWS_PER_PAGE;
    const shown = sorted.slice(start, start + ROWS_PER_PAGE);
    const body = document.querySelector("#trials tbody");
    const frag = document.createDocumentFragment();
    for (const i of shown) {
      const tr = document.createElement("tr");
      tr.className = "status-" + P.status[i].toLowerCase() +
        (P.partial[i] && P.status[i] !== "FAILED" ? " partial" : "");
      const cells = [
        null, P.sequence[i], P.status[i] + (P.partial[i] && P.status[i] !== "EARLY_STOPPED" ? " (partial)" : ""),
        P.layers[i], P.family[i], P.seed[i], fmt(P.val_error[i]), fmt(P.test_error[i]),
        P.best_epoch[i], effective(i),
      ];
      cells.forEach((text, c) => {
        const td = document.createElement("td");
        if (c === 0) {
          const a = document.createElement("a");
          a.href = "/api/experiments/" + encodeURIComponent(P.experiments[P.experiment[i]]) +
            "/trials/" + encodeURIComponent(P.trial[i]);
          a.textContent = P.trial[i];
          td.append(a);
        } else {
          td.textContent = text === null || text === undefined ? "" : String(text);
        }
        if (c === 9) td.className = "params";
        tr.append(td);
      });
      frag.append(tr);
    }
    if (!shown.length) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      tr.innerHTML = '<td colspan="10">No trial matches the filters.</td>';
      frag.append(tr);
    }
    body.replaceChildren(frag);
    document.getElementById("table-range").textContent = sorted.length
      ? "(" + (start + 1) + "–" + (start + shown.length) + " of " + sorted.length + " shown)"
      : "(none of " + N + ")";
    document.getElementById("page-prev").disabled = state.page === 0;
    document.getElementById("page-next").disabled = state.page >= pages - 1;
  }

  function setupTable() {
    document.querySelectorAll("#trials th[data-key]").forEach((th) => {
      th.addEventListener("click", () => {
        const key = th.dataset.key;
        state.desc = state.sort === key ? !state.desc : false;
        state.sort = key;
        document.querySelectorAll("#trials th").forEach((h) => h.classList.remove("asc", "desc"));
        th.classList.add(state.desc ? "desc" : "asc");
        state.page = 0;
        renderTable(current);
      });
    });
    document.getElementById("page-prev").onclick = () => { state.page--; renderTable(current); };
    document.getElementById("page-next").onclick = () => { state.page++; renderTable(current); };
  }

  // ------------------------------------------------------------------ plots
  const scatterType = (n) => (n > GL_FROM ? "scattergl" : "scatter");

  function historyPlot(rows) {
    const done = rows.filter((i) => P.val_error[i] !== null);
    const byFamily = {};
    for (const i of done) (byFamily[P.family[i]] ||= []).push(i);
    const type = scatterType(done.length);
    const traces = Object.entries(byFamily).map(([fam, idx]) => ({
      x: idx.map((i) => i + 1), y: idx.map((i) => P.val_error[i]), text: idx.map(hover),
      type, mode: "markers", name: fam, marker: { size: done.length > GL_FROM ? 4 : 7, color: FAMILY_COLORS[fam], opacity: 0.7 },
      hovertemplate: "#%{x}: %{y:.3f}%<br>%{text}<extra>" + fam + "</extra>",
    }));
    const bx = [], by = [];
    let best = Infinity;
    for (const i of done) {
      if (P.val_error[i] < best) {
        best = P.val_error[i];
        bx.push(i + 1);
        by.push(best);
      }
    }
    if (done.length) {
      bx.push(done[done.length - 1] + 1);
      by.push(best);
    }
    traces.push({ x: bx, y: by, type, mode: "lines", line: { shape: "hv", color: "#d81b60", width: 2 }, name: "best so far" });
    Plotly.react("plot-history", traces, plotLayout("Optimization history", {
      xaxis: { title: { text: "trial, in completion order" } }, yaxis: { title: { text: "validation error %" } },
    }), PLOT_CONFIG);
  }

  function slicePlot(rows) {
    const traces = [];
    let n = 0;
    for (const k of LAM_LAYERS) {
      const idx = rows.filter((i) => P.lam[k][i] !== null && P.val_error[i] !== null);
      n += idx.length;
      traces.push({ idx, k });
    }
    const type = scatterType(n);
    const data = traces.map(({ idx, k }, c) => ({
      x: idx.map((i) => P.lam[k][i]), y: idx.map((i) => P.val_error[i]), text: idx.map(hover),
      type, mode: "markers", name: "layer " + k,
      marker: { size: n > GL_FROM ? 4 : 7, color: PALETTE[c % PALETTE.length], opacity: 0.7 },
      hovertemplate: "λ%{x:.3g}: %{y:.3f}%<br>%{text}<extra>layer " + k + "</extra>",
    }));
    Plotly.react("plot-slice", data, plotLayout("Validation error vs λ, per layer", {
      xaxis: { type: "log", title: { text: "λ of the layer (log), where it took effect" } },
      yaxis: { title: { text: "validation error %" } },
    }), PLOT_CONFIG);
  }

  function parcoordsPlot(rows) {
    // Parallel coordinates draw every line on each brush; past a few thousand lines a laptop
    // without a GPU takes seconds, so the best PARCOORDS_MAX are drawn (the title says so).
    const all = rows.filter((i) => P.val_error[i] !== null);
    const done = all.length > PARCOORDS_MAX
      ? all.slice().sort((a, b) => P.val_error[a] - P.val_error[b]).slice(0, PARCOORDS_MAX) : all;
    const dims = [];
    const categorical = (label, col) => {
      const values = distinct(done.map((i) => col[i]));
      if (values.length < 2 && label !== "layers") return;
      const pos = new Map(values.map((v, j) => [v, j]));
      dims.push({ label, values: done.map((i) => pos.get(col[i])), tickvals: values.map((_, j) => j), ticktext: values.map(String) });
    };
    categorical("layers", P.layers);
    for (const k of LAM_LAYERS) {
      // A layer that was not regularized gets "off" below the λ axis: its λ changed nothing.
      const logs = done.map((i) => (P.lam[k][i] !== null ? Math.log10(P.lam[k][i]) : null));
      const on = logs.filter((v) => v !== null);
      if (!on.length) continue;
      const lo = Math.floor(Math.min(...on)), hi = Math.ceil(Math.max(...on));
      const off = lo - 1;
      const ticks = [off];
      for (let d = lo; d <= hi; d++) ticks.push(d);
      dims.push({
        label: "log₁₀ λ" + k, values: logs.map((v) => (v === null ? off : v)), range: [off, hi],
        tickvals: ticks, ticktext: ticks.map((t) => (t === off ? "off" : String(t))),
      });
    }
    categorical("regularizer", P.family);
    categorical("seed", P.seed);
    categorical("budget", P.budget);
    const err = done.map((i) => P.val_error[i]);
    dims.push({ label: "val error %", values: err });
    const trace = {
      type: "parcoords", dimensions: dims,
      line: { color: err, colorscale: "Viridis", reversescale: true, showscale: true, colorbar: { title: { text: "error %" } } },
    };
    const title = done.length < all.length
      ? "Parallel coordinates: best " + done.length + " of " + all.length + " trials"
      : "Parallel coordinates (" + done.length + " trials)";
    Plotly.react("plot-parcoords", [trace], plotLayout(title, {
      margin: { t: 90, l: 60, r: 60, b: 30 },
    }), PLOT_CONFIG);
  }

  function curvesPlot(rows) {
    const withCurve = rows.filter((i) => P.curves[i].length);
    const best = withCurve.filter((i) => P.val_error[i] !== null)
      .sort((a, b) => P.val_error[a] - P.val_error[b]).slice(0, 5);
    const bestSet = new Set(best);
    const total = withCurve.reduce((s, i) => s + P.curves[i].length, 0);
    const type = scatterType(total);
    // All curves of a kind in one trace, broken by nulls: thousands of traces would not draw.
    const joined = (idx) => {
      const x = [], y = [], text = [];
      for (const i of idx) {
        P.curves[i].forEach((v, e) => { x.push(e + 1); y.push(v); text.push(P.trial[i]); });
        x.push(null); y.push(null); text.push(null);
      }
      return { x, y, text };
    };
    // Stopped early: NNI's assessor ended it, or it ran fewer epochs than its budget. A failed or
    // running trial is partial too, but it was not stopped for being bad.
    const stoppedEarly = (i) => P.status[i] === "EARLY_STOPPED" ||
      (P.partial[i] && P.status[i] === "SUCCEEDED");
    const finished = withCurve.filter((i) => !stoppedEarly(i) && !bestSet.has(i));
    const stopped = withCurve.filter(stoppedEarly);
    const traces = [
      { ...joined(finished), type, mode: "lines", name: "trials (" + finished.length + ")",
        line: { color: "rgba(120,144,156,0.35)", width: 1 }, hovertemplate: "%{text} epoch %{x}: %{y:.3f}%<extra></extra>" },
      { ...joined(stopped), type, mode: "lines", name: "early-stopped (" + stopped.length + ")",
        line: { color: "rgba(251,140,0,0.7)", width: 1.5, dash: "dot" }, hovertemplate: "%{text} (early-stopped) epoch %{x}: %{y:.3f}%<extra></extra>" },
      { x: stopped.map((i) => P.curves[i].length), y: stopped.map((i) => P.curves[i][P.curves[i].length - 1]),
        text: stopped.map((i) => P.trial[i]), type, mode: "markers", name: "stopped here",
        marker: { symbol: "x", size: 8, color: "#e65100" }, hovertemplate: "%{text} stopped after epoch %{x}<extra></extra>" },
    ];
    best.forEach((i, c) => traces.push({
      x: P.curves[i].map((_, e) => e + 1), y: P.curves[i], type: "scatter", mode: "lines+markers",
      name: P.trial[i] + " (" + fmt(P.val_error[i]) + "%)", line: { color: PALETTE[c % PALETTE.length], width: 2.5 },
      marker: { size: 5 }, hovertemplate: P.trial[i] + " epoch %{x}: %{y:.3f}%<extra>" + P.layers[i] + "</extra>",
    }));
    Plotly.react("plot-curves", traces, plotLayout("Validation error per epoch (best 5 in colour)", {
      xaxis: { title: { text: "epoch" } }, yaxis: { title: { text: "validation error %" } },
    }), PLOT_CONFIG);
  }

  function variancePlot(rows) {
    const byFamily = {};
    for (const i of rows) (byFamily[P.family[i]] ||= []).push(i);
    const traces = [];
    for (const [fam, idx] of Object.entries(byFamily)) {
      const x = [], y = [];
      for (const k of VAR_LAYERS) {
        for (const i of idx) {
          const v = P.var_end[k][i];
          if (v !== null && v !== undefined) { x.push("layer " + k); y.push(v); }
        }
      }
      if (!y.length) continue;
      traces.push({ x, y, type: "box", name: fam, marker: { color: FAMILY_COLORS[fam] },
        boxpoints: y.length > 1500 ? false : "all", jitter: 0.3, pointpos: 0 });
    }
    Plotly.react("plot-variance", traces, plotLayout("Intra-class variance at the end, per layer", {
      boxmode: "group", xaxis: { type: "category" }, yaxis: { title: { text: "variance" } },
    }), PLOT_CONFIG);
  }

  // ------------------------------------------------------------------ importance (server)
  let importanceRequest = null;
  let importanceTimer = null;

  function pretty(param) {
    const m = /^lambda_(\d+)$/.exec(param);
    return m ? "λ" + m[1] : param;
  }

  function drawImportance(result, message) {
    const notes = document.getElementById("importance-notes");
    const traces = [];
    const lines = [];
    if (result) {
      // Bars are the importances before normalization: comparable across groups. Normalized,
      // a lone λ that changes nothing would fill its group's bar (its share is of nothing);
      // the share is in the hover.
      result.groups.forEach((g, c) => {
        const entries = Object.entries(g.raw).reverse();
        if (!entries.length) {
          lines.push(g.scope + ": " + (g.note || "no importances"));
          return;
        }
        const all = g.scope === "all trials";
        traces.push({
          type: "bar", orientation: "h", name: g.scope + " (" + g.n_trials + ")",
          y: entries.map(([p]) => (all ? pretty(p) : pretty(p) + " · " + g.scope)),
          x: entries.map(([, v]) => v), customdata: entries.map(([p]) => g.importances[p]),
          marker: { color: PALETTE[c % PALETTE.length] },
          hovertemplate: "%{y}: %{x:.3g} (share %{customdata:.2f} of its group)<extra></extra>",
        });
      });
    }
    notes.textContent = message || lines.join(" · ");
    const method = result ? (result.method === "fanova" ? "fANOVA" : "PED-ANOVA") : "PED-ANOVA";
    Plotly.react("plot-importance", traces, plotLayout("Hyperparameter importance (" + method + ")", {
      xaxis: { title: { text: "importance, not normalized (comparable across groups)" }, rangemode: "tozero" },
      // One bar per row: each label belongs to one group, so overlay, and every label shown.
      barmode: "overlay", yaxis: { automargin: true, dtick: 1, tickfont: { size: 11 } },
    }), PLOT_CONFIG);
  }

  function fetchImportance() {
    if (importanceRequest) importanceRequest.abort();
    const ctrl = new AbortController();
    importanceRequest = ctrl;
    const url = "/api/experiments/" + encodeURIComponent(DATA.nni_id) + "/importance?" + queryString();
    document.getElementById("importance-notes").textContent = "computing importance…";
    fetch(url, { signal: ctrl.signal })
      .then((r) => r.json().then((body) => ({ ok: r.ok, body })))
      .then(({ ok, body }) => {
        if (ctrl !== importanceRequest) return;
        if (ok) drawImportance(body, null);
        else drawImportance(null, "importance: " + (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)));
        document.getElementById("plot-importance").dataset.query = queryString();
      })
      .catch((e) => { if (e.name !== "AbortError") drawImportance(null, "importance: " + e); });
  }

  // ------------------------------------------------------------------ wiring
  let current = [];
  let renders = 0;

  function render() {
    const t0 = performance.now();
    const generation = ++renders;
    current = selected();
    delete document.body.dataset.rendered;
    document.getElementById("f-count").textContent = current.length + " of " + N + " trials";
    const timings = {};
    const steps = [["table", renderTable], ["history", historyPlot], ["slice", slicePlot],
      ["curves", curvesPlot], ["variance", variancePlot], ["parcoords", parcoordsPlot]];
    // One plot per task: the page answers clicks between plots, and a newer filter change
    // drops what is left of an older redraw.
    const step = (k) => {
      if (generation !== renders) return;
      if (k === steps.length) {
        // Read by the browser tests and the benchmark: how long one redraw took, and of what.
        document.body.dataset.renderMs = Math.round(performance.now() - t0);
        document.body.dataset.renderTimings = JSON.stringify(timings);
        document.body.dataset.rendered = String(current.length);
        return;
      }
      const t = performance.now();
      steps[k][1](current);
      timings[steps[k][0]] = Math.round(performance.now() - t);
      setTimeout(() => step(k + 1), 0);
    };
    step(0);
  }

  function changed() {
    const qs = queryString();
    history.replaceState(null, "", location.pathname + (qs ? "?" + qs : ""));
    state.page = 0;
    render();
    clearTimeout(importanceTimer);
    importanceTimer = setTimeout(fetchImportance, 250);  // typing an error bound: one request
  }

  // ------------------------------------------------------------------ live reload
  // While NNI's manager runs, reload the trials every refresh_ms; a checkbox group that had
  // every box ticked keeps meaning "any", so new statuses and families show up ticked.
  function reload() {
    const id = encodeURIComponent(DATA.nni_id);
    Promise.all([fetch("/api/experiments/" + id + "/points"), fetch("/api/experiments/" + id)])
      .then(([a, b]) => (a.ok && b.ok ? Promise.all([a.json(), b.json()]) : null))
      .then((got) => {
        if (!got) return;
        const [points, exp] = got;
        const badge = document.getElementById("exp-badge");
        badge.textContent = exp.status;
        badge.className = "badge exp-" + exp.status.toLowerCase();
        document.getElementById("exp-counts").textContent =
          exp.n_trials + " trials (" + exp.n_succeeded + " succeeded)";
        if (exp.status === "STOPPED") clearInterval(timer);
        if (JSON.stringify(points) === JSON.stringify(P)) return;
        const allStatus = state.status.size === ALL.status.length;
        const allFamily = state.regularizer.size === ALL.regularizer.length;
        Object.assign(P, points);
        derive();
        if (allStatus) state.status = new Set(ALL.status);
        if (allFamily) state.regularizer = new Set(ALL.regularizer);
        buildFilters();
        render();
        fetchImportance();
      })
      .catch(() => {});  // the next tick tries again
  }
  const timer = DATA.refresh_ms > 0 ? setInterval(reload, DATA.refresh_ms) : null;

  readQuery();
  buildFilters();
  setupTable();
  drawImportance(null, "computing importance…");
  render();
  fetchImportance();
})();
