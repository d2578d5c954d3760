// Vite config of the browser demo (`npm run web`; `vite build --config web/vite.config.js` builds it
// into web/dist). The page is served cross-origin isolated (COOP/COEP), so that SharedArrayBuffer
// exists and the attention engine and tfjs-wasm run on worker threads.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const web = dirname(fileURLToPath(import.meta.url));
const root = resolve(web, '..');
const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

export default defineConfig({
  root: web,
  base: './',
  resolve: {
    // The page uses the built package (dist/, made by `npm install`), under its own name, as the
    // Node examples do.
    alias: [
      { find: /^grouped-query-attention\/engine$/, replacement: resolve(root, 'dist/engine/index.js') },
      { find: /^grouped-query-attention\/(webgpu|webgl)$/, replacement: resolve(root, 'dist/$1.js') },
      { find: /^grouped-query-attention$/, replacement: resolve(root, 'dist/index.js') },
    ],
  },
  server: { headers: isolation, fs: { allow: [root] } },
  preview: { headers: isolation },
  build: { outDir: resolve(web, 'dist'), emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 4096 },
  worker: { format: 'es' },
});
