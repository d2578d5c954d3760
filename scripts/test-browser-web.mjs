#!/usr/bin/env node
/**
 * Browser test of the demo page (web/): builds it with Vite into a temporary folder, serves it on
 * 127.0.0.1 cross-origin isolated (COOP/COEP, as `npm run web` does), drives it in headless
 * Chromium (Debian `chromium` + playwright-core, no downloaded browser) and checks that
 *   - it loads isolated, with the WebAssembly attention engine on worker threads;
 *   - a fixed-weight model gives the same logits, attention probabilities, KV-cache generations and
 *     training losses in the page (tfjs wasm, cpu, webgl, webgpu) as in Node (computed here, written
 *     to fixture-node.json in the build folder);
 *   - training, generation, heat maps and the backend table work through the page's buttons.
 * Prints one line per check and `N passed, N failed`; exits non-zero on any failure.
 *
 *   node scripts/test-browser-web.mjs            run
 *   node scripts/test-browser-web.mjs --serve    build and serve only (open the printed URL)
 *   node scripts/test-browser-web.mjs --keep     keep the build folder (and a screenshot)
 *
 * Env: CHROMIUM=/path/to/chromium overrides the browser.
 */
import { launchChromium } from './lib/chromium.mjs';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { build } from 'vite';
import { closeness, FIXTURE_DEFAULTS, fixtureRun } from '../examples/lib/fixture.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name) => args.includes(`--${name}`);
const out = mkdtempSync(join(tmpdir(), 'gqa-web-'));
const cleanup = () => (flag('keep') ? console.log(`# kept ${out}`) : rmSync(out, { recursive: true, force: true }));

// 1. Build the page, and the Node side of the comparison.
const t0 = performance.now();
await build({ configFile: join(root, 'web/vite.config.js'), logLevel: 'warn', build: { outDir: out, emptyOutDir: true } });
const buildMs = performance.now() - t0;
await tf.setBackend('wasm');
const nodeFixture = await fixtureRun();
writeFileSync(join(out, 'fixture-node.json'), JSON.stringify(nodeFixture));

// 2. Serve cross-origin isolated on loopback (a secure context: navigator.gpu needs one).
const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.wasm': 'application/wasm', '.svg': 'image/svg+xml' };
const server = createServer((req, res) => {
  const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
  const file = normalize(join(out, path === '/' ? 'index.html' : path));
  if (!file.startsWith(out) || !existsSync(file)) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, {
    'content-type': types[extname(file)] ?? 'application/octet-stream',
    'cache-control': 'no-store',
    ...(process.env.GQA_NO_ISOLATION ? {} : {
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
    }),
  });
  res.end(readFileSync(file));
});
await new Promise((resolve) => server.listen(Number(process.env.GQA_PORT ?? 0), '127.0.0.1', resolve));
const url = `http://127.0.0.1:${server.address().port}/index.html`;
let passed = 0;
let failed = 0;

if (flag('serve')) {
  console.log(`demo page: ${url}  (Ctrl-C to stop)`);
  process.on('SIGINT', () => {
    cleanup();
    process.exit(0);
  });
} else {
  let code = 1;
  try {
    code = await runInBrowser();
  } catch (e) {
    failed++;
    console.log(`FAIL runner: ${e?.stack ?? e}`);
    console.log(`${passed} passed, ${failed} failed`);
  } finally {
    server.close();
    cleanup();
  }
  process.exit(code);
}

async function runInBrowser() {
  const browser = await launchChromium();
  if (browser == null) {
    failed++;
    console.log(`${passed} passed, ${failed} failed`);
    return 1;
  }
  const errors = [];
  const check = async (name, fn, timeoutMs = 120_000) => {
    const start = performance.now();
    let ok = false;
    let msg = '';
    try {
      msg = (await Promise.race([
        fn(),
        new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout after ${timeoutMs} ms`)), timeoutMs)),
      ])) ?? '';
      ok = true;
    } catch (e) {
      msg = String(e?.message ?? e);
    }
    if (ok) passed++;
    else failed++;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${name} (${(performance.now() - start).toFixed(0)} ms) ${msg}`);
    if (!ok && errors.length) console.log(`     browser errors: ${errors.splice(0).join(' | ').slice(0, 2000)}`);
    errors.length = 0;
  };
  const expect = (cond, msg) => {
    if (!cond) throw new Error(msg);
  };
  try {
    const page = await browser.newPage();
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    console.log(`# vite build ${buildMs.toFixed(0)} ms, Chromium ${browser.version()}, Node fixture on ${nodeFixture.backend}`);

    await check('page loads cross-origin isolated with the wasm engine on worker threads', async () => {
      await page.goto(url);
      await page.waitForFunction(() => window.demo != null, null, { timeout: 60_000 });
      const info = await page.evaluate(() => window.demo.ready);
      expect(info.crossOriginIsolated && info.sharedArrayBuffer, `not isolated: ${JSON.stringify(info)}`);
      expect(info.engineKind === 'wasm', `engine ${info.engineKind}`);
      expect(info.engineThreads === Math.max(1, info.hardwareConcurrency), `engine threads ${info.engineThreads} of ${info.hardwareConcurrency} cores`);
      expect(info.backend === 'wasm', `tfjs backend ${info.backend}`);
      return `engine ${info.engineKind} × ${info.engineThreads} threads, tfjs ${info.backend}, navigator.gpu ${info.webgpu}`;
    });

    await check('untrained model shows attention heat maps (2 blocks × 4 heads)', async () => {
      const spec = await page.evaluate(() => window.demo.spec);
      const cells = await page.locator('#maps svg rect[fill^="rgb"]').count();
      const t = spec.length - 1;
      expect(cells === 2 * 4 * t * t, `${cells} cells, expected ${2 * 4 * t * t}`);
      return `${cells} cells`;
    });

    for (const backend of ['wasm', 'cpu', 'webgl', 'webgpu']) {
      // KV-cache decoding on webgpu is skipped: the cache reads keys and values synchronously
      // (dataSync), and tfjs-webgpu 4.22's synchronous read loses the WebGPU device in Chromium.
      const cache = backend !== 'webgpu';
      const fixture = await page.evaluate(([b, c]) => window.demo.fixture({ cache: c }, b).catch((e) => ({ error: String(e?.stack ?? e) })), [backend, cache]);
      // wasm and cpu compute in float32 like Node; the GPU backends differ in summation order and exp.
      const tol = backend === 'wasm' || backend === 'cpu' ? 1e-4 : 2e-3;
      const { seed, task, n, count } = FIXTURE_DEFAULTS;
      const what = `seed ${seed}, ${task} n=${n}, batch ${count}`;
      await check(`${backend}: logits of a fixed-weight model match Node's (${what})`, async () => {
        expect(fixture.error == null, fixture.error);
        expect(fixture.backend === backend, `ran on ${fixture.backend}`);
        expect(JSON.stringify(fixture.inputs) === JSON.stringify(nodeFixture.inputs), 'different inputs');
        const worst = closeness(fixture.logits, nodeFixture.logits, tol, tol);
        expect(worst <= 1, `logits differ: ${worst.toFixed(2)}× the tolerance ${tol}`);
        return `${fixture.logits.length} values within ${tol}`;
      });
      await check(`${backend}: attention probabilities of both blocks match Node's`, async () => {
        expect(fixture.error == null, fixture.error);
        const worst = Math.max(...fixture.scores.map((s, i) => closeness(s, nodeFixture.scores[i], tol, tol)));
        expect(worst <= 1, `probabilities differ: ${worst.toFixed(2)}× the tolerance ${tol}`);
        return `${fixture.scores.length} × ${fixture.scoresShape.join('×')} within ${tol}`;
      });
      await check(`${backend}: greedy generation ${cache ? 'with the KV cache equals Node\'s and full recompute' : 'by full recompute equals Node\'s'}`, async () => {
        expect(fixture.error == null, fixture.error);
        const want = JSON.stringify(nodeFixture.generatedCache);
        expect(JSON.stringify(fixture.generatedRecompute) === want, 'recompute tokens differ from Node\'s KV-cache tokens');
        if (cache) expect(JSON.stringify(fixture.generatedCache) === want, 'KV-cache tokens differ from Node');
        return `${fixture.generatedRecompute.length} sequences${cache ? '' : ' (KV cache skipped on webgpu: synchronous reads)'}`;
      });
      await check(`${backend}: losses of ${nodeFixture.losses.length} training steps match Node's`, async () => {
        expect(fixture.error == null, fixture.error);
        const worst = closeness(fixture.losses, nodeFixture.losses, tol, tol);
        expect(worst <= 1, `losses ${fixture.losses.map((l) => l.toFixed(5))} vs Node ${nodeFixture.losses.map((l) => l.toFixed(5))}`);
        return fixture.losses.map((l) => l.toFixed(4)).join(' → ');
      });
    }

    await check('trains and generates through the page (copy n=4, Train button)', async () => {
      await page.selectOption('select[name=task]', 'copy');
      await page.fill('input[name=n]', '4');
      await page.fill('input[name=steps]', '300');
      await page.fill('input[name=seed]', '3');
      await page.click('#train');
      await page.waitForFunction(() => /accuracy [\d.]+ per answer token/.test(document.getElementById('samples').textContent), null, { timeout: 170_000 });
      const log = await page.textContent('#train-log');
      const samples = await page.textContent('#samples');
      const accuracy = Number(/accuracy ([\d.]+) per answer token/.exec(samples)[1]);
      expect(accuracy >= 0.9, `generation accuracy ${accuracy}\n${samples}`);
      const rows = await page.locator('#gen-timings tr').count();
      expect(rows === 4, `${rows} timing rows`);
      const done = /done: (\d+) steps in ([\d.]+) s, held-out accuracy ([\d.]+)/.exec(log);
      return `${done?.[1]} steps in ${done?.[2]} s, generation accuracy ${accuracy}`;
    }, 180_000);

    await check('backend table: the trained model on wasm, cpu, webgl and webgpu agrees with wasm', async () => {
      await page.click('#backends');
      await page.waitForFunction(() => document.querySelectorAll('#backend-table tr').length === 5, null, { timeout: 170_000 });
      const rows = await page.$$eval('#backend-table tr', (trs) => trs.slice(1).map((tr) => [...tr.children].map((td) => td.textContent)));
      for (const r of rows) expect(r.length === 8, `${r[0]}: ${r.slice(1).join(' ')}`);
      for (const r of rows) expect(Number(r[7]) < 1e-3, `${r[0]}: max |Δ| ${r[7]}`);
      return rows.map((r) => `${r[0]} fused ${r[1]} ms / composite ${r[2]} ms, op ×${r[6]}`).join('; ');
    }, 180_000);

    if (flag('keep')) await page.screenshot({ path: join(out, 'page.png'), fullPage: true });
  } finally {
    await browser.close();
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 && passed > 0 ? 0 : 1;
}
