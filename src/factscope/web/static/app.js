// factscope's page: one section per view, each drawing what the server computed.
// No framework and no build step; charts with plotly.js, served by the app from the
// installed `plotly` Python package. Every server error arrives as {"error": "..."} and is
// shown in the view's red box, never as a stack trace.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const views = {};  // name -> {init(section)}
let info = null;

// ---- talking to the server -------------------------------------------------------------

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  };
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    throw new Error("the server cannot be reached; is `factscope serve` still running?");
  }
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const message = data && data.error ? data.error : `the server answered ${response.status}`;
    throw new Error(message);
  }
  return {status: response.status, data};
}

function showError(section, error) {
  const box = $(".error", section);
  if (!box) return;
  if (error) {
    box.textContent = String(error.message || error);
    box.hidden = false;
  } else {
    box.textContent = "";
    box.hidden = true;
  }
}

// Start a job, follow its progress over server-sent events, resolve with its result.
function runJob(section, kind, body) {
  const bar = $(".job progress", section), status = $(".job .status", section);
  const cancel = $("button.cancel", section);
  showError(section, null);
  bar.hidden = false; bar.value = 0; status.textContent = "starting…";
  const finish = () => { bar.hidden = true; if (cancel) cancel.hidden = true; };
  return api(`/api/jobs/${kind}`, body).then(({data: job}) => new Promise((resolve, reject) => {
    if (job.state === "done") {
      finish(); status.textContent = job.cached ? "done (cached)" : "done";
      resolve(job.result); return;
    }
    if (cancel) {
      cancel.hidden = false;
      cancel.onclick = () => api(`/api/jobs/${job.id}/cancel`, {}).catch(() => {});
    }
    const events = new EventSource(`/api/jobs/${job.id}/events`);
    const update = (event) => {
      const state = JSON.parse(event.data);
      bar.value = state.progress;
      const where = state.state === "queued" && state.position ? ` (position ${state.position})` : "";
      status.textContent = `${state.state}${where}: ${state.message} ${Math.round(100 * state.progress)}%`;
      return state;
    };
    events.addEventListener("progress", update);
    events.addEventListener("done", (event) => {
      const state = update(event); events.close(); finish();
      status.textContent = "done"; resolve(state.result);
    });
    for (const name of ["error", "cancelled"]) {
      events.addEventListener(name, (event) => {
        events.close(); finish();
        if (!event.data) { status.textContent = ""; reject(new Error("the connection to the server was lost")); return; }
        const state = JSON.parse(event.data);
        status.textContent = state.state;
        reject(new Error(state.error || `the job was ${state.state}`));
      });
    }
  })).catch((error) => { finish(); status.textContent = ""; throw error; });
}

function formValues(form) {
  const values = {};
  for (const [key, value] of new FormData(form).entries()) {
    if (value === "") continue;
    const input = form.elements[key];
    const type = input && input.type;
    values[key] = type === "number" || type === "range" ? Number(value) : type === "checkbox" ? true : value;
  }
  return values;
}

const esc = (text) => String(text).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})[c]);
const show = (token) => JSON.stringify(token);
const fmt = (x, digits = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));

// ---- Predict ----------------------------------------------------------------------------

views.predict = {
  init(section) {
    const input = $("#predict-prompt"), k = $("#predict-k"), status = $("#predict-status");
    let timer = null, sent = 0;
    const ask = async () => {
      const prompt = input.value;
      if (!prompt.trim()) { status.textContent = "type a prompt"; return; }
      const mine = ++sent;
      status.textContent = "predicting…";
      try {
        const {status: code, data} = await api("/api/predict", {prompt, top_k: Number(k.value)});
        if (mine !== sent) return;  // a newer request is on its way
        showError(section, null);
        if (code === 202) {  // the model is busy with a job: try again shortly
          status.textContent = `queued (position ${data.position}): ${data.message}`;
          timer = setTimeout(ask, 700);
          return;
        }
        status.textContent = `${data.prediction.tokens.length} tokens` + (data.cached ? " (cached)" : "");
        drawPrediction(data.prediction);
      } catch (error) {
        if (mine === sent) { status.textContent = ""; showError(section, error); }
      }
    };
    const later = () => { clearTimeout(timer); timer = setTimeout(ask, 250); };
    input.addEventListener("input", later);
    k.addEventListener("input", later);
    ask();
  },
};

function drawPrediction(prediction) {
  const top = prediction.top;
  const body = $("#predict-table tbody");
  body.innerHTML = top.map((c) =>
    `<tr><td class="tok">${esc(show(c.token))}</td><td class="num">${fmt(c.prob, 4)}</td>` +
    `<td class="num">${fmt(c.logit, 2)}</td></tr>`).join("");
  const labels = top.map((c) => show(c.token)).reverse();
  Plotly.react("predict-chart", [{
    type: "bar", orientation: "h", x: top.map((c) => c.prob).reverse(), y: labels,
    hovertemplate: "%{y}: p = %{x:.4f}<extra></extra>", marker: {color: "#24469b"},
  }], {
    margin: {l: 140, r: 20, t: 10, b: 40}, height: 60 + 24 * top.length,
    xaxis: {title: "probability", rangemode: "tozero"}, yaxis: {automargin: true},
  }, {displayModeBar: false, responsive: true});
}

// ---- Flow -------------------------------------------------------------------------------

views.flow = {
  init(section) {
    const form = $("#flow-form");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const values = formValues(form);
      const measure = values.measure; delete values.measure;
      try {
        const flow = await runJob(section, "flow", values);
        drawFlow(flow, measure);
      } catch (error) { showError(section, error); }
    });
    $("select[name=measure]", form).addEventListener("change", () => {
      if (flowState.flow) drawFlow(flowState.flow, $("select[name=measure]", form).value);
    });
    $("#flow-play").addEventListener("click", () => animateFlow(0));
    $("#flow-slider").addEventListener("input", (e) => { stopFlow(); setFlowLayer(Number(e.target.value)); });
  },
};

const flowState = {flow: null, timer: null, layer: -1, geometry: null, frames: []};
window.factscopeFlow = flowState;

function cellColour(value) {  // 0 -> white, 1 -> deep blue
  const v = Math.max(0, Math.min(1, value));
  const mix = (a, b) => Math.round(a + (b - a) * v);
  return `rgb(${mix(255, 20)},${mix(255, 50)},${mix(255, 150)})`;
}

function drawFlow(flow, measure) {
  flowState.flow = flow;
  $("#flow-result").hidden = false;
  const tokens = flow.tokens, rows = flow.layers.length, T = tokens.length;
  const span = flow.subject_span || [0, 0];
  const cw = Math.max(58, 8 * Math.max(...tokens.map((t) => JSON.stringify(t).length))), ch = 20;
  const left = 92, top = 12, bottom = 54;
  const width = left + cw * T + 10, height = top + ch * rows + bottom;
  const x = (t) => left + cw * t, y = (row) => top + ch * (rows - 1 - row);  // output on top
  flowState.geometry = {x, y, cw, ch};
  const vocabLog = Math.log10(260000);
  const value = (r, t) => measure === "rank"
    ? 1 - Math.log10(flow.rank[r][t] + 1) / vocabLog : flow.prob[r][t];
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">`,
    `<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#d9480f"/></marker></defs>`];
  for (let r = 0; r < rows; r++) {
    const name = r === 0 ? "embed" : r === rows - 1 ? "output" : `layer ${r}`;
    parts.push(`<g class="flow-row hidden-row" data-row="${r}">`);
    parts.push(`<text x="${left - 6}" y="${y(r) + ch * 0.7}" text-anchor="end">${esc(name)}</text>`);
    for (let t = 0; t < T; t++) {
      const tip = `${flow.layers[r]} · ${show(tokens[t])}\np(${show(flow.answer.token)}) = ${fmt(flow.prob[r][t], 4)}, ` +
        `rank ${flow.rank[r][t]}, logit ${fmt(flow.logit[r][t], 2)}\nlens top-1: ${show(flow.top1[r][t])}`;
      parts.push(`<rect class="cell" x="${x(t)}" y="${y(r)}" width="${cw - 2}" height="${ch - 2}" stroke="#e4e4e4" ` +
        `fill="${cellColour(value(r, t))}" data-p="${flow.prob[r][t]}"><title>${esc(tip)}</title></rect>`);
    }
    parts.push("</g>");
  }
  for (let t = 0; t < T; t++) {
    const subject = t >= span[0] && t < span[1];
    parts.push(`<text x="${x(t) + cw / 2}" y="${top + ch * rows + 14}" text-anchor="middle" ` +
      `font-weight="${subject ? "bold" : "normal"}">${esc(show(tokens[t]))}${subject ? "*" : ""}</text>`);
  }
  const maxDla = Math.max(...flow.heads.map((h) => Math.abs(h.dla)), 1e-9);
  flow.heads.forEach((h, i) => {
    const x0 = x(h.source) + cw / 2, y0 = y(h.layer) + ch / 2;
    const x1 = x(T - 1) + cw / 2, y1 = y(h.layer + 1) + ch / 2;
    const bend = Math.min(60, 14 + 10 * i);
    const w = 1 + 4 * Math.abs(h.dla) / maxDla;
    parts.push(`<path class="flow-head" data-layer="${h.layer}" visibility="hidden" ` +
      `d="M${x0},${y0} Q${(x0 + x1) / 2},${Math.min(y0, y1) - bend} ${x1},${y1}" fill="none" ` +
      `stroke="#d9480f" stroke-opacity="0.85" stroke-width="${w}" marker-end="url(#arrow)">` +
      `<title>${esc(`layer ${h.layer} head ${h.head}: writes ${fmt(h.dla, 2)} into the answer's logit; ` +
      `attention ${fmt(h.attention_to_subject, 2)} on the subject, most on ${show(tokens[h.source])}`)}</title></path>`);
  });
  parts.push(`<text x="${left}" y="${height - 8}" fill="#555">colour: ${measure === "rank" ? "rank of the answer (dark = top-1)" : "p(answer) through the logit lens"}; arrows: the heads writing the answer most directly</text>`);
  parts.push("</svg>");
  $("#flow-grid").innerHTML = parts.join("");
  const slider = $("#flow-slider");
  slider.max = rows - 1;
  const subjectLast = span[1] > 0 ? span[1] - 1 : null;
  const layerIndex = flow.layers.map((_, r) => r);
  const traces = [{x: layerIndex, y: flow.logit.map((row) => row[T - 1]), mode: "lines+markers",
                   name: `last token ${show(tokens[T - 1])}`, line: {color: "#24469b"}}];
  if (subjectLast !== null) {
    traces.push({x: layerIndex, y: flow.logit.map((row) => row[subjectLast]), mode: "lines+markers",
                 name: `last subject token ${show(tokens[subjectLast])}`, line: {color: "#d9480f"}});
  }
  const inner = traces.flatMap((trace) => trace.y.slice(1));  // the embedding row is off scale
  const low = Math.min(...inner), high = Math.max(...inner), pad = 0.08 * (high - low || 1);
  Plotly.react("flow-projection", traces, {
    title: {text: `residual · answer direction (${show(flow.answer.token)})`, font: {size: 13}},
    margin: {l: 50, r: 10, t: 40, b: 40}, height: 340, legend: {orientation: "h", y: -0.25},
    xaxis: {title: "residual stream (0 = embeddings)"},
    yaxis: {title: "lens logit (embedding row off scale)", range: [low - pad, high + pad]},
    shapes: [],
  }, {displayModeBar: false, responsive: true});
  const first = firstTop1(flow);
  $("#flow-sentence").textContent =
    `${flow.model} answers ${show(flow.answer.token)} with p = ${fmt(flow.prob[rows - 1][T - 1])}. ` +
    (first === null ? "The answer is never the logit lens's top token at the last position before the output. "
      : `Read through the logit lens, it becomes the top token at the last position from ${flow.layers[first]} on. `) +
    (flow.heads.length ? `The head writing it most directly is layer ${flow.heads[0].layer} head ${flow.heads[0].head} ` +
      `(+${fmt(flow.heads[0].dla, 2)} logit), attending ${fmt(flow.heads[0].attention_to_subject, 2)} to the subject.` : "");
  animateFlow(0);
}

function firstTop1(flow) {
  let first = null;
  flow.rank.forEach((ranks, r) => {
    const top = ranks[ranks.length - 1] === 0;
    if (top && first === null) first = r; else if (!top) first = null;
  });
  return first;
}

function setFlowLayer(layer) {
  flowState.layer = layer;
  flowState.frames.push(layer);  // every frame shown, in order (read by the browser test)
  for (const g of document.querySelectorAll("#flow-grid .flow-row")) {
    g.classList.toggle("hidden-row", Number(g.dataset.row) > layer);
  }
  for (const p of document.querySelectorAll("#flow-grid .flow-head")) {
    p.setAttribute("visibility", Number(p.dataset.layer) < layer ? "visible" : "hidden");
  }
  const label = $("#flow-layer");
  const rows = flowState.flow.layers.length;
  label.dataset.layer = String(layer);
  label.textContent = layer === 0 ? "embeddings" : layer === rows - 1 ? "output" : `layer ${layer} of ${rows - 2}`;
  $("#flow-slider").value = layer;
  Plotly.relayout("flow-projection", {shapes: [{type: "line", x0: layer, x1: layer, yref: "paper", y0: 0, y1: 1,
                                                line: {color: "#999", dash: "dot"}}]});
}

function stopFlow() { clearInterval(flowState.timer); flowState.timer = null; }

function animateFlow(from) {
  stopFlow();
  flowState.frames = [];
  let layer = from;
  setFlowLayer(layer);
  flowState.timer = setInterval(() => {
    layer += 1;
    if (layer >= flowState.flow.layers.length) { stopFlow(); return; }
    setFlowLayer(layer);
  }, 220);
}

// ---- Trace ------------------------------------------------------------------------------

const TRACE_COLOURS = {  // white at the corrupted p, dark at the largest p
  hidden: [[0, "#ffffff"], [1, "#4a148c"]], mlp: [[0, "#ffffff"], [1, "#1b5e20"]],
  attn: [[0, "#ffffff"], [1, "#b71c1c"]],
};
const TRACE_TITLES = {hidden: "hidden state (block output)", mlp: "MLP output (window)", attn: "attention output (window)"};

views.trace = {
  init(section) {
    const form = $("#trace-form");
    const run = async (method) => {
      const values = formValues(form);
      try {
        const result = await runJob(section, "trace", {...values, method});
        drawTrace(result.traces);
      } catch (error) { showError(section, error); }
    };
    form.addEventListener("submit", (event) => { event.preventDefault(); run("approx"); });
    $("#trace-exact").addEventListener("click", () => run("exact"));
  },
};

function drawTrace(traces) {
  const sentences = [];
  for (const trace of traces) {
    const [start, stop] = trace.subject_span;
    const labels = trace.tokens.map((t, i) => `${i}: ${show(t)}${i >= start && i < stop ? "*" : ""}`);
    const layers = trace.scores[0].map((_, l) => l);
    Plotly.react(`trace-${trace.kind}`, [{
      type: "heatmap", z: trace.scores, x: layers, y: labels, zmin: trace.corrupted_p,
      colorscale: TRACE_COLOURS[trace.kind],
      hovertemplate: "token %{y}<br>layer %{x}<br>p = %{z:.4f}<extra></extra>",
      colorbar: {title: {text: "p", side: "right"}, thickness: 12},
    }], {
      title: {text: `${TRACE_TITLES[trace.kind]}: p(${show(trace.answer.token)})`, font: {size: 13}},
      margin: {l: 150, r: 10, t: 36, b: 40}, height: 90 + 24 * labels.length,
      xaxis: {title: "layer"}, yaxis: {autorange: "reversed", automargin: true},
    }, {displayModeBar: false, responsive: true});
    const places = [["last subject token", stop - 1], ["last token", trace.tokens.length - 1]];
    const parts = places.map(([label, t]) => {
      const row = trace.indirect_effect[t];
      const layer = row.indexOf(Math.max(...row));
      return `at the ${label} ${show(trace.tokens[t])} layer ${layer} brings p back to ${fmt(trace.scores[t][layer])}`;
    });
    sentences.push(`${trace.kind}: ${parts.join("; ")}.`);
  }
  const first = traces[0];
  $("#trace-sentence").textContent =
    `${first.method === "exact" ? "Exact trace" : "Approximate trace (attribution patching)"}, ${first.samples} noise sample(s): ` +
    `p(${show(first.answer.token)}) is ${fmt(first.clean_p)} clean and ${fmt(first.corrupted_p)} with the subject corrupted. ` +
    sentences.join(" ");
}

// ---- Neurons ----------------------------------------------------------------------------

views.neurons = {
  init(section) {
    const form = $("#neurons-form");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try { drawNeurons(await runJob(section, "neurons", formValues(form))); }
      catch (error) { showError(section, error); }
    });
    if (info.jobs.includes("attention")) initAttention();
    else $("#attention-panel").hidden = true;
  },
};

function drawNeurons(result) {
  const parts = [`<p class="sentence">p(${esc(show(result.answer.token))}) = ${fmt(result.clean_p)}. ` +
    `Scores: ${esc(result.methods.subject)} at the last subject token; ${esc(result.methods.final)} at the last token.</p>`];
  for (const [position, label] of [["subject", "last subject token"], ["final", "last token"]]) {
    const top = result.top[position] || [];
    if (!top.length) continue;
    parts.push(`<table><caption>Top neurons at the ${label}</caption><thead><tr><th>layer</th><th>neuron</th>` +
      `<th>score</th><th>activation</th><th>p ablated</th><th>AND test</th><th>writes</th></tr></thead><tbody>` +
      top.map((n) => `<tr><td class="num">${n.layer}</td><td class="num">${n.index}</td>` +
        `<td class="num">${Number(n.score).toPrecision(3)}</td><td class="num">${fmt(n.act)}</td>` +
        `<td class="num">${fmt(n.ablated_p)}</td><td>${esc(n.and_test ? n.and_test.verdict : "–")}</td>` +
        `<td class="tok">${esc(n.promotes.slice(0, 4).map((p) => show(p[0])).join(" "))}</td></tr>`).join("") +
      "</tbody></table>");
  }
  parts.push('<div id="neurons-ablation" class="chart"></div>');
  $("#neurons-result").innerHTML = parts.join("");
  const traces = [];
  for (const curve of result.ablation.filter((c) => c.mode === "mean")) {
    traces.push({x: curve.ks, y: curve.top_p, mode: "lines+markers", name: `top-k, ${curve.position}`});
    traces.push({x: curve.ks, y: curve.random_mean, mode: "lines", line: {dash: "dot"}, name: `random k, ${curve.position}`});
  }
  Plotly.react("neurons-ablation", traces, {
    title: {text: "mean-ablating k neurons", font: {size: 13}}, height: 340,
    margin: {l: 50, r: 10, t: 40, b: 40}, xaxis: {title: "k", type: "log"}, yaxis: {title: "p(answer)"},
  }, {displayModeBar: false, responsive: true});
}

// ---- Features (serve --sae) -------------------------------------------------------------

views.features = {
  init(section) {
    const form = $("#features-form");
    if (!info.sae) {  // no dictionary served: one line on how to get one, no form
      form.remove();  // (a hidden attribute would lose to .row's display: flex)
      const off = $("#features-off");
      off.textContent = "Start the server with `factscope serve --sae PATH` (a SAELens folder or a Gemma Scope file) to see the features.";
      off.hidden = false;
      return;
    }
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try { drawFeatures(await runJob(section, "features", formValues(form))); }
      catch (error) { showError(section, error); }
    });
  },
};

function featuresTable(caption, columns, rows) {
  return `<table><caption>${esc(caption)}</caption><thead><tr>${columns.map((c) => `<th>${esc(c)}</th>`).join("")}` +
    `</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((cell) => `<td>${cell}</td>`).join("")}</tr>`).join("")}</tbody></table>`;
}

function drawFeatures(result) {
  const cfg = result.config, tokens = result.tokens;
  const where = (position) => position === null ? "every token" : esc(show(tokens[position]));
  const parts = [`<p class="sentence">${esc(cfg.kind)} dictionary, ${cfg.d_sae} latents at layer ${cfg.layer} ${esc(cfg.site)}: ` +
    `p(${esc(show(result.answer))}) clean <span class="num" id="features-p-clean">${fmt(result.p_clean, 4)}</span>, ` +
    `with the SAE spliced in <span class="num" id="features-p-spliced">${fmt(result.p_spliced, 4)}</span>.</p>`];
  parts.push(featuresTable("Top latents (at the last subject token and the last token)",
    ["at", "latent", "activation", "promotes", "suppresses"],
    result.dashboards.map((b) => [esc(b.position), b.latent, fmt(b.activation),
      `<span class="tok">${esc(b.promotes.slice(0, 5).map((p) => show(p[0])).join(" "))}</span>`,
      `<span class="tok">${esc(b.suppresses.slice(0, 5).map((p) => show(p[0])).join(" "))}</span>`])));
  parts.push(featuresTable("Attribution of log p(answer): gradient × activation, and the change when zeroed",
    ["token", "latent", "activation", "grad × act", "zeroing lowers log p by"],
    result.attribution.map((r) => [where(r.position), r.latent, fmt(r.act), fmt(r.grad_x_act, 4), fmt(r.ablation_delta, 4)])));
  parts.push(featuresTable("Interventions: p(answer) before and after",
    ["from", "latent", "at", "mode", "p before", "p after", "top after"],
    result.interventions.map((r) => [esc(r.from), r.latent, where(r.position),
      r.mode === "steer" ? `steer +${fmt(r.scale, 1)}` : "ablate", fmt(r.p_before, 4), fmt(r.p_after, 4),
      `<span class="tok">${esc(r.top_after.slice(0, 3).map((p) => show(p[0])).join(" "))}</span>`])));
  $("#features-result").innerHTML = parts.join("");
}

// ---- Attention patterns per head (in the Neurons view) ------------------------------------

const attentionState = {result: null};

function initAttention() {
  const panel = $("#attention-panel"), select = $("#attention-layer");
  const form = $("#neurons-form");
  for (let layer = 0; layer < info.n_layers; layer++) {
    select.insertAdjacentHTML("beforeend", `<option value="${layer}">${layer}</option>`);
  }
  const run = async () => {
    const {prompt, subject} = formValues(form);
    const body = {prompt, subject};
    if (select.value !== "") body.layer = Number(select.value);
    try { drawAttention(await runJob(panel, "attention", body)); }
    catch (error) { showError(panel, error); }
  };
  $("#attention-run").addEventListener("click", run);
  select.addEventListener("change", () => { if (attentionState.result) run(); });
  attentionState.showLayer = (layer) => { select.value = String(layer); run(); };
}

function drawAttention(result) {
  attentionState.result = result;
  const [start, stop] = result.subject_span;
  const labels = result.tokens.map((t, i) => `${i}: ${show(t)}${i >= start && i < stop ? "*" : ""}`);
  const top = new Set(result.top_heads.map((h) => `${h.layer}/${h.head}`));
  const heads = result.to_subject[0].map((_, h) => h);
  const layers = result.to_subject.map((_, l) => l);
  Plotly.react("attention-grid", [{
    type: "heatmap", z: result.to_subject, x: heads, y: layers, zmin: 0, zmax: 1, colorscale: [[0, "#ffffff"], [1, "#1b7837"]],
    hovertemplate: "layer %{y} head %{x}<br>last token → subject: %{z:.4f}<extra></extra>",
    colorbar: {thickness: 10},
  }, {
    type: "scatter", mode: "markers", hoverinfo: "skip", showlegend: false,
    x: result.top_heads.map((h) => h.head), y: result.top_heads.map((h) => h.layer),
    marker: {symbol: "star", size: 11, color: "#d9480f", line: {color: "white", width: 1}},
  }], {
    title: {text: "last token's attention on the subject", font: {size: 13}},
    margin: {l: 50, r: 10, t: 36, b: 40}, height: 120 + 16 * layers.length,
    xaxis: {title: "head", dtick: 1}, yaxis: {title: "layer", dtick: Math.max(1, Math.ceil(layers.length / 12))},
    shapes: [{type: "rect", xref: "paper", x0: 0, x1: 1, y0: result.layer - 0.5, y1: result.layer + 0.5,
              line: {color: "#24469b", width: 2}}],
  }, {displayModeBar: false, responsive: true});
  const grid = $("#attention-grid");
  if (!grid.dataset.clicks) {
    grid.dataset.clicks = "1";
    grid.on("plotly_click", (event) => {
      const point = event.points && event.points[0];
      if (point && point.curveNumber === 0) attentionState.showLayer(point.y);
    });
  }
  const box = $("#attention-heads");
  box.innerHTML = heads.map((h) =>
    `<div id="attention-head-${h}" class="head${top.has(`${result.layer}/${h}`) ? " top-head" : ""}"></div>`).join("");
  for (const h of heads) {
    const starred = top.has(`${result.layer}/${h}`);
    const weight = result.to_subject[result.layer][h];
    Plotly.newPlot(`attention-head-${h}`, [{
      type: "heatmap", z: result.patterns[h], x: labels, y: labels, zmin: 0, zmax: 1,
      colorscale: [[0, "#ffffff"], [1, "#24469b"]], showscale: false,
      hovertemplate: "%{y} reads %{x}<br>weight %{z:.4f}<extra></extra>",
    }], {
      title: {text: `layer ${result.layer} head ${h}${starred ? " ★" : ""} · ${fmt(weight, 2)} on subject`,
              font: {size: 11, color: starred ? "#d9480f" : "#222"}},
      margin: {l: 4, r: 4, t: 28, b: 4}, height: 230,
      xaxis: {showticklabels: false}, yaxis: {autorange: "reversed", showticklabels: false},
    }, {displayModeBar: false, responsive: true});
  }
  const strongest = result.top_heads.slice(0, 3).map((h) =>
    `layer ${h.layer} head ${h.head} (${fmt(h.to_subject)}, most on ${show(result.tokens[h.source])})`);
  const best = result.to_subject[result.layer].indexOf(Math.max(...result.to_subject[result.layer]));
  $("#attention-sentence").textContent =
    `At layer ${result.layer}, head ${best} puts ${fmt(result.to_subject[result.layer][best])} of the last ` +
    `token's attention on the subject ${show(result.subject)}. Over all layers, the heads attending most ` +
    `from the last token to the subject: ${strongest.join("; ")}.`;
}

// ---- Superposition ----------------------------------------------------------------------

views.superposition = {
  init(section) {
    const form = $("#superposition-form");
    for (const slider of form.querySelectorAll("input[type=range]")) {
      const output = slider.nextElementSibling;
      const update = () => { output.textContent = slider.value; };
      slider.addEventListener("input", update); update();
    }
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try { drawSuperposition(await runJob(section, "superposition", formValues(form))); }
      catch (error) { showError(section, error); }
    });
  },
};

function drawSuperposition(result) {
  const centres = (stats) => stats.histogram.map((_, k) => (k + 0.5) * stats.bin_degrees);
  Plotly.react("superposition-chart", [
    {type: "bar", x: centres(result.before), y: result.before.histogram, name: "random", opacity: 0.6},
    {type: "bar", x: centres(result.after), y: result.after.histogram, name: `after ${result.steps} steps`, opacity: 0.6},
  ], {
    barmode: "overlay", height: 360, margin: {l: 60, r: 10, t: 20, b: 40},
    xaxis: {title: "angle between a pair (degrees)", range: [60, 120]}, yaxis: {title: "pairs"},
  }, {displayModeBar: false, responsive: true});
  $("#superposition-sentence").textContent =
    `${result.n} directions in ${result.dim} dimensions: after optimising, ${(100 * result.after.share_89_91).toFixed(1)}% ` +
    `of pairs lie within 89–91° (random: ${(100 * result.before.share_89_91).toFixed(1)}%); the worst pair is ` +
    `${fmt(result.after.max_deviation_degrees, 2)}° from perpendicular. Welch bound on max |cos|: ${fmt(result.welch_bound, 4)}.`;
}

// ---- Study and Train: runs on disk ------------------------------------------------------

function runsView(kind, draw) {
  return {
    async init(section) {
      const select = $(`#${kind}-runs`);
      const load = async () => {
        showError(section, null);
        if (!select.value) return;
        try {
          const {data} = await api(`/api/runs/${kind}?run=${encodeURIComponent(select.value)}`);
          draw(data);
        } catch (error) { showError(section, error); }
      };
      select.addEventListener("change", load);
      try {
        const {data} = await api(`/api/runs/${kind}`);
        if (!data.runs.length) { showError(section, `no ${kind} runs in the server's runs folder (factscope serve --runs DIR)`); return; }
        select.innerHTML = data.runs.map((r) => `<option>${esc(r)}</option>`).join("");
        load();
      } catch (error) { showError(section, error); }
    },
  };
}

views.study = runsView("study", ({run, data}) => {
  const result = data.result || data;
  const curves = result.curves || {};
  const traces = Object.entries(curves).map(([name, c]) => ({
    x: c.mean.map((_, l) => l), y: c.mean, mode: "lines+markers", name,
    error_y: {type: "data", symmetric: false, array: c.max.map((m, i) => m - c.mean[i]),
              arrayminus: c.mean.map((m, i) => m - c.min[i]), visible: true, thickness: 1},
  }));
  const layers = traces.length ? traces[0].x.length : 1;
  if (result.chance !== undefined) traces.push({x: [0, layers - 1], y: [result.chance, result.chance], mode: "lines", name: "chance", line: {dash: "dot", color: "#999"}});
  Plotly.react("study-chart", traces, {title: {text: `${run}: probe accuracy by layer`, font: {size: 13}}, height: 400,
    xaxis: {title: "layer"}, yaxis: {title: "cross-validated accuracy", range: [0, 1.02]}, margin: {l: 60, r: 10, t: 40, b: 40}},
    {displayModeBar: false, responsive: true});
});

views.train = runsView("train", ({run, data}) => {
  const traces = [{x: data.step, y: data.loss, mode: "lines", name: "train loss", line: {color: "#9ecae1"}}];
  if (data.eval_step && data.eval_step.length) traces.push({x: data.eval_step, y: data.eval_loss, mode: "lines+markers", name: "eval loss", line: {color: "#d94801"}});
  Plotly.react("train-chart", traces, {title: {text: `${run}: loss`, font: {size: 13}}, height: 400,
    xaxis: {title: "step"}, yaxis: {title: "cross-entropy (nats/token)"}, margin: {l: 60, r: 10, t: 40, b: 40}},
    {displayModeBar: false, responsive: true});
});

// ---- Edit -------------------------------------------------------------------------------

views.edit = {
  init(section) {
    const form = $("#edit-form"), undo = $("#edit-undo");
    undo.disabled = !info.edits.length;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const record = await runJob(section, "edit", formValues(form));
        drawEdit(record);
        await refreshEdits();
      } catch (error) { showError(section, error); }
    });
    undo.addEventListener("click", async () => {
      showError(section, null);
      try {
        const {data} = await api("/api/edit/undo", {});
        $(".job .status", section).textContent = `undone: ${data.undone.summary}`;
        await refreshEdits();
      } catch (error) { showError(section, error); }
    });
  },
};

function drawEdit(record) {
  const rows = record.before.map((b, i) => {
    const a = record.after[i];
    return `<tr><td>${esc(b.kind)}</td><td>${esc(b.prompt)}</td>` +
      `<td class="num">${fmt(b.p_new)} → ${fmt(a.p_new)}</td>` +
      `<td class="num">${fmt(b.p_old)} → ${fmt(a.p_old)}</td>` +
      `<td class="tok">${esc(show(b.top))} → ${esc(show(a.top))}</td></tr>`;
  }).join("");
  const newA = show(record.new.trim()), oldA = show(record.old.trim());
  $("#edit-result").innerHTML =
    `<p class="sentence">ROME edit of layer ${esc(record.layers.join(", "))}: before → after.</p>` +
    `<table><thead><tr><th>kind</th><th>prompt</th><th>p(${esc(newA)})</th><th>p(${esc(oldA)})</th>` +
    `<th>top token</th></tr></thead><tbody>${rows}</tbody></table>`;
  drawRecall(record, newA, oldA);
}

// Where each answer is read out, before and after the edit: the logit lens's p(answer) at
// the last token after each block, and the approximate trace's MLP effect at the subject.
function drawRecall(record, newA, oldA) {
  for (const id of ["edit-lens", "edit-trace"]) Plotly.purge(id);
  if (!record.recall) return;
  const charts = [["edit-lens", "lens_p", "logit lens: p(answer) after each block", "p"],
                  ["edit-trace", "mlp_effect", "approximate trace: MLP effect at the subject", "effect"]];
  for (const [id, key, title, axis] of charts) {
    const traces = [];
    for (const [answer, label, colour] of [[record.new, newA, "#d9480f"], [record.old, oldA, "#24469b"]]) {
      for (const when of ["before", "after"]) {
        const values = record.recall[when].answers[answer][key];
        traces.push({x: values.map((_, i) => i), y: values, mode: "lines+markers",
                     name: `${label} ${when}`, line: {color: colour, dash: when === "before" ? "dot" : "solid"}});
      }
    }
    Plotly.newPlot(id, traces, {title: {text: title, font: {size: 13}}, height: 300,
      margin: {l: 50, r: 10, t: 36, b: 40}, xaxis: {title: "layer"}, yaxis: {title: axis}},
      {displayModeBar: false, responsive: true});
  }
}

async function refreshEdits() {
  info = (await api("/api/info")).data;
  showEdits(info.edits);
  const undo = $("#edit-undo");
  if (undo) undo.disabled = !info.edits.length;
}

// ---- the page ---------------------------------------------------------------------------

function openView(name) {
  for (const section of document.querySelectorAll("section.view")) {
    section.hidden = section.dataset.view !== name;
  }
  for (const button of document.querySelectorAll("#tabs button")) {
    button.classList.toggle("active", button.dataset.view === name);
  }
  history.replaceState(null, "", `#${name}`);
  window.dispatchEvent(new Event("resize"));  // plotly charts drawn while hidden
}

function showEdits(edits) {
  const banner = $("#edit-banner");
  banner.hidden = !edits.length;
  banner.textContent = edits.length ? `The served model is edited: ${edits.map((e) => e.summary).join("; ")}.` : "";
}

async function start() {
  try {
    info = (await api("/api/info")).data;
  } catch (error) {
    $("#model").textContent = String(error.message);
    return;
  }
  $("#model").textContent = `${info.model} · ${info.n_layers} layers × ${info.n_heads} heads`;
  showEdits(info.edits);
  const tabs = $("#tabs");
  for (const section of document.querySelectorAll("section.view")) {
    const name = section.dataset.view;
    if (!info.views.includes(name) || !views[name]) { section.remove(); continue; }
    const button = document.createElement("button");
    button.type = "button"; button.dataset.view = name;
    button.textContent = name[0].toUpperCase() + name.slice(1);
    button.addEventListener("click", () => openView(name));
    tabs.appendChild(button);
    views[name].init(section);
  }
  const wanted = location.hash.slice(1);
  openView(info.views.includes(wanted) && views[wanted] ? wanted : "predict");
}

document.addEventListener("DOMContentLoaded", start);
