// Worker source of the attention engine (embedded as a string by scripts/build-engine.mjs).
// Runs as eval'd code in a Node worker_threads Worker, or as a classic script in a Web Worker.
// CONTROL_WORDS, WORKER_STATE_BASE, Control and WorkerState come from the prelude that
// scripts/build-engine.mjs generates from wasm/interface.mjs.
// It instantiates the shared-memory kernel on the engine's single WebAssembly.Memory, reports
// readiness through the control block, then sleeps on the job generation word (Atomics.wait) and
// runs `work` for every new job until told to quit. Nothing here allocates per job.
(() => {
  
  var GENERATION = Control.GENERATION, QUIT = Control.QUIT, READY = Control.READY;
  var FAILED = Control.FAILED, FINISHED = Control.FINISHED, STATE = WORKER_STATE_BASE;
  function run(data, report) {
    var memory = data.memory;
    var ctl = new Int32Array(memory.buffer, data.ctlOffset, CONTROL_WORDS);
    var tid = data.tid;
    var inst;
    try {
      inst = new WebAssembly.Instance(data.module, { env: { memory: memory } });
    } catch (e) {
      Atomics.store(ctl, STATE + tid, WorkerState.FAILED);
      Atomics.add(ctl, FAILED, 1);
      Atomics.notify(ctl, READY);
      report({ type: 'error', message: String(e?.message || e) });
      return;
    }
    var work = inst.exports.work;
    Atomics.store(ctl, STATE + tid, WorkerState.IDLE);
    Atomics.add(ctl, READY, 1);
    Atomics.notify(ctl, READY);
    var seen = 0;
    for (;;) {
      Atomics.wait(ctl, GENERATION, seen);
      if (Atomics.load(ctl, QUIT) !== 0) break;
      seen = Atomics.load(ctl, GENERATION);
      Atomics.store(ctl, STATE + tid, WorkerState.BUSY);
      try {
        if (data.crashOnJob !== undefined && seen >= data.crashOnJob) throw new Error('injected worker fault');
        work(data.paramsOffset, tid, seen);
      } catch (e) {
        Atomics.store(ctl, STATE + tid, WorkerState.FAILED);
        Atomics.add(ctl, FAILED, 1);
        Atomics.add(ctl, FINISHED, 1);
        Atomics.notify(ctl, FINISHED);
        report({ type: 'error', message: String(e?.message || e) });
        return;
      }
      Atomics.store(ctl, STATE + tid, WorkerState.IDLE);
      Atomics.add(ctl, FINISHED, 1);
      Atomics.notify(ctl, FINISHED);
    }
    Atomics.store(ctl, STATE + tid, WorkerState.STOPPED);
  }
  // Node (detected without `require`, which an ES-module evaluation lacks) or a Web Worker.
  var nodeProcess = typeof process === 'object' && process !== null && typeof process.getBuiltinModule === 'function' ? process : null;
  if (typeof self === 'undefined' && nodeProcess !== null) {
    const wt = nodeProcess.getBuiltinModule('node:worker_threads');
    run(wt.workerData, (msg) => { wt.parentPort.postMessage(msg); });
  } else {
    self.onmessage = (ev) => {
      self.onmessage = null;
      run(ev.data, (msg) => { self.postMessage(msg); });
    };
  }
})();
