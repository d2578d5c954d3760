/**
 * Attention maps as one self-contained SVG: a grid with one heat map per (block, head), query
 * positions down, key positions across, token labels on both axes.
 */
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

/** White → dark blue. */
export function heatColor(p) {
  const x = Math.max(0, Math.min(1, p)) ** 0.6;
  const r = Math.round(255 - x * (255 - 8));
  const g = Math.round(255 - x * (255 - 48));
  const b = Math.round(255 - x * (255 - 107));
  return `rgb(${r},${g},${b})`;
}

/**
 * maps: [block][head] → rows (T) of probabilities (S); labels: the S input tokens as text.
 * numKeyValueHeads groups the heads in the titles (query head u uses kv head floor(u / G)).
 * columns: heat maps per row (default: all heads of a block in one row).
 * Every cell carries data-block, data-head, data-i (query), data-j (key) and data-p (weight), so
 * that a page can show a cell's weight on tap as well as on hover (the <title>).
 */
export function attentionSvg({ maps, labels, title, numKeyValueHeads, columns }) {
  const cell = 14;
  const T = maps[0][0].length;
  const S = maps[0][0][0].length;
  const U = maps[0].length;
  const G = U / numKeyValueHeads;
  const perRow = Math.max(1, Math.min(U, columns ?? U));
  const rowsPerBlock = Math.ceil(U / perRow);
  const margin = 22;
  const panelW = Math.max(S * cell + margin + 12, 170);
  const panelH = T * cell + margin + 24;
  const width = perRow * panelW + 16;
  const height = maps.length * rowsPerBlock * panelH + 40;
  const parts = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="monospace" font-size="10">`);
  parts.push(`<rect width="100%" height="100%" fill="white"/>`);
  parts.push(`<text x="8" y="16" font-size="13">${esc(title)}</text>`);
  maps.forEach((heads, l) => {
    heads.forEach((rows, u) => {
      const ox = 8 + (u % perRow) * panelW + margin;
      const oy = 36 + (l * rowsPerBlock + Math.floor(u / perRow)) * panelH + 14 + margin;
      parts.push(`<text x="${ox}" y="${oy - margin - 2}" font-size="11">block ${l + 1} · head ${u + 1} (kv ${Math.floor(u / G) + 1})</text>`);
      labels.slice(0, S).forEach((lab, j) => {
        parts.push(`<text x="${ox + j * cell + cell / 2}" y="${oy - 4}" text-anchor="middle">${esc(lab)}</text>`);
      });
      rows.forEach((row, i) => {
        parts.push(`<text x="${ox - 4}" y="${oy + i * cell + cell - 3}" text-anchor="end">${esc(labels[i] ?? '')}</text>`);
        row.forEach((p, j) => {
          parts.push(`<rect x="${ox + j * cell}" y="${oy + i * cell}" width="${cell}" height="${cell}" fill="${heatColor(p)}" data-block="${l}" data-head="${u}" data-i="${i}" data-j="${j}" data-p="${p}"><title>${esc(labels[i])}→${esc(labels[j])} ${p.toFixed(3)}</title></rect>`);
        });
      });
      parts.push(`<rect x="${ox}" y="${oy}" width="${S * cell}" height="${T * cell}" fill="none" stroke="#888"/>`);
    });
  });
  parts.push('</svg>');
  return parts.join('\n');
}
