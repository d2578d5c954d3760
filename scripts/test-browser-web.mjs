#!/usr/bin/env node
/**
 * Browser test of the demo page (web/): builds it with Vite into a temporary folder, serves it on
 * 127.0.0.1 cross-origin isolated (COOP/COEP, as `npm run web` does), drives it in headless
 * Chromium (Debian `chromium` + playwright-core, no downloaded browser) and checks that
 *   - it loads isolated, with the WebAssembly attention engine on worker threads;
 *   - a fixed-weight model gives the same logits, attention probabilities, KV-cache generations and
 *     training losses in the page (tfjs wasm, cpu, webgl, webgpu) as in Node (computed here, written
 *     to fixture-node.json in the build folder);
 *   - training, generation, heat maps and the backend table work through the page's buttons, on
 *     every backend of the picker: the page's training losses and generations equal Node's;
 *   - the status lines are honest (a software WebGPU adapter is named so; early stop, stop by the
 *     user and a refused KV cache are said; a stopped run keeps the saved weights);
 *   - at 390×844 (phone) and 1280×800 no horizontal scroll after training, generation and the
 *     backend table, and a tap on a heat-map cell shows its weight;
 *   - served without COOP/COEP (under /plain/) the page names the two headers and says that
 *     ?threads=N is ignored;
 *   - no console errors anywhere.
 * Screenshots of both viewports are written to test-results/web/ (gitignored; WEB_ARTIFACTS=dir
 * overrides).
 * Prints one line per check and `N passed, N failed`; exits non-zero on any failure.
 *
 *   node scripts/test-browser-web.mjs            run
 *   node scripts/test-browser-web.mjs --serve    build and serve only (open the printed URL)
 *   node scripts/test-browser-web.mjs --keep     keep the build folder
 *
 * Env: CHROMIUM=/path/to/chromium overrides the browser.
 */
import { launchChromium } from './lib/chromium.mjs';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { build } from 'vite';
import { Decoder, generate } from '../examples/lib/decoder.js';
import { closeness, FIXTURE_DEFAULTS, fixtureRun } from '../examples/lib/fixture.js';
import { createRng, makeBatch, TASKS, VOCAB } from '../examples/lib/tasks.js';
import { trainRun } from '../web/train-loop.js';
import { writeWeights } from '../web/weights.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
/** A phone and a laptop. */
const VIEWPORTS = [{ width: 390, height: 844 }, { width: 1280, height: 800 }];
const artifacts = process.env.WEB_ARTIFACTS ?? join(root, 'test-results', 'web');
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
// The short training run every backend of the picker does through the Train button, in Node. (The
// fixture's task, length and batch: the GPU backends then reuse the shaders the fixture compiled.)
const SHORT = { task: FIXTURE_DEFAULTS.task, n: FIXTURE_DEFAULTS.n, steps: 6, batch: 8, seed: 3 };
const nodeModel = (spec) => new Decoder({ vocabSize: VOCAB.length, maxLength: TASKS[spec.task].length(spec.n) });
const shortModel = nodeModel(SHORT).initialize(SHORT.seed);
const nodeShort = await trainRun({ ...SHORT, model: shortModel });
shortModel.dispose();

// 2. Serve cross-origin isolated on loopback (a secure context: navigator.gpu needs one).
const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.wasm': 'application/wasm', '.svg': 'image/svg+xml' };
// Under /plain/ the same files come without the isolation headers.
const server = createServer((req, res) => {
  let path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
  const plain = path.startsWith('/plain/');
  if (plain) path = path.slice('/plain'.length);
  const file = normalize(join(out, path === '/' ? 'index.html' : path));
  if (!file.startsWith(out) || !existsSync(file)) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, {
    'content-type': types[extname(file)] ?? 'application/octet-stream',
    'cache-control': 'no-store',
    ...(process.env.GQA_NO_ISOLATION || plain ? {} : {
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
    }),
  });
  res.end(readFileSync(file));
});
await new Promise((resolve) => server.listen(Number(process.env.GQA_PORT ?? 0), '127.0.0.1', resolve));
const url = `http://127.0.0.1:${server.address().port}/index.html`;
/** Examples the page decodes per generation in the tests (?count=; the page's default is 64). */
const COUNT = 16;
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
      if (errors.length) throw new Error(`console errors: ${errors.join(' | ').slice(0, 2000)}`);
      ok = true;
    } catch (e) {
      msg = String(e?.message ?? e);
    }
    if (ok) passed++;
    else failed++;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${name} (${(performance.now() - start).toFixed(0)} ms) ${msg}`);
    errors.length = 0;
  };
  const expect = (cond, msg) => {
    if (!cond) throw new Error(msg);
  };
  const watch = (page) => {
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
  };
  try {
    const context = await browser.newContext({ viewport: VIEWPORTS[0], hasTouch: true });
    const page = await context.newPage();
    watch(page);
    console.log(`# vite build ${buildMs.toFixed(0)} ms, Chromium ${browser.version()}, Node fixture on ${nodeFixture.backend}`);
    const idle = (timeout = 170_000) => page.waitForFunction(() => window.demo.busy === false, null, { timeout });
    /** document.documentElement.scrollWidth ≤ innerWidth at both viewports (then back to the phone). */
    const noSideScroll = async () => {
      const seen = [];
      for (const vp of [...VIEWPORTS].reverse()) {
        await page.setViewportSize(vp);
        const { sw, iw } = await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() =>
          resolve({ sw: document.documentElement.scrollWidth, iw: innerWidth })))));
        expect(sw <= iw, `at ${vp.width}×${vp.height} the page is ${sw} px wide (viewport ${iw}): sideways scroll`);
        seen.push(`${vp.width}: ${sw} ≤ ${iw}`);
      }
      return seen.join(', ');
    };
    const setForm = async ({ backend, task, n, steps, batch, seed }) => {
      if (backend) await page.selectOption('select[name=backend]', backend);
      if (task) await page.selectOption('select[name=task]', task);
      for (const [k, v] of Object.entries({ n, steps, batch, seed })) if (v != null) await page.fill(`input[name=${k}]`, String(v));
    };

    await check('page loads cross-origin isolated with the wasm engine on worker threads', async () => {
      await page.goto(`${url}?count=${COUNT}`);
      await page.waitForFunction(() => window.demo != null, null, { timeout: 60_000 });
      const info = await page.evaluate(() => window.demo.ready);
      expect(info.crossOriginIsolated && info.sharedArrayBuffer, `not isolated: ${JSON.stringify(info)}`);
      expect(info.engineKind === 'wasm', `engine ${info.engineKind}`);
      expect(info.engineThreads === Math.max(1, info.hardwareConcurrency), `engine threads ${info.engineThreads} of ${info.hardwareConcurrency} cores`);
      expect(info.backend === 'wasm', `tfjs backend ${info.backend}`);
      return `engine ${info.engineKind} × ${info.engineThreads} threads, tfjs ${info.backend}, WebGPU adapter ${info.webgpu.adapter ?? info.webgpu.why}`;
    });

    await check('status lines name the software WebGPU adapter and say why it is slow', async () => {
      const info = await page.evaluate(() => window.demo.info);
      const env = await page.textContent('#env');
      expect(/worker thread/.test(env), env);
      // Headless Chromium here has only SwiftShader: the page must say "software" with a reason.
      if (info.webgpu.available && /swiftshader/i.test(info.webgpu.adapter)) {
        expect(info.webgpu.software === true, JSON.stringify(info.webgpu));
        expect(/WebGPU: software adapter/.test(env) && /slower/.test(env), env);
      }
      return env.replace(/\s+/g, ' ').slice(0, 300);
    });

    await check('untrained model shows attention heat maps (2 blocks × 4 heads), labelled untrained, with a legend', async () => {
      const spec = await page.evaluate(() => window.demo.spec);
      const cells = await page.locator('#maps svg rect[data-p]').count();
      const t = spec.length - 1;
      expect(cells === 2 * 4 * t * t, `${cells} cells, expected ${2 * 4 * t * t}`);
      const note = await page.textContent('#maps .maps-note');
      expect(/^Untrained/.test(note), note);
      expect(await page.locator('#maps .legend .legend-bar').count() === 1, 'no colour legend');
      return `${cells} cells; “${note.slice(0, 60)}…”`;
    });

    for (const backend of ['wasm', 'cpu', 'webgl', 'webgpu']) {
      // KV-cache decoding on webgpu is skipped: the cache reads keys and values synchronously
      // (dataSync), and tfjs-webgpu 4.22's synchronous read loses the WebGPU device in Chromium.
      const cache = backend !== 'webgpu';
      const fixtureStart = performance.now();
      const fixture = await page.evaluate(([b, c]) => window.demo.fixture({ cache: c }, b).catch((e) => ({ error: String(e?.stack ?? e) })), [backend, cache]);
      console.log(`# ${backend}: fixed-weight run in the page ${(performance.now() - fixtureStart).toFixed(0)} ms`);
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

    const MAIN = { backend: 'wasm', task: 'copy', n: 4, steps: 300, batch: 32, seed: 3 };
    await check('trains and generates through the page (copy n=4, Train button): says it stopped early at the target', async () => {
      await setForm(MAIN);
      await page.click('#train');
      await page.waitForSelector('#train-progress:not([hidden])', { timeout: 30_000 });
      await idle();
      const status = await page.textContent('#train-status');
      const last = await page.evaluate(() => window.demo.lastTrain);
      expect(last.reason === 'target' && last.steps < MAIN.steps, `ended by ${last.reason} after ${last.steps} steps`);
      expect(/^Stopped early at step \d+ of 300: the held-out accuracy reached [\d.]+, at or above the target 0.99/.test(status), status);
      expect(/Weights saved/.test(status), status);
      expect(await page.isHidden('#train-progress'), 'the progress bar is still shown');
      const log = await page.textContent('#train-log');
      expect(!/left/.test(log), `stale time left: ${log}`);
      const summary = await page.textContent('#gen-summary');
      const accuracy = Number(/Generation accuracy ([\d.]+)/.exec(summary)?.[1]);
      expect(accuracy >= 0.9, `generation accuracy ${accuracy}\n${summary}`);
      expect(/held-out accuracy of training/.test(summary), 'the two accuracies are not explained');
      const rows = await page.locator('#gen-timings tr').count();
      expect(rows === 4, `${rows} timing rows`);
      expect(/^Trained on wasm/.test(await page.textContent('#maps .maps-note')), 'heat maps not relabelled after training');
      return `${last.steps} steps in ${(last.ms / 1000).toFixed(1)} s, held-out ${last.accuracy.toFixed(3)}, generation accuracy ${accuracy}`;
    }, 180_000);

    await check('no horizontal scroll after training and generation (390×844 and 1280×800)', noSideScroll);

    await check('a tap on a heat-map cell shows its weight', async () => {
      const cell = page.locator('#maps svg rect[data-p]').nth(5);
      await cell.scrollIntoViewIfNeeded();
      await cell.tap();
      const text = await page.textContent('#maps .readout');
      expect(/block 1, head 1 .* reads key position \d+ .* with weight [\d.]+/.test(text), text);
      return text;
    });

    // The trained weights, rebuilt in Node: every backend of the picker must generate Node's tokens.
    const weights = await page.evaluate(() => window.demo.weights());
    const trained = nodeModel(MAIN);
    writeWeights(trained, weights);
    const genExamples = makeBatch(MAIN.task, MAIN.n, COUNT, createRng(MAIN.seed * 15485863 + 11)).examples;
    const nodeGen = await generate(trained, genExamples, 'cache');
    trained.dispose();
    for (const backend of ['wasm', 'cpu', 'webgl', 'webgpu']) {
      await check(`${backend}: Generate with the picker on ${backend} gives Node's tokens for the trained weights`, async () => {
        await setForm({ backend });
        await page.click('#generate');
        await idle();
        const gen = await page.evaluate(() => window.demo.lastGeneration);
        expect(gen.backend === backend, `ran on ${gen.backend}`);
        expect(JSON.stringify(gen.sequences) === JSON.stringify(nodeGen.sequences), `tokens differ from Node's (accuracy ${gen.accuracy} vs ${nodeGen.accuracy})`);
        const timing = await page.textContent('#gen-timings');
        // The KV cache refuses webgpu (synchronous reads) until a GPU cache exists: the page must say so.
        if (!gen.cache) expect(new RegExp(`not on ${backend} yet`).test(timing), `KV cache row does not say why: ${timing}`);
        return `${gen.sequences.length} sequences, accuracy ${gen.accuracy.toFixed(3)}${gen.cache ? ', KV cache' : ', full recompute (the page says why no KV cache)'}`;
      }, 150_000);
    }

    await check('Time decoding (wasm): KV cache, recompute and composite give the same tokens, each timed', async () => {
      await setForm({ backend: 'wasm' });
      await page.click('#compare');
      await idle();
      const gen = await page.evaluate(() => window.demo.lastGeneration);
      expect(gen.compared && gen.cache && gen.sameAsRecompute, JSON.stringify({ ...gen, sequences: undefined }));
      const rows = await page.$$eval('#gen-timings tr', (trs) => trs.slice(1).map((tr) => [...tr.children].map((td) => td.textContent)));
      expect(rows.length === 3 && rows.every((r) => r.length === 3 && Number(r[1].replace(/,/g, '')) > 0), JSON.stringify(rows));
      return rows.map((r) => `${r[0]} ${r[1]} tokens/s`).join('; ');
    });

    await check('backend table: progress per row, then wasm, cpu, webgl and webgpu agree with wasm', async () => {
      await page.click('#backends');
      await page.waitForSelector('#backend-progress:not([hidden])', { timeout: 10_000 });
      await page.waitForFunction(() => /running \(\d\/5\)/.test(document.getElementById('backend-table').textContent), null, { timeout: 30_000 });
      await idle();
      expect(await page.isHidden('#backend-progress'), 'progress bar still shown');
      const rows = await page.$$eval('#backend-table tr', (trs) => trs.slice(1).map((tr) => [...tr.children].map((td) => td.textContent)));
      expect(rows.length === 4, `${rows.length} rows`);
      for (const r of rows) expect(r.length === 8, `${r[0]}: ${r.slice(1).join(' ')}`);
      for (const r of rows) expect(Number(r[7]) < 1e-3, `${r[0]}: max |Δ| ${r[7]}`);
      return rows.map((r) => `${r[0]} fused ${r[1]} ms / composite ${r[2]} ms, op ×${r[6]}`).join('; ');
    }, 180_000);

    await check('no horizontal scroll with the backend table (390×844 and 1280×800)', noSideScroll);

    mkdirSync(artifacts, { recursive: true });
    for (const vp of VIEWPORTS) {
      await page.setViewportSize(vp);
      await page.screenshot({ path: join(artifacts, `page-${vp.width}x${vp.height}.png`), fullPage: true });
    }
    await page.setViewportSize(VIEWPORTS[0]);
    console.log(`# screenshots in ${artifacts}`);

    await check('Stop keeps the saved weights of the same settings and says so', async () => {
      const key = `gqa-demo:${MAIN.task}:${MAIN.n}:${MAIN.seed}`;
      const before = await page.evaluate((k) => localStorage.getItem(k), key);
      expect(before != null, 'nothing saved by the first run');
      await setForm({ ...MAIN, steps: 5000 });
      await page.click('#train');
      await page.waitForFunction(() => /step [3-9]\d* of 5000/.test(document.querySelector('#train-progress .progress-text').textContent), null, { timeout: 60_000 });
      await page.click('#stop');
      await idle();
      const status = await page.textContent('#train-status');
      expect(/^Stopped by you at step \d+ of 5000/.test(status) && /not saved/.test(status), status);
      expect(await page.isHidden('#train-progress'), 'the progress bar is still shown');
      const after = await page.evaluate((k) => localStorage.getItem(k), key);
      expect(after === before, 'the stopped run overwrote the saved weights');
      // The barely trained model then makes mistakes: each wrong sample shows the expected answer.
      const wrong = await page.$$eval('#samples li', (lis) => lis.filter((li) => li.querySelector('.bad')).map((li) => li.textContent));
      expect(wrong.length > 0, 'no wrong sample shown after a stopped run');
      for (const w of wrong) expect(/✗ expected( \S)+$/.test(w.trim()), `a wrong sample without its expected answer: ${w}`);
      return `${status} (${wrong.length} wrong samples, e.g. “${wrong[0].trim()}”)`;
    });

    await check('Load saved weights brings back the finished run (not the stopped one)', async () => {
      await setForm({ ...MAIN, backend: 'wasm' });
      await page.click('#load');
      await idle();
      const status = await page.textContent('#train-status');
      expect(/^Loaded the saved weights for copy 4 symbols, seed 3/.test(status), status);
      const gen = await page.evaluate(() => window.demo.lastGeneration);
      expect(gen.accuracy >= 0.9, `generation accuracy ${gen.accuracy} after loading`);
      return `${status} Generation accuracy ${gen.accuracy.toFixed(3)}`;
    });

    for (const backend of ['wasm', 'cpu', 'webgl', 'webgpu']) {
      const tol = backend === 'wasm' || backend === 'cpu' ? 1e-4 : 2e-3;
      await check(`${backend}: Train with the picker on ${backend} gives Node's losses (${SHORT.task} n=${SHORT.n}, ${SHORT.steps} steps of ${SHORT.batch})`, async () => {
        await setForm({ ...SHORT, backend });
        await page.click('#train');
        await idle();
        const last = await page.evaluate(() => window.demo.lastTrain);
        expect(last?.backend === backend, `trained on ${last?.backend}; ${await page.textContent('#train-status')}`);
        const got = last.losses.map(([, l]) => l);
        const want = nodeShort.losses.map(([, l]) => l);
        expect(JSON.stringify(last.losses.map(([s]) => s)) === JSON.stringify(nodeShort.losses.map(([s]) => s)), 'different steps');
        const worst = closeness(got, want, tol, tol);
        expect(worst <= 1, `losses ${got.map((l) => l.toFixed(5))} vs Node ${want.map((l) => l.toFixed(5))}`);
        const gen = await page.evaluate(() => window.demo.lastGeneration);
        expect(gen.backend === backend, `generated on ${gen.backend}`);
        return `${got.map((l) => l.toFixed(4)).join(' → ')} (within ${tol})`;
      }, 150_000);
    }

    await check('without COOP/COEP the page names the two headers and says ?threads=2 is ignored', async () => {
      const plain = await context.newPage();
      watch(plain);
      try {
        await plain.goto(url.replace('/index.html', '/plain/index.html?threads=2'));
        await plain.waitForFunction(() => window.demo != null, null, { timeout: 60_000 });
        const info = await plain.evaluate(() => window.demo.ready);
        expect(!info.crossOriginIsolated && info.engineThreads === 1, `isolated ${info.crossOriginIsolated}, ${info.engineThreads} threads`);
        const env = (await plain.textContent('#env')).replace(/\s+/g, ' ');
        expect(env.includes('Cross-Origin-Opener-Policy: same-origin'), env);
        expect(env.includes('Cross-Origin-Embedder-Policy: require-corp'), env);
        expect(/\?threads=2 is ignored/.test(env), env);
        return env.slice(0, 240);
      } finally {
        await plain.close();
      }
    });
  } finally {
    await browser.close();
  }
  console.log(`${passed} passed, ${failed} failed (${((performance.now() - t0) / 1000).toFixed(0)} s in all)`);
  return failed === 0 && passed > 0 ? 0 : 1;
}
