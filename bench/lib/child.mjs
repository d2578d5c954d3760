// One benchmark process: hosts one row for one case (or measures one ceiling), driven over IPC by
// ./orchestrate.mjs so that rows in different processes run interleaved, one at a time.
//
// Messages in:  {cmd:'setup', row, case, distDir, tmpDir} | {cmd:'first'} | {cmd:'warm'} | {cmd:'run'} | {cmd:'finish'}
//               | {cmd:'ceiling', name, threads, quick}
// Messages out: {ok:true, ...} or {ok:false, error}
import { readFileSync, writeFileSync } from 'node:fs';
import { checkOutput, makeInputs } from './cases.mjs';
import { measureCeiling } from './ceilings.mjs';

const IMPLS = { ort: './impl/ort.mjs', tfjs: './impl/tfjs.mjs', engine: './impl/engine.mjs' };

const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
const hwmKiB = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
/** Resets the peak RSS to the current RSS (Linux >= 4.0); false when not allowed. */
function resetPeak() {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

let impl = null;
let theCase = null;
let inputs = null;

async function handle(msg) {
  if (msg.cmd === 'ceiling') return { ok: true, result: await measureCeiling(msg.name, msg.threads, msg.quick) };
  if (msg.cmd === 'setup') {
    theCase = msg.case;
    inputs = makeInputs(theCase);
    const { setup } = await import(IMPLS[msg.row.impl]);
    impl = await setup(theCase, inputs, { ...msg.row.opts, distDir: msg.distDir, tmpDir: msg.tmpDir });
    return { ok: true, notes: impl.notes };
  }
  if (msg.cmd === 'first') {
    // First (cold) call: extra peak RSS over the call, and the check against the float64 reference.
    globalThis.gc?.();
    const canPeak = resetPeak();
    const rss0 = rssKiB();
    const t0 = performance.now();
    const out = await impl.call();
    const firstMs = performance.now() - t0;
    const extraMB = canPeak ? (hwmKiB() - rss0) / 1024 : null;
    const { maxErr, maxRef } = checkOutput(theCase, inputs, out);
    return { ok: true, firstMs, extraMB, maxErr, maxRef };
  }
  if (msg.cmd === 'warm') {
    const t1 = performance.now();
    await impl.call();
    const warmMs = performance.now() - t1;
    let tensorPeakMB = null;
    if (impl.tensorPeakBytes) tensorPeakMB = (await impl.tensorPeakBytes()) / 2 ** 20;
    return { ok: true, warmMs, tensorPeakMB };
  }
  if (msg.cmd === 'run') {
    const t0 = performance.now();
    await impl.call();
    return { ok: true, ms: performance.now() - t0 };
  }
  if (msg.cmd === 'finish') {
    const kernelMs = impl?.kernelTimes ? await impl.kernelTimes() : null;
    await impl?.dispose?.();
    return { ok: true, kernelMs };
  }
  throw new Error(`unknown command ${msg.cmd}`);
}

process.on('message', async (msg) => {
  let reply;
  try {
    reply = await handle(msg);
  } catch (e) {
    reply = { ok: false, error: String(e?.stack ?? e).split('\n').slice(0, 3).join(' | ') };
  }
  process.send(reply);
});
process.on('disconnect', () => process.exit(0));
