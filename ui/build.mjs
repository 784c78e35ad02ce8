// Builds the UI into dist/: index.html, assets/app.js (our code with marked, highlight.js and
// DOMPurify bundled in) and assets/app.css. The minerva-ui crate embeds dist/ when it exists.
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';

const here = new URL('.', import.meta.url).pathname;
await rm(`${here}dist`, { recursive: true, force: true });
await mkdir(`${here}dist/assets`, { recursive: true });
await build({
  entryPoints: { app: `${here}src/main.js` },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2022'],
  outdir: `${here}dist/assets`,
  legalComments: 'linked',
  logLevel: 'warning',
});
await build({
  entryPoints: { app: `${here}src/style.css` },
  bundle: true,
  minify: true,
  outdir: `${here}dist/assets`,
  logLevel: 'warning',
});
await copyFile(`${here}index.html`, `${here}dist/index.html`);
console.log('ui: built dist/');
