#!/usr/bin/env node
// Entry point of `npm run bench` (root package.json: "bench": "node bench/run.mjs").
//   npm run bench                 full matrix (< ~30 min)
//   npm run bench -- --quick      small subset (< 2 min)
//   npm run bench -- --help       options
// The peers (onnxruntime-node, onnxruntime-web) live in bench/package.json, installed here on first
// use so the library itself stays small; tfjs comes from the root node_modules.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const benchDir = dirname(fileURLToPath(import.meta.url));

function installed() {
  const want = JSON.parse(readFileSync(join(benchDir, 'package.json'), 'utf8')).dependencies;
  return Object.entries(want).every(([name, version]) => {
    const p = join(benchDir, 'node_modules', name, 'package.json');
    return existsSync(p) && JSON.parse(readFileSync(p, 'utf8')).version === version;
  });
}

if (!installed()) {
  const useCi = existsSync(join(benchDir, 'package-lock.json'));
  console.error(`bench: installing the peers (npm ${useCi ? 'ci' : 'install'} --prefix bench) ...`);
  // ONNXRUNTIME_NODE_INSTALL=skip / --ignore-scripts: onnxruntime-node's postinstall would fetch GPU
  // providers; the CPU runtime ships inside its tarball.
  execFileSync('npm', [useCi ? 'ci' : 'install', '--prefix', benchDir, '--ignore-scripts', '--no-audit', '--no-fund'], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' },
  });
}
if (!existsSync(join(benchDir, '..', 'node_modules', '@tensorflow', 'tfjs-core'))) {
  console.error('bench: the root dependencies are missing (tfjs comes from there): run npm ci in the repository root first.');
  process.exit(1);
}

const { main } = await import('./lib/orchestrate.mjs');
await main(process.argv.slice(2));
