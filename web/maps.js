/**
 * The attention heat maps of the page: drawn by examples/lib/svg.js (the Node demo's drawing), laid
 * out two per row on narrow screens, scaled to the screen, with a colour legend and a readout that
 * shows the cell under a tap or the mouse.
 */
import { attentionSvg, heatColor } from '../examples/lib/svg.js';

const NARROW = '(max-width: 760px)';
let last = null;

/** A CSS gradient through heatColor, for the legend (0 → 1). */
function legendGradient() {
  const stops = Array.from({ length: 11 }, (_, i) => `${heatColor(i / 10)} ${i * 10}%`);
  return `linear-gradient(to right, ${stops.join(', ')})`;
}

/**
 * Draws `maps` ([block][head] → T×S probabilities) into `container`; `note` says what the model
 * is (e.g. untrained), `labels` are the input tokens.
 */
export function showMaps(container, { maps, labels, numKeyValueHeads, title, note }) {
  last = { container, maps, labels, numKeyValueHeads, title, note };
  const columns = matchMedia(NARROW).matches ? 2 : maps[0].length;
  const svg = attentionSvg({ maps, labels, numKeyValueHeads, title, columns });
  container.innerHTML =
    `<p class="maps-note">${note}</p>` +
    `<div class="legend" aria-label="colour legend"><span>0</span><span class="legend-bar" style="background:${legendGradient()}"></span>` +
    '<span>1</span><span class="muted">attention weight: how much a query position (row) reads from a key position (column); each row adds up to 1</span></div>' +
    `<p class="readout" aria-live="polite">Tap or hover a cell to read its weight.</p>` +
    `<div class="maps-svg">${svg}</div>`;
  // Scale to the screen: a viewBox instead of the fixed pixel size.
  const el = container.querySelector('svg');
  el.setAttribute('viewBox', `0 0 ${el.getAttribute('width')} ${el.getAttribute('height')}`);
  el.removeAttribute('width');
  el.removeAttribute('height');
  el.style.maxWidth = `${Number(el.viewBox.baseVal.width)}px`;
}

/** The readout for one cell (tap on touch screens, hover with a mouse). */
function readCell(event) {
  const rect = event.target.closest?.('rect[data-p]');
  if (!rect || last == null) return;
  const d = rect.dataset;
  const i = Number(d.i);
  const j = Number(d.j);
  const u = Number(d.head);
  const kv = Math.floor(u / (last.maps[0].length / last.numKeyValueHeads)) + 1;
  last.container.querySelector('.readout').textContent =
    `block ${Number(d.block) + 1}, head ${u + 1} (shares key/value head ${kv}): query position ${i} “${last.labels[i]}” ` +
    `reads key position ${j} “${last.labels[j]}” with weight ${Number(d.p).toFixed(3)}`;
  for (const r of last.container.querySelectorAll('rect.picked')) r.classList.remove('picked');
  rect.classList.add('picked');
}

/** Wires the readout once; redraws on a change between narrow and wide layouts. */
export function wireMaps(container) {
  container.addEventListener('click', readCell);
  container.addEventListener('pointerover', (e) => {
    if (e.pointerType === 'mouse') readCell(e);
  });
  matchMedia(NARROW).addEventListener('change', () => {
    if (last) showMaps(last.container, last);
  });
}
