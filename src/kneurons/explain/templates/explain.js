// The explain page: the protein table and one panel per protein (prediction per replicate, the
// per-residue track with annotated sites and the named units' windows, the units with their atlas
// links, the causal check). Plain DOM code, no library, no network.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("explain-data").textContent);
  const UNIT_COLOURS = ["#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"];
  const POSITIVE = "#D55E00", NEGATIVE = "#0072B2";

  function panelId(i) { return "protein-" + i; }
  function main(p) { return p.replicates[0]; }
  function neuronCheck(r) { return (r.causal || []).find(function (c) { return c.kind === "neurons"; }) || null; }

  // -- the protein table ---------------------------------------------------------------------
  const head = ["protein", "residues", "predicted", "replicates agree", "probability", "annotated",
    "top unit", "drop, named neurons", "drop, random neurons", "notes"];
  const table = document.getElementById("proteins");
  const hr = el("tr");
  head.forEach(function (h) { hr.appendChild(el("th", {}, h)); });
  table.querySelector("thead").appendChild(hr);
  const body = table.querySelector("tbody");
  data.proteins.forEach(function (p, i) {
    const r = main(p), a = p.agreement, c = neuronCheck(r);
    const tr = el("tr", { "data-protein": p.accession });
    const link = el("a", { href: "#" + panelId(i) }, p.accession);
    const first = el("td");
    first.appendChild(link);
    tr.appendChild(first);
    tr.appendChild(el("td", { class: "num" }, String(p.model_length)));
    tr.appendChild(el("td", {}, a.consensus));
    tr.appendChild(el("td", { class: "num" }, Math.round(a.share * p.replicates.length) + "/" + p.replicates.length));
    tr.appendChild(el("td", { class: "num" }, fmt(a.mean_probability)));
    const ann = el("td", {}, p.annotated.length ? p.annotated.join(", ") : "");
    if (a.correct !== null) { ann.className = a.correct ? "good" : "bad"; ann.title = a.correct ? "the consensus is an annotated class" : "the consensus is not an annotated class"; }
    tr.appendChild(ann);
    tr.appendChild(el("td", {}, r.units.length ? r.units[0].unit : "none"));
    tr.appendChild(el("td", { class: "num" }, c ? fmt(c.drop) : ""));
    tr.appendChild(el("td", { class: "num" }, c ? fmt(c.drop_random_mean) : ""));
    tr.appendChild(el("td", {}, p.notes.length ? String(p.notes.length) : ""));
    body.appendChild(tr);
  });

  // -- the per-residue track ------------------------------------------------------------------
  function track(p, r) {
    const n = r.track.length, left = 44, right = 12, top = 34, h = 110, bottom = 34;
    const step = Math.max(2, Math.min(8, 1100 / Math.max(1, n)));
    const W = left + n * step + right, H = top + h + bottom;
    const svg = svgEl("svg", { class: "track", width: W, height: H, role: "img",
      "aria-label": "per-residue contribution to class " + r.predicted });
    const maxAbs = r.track.reduce(function (m, v) { return Math.max(m, Math.abs(v)); }, 0) || 1;
    const zero = top + h / 2, scale = (h / 2) / maxAbs;
    // the named units' windows (the first few), as bands above the bars
    r.units.slice(0, UNIT_COLOURS.length).forEach(function (u, k) {
      u.peaks.forEach(function (pk) {
        svg.appendChild(svgEl("rect", { class: "window-band", x: left + (pk.start - 1) * step, y: 4 + k * 5,
          width: (pk.end - pk.start + 1) * step, height: 4, fill: UNIT_COLOURS[k] },
          undefined)).appendChild(svgEl("title", {}, u.unit + ": residues " + pk.start + "-" + pk.end));
      });
    });
    r.track.forEach(function (v, i) {
      const bar = svgEl("rect", { class: "residue", x: left + i * step, width: Math.max(1, step - 0.5),
        y: v >= 0 ? zero - v * scale : zero, height: Math.max(0.5, Math.abs(v) * scale),
        fill: v >= 0 ? POSITIVE : NEGATIVE });
      bar.appendChild(svgEl("title", {}, p.sequence[i] + (i + 1) + ": " + fmt(v)));
      svg.appendChild(bar);
    });
    svg.appendChild(svgEl("line", { x1: left, y1: zero, x2: left + n * step, y2: zero, stroke: "#333" }));
    (p.sites || []).forEach(function (s) {
      const x = left + (s - 0.5) * step, y = top + h + 2;
      const mark = svgEl("path", { class: "site", d: "M" + x + " " + y + " l-3 7 l6 0 z", fill: "#222" });
      mark.appendChild(svgEl("title", {}, "annotated site " + p.sequence[s - 1] + s));
      svg.appendChild(mark);
    });
    const every = n > 400 ? 100 : n > 150 ? 50 : 10;
    for (let pos = every; pos <= n; pos += every) {
      svg.appendChild(svgEl("text", { x: left + (pos - 0.5) * step, y: top + h + 22, "text-anchor": "middle" }, String(pos)));
    }
    svg.appendChild(svgEl("text", { x: 2, y: top + 8 }, "+" + fmt(maxAbs)));
    svg.appendChild(svgEl("text", { x: 2, y: top + h }, "-" + fmt(maxAbs)));
    svg.appendChild(svgEl("text", { x: left, y: H - 2 }, "residue (1-based); triangles: annotated sites; bands: the named units' windows"));
    return svg;
  }

  function windowLine(u, pk, sites) {
    const line = el("div", { class: "window" });
    const top = pk.values.reduce(function (m, v) { return v !== null && v > m ? v : m; }, 0) || 1;
    Array.prototype.forEach.call(pk.window, function (res, i) {
      const pos = pk.center - Math.floor((pk.window.length - 1) / 2) + i;
      const v = pk.values[i];
      const span = el("span", { class: "res" + (pos === pk.center ? " center" : "") + (sites.has(pos) ? " site" : "") }, res);
      const a = v === null || v <= 0 ? 0 : Math.min(1, v / top);
      span.style.background = "rgba(213, 94, 0, " + a.toFixed(3) + ")";
      span.title = res === "-" ? "beyond the sequence" : res + pos + ": " + fmt(v);
      line.appendChild(span);
    });
    line.appendChild(el("span", { class: "meta" }, "residues " + pk.start + "-" + pk.end + ", peak " + fmt(pk.value) + " at " + pk.center));
    return line;
  }

  function siteText(o) {
    if (!o || o.share === null) { return ""; }
    return Math.round(100 * o.share) + "% (" + Math.round(100 * o.expected) + "% of residues)";
  }

  function classText(u) {
    const bits = [];
    if (u.top_class !== null) { bits.push("top class " + u.top_class + (u.class_share !== null ? " (share " + fmt(u.class_share, 2) + ")" : "")); }
    (u.class_sets || []).forEach(function (c) {
      const s = (u.specificity || {})[c];
      bits.push("in class " + c + "'s neuron set" + (s ? " (own recall drop " + fmt(s.drop_own) + ", others " + fmt(s.drop_other) +
        (s.p_value !== undefined && s.p_value !== null ? ", p " + fmt(s.p_value) : "") + ")" : ""));
    });
    return bits.join("; ");
  }

  function unitsTable(p, r) {
    const t = el("table", { class: "units" });
    const hrow = el("tr");
    const heads = ["#", "unit", "contribution", "run's IG rank", "class", "where it fires (contribution per residue)"];
    if (p.sites) { heads.push("on annotated sites"); }
    heads.push("named by replicates");
    heads.forEach(function (h) {
      hrow.appendChild(el("th", {}, h));
    });
    t.appendChild(hrow);
    const sites = new Set(p.sites || []);
    r.units.forEach(function (u, k) {
      const tr = el("tr", { class: "unit", "data-unit": u.unit });
      const rank = el("td", { class: "num" });
      if (k < UNIT_COLOURS.length) { const sw = el("span", { class: "swatch" }); sw.style.background = UNIT_COLOURS[k]; rank.appendChild(sw); }
      rank.appendChild(document.createTextNode(String(u.rank)));
      tr.appendChild(rank);
      const name = el("td");
      if (u.atlas) {
        name.appendChild(el("a", { href: u.atlas, class: "atlas-link", title: "open " + u.unit + " in the run's atlas" }, u.unit));
      } else {
        name.appendChild(el("span", { title: "not in the atlas's table (its cap)" }, u.unit));
      }
      name.appendChild(el("div", { class: "note" }, u.kind === "feature" ? "SAE feature" : u.module + " neuron"));
      tr.appendChild(name);
      tr.appendChild(el("td", { class: "num" }, fmt(u.contribution)));
      tr.appendChild(el("td", { class: "num" }, String(u.run_rank)));
      tr.appendChild(el("td", {}, classText(u)));
      const where = el("td");
      u.peaks.forEach(function (pk) { where.appendChild(windowLine(u, pk, sites)); });
      tr.appendChild(where);
      if (p.sites) { tr.appendChild(el("td", { class: "num", title: "share of its positive contribution on annotated " +
        "site residues (the share of residues that are sites)" }, siteText(u.on_sites))); }
      const by = p.replicates.filter(function (x) { return x.units.some(function (v) { return v.unit === u.unit; }); })
        .map(function (x) { return String(x.replicate); });
      tr.appendChild(el("td", {}, by.join(", ")));
      t.appendChild(tr);
    });
    return t;
  }

  function predictionTable(p) {
    const t = el("table", { class: "small prediction" });
    const hrow = el("tr");
    hrow.appendChild(el("th", {}, "replicate"));
    hrow.appendChild(el("th", {}, "predicted"));
    data.run.classes.forEach(function (c) { hrow.appendChild(el("th", {}, "p(" + c + ")")); });
    t.appendChild(hrow);
    p.replicates.forEach(function (r) {
      const tr = el("tr");
      tr.appendChild(el("td", {}, String(r.replicate)));
      tr.appendChild(el("td", {}, r.predicted));
      data.run.classes.forEach(function (c) {
        const v = r.probabilities[c];
        const td = el("td", { class: "num" });
        const bar = el("span", { class: "bar" + (c === r.predicted ? " pred" : "") });
        bar.style.width = (60 * v).toFixed(1) + "px";
        td.appendChild(bar);
        td.appendChild(document.createTextNode(" " + fmt(v)));
        tr.appendChild(td);
      });
      t.appendChild(tr);
    });
    return t;
  }

  function causalText(r) {
    if (!r.causal.length) { return [el("p", { class: "note" }, "No unit contributes positively: nothing to suppress.")]; }
    return r.causal.map(function (c) {
      const what = c.kind === "features" ? "SAE features (zeroed)" : "neurons (fill " + c.fill + ")";
      return el("p", { class: "causal" }, "Replicate " + r.replicate + ": filling its " + c.n_units + " named " + what +
        " takes p(" + r.predicted + ") from " + fmt(c.p_intact) + " to " + fmt(c.p_suppressed) + " (drop " + fmt(c.drop) + ")" +
        (c.flipped ? ", which changes the prediction" : "") + "; as many random units in the same modules: drop " +
        fmt(c.drop_random_mean) + " on average over " + c.seeds.length + " draws (" + c.flipped_random + " change the prediction).");
    });
  }

  const panels = document.getElementById("panels");
  data.proteins.forEach(function (p, i) {
    const r = main(p);
    const box = el("section", { class: "protein-panel", id: panelId(i), "data-protein": p.accession });
    box.appendChild(el("h3", {}, p.accession));
    box.appendChild(el("p", {}, p.model_length + " residues" + (p.ec ? ", annotated EC " + p.ec : "") +
      (p.sites ? ", " + p.sites.length + " annotated site residues" : ", no annotated sites") + "."));
    if (p.notes.length) { p.notes.forEach(function (n) { box.appendChild(el("p", { class: "notes" }, n)); }); }
    box.appendChild(el("h4", {}, "Prediction"));
    box.appendChild(predictionTable(p));
    box.appendChild(el("h4", {}, "How much each residue drives class " + r.predicted + " (replicate " + r.replicate + ")"));
    box.appendChild(track(p, r));
    const t = r.track_target;
    const gapNote = Math.abs(t.gap) > 0.05 * Math.max(Math.abs(t.protein - t.baseline), 0.01)
      ? " The integration missed " + fmt(t.gap) + " of it: raise explain.track_steps (now " + t.steps + ")." : "";
    box.appendChild(el("p", { class: "note track-total" }, "The track sums to " + fmt(t.protein - t.baseline + t.gap) + "; the " +
      t.target + " of class " + r.predicted + " is " + fmt(t.protein) + " for the protein and " + fmt(t.baseline) +
      " for the all-X sequence." + gapNote));
    if (r.track_on_sites && r.track_on_sites.share !== null) {
      box.appendChild(el("p", { class: "note" }, siteText(r.track_on_sites).replace(" (", " of the track's positive part " +
        "lies on the annotated sites (") + "."));
    }
    box.appendChild(el("h4", {}, "Knowledge units that drive class " + r.predicted + " (replicate " + r.replicate + ")"));
    box.appendChild(r.units.length ? unitsTable(p, r) : el("p", { class: "note" }, "None of the run's knowledge units contributes positively."));
    box.appendChild(el("h4", {}, "Causal check"));
    p.replicates.forEach(function (x) { causalText(x).forEach(function (n) { box.appendChild(n); }); });
    panels.appendChild(box);
  });
})();
