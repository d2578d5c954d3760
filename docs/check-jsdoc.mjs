#!/usr/bin/env node
/**
 * Checks the API docs: every export of the package's entry points (as TypeDoc sees them) has a
 * JSDoc comment with an `@example`, and every TypeScript example that imports the package runs in
 * Node (transpiled with esbuild, run from a temporary folder inside the repository so that
 * `grouped-query-attention` resolves to the built package, and files they write go away;
 * examples that need a browser backend are listed, not run).
 *
 *   node docs/check-jsdoc.mjs            report; exits 1 if anything is missing or fails
 *   node docs/check-jsdoc.mjs --no-run   only check that the comments and examples exist
 *
 * Needs `npm run build` first (examples import dist/ through the package name).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transformSync } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = !process.argv.includes('--no-run');
const tmp = mkdtempSync(join(root, '.jsdoc-check-'));
try {
  execFileSync(process.execPath, [join(root, 'node_modules/typedoc/bin/typedoc'), '--json', join(tmp, 'api.json'),
    '--out', join(tmp, 'html'), '--logLevel', 'Error'], { cwd: root, stdio: 'inherit' });
  const api = JSON.parse(readFileSync(join(tmp, 'api.json'), 'utf8'));
  const text = (parts) => (parts ?? []).map((p) => p.text).join('');
  const commentOf = (r) => r.comment ?? r.signatures?.[0]?.comment ?? r.getSignature?.comment ?? null;
  const rows = [];
  // One definition exported from two entry points is a TypeDoc reference (`target`) in the second:
  // it carries the comment of the declaration it points to.
  const byId = new Map();
  for (const module of api.children) for (const r of module.children ?? []) byId.set(r.id, r);
  for (const module of api.children) {
    for (const r of module.children ?? []) {
      const comment = commentOf(r) ?? (typeof r.target === 'number' && byId.has(r.target) ? commentOf(byId.get(r.target)) : null);
      const examples = (comment?.blockTags ?? []).filter((t) => t.tag === '@example').map((t) => text(t.content));
      const where = r.sources?.[0] ? `${r.sources[0].fileName}:${r.sources[0].line}` : '';
      rows.push({ name: `${module.name === 'index' ? '' : `${module.name}/`}${r.name}`, where, documented: comment != null, examples });
    }
  }
  let problems = 0;
  let ran = 0;
  for (const row of rows) {
    const notes = [];
    if (!row.documented) notes.push('no JSDoc');
    else if (row.examples.length === 0) notes.push('no @example');
    if (run) {
      row.examples.forEach((ex, i) => {
        const code = /```(?:ts|typescript|js|javascript)?\n([\s\S]*?)```/.exec(ex)?.[1];
        if (code == null) return void notes.push(`example ${i + 1}: no code block`);
        if (!/from 'grouped-query-attention/.test(code)) return void notes.push(`example ${i + 1}: a fragment (no import of the package), not run`);
        if (/webgpu|webgl|document\.|window\./.test(code)) return void notes.push(`example ${i + 1}: browser-only, not run`);
        const js = transformSync(code, { loader: 'ts', format: 'esm' }).code;
        const file = join(tmp, `example-${ran++}.mjs`);
        writeFileSync(file, js);
        const result = spawnSync(process.execPath, [file], { cwd: root, encoding: 'utf8', timeout: 60_000 });
        if (result.status !== 0) {
          const err = (result.stderr || result.stdout || `exit ${result.status}`).split('\n').find((l) => /Error|error/.test(l)) ?? result.stderr.slice(0, 200);
          notes.push(`example ${i + 1} fails: ${err.trim().slice(0, 200)}`);
        }
      });
    }
    const bad = notes.some((n) => /no JSDoc|no @example|fails|no code block/.test(n));
    if (bad) problems++;
    console.log(`${bad ? 'FAIL' : 'ok  '} ${row.name.padEnd(40)} ${row.examples.length} example(s) ${notes.join('; ')}  ${bad ? row.where : ''}`);
  }
  console.log(`${rows.length - problems} passed, ${problems} failed`);
  process.exitCode = problems === 0 ? 0 : 1;
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
