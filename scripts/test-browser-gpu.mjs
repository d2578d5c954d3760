#!/usr/bin/env node
/**
 * GPU kernel tests in a real headless Chromium (Debian `chromium`, SwiftShader for WebGPU and
 * WebGL 2; see the team notes on browser GPUs). Bundles test/browser/gpu/page.ts with esbuild into a
 * temporary folder, serves it on 127.0.0.1 with the Keras golden cases, runs every test of the page,
 * prints one line per test and `N passed, N failed`, and exits non-zero on any failure.
 *
 *   node scripts/test-browser-gpu.mjs                 run the tests
 *   node scripts/test-browser-gpu.mjs --filter=golden only tests whose name contains "golden"
 *   node scripts/test-browser-gpu.mjs --bench         run the fused-vs-composite benchmark page
 *                                                     (--reps=N timed calls per case, default 3)
 *   node scripts/test-browser-gpu.mjs --decode-bench  run the decode benchmark page (KV cache vs full
 *                                                     recompute, tokens/s and reads per step on webgpu,
 *                                                     webgl, wasm, cpu; --s=, --steps=, --full=,
 *                                                     --backends= pass through, see decode_bench.ts)
 *   node scripts/test-browser-gpu.mjs --serve         only serve: open the printed URLs in a browser
 *                                                     with a real GPU (test page and bench page)
 *
 * Env: CHROMIUM=/path/to/chromium overrides the browser; GQA_PORT fixes the port for --serve;
 * GQA_CONSOLE=1 prints every console message of the page (WGSL/GLSL compile errors).
 */
import { launchChromium } from './lib/chromium.mjs';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name) => args.includes(`--${name}`);
const filter = args.find((a) => a.startsWith('--filter='))?.slice('--filter='.length) ?? '';
const TEST_TIMEOUT_MS = 60_000;

const out = mkdtempSync(join(tmpdir(), 'gqa-gpu-'));
const cleanup = () => rmSync(out, { recursive: true, force: true });

// 1. Bundle. `module` first so that tfjs-core, the backends and tfjs-layers resolve to one ESM copy
// each (mixing the CommonJS bundle of tfjs-layers with its ESM files loads two Layer classes);
// ignoreAnnotations keeps the backends' registration side effects (their `sideEffects` lists would
// let esbuild drop them).
const t0 = performance.now();
await build({
  entryPoints: {
    page: join(root, 'test/browser/gpu/page.ts'),
    bench: join(root, 'test/browser/gpu/bench.ts'),
    decode: join(root, 'test/browser/gpu/decode_bench.ts'),
  },
  outdir: out,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'chrome120',
  mainFields: ['module', 'main'],
  ignoreAnnotations: true,
  sourcemap: 'inline',
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' },
});
for (const name of ['page', 'bench', 'decode']) {
  writeFileSync(
    join(out, `${name}.html`),
    `<!doctype html><meta charset="utf-8"><title>gqa ${name}</title><pre id="log"></pre><script type="module" src="/${name}.js"></script>\n`,
  );
}
const goldenDir = join(root, 'test/data/golden');
const golden = readdirSync(goldenDir)
  .filter((f) => f.endsWith('.json') && !f.startsWith('meta_') && f !== 'index.json' && f !== 'version_diffs.json')
  .sort()
  .map((f) => JSON.parse(readFileSync(join(goldenDir, f), 'utf8')));
writeFileSync(join(out, 'golden.json'), JSON.stringify(golden));
// tfjs-backend-wasm's binaries, for the decode bench's wasm row (setWasmPaths('/')).
const wasmDist = join(root, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');
for (const f of readdirSync(wasmDist).filter((f) => f.endsWith('.wasm'))) writeFileSync(join(out, f), readFileSync(join(wasmDist, f)));
const buildMs = performance.now() - t0;

// 2. Serve on loopback (a secure context, which navigator.gpu needs).
const types = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json', '.wasm': 'application/wasm' };
const server = createServer((req, res) => {
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  const file = join(out, path === '/' ? 'page.html' : path.slice(1));
  if (!file.startsWith(out) || !existsSync(file)) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
  res.end(readFileSync(file));
});
await new Promise((resolve) => server.listen(Number(process.env.GQA_PORT ?? 0), '127.0.0.1', resolve));
const port = server.address().port;

if (flag('serve')) {
  console.log(`tests: http://127.0.0.1:${port}/page.html (call await gqa.run(name) in the console)`);
  console.log(`bench: http://127.0.0.1:${port}/bench.html`);
  console.log(`decode bench: http://127.0.0.1:${port}/decode.html?auto`);
  console.log('Ctrl-C to stop.');
  process.on('SIGINT', () => {
    cleanup();
    process.exit(0);
  });
} else {
  let code = 1;
  try {
    code = await runInBrowser();
  } finally {
    server.close();
    cleanup();
  }
  process.exit(code);
}

async function runInBrowser() {
  const browser = await launchChromium();
  if (browser == null) return 1;
  try {
    const page = await browser.newPage();
    const browserErrors = [];
    page.on('pageerror', (e) => browserErrors.push(String(e)));
    page.on('console', (m) => {
      if (process.env.GQA_CONSOLE) console.log(`     console.${m.type()}: ${m.text().slice(0, 4000)}`);
      if (m.type() === 'error') browserErrors.push(m.text());
    });
    if (flag('bench')) {
      const reps = args.find((a) => a.startsWith('--reps='))?.slice('--reps='.length);
      await page.goto(`http://127.0.0.1:${port}/bench.html${reps ? `?reps=${Number(reps)}` : ''}`);
      const lines = await page.evaluate(() => window.gqaBench.run());
      for (const line of lines) console.log(line);
      return 0;
    }
    if (flag('decode-bench')) {
      const query = new URLSearchParams();
      for (const key of ['s', 'steps', 'full', 'backends']) {
        const value = args.find((a) => a.startsWith(`--${key}=`))?.slice(key.length + 3);
        if (value != null) query.set(key, value);
      }
      await page.goto(`http://127.0.0.1:${port}/decode.html?${query}`);
      await page.waitForFunction(() => window.gqaDecodeBench != null, null, { timeout: 30_000 });
      const lines = await page.evaluate(() => window.gqaDecodeBench.run());
      for (const line of lines) console.log(line);
      return 0;
    }
    await page.goto(`http://127.0.0.1:${port}/page.html`);
    await page.waitForFunction(() => window.gqa != null, null, { timeout: 30_000 });
    const names = (await page.evaluate(() => window.gqa.names())).filter((n) => n.includes(filter));
    console.log(`# bundle ${buildMs.toFixed(0)} ms, ${names.length} tests, Chromium ${browser.version()}`);
    let passed = 0;
    let failed = 0;
    let info = 0;
    for (const name of names) {
      const start = performance.now();
      let result;
      try {
        result = await Promise.race([
          page.evaluate((n) => window.gqa.run(n), name),
          new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout after ${TEST_TIMEOUT_MS} ms`)), TEST_TIMEOUT_MS)),
        ]);
      } catch (e) {
        result = { ok: false, msg: String(e?.message ?? e) };
      }
      const ms = (performance.now() - start).toFixed(0);
      // A measurement (`info`) is printed, not counted as a passing test.
      const status = !result.ok ? 'FAIL' : result.info ? 'info' : 'ok  ';
      if (!result.ok) failed++;
      else if (result.info) info++;
      else passed++;
      console.log(`${status} ${name} (${ms} ms) ${result.msg}`);
      if (!result.ok && browserErrors.length) console.log(`     browser errors: ${browserErrors.splice(0).join(' | ').slice(0, 2000)}`);
      browserErrors.length = 0;
    }
    console.log(`${passed} passed, ${failed} failed${info ? `, ${info} information` : ''}`);
    return failed === 0 && passed > 0 ? 0 : 1;
  } finally {
    await browser.close();
  }
}
