// Text table, JSON and SVG chart of a benchmark run.

const fmt = (x, d = 2) => (x == null || !Number.isFinite(x) ? '–' : x >= 1000 ? x.toFixed(0) : x >= 100 ? x.toFixed(1) : x.toFixed(d));
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);

export function caseHeader(c, flops) {
  const align = c.kind === 'prefill'
    ? 'causal; T = S so Keras top-left = ONNX bottom-right'
    : c.kind === 'decode'
      ? 'T = 1 sees all S keys (Keras: no causal mask; ONNX: bottom-right causal / no mask)'
      : `non-causal, key padding lengths ${c.keyLengths.join(',')}`;
  return `\n== ${c.id}  (${align})  useful ${(flops / 1e9).toFixed(3)} GFLOP` +
    (c.kind === 'decode' ? `, K+V ${(2 * 4 * c.B * c.S * c.V * c.H / 2 ** 20).toFixed(1)} MiB` : '');
}

const COLS = [
  ['implementation', 50, 'l'], ['thr', 3], ['median ms', 10], ['p10–p90 ms', 17], ['kernel ms', 10],
  ['GFLOP/s', 8], ['GB/s', 6], ['%ceil', 6], ['%wasm', 6], ['extra MB', 9], ['max err', 8], ['×peer', 6],
];
export function tableHeader() {
  return COLS.map(([n, w, a]) => (a === 'l' ? pad(n, w) : lpad(n, w))).join(' ');
}
export function tableRow(r) {
  const label = (r.ours ? '* ' : '  ') + r.label;
  if (r.status !== 'ok') return `${pad(label, 50)} ${lpad(r.threads ?? '', 3)}  ${r.status}: ${r.reason}`;
  const cells = [
    pad(label, 50), lpad(r.threads, 3), lpad(fmt(r.medianMs), 10),
    lpad(`${fmt(r.p10Ms)}–${fmt(r.p90Ms)}`, 17), lpad(fmt(r.kernelMedianMs), 10),
    lpad(fmt(r.gflops, 1), 8), lpad(r.gbs == null ? '' : fmt(r.gbs, 1), 6),
    lpad(r.pctCeiling == null ? '–' : `${r.pctCeiling.toFixed(0)}%`, 6),
    lpad(r.pctWasm == null ? '–' : `${r.pctWasm.toFixed(0)}%`, 6),
    lpad(r.extraMB == null ? '–' : Math.max(0, r.extraMB).toFixed(0), 9),
    lpad(r.maxErr.toExponential(0) + (r.checkFailed ? '!' : ''), 8), lpad(r.ratio == null ? '–' : r.ratio.toFixed(2), 6),
  ];
  return cells.join(' ');
}

// ---- SVG: time vs sequence length, one panel per (shape, kind) at batch 1 ----

const PALETTE = ['#1f77b4', '#aec7e8', '#ff7f0e', '#ffbb78', '#2ca02c', '#98df8a', '#d62728', '#ff9896',
  '#9467bd', '#c5b0d5', '#8c564b', '#c49c94', '#e377c2', '#17becf'];

export function svgChart(doc, rows) {
  const panels = [];
  const shapes = [...new Set(doc.cases.map((x) => `${x.case.U}/${x.case.V}/${x.case.H}`))];
  for (const shape of shapes)
    for (const kind of ['prefill', 'decode']) {
      const cs = doc.cases.filter((x) => `${x.case.U}/${x.case.V}/${x.case.H}` === shape && x.case.kind === kind && x.case.B === 1);
      const series = new Map();
      for (const x of cs)
        for (const r of x.results)
          if (r.status === 'ok') {
            if (!series.has(r.rowId)) series.set(r.rowId, []);
            series.get(r.rowId).push([x.case.S, r.medianMs]);
          }
      if (series.size) panels.push({ title: `${kind === 'prefill' ? 'causal prefill T=S' : 'decode T=1, S keys'} · U/V/H ${shape} · B=1`, series });
    }
  const W = 430, Hh = 300, m = { l: 66, r: 12, t: 26, b: 40 };
  const cols = 2;
  const legendH = 18 * Math.ceil(rows.length / 2) + 46;
  const width = cols * W;
  const height = legendH + Math.ceil(panels.length / cols) * Hh;
  const color = new Map(rows.map((r, i) => [r.id, PALETTE[i % PALETTE.length]]));
  const dash = (id) => (rows.find((r) => r.id === id)?.ours ? '' : ' stroke-dasharray="5 3"');
  const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="8" y="16" font-size="13" font-weight="bold">${esc(doc.title)}</text>`,
    `<text x="8" y="31">median ms per call vs sequence length, batch 1, log-log; solid = this package, dashed = peers; a line stops where a row was skipped</text>`];
  rows.forEach((r, i) => {
    const x = 8 + (i % 2) * (width / 2), y = 50 + Math.floor(i / 2) * 18;
    out.push(`<line x1="${x}" y1="${y - 4}" x2="${x + 26}" y2="${y - 4}" stroke="${color.get(r.id)}" stroke-width="2.5"${dash(r.id)}/>`,
      `<text x="${x + 32}" y="${y}">${esc(r.label)}</text>`);
  });
  panels.forEach((p, i) => {
    const ox = (i % cols) * W, oy = legendH + Math.floor(i / cols) * Hh;
    const pts = [...p.series.values()].flat();
    const xs = pts.map((q) => Math.log2(q[0])), ys = pts.map((q) => Math.log10(q[1]));
    const x0 = Math.min(...xs) - 0.2, x1 = Math.max(...xs) + 0.2;
    const y0 = Math.floor(Math.min(...ys)), y1 = Math.ceil(Math.max(...ys) + 1e-9);
    const px = (s) => ox + m.l + ((Math.log2(s) - x0) / (x1 - x0 || 1)) * (W - m.l - m.r);
    const py = (ms) => oy + Hh - m.b - ((Math.log10(ms) - y0) / (y1 - y0 || 1)) * (Hh - m.t - m.b);
    out.push(`<text x="${ox + m.l}" y="${oy + 16}" font-weight="bold">${esc(p.title)}</text>`,
      `<rect x="${ox + m.l}" y="${oy + m.t}" width="${W - m.l - m.r}" height="${Hh - m.t - m.b}" fill="none" stroke="#999"/>`);
    for (let e = y0; e <= y1; e++) {
      const y = py(10 ** e);
      out.push(`<line x1="${ox + m.l}" y1="${y}" x2="${ox + W - m.r}" y2="${y}" stroke="#eee"/>`,
        `<text x="${ox + m.l - 4}" y="${y + 4}" text-anchor="end">${10 ** e >= 1 ? 10 ** e : (10 ** e).toPrecision(1)} ms</text>`);
    }
    const sVals = [...new Set(pts.map((q) => q[0]))].sort((a, b) => a - b);
    for (const s of sVals)
      out.push(`<text x="${px(s)}" y="${oy + Hh - m.b + 14}" text-anchor="middle">${s}</text>`);
    out.push(`<text x="${ox + (W + m.l) / 2}" y="${oy + Hh - 8}" text-anchor="middle">sequence length S (log)</text>`);
    for (const [id, q] of p.series) {
      q.sort((a, b) => a[0] - b[0]);
      const d = q.map(([s, ms], j) => `${j ? 'L' : 'M'}${px(s).toFixed(1)},${py(ms).toFixed(1)}`).join(' ');
      out.push(`<path d="${d}" fill="none" stroke="${color.get(id)}" stroke-width="2"${dash(id)}/>`);
      for (const [s, ms] of q) out.push(`<circle cx="${px(s).toFixed(1)}" cy="${py(ms).toFixed(1)}" r="2.5" fill="${color.get(id)}"/>`);
    }
  });
  out.push('</svg>');
  return out.join('\n');
}
