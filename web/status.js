/**
 * What this browser offers, in plain words: worker threads (cross-origin isolation), the WebGPU
 * adapter and the WebGL renderer, with software implementations named as such.
 */

/** The two response headers that make a page cross-origin isolated (and give it SharedArrayBuffer). */
export const ISOLATION_HEADERS = [
  ['Cross-Origin-Opener-Policy', 'same-origin'],
  ['Cross-Origin-Embedder-Policy', 'require-corp'],
];

const SOFTWARE = /swiftshader|llvmpipe|lavapipe|software|basic render/i;

/** The WebGPU adapter's description, without creating a device. */
export async function probeWebGPU() {
  if (navigator.gpu == null) return { available: false, why: 'this browser has no WebGPU (navigator.gpu is missing)' };
  let adapter = null;
  try {
    adapter = await navigator.gpu.requestAdapter();
  } catch (e) {
    return { available: false, why: `requestAdapter failed: ${e?.message ?? e}` };
  }
  if (adapter == null) return { available: false, why: 'the browser offers no WebGPU adapter (no supported GPU, or WebGPU is turned off)' };
  // Chromium ≥ 131 has adapter.info; older versions only requestAdapterInfo().
  const info = adapter.info ?? (await adapter.requestAdapterInfo?.().catch(() => null)) ?? {};
  const text = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
  const fallback = info.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false;
  return { available: true, adapter: text || 'unnamed adapter', software: fallback || SOFTWARE.test(text) };
}

/** The WebGL 2 renderer string (unmasked where the browser allows it). */
export function probeWebGL() {
  try {
    const gl = document.createElement('canvas').getContext('webgl2');
    if (gl == null) return { available: false };
    const ext = gl.getExtension('WEBGL_debug_renderer_info');
    const renderer = String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    gl.getExtension('WEBGL_lose_context')?.loseContext();
    return { available: true, renderer, software: SOFTWARE.test(renderer) };
  } catch {
    return { available: false };
  }
}

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

/**
 * The status lines as HTML list items. `info`: { crossOriginIsolated, engineThreads, cores,
 * requestedThreads, backend, webgpu, webgl }.
 */
export function statusLines(info) {
  const lines = [];
  if (info.crossOriginIsolated) {
    lines.push(`Threads: the page is cross-origin isolated, so the attention engine runs on ${info.engineThreads} worker thread(s) ` +
      `(${info.cores} cores${info.requestedThreads ? `, ?threads=${info.requestedThreads}` : ''}).`);
  } else {
    const headers = ISOLATION_HEADERS.map(([k, v]) => `<code>${k}: ${v}</code>`).join(' and ');
    lines.push(`<span class="warn">Single-threaded:</span> worker threads need SharedArrayBuffer, which browsers give only to ` +
      `cross-origin isolated pages. Serve the page with the headers ${headers} to use all ${info.cores} cores.` +
      (info.requestedThreads ? ` <code>?threads=${esc(info.requestedThreads)}</code> is ignored for the same reason.` : ''));
  }
  const gpu = info.webgpu;
  if (!gpu.available) lines.push(`WebGPU: not available: ${esc(gpu.why)}.`);
  else if (gpu.software) {
    lines.push(`<span class="warn">WebGPU: software adapter</span> (${esc(gpu.adapter)}): it runs GPU code on the CPU, so the ` +
      'webgpu backend is correct but much slower here than WebAssembly. A real GPU makes it fast.');
  } else lines.push(`WebGPU: ${esc(gpu.adapter)}.`);
  const gl = info.webgl;
  if (!gl.available) lines.push('WebGL 2: not available.');
  else if (gl.software) lines.push(`<span class="warn">WebGL 2: software renderer</span> (${esc(gl.renderer)}): correct but slow.`);
  else lines.push(`WebGL 2: ${esc(gl.renderer)}.`);
  return lines.map((l) => `<li>${l}</li>`).join('');
}
