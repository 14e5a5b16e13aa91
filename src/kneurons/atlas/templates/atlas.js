// The atlas's table and neuron panel: plain DOM code, no library, no network. SAE features (module
// "sae"), where the run has them, are rows beside the neurons and open the same panel.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("atlas-data").textContent);
  const methods = data.methods.map(function (m) { return m.name; });
  const features = data.features || null;
  const rows = features ? data.neurons.concat(features.rows) : data.neurons;
  const FEATURE = "sae";
  function isFeature(r) { return r.module === FEATURE; }
  const COLOURS = { G: "#109648", S: "#109648", T: "#109648", Y: "#109648", C: "#109648",
    Q: "#5E239D", N: "#5E239D", K: "#255C99", R: "#255C99", H: "#255C99", D: "#D62839", E: "#D62839" };


  // -- columns -------------------------------------------------------------------------------
  const columns = [
    { key: "id", label: features ? "unit" : "neuron" }, { key: "layer", label: "layer", num: true, digits: 0 },
    { key: "module", label: "module" }, { key: "neuron", label: "#", num: true, digits: 0 },
    { key: "top_class", label: "top class" }, { key: "class_share", label: "class share", num: true },
  ];
  methods.forEach(function (m) {
    columns.push({ key: "score_" + m, label: m + " score", num: true });
    columns.push({ key: "rank_" + m, label: m + " rank", num: true, top: "top_" + m, digits: 0 });
  });
  columns.push({ key: "site_auroc", label: "site AUROC", num: true });
  columns.push({ key: "site_q", label: "site q", num: true });
  columns.push({ key: "consensus", label: "window consensus" });
  const concepts = data.concept_names || [];
  if (rows.some(function (r) { return r.concepts !== undefined; })) {
    columns.push({ key: "concepts", label: "aligned concepts", list: true });
    columns.push({ key: "best_concept_f1", label: "best concept F1", num: true });
  }

  const state = { key: methods.indexOf("ig") >= 0 ? "rank_ig" : "rank_" + methods[0], dir: 1 };
  const table = document.getElementById("neurons");
  const tbody = table.querySelector("tbody");
  const headRow = el("tr");
  columns.forEach(function (c) {
    const th = el("th", { "data-key": c.key, title: "sort by " + c.label }, c.label);
    th.addEventListener("click", function () {
      state.dir = state.key === c.key ? -state.dir : 1;
      state.key = c.key;
      render();
    });
    headRow.appendChild(th);
  });
  table.querySelector("thead").appendChild(headRow);

  // -- filters -------------------------------------------------------------------------------
  function fill(id, values, labelOf) {
    const select = document.getElementById(id);
    values.forEach(function (v) { select.appendChild(el("option", { value: String(v) }, labelOf ? labelOf(v) : String(v))); });
    select.addEventListener("change", render);
    return select;
  }
  function unique(key) {
    const seen = [];
    rows.forEach(function (r) { if (r[key] !== null && seen.indexOf(r[key]) < 0) { seen.push(r[key]); } });
    return seen.sort(function (a, b) { return a < b ? -1 : a > b ? 1 : 0; });
  }
  const moduleOrder = [FEATURE, "q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"];
  const fLayer = fill("filter-layer", unique("layer"));
  const fModule = fill("filter-module", unique("module").sort(function (a, b) { return moduleOrder.indexOf(a) - moduleOrder.indexOf(b); }));
  const fClass = fill("filter-class", unique("top_class"));
  const fMethod = fill("filter-method", methods, function (m) {
    return data.methods[methods.indexOf(m)].label;
  });
  const fUnit = document.getElementById("filter-unit");  // only on pages with SAE features
  if (fUnit) { fUnit.addEventListener("change", render); }
  const fConcept = document.getElementById("filter-concept");  // only where units align with concepts
  if (fConcept) {
    concepts.forEach(function (c) { fConcept.appendChild(el("option", { value: c }, c)); });
    fConcept.addEventListener("change", render);
  }
  const fChar = document.getElementById("filter-characterised");
  fChar.addEventListener("change", render);
  const search = document.getElementById("search");
  search.addEventListener("input", render);

  function visible(r) {
    const q = search.value.trim().toLowerCase();
    if (q && r.id.toLowerCase().indexOf(q) < 0) { return false; }
    if (fLayer.value !== "" && String(r.layer) !== fLayer.value) { return false; }
    if (fModule.value !== "" && r.module !== fModule.value) { return false; }
    if (fClass.value !== "" && r.top_class !== fClass.value) { return false; }
    if (fMethod.value !== "" && !r["top_" + fMethod.value]) { return false; }
    if (fUnit && fUnit.value !== "" && isFeature(r) !== (fUnit.value === "feature")) { return false; }
    if (fConcept && fConcept.value !== "" && (r.concepts || []).indexOf(fConcept.value) < 0) { return false; }
    if (fChar.checked && !r.characterised) { return false; }
    return true;
  }
  function compare(a, b) {
    const x = a[state.key], y = b[state.key];
    if (x === y) { return 0; }
    if (x === null || x === undefined) { return 1; }  // missing values last, either direction
    if (y === null || y === undefined) { return -1; }
    return (x < y ? -1 : 1) * state.dir;
  }

  let selected = null;
  function render() {
    const shown = rows.filter(visible).sort(compare);
    const frag = document.createDocumentFragment();
    shown.forEach(function (r) {
      const tr = el("tr", { "data-id": r.id });
      if (r.id === selected) { tr.className = "selected"; }
      columns.forEach(function (c) {
        const v = r[c.key];
        const text = c.list ? (v || []).join("; ") : c.num ? fmt(v, c.digits) : (v === null || v === undefined ? "" : String(v));
        const td = el("td", {}, text);
        td.className = (c.num ? "num" : "") + (c.top && r[c.top] ? " top" : "");
        if (c.top && r[c.top]) { td.title = "in the global top " + data.top_fraction + " of " + c.key.slice(5); }
        tr.appendChild(td);
      });
      tr.addEventListener("click", function () { open(r.id); });
      frag.appendChild(tr);
    });
    tbody.replaceChildren(frag);
    table.querySelectorAll("th").forEach(function (th) {
      th.className = th.getAttribute("data-key") === state.key ? (state.dir > 0 ? "sorted-asc" : "sorted-desc") : "";
    });
    document.getElementById("count").textContent = shown.length + " of " + rows.length + (features ? " units" : " neurons");
  }

  // -- neuron panel --------------------------------------------------------------------------
  function logo(pfm) {
    const W = 26, H = 120, pad = 28;
    const n = pfm.counts.length;
    const svg = svgEl("svg", { class: "logo", width: pad + n * W + 4, height: H + 34, role: "img",
      "aria-label": "sequence logo" });
    const maxBits = Math.log2(20);
    svg.appendChild(svgEl("line", { x1: pad - 4, y1: 4, x2: pad - 4, y2: H + 4, stroke: "#333" }));
    [0, 1, 2, 3, 4].forEach(function (b) {
      const y = H + 4 - (b / maxBits) * H;
      svg.appendChild(svgEl("text", { x: pad - 7, y: y + 3, "font-size": 9, "text-anchor": "end" }, String(b)));
    });
    svg.appendChild(svgEl("text", { x: 9, y: H / 2, "font-size": 10, transform: "rotate(-90 9 " + H / 2 + ")",
      "text-anchor": "middle" }, "bits"));
    pfm.counts.forEach(function (counts, i) {
      const total = counts.reduce(function (s, c) { return s + c; }, 0);
      if (!total) { return; }
      const freq = counts.map(function (c) { return c / total; });
      const entropy = -freq.reduce(function (s, p) { return s + (p > 0 ? p * Math.log2(p) : 0); }, 0);
      const info = Math.max(0, maxBits - entropy);
      const letters = pfm.residues.map(function (r, j) { return { r: r, h: freq[j] * info / maxBits * H }; })
        .filter(function (l) { return l.h > 0.5; })
        .sort(function (a, b) { return a.h - b.h; });
      let y = H + 4;
      letters.forEach(function (l) {
        // A 10-unit bold capital is ~7.2 units tall and ~7 wide: scale it to the stack's cell.
        const sx = (W - 2) / 7.0, sy = l.h / 7.2;
        svg.appendChild(svgEl("text", { class: "letter", x: 0, y: 0, "font-size": 10, "text-anchor": "middle",
          fill: COLOURS[l.r] || "#222", transform: "translate(" + (pad + i * W + W / 2) + "," + y + ") scale(" + sx + "," + sy + ")" }, l.r));
        y -= l.h;
      });
      svg.appendChild(svgEl("text", { x: pad + i * W + W / 2, y: H + 18, "font-size": 9, "text-anchor": "middle" },
        String(i - Math.floor((n - 1) / 2))));
    });
    svg.appendChild(svgEl("text", { x: pad + n * W / 2, y: H + 31, "font-size": 10, "text-anchor": "middle" },
      "position relative to the peak residue"));
    return svg;
  }

  function windowsBlock(wins) {
    const box = el("div");
    let top = 0;
    wins.forEach(function (w) { (w.responses || []).forEach(function (v) { if (v !== null && v > top) { top = v; } }); });
    wins.forEach(function (w) {
      const line = el("div", { class: "window" });
      const mid = Math.floor((w.window.length - 1) / 2);
      Array.prototype.forEach.call(w.window, function (res, i) {
        const span = el("span", { class: "res" + (i === mid ? " center" : "") }, res);
        const v = w.responses ? w.responses[i] : (i === mid ? top || 1 : null);
        const a = v === null || v === undefined || top <= 0 ? 0 : Math.max(0, Math.min(1, v / (top || 1)));
        span.style.background = "rgba(213, 94, 0, " + a.toFixed(3) + ")";
        span.title = "response " + fmt(v);
        line.appendChild(span);
      });
      line.appendChild(el("span", { class: "meta" }, w.accession + " (class " + w.label + "), residue " + w.center + ", peak " + fmt(w.value)));
      box.appendChild(line);
    });
    return box;
  }

  function profileChart(profile, topClass) {
    const classes = Object.keys(profile).sort();
    const W = 360, bar = 18;
    const svg = svgEl("svg", { class: "profile", width: W, height: classes.length * (bar + 4) + 4 });
    const maxAbs = classes.reduce(function (m, c) { return Math.max(m, Math.abs(profile[c])); }, 0) || 1;
    const zero = 150, scale = (W - zero - 70) / maxAbs;
    classes.forEach(function (c, i) {
      const v = profile[c], y = 2 + i * (bar + 4);
      svg.appendChild(svgEl("text", { x: 0, y: y + 13, "font-size": 11 }, "class " + c));
      svg.appendChild(svgEl("rect", { x: v >= 0 ? zero : zero + v * scale, y: y, width: Math.max(1, Math.abs(v) * scale),
        height: bar, fill: c === topClass ? "#D55E00" : "#9aa8b5" }));
      svg.appendChild(svgEl("text", { x: W - 65, y: y + 13, "font-size": 10 }, fmt(v)));
    });
    svg.appendChild(svgEl("line", { x1: zero, y1: 0, x2: zero, y2: classes.length * (bar + 4), stroke: "#333" }));
    return svg;
  }

  function suppressionBlock(r) {
    const box = el("div");
    if (isFeature(r)) {
      box.appendChild(el("p", { class: "note" }, "Class suppression is run on neuron sets only; an SAE feature's " +
        "effect is in the features' ablation curves (SAE section)."));
      return box;
    }
    if (!r.class_sets.length) {
      box.appendChild(el("p", { class: "note" }, Object.keys(data.suppression).length
        ? "Not in any class's neuron set, so no class-suppression result names it."
        : "No class-suppression results in this atlas."));
      return box;
    }
    r.class_sets.forEach(function (label) {
      const s = data.suppression[label];
      if (!s) { return; }
      const spec = s.specificity || {};
      box.appendChild(el("p", {}, "Suppressing class " + label + "'s " + (spec.n_neurons || "") +
        " neurons (this one among them): own recall drop " + fmt(spec.drop_own) + ", other classes " +
        fmt(spec.drop_other) + (spec.random_diff_lo !== undefined ? "; random sets' difference [" +
        fmt(spec.random_diff_lo) + ", " + fmt(spec.random_diff_hi) + "], p = " + fmt(spec.p_value) : "") + "."));
      const t = el("table", { class: "small suppression" });
      const head = el("tr"), body = el("tr");
      head.appendChild(el("th", {}, "evaluated class"));
      body.appendChild(el("th", {}, "recall change"));
      Object.keys(s.recall_change || {}).sort().forEach(function (c) {
        head.appendChild(el("th", {}, c));
        body.appendChild(el("td", {}, fmt(s.recall_change[c])));
      });
      t.appendChild(head);
      t.appendChild(body);
      box.appendChild(t);
    });
    return box;
  }

  function densityBlock(r) {
    const method = fMethod.value || (data.density.ig ? "ig" : Object.keys(data.density)[0]);
    const d = data.density[method];
    const box = el("div");
    if (isFeature(r)) {
      box.appendChild(el("p", { class: "note" }, "The density statistics count neurons only (layer x module type)."));
      return box;
    }
    if (!d) { box.appendChild(el("p", { class: "note" }, "No density table.")); return box; }
    box.appendChild(el("p", { class: "note" }, "Enrichment of the global top " + data.top_fraction + " of " + method +
      " neurons per layer and module type (1 = as many as by chance); this neuron's cell is outlined."));
    const t = el("table", { class: "density" });
    const head = el("tr");
    head.appendChild(el("th", {}, "layer"));
    d.modules.forEach(function (m) { head.appendChild(el("th", {}, m)); });
    t.appendChild(head);
    d.layers.forEach(function (layer) {
      const tr = el("tr");
      tr.appendChild(el("th", {}, String(layer)));
      d.modules.forEach(function (m) {
        const v = d.enrichment["L" + layer + "." + m];
        const td = el("td", {}, v === null || v === undefined ? "" : v.toFixed(1));
        const a = v ? Math.min(1, Math.abs(Math.log2(v)) / 3) : 0;
        td.style.background = v > 1 ? "rgba(213, 94, 0, " + a + ")" : "rgba(0, 114, 178, " + a + ")";
        if (layer === r.layer && m === r.module) { td.className = "here"; }
        tr.appendChild(td);
      });
      t.appendChild(tr);
    });
    box.appendChild(t);
    return box;
  }

  function conceptBlock(r, found) {
    const box = el("div");
    if (!found || !found.length) {
      box.appendChild(el("p", { class: "note" }, r.best_concept === undefined || r.best_concept === null
        ? "Not scored by the concept stage (concepts.max_units samples the units of large models)."
        : "No concept above 0 F1 on validation."));
      return box;
    }
    const t = el("table", { class: "small concepts" });
    const head = el("tr");
    ["concept", "threshold", "precision", "recall", "F1 (val)", "F1 (test)", "null p99 (within)", "null p99 (across)", "aligned"]
      .forEach(function (h) { head.appendChild(el("th", {}, h)); });
    t.appendChild(head);
    found.forEach(function (c) {
      const tr = el("tr");
      [c.concept, fmt(c.threshold, 2), fmt(c.precision), fmt(c.recall), fmt(c.f1_val), fmt(c.f1),
        fmt(c.null_within_p99), fmt(c.null_across_p99), c.aligned ? "yes" : "no"]
        .forEach(function (v) { tr.appendChild(el("td", {}, v)); });
      if (c.aligned) { tr.className = "aligned"; }
      t.appendChild(tr);
    });
    box.appendChild(t);
    return box;
  }

  const panel = document.getElementById("panel");
  function open(id) {
    const r = rows.find(function (x) { return x.id === id; });
    if (!r) { return; }
    selected = id;
    // file:// pages may refuse history changes in some browsers; the panel works without them.
    try { if (location.hash !== "#" + id) { history.replaceState(null, "", "#" + id); } } catch (e) { /* ignore */ }
    tbody.querySelectorAll("tr").forEach(function (tr) {
      tr.className = tr.getAttribute("data-id") === id ? "selected" : "";
    });
    const d = data.details[id] || {};
    const close = el("button", { class: "close", title: "close" }, "\u00D7");
    close.addEventListener("click", function () { panel.hidden = true; selected = null; render(); });
    const parts = [close, el("h3", {}, id)];
    const ranks = methods.filter(function (m) { return r["rank_" + m] !== undefined; })
      .map(function (m) { return m + " rank " + r["rank_" + m] + (r["top_" + m] ? " (top)" : ""); }).join(", ");
    if (isFeature(r)) {
      const sae = (features.saes || []).find(function (s) { return s.layer === r.layer; });
      parts.push(el("p", {}, "SAE feature " + r.neuron + " of the residual stream entering layer " + r.layer +
        (sae ? " (SAE: " + sae.n_features + " features, k " + (sae.k === null ? "?" : sae.k) + ", FVU " + fmt(sae.fvu_own, 4) + ")" : "") +
        ". Ranks among the " + features.n_total + " SAE features: " + ranks + "."));
    } else {
      parts.push(el("p", {}, "Layer " + r.layer + ", " + r.module + ", neuron " + r.neuron + ". " + ranks + "."));
    }
    const unit = isFeature(r) ? "features" : "neurons";
    parts.push(el("h4", {}, "Sequence logo of its best windows"));
    parts.push(d.pfm ? logo(d.pfm) : el("p", { class: "note" }, "Not characterised along sequences (only the top " +
      "characterise.top_n IG " + unit + " are), so no logo or windows."));
    if (d.windows) {
      parts.push(el("h4", {}, "Strongest windows on held-out proteins (residues coloured by response)"));
      parts.push(windowsBlock(d.windows));
    }
    if (r.site_auroc !== null) {
      parts.push(el("p", {}, "Site AUROC " + fmt(r.site_auroc) + ", q = " + fmt(r.site_q) +
        (r.site_q !== null && r.site_q <= data.alpha ? " (fires on annotated sites)" : "") + "."));
    }
    if (r.concepts !== undefined) {
      parts.push(el("h4", {}, "Concepts (test F1 at the threshold chosen on validation)"));
      parts.push(conceptBlock(r, d.concepts));
    }
    parts.push(el("h4", {}, "Class profile (class-conditional IG score)"));
    parts.push(Object.keys(r.profile).length ? profileChart(r.profile, r.top_class)
      : el("p", { class: "note" }, "No class-conditional scores."));
    parts.push(el("h4", {}, "Effect when suppressed"));
    parts.push(suppressionBlock(r));
    parts.push(el("h4", {}, "Where it sits in the density map"));
    parts.push(densityBlock(r));
    panel.replaceChildren.apply(panel, parts);
    panel.hidden = false;
  }

  render();
  function fromHash() {
    const id = decodeURIComponent(location.hash.slice(1));
    if (id && id !== "overview" && id !== "table") { open(id); }
  }
  window.addEventListener("hashchange", fromHash);
  fromHash();
})();
