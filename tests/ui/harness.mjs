// What the browser tests share: a real `minerva serve` on a free port over a store of its own,
// headless Chromium (Playwright) with a fresh profile, and waiting for a condition.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, mkdtempSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// playwright-core is a dev dependency of the UI (ui/node_modules).
const require = createRequire(new URL('../../ui/package.json', import.meta.url));
const { chromium } = require('playwright-core');

export const SHOTS = process.env.MINERVA_UI_SCREENSHOTS || new URL('./screenshots/', import.meta.url).pathname;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** The value of environment variable `name`, which must name an existing file. */
export function required(name) {
  const value = process.env[name];
  if (!value || !existsSync(value)) throw new Error(`${name} must point to an existing file (run scripts/test.sh)`);
  return value;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns something truthy, which it returns. */
export async function waitFor(what, check, timeoutMs = 30000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * Starts `minerva serve [--model MODEL]` with `args` over a store of its own (`store`, or a new
 * one); its process, URL and store.
 */
export async function startServer(model, args, name, { env = {}, store } = {}) {
  store = store || mkdtempSync(join(tmpdir(), `minerva-ui-${name}-`));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const log = openSync(join(tmpdir(), `minerva-ui-${name}-${port}.log`), 'w');
  const modelArgs = model ? ['--model', model] : [];
  const proc = spawn(required('MINERVA_BIN'), ['serve', ...modelArgs, '--port', String(port), '--ctx-size', '2048', ...args], {
    env: { ...process.env, MINERVA_MODELS: store, RUST_LOG: 'info', NO_COLOR: '1', ...env },
    stdio: ['ignore', log, log],
  });
  await waitFor(`minerva serve (${name}) to be healthy`, async () => {
    if (proc.exitCode !== null) throw new Error(`minerva serve exited with ${proc.exitCode}`);
    try {
      return (await fetch(`${url}/health`)).ok;
    } catch {
      return false;
    }
  }, 120000, 200);
  return { proc, url, store };
}

export async function stopServer(proc) {
  if (!proc || proc.exitCode !== null) return;
  proc.kill('SIGTERM');
  await Promise.race([new Promise((r) => proc.once('exit', r)), sleep(20000)]);
  if (proc.exitCode === null) proc.kill('SIGKILL');
}

/** Headless Chromium with a fresh profile in `profile`: its context and first page. */
export async function launchBrowser(profile) {
  mkdirSync(SHOTS, { recursive: true });
  // A persistent context is Chromium with a fresh user-data-dir of its own.
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1200, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = browser.pages()[0] || await browser.newPage();
  page.on('pageerror', (error) => console.error('page error:', error));
  return { browser, page };
}
