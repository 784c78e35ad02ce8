// The models view end to end: headless Chromium against the real `minerva serve
// --no-default-model` over an empty store, pulling from the hub stand-in (tests/e2e/hub.py,
// throttled so the progress can be watched). Run by scripts/test.sh as
// `node --test tests/ui/library.spec.mjs`, with MINERVA_BIN, MINERVA_QWEN_GGUF and
// MINERVA_GEMMA_GGUF set. Screenshots land in tests/ui/screenshots/ (09- to 13-).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { SHOTS, required, sleep, waitFor, startServer, stopServer, launchBrowser } from './harness.mjs';

const REPO = 'ggml-org/gemma-3-270m-GGUF';
const PULL = `hf.co/${REPO}:Q4_K_M`;
// The name it is stored under: names are lower case, as Ollama's.
const PULLED = PULL.toLowerCase();
const DEFAULT = 'qwen2.5-coder:0.5b';
// The hub sends at this rate: Gemma (253 MB) takes about 8 s, long enough to watch and cancel.
const RATE = 32 * 1000 * 1000;

let work;
let hub;
let hubLog;
let server;
let base;
let browser;
let page;
let profile;
let confirmAnswer = true;
const confirms = [];

function linkOrCopy(from, to) {
  mkdirSync(dirname(to), { recursive: true });
  try {
    linkSync(from, to);
  } catch {
    copyFileSync(from, to);
  }
}

async function startHub(root, log) {
  const proc = spawn('python3', [new URL('../e2e/hub.py', import.meta.url).pathname, '--root', root,
    '--port', '0', '--log', log, '--rate', String(RATE)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const first = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout });
    lines.once('line', resolve);
    proc.once('exit', (code) => reject(new Error(`hub.py exited with ${code}`)));
  });
  assert.match(first, /^PORT \d+$/);
  return { proc, url: `http://127.0.0.1:${first.split(' ')[1]}` };
}

function hubRequests() {
  try {
    return readFileSync(hubLog, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  } catch {
    return [];
  }
}

async function json(path, init) {
  const response = await fetch(base + path, init);
  return { status: response.status, body: response.status === 204 ? null : await response.json() };
}

async function serverModel(name) {
  const { body } = await json('/v1/models');
  return body.data.find((m) => m.id === name);
}

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });
}

const model = (name) => page.locator(`.library-model[data-id="${name}"]`);

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'minerva-ui-library-'));
  // The hub stand-in serves Gemma as the hub does.
  const root = join(work, 'hub');
  linkOrCopy(required('MINERVA_GEMMA_GGUF'), join(root, REPO, 'gemma-3-270m-Q4_K_M.gguf'));
  hubLog = join(work, 'hub.log');
  hub = await startHub(root, hubLog);
  // The default model is offered; its download is `minerva fetch`'s, which finds the verified
  // file already in its cache here (the network fetch is tested by scripts/test.sh's fetch).
  const store = join(work, 'store');
  const qwen = required('MINERVA_QWEN_GGUF');
  linkOrCopy(qwen, join(store, 'models', basename(qwen)));
  copyFileSync(`${qwen}.verified`, join(store, 'models', `${basename(qwen)}.verified`));
  const started = await startServer(null, ['--no-default-model', '--max-memory', '4G'], 'library', {
    store, env: { HF_ENDPOINT: hub.url },
  });
  server = started.proc;
  base = started.url;
  profile = join(work, 'chromium');
  ({ browser, page } = await launchBrowser(profile));
  page.on('dialog', (dialog) => {
    confirms.push(dialog.message());
    return confirmAnswer ? dialog.accept() : dialog.dismiss();
  });
});

after(async () => {
  if (browser) await browser.close();
  await stopServer(server);
  if (hub) hub.proc.kill('SIGTERM');
  if (work) rmSync(work, { recursive: true, force: true });
});

test('an empty library opens the models view with the default model on offer', async () => {
  await page.goto(`${base}/`);
  await waitFor('the models view', () => page.locator('#library').isVisible());
  await waitFor('the offer', () => page.locator('#offer').isVisible());
  const offer = await page.locator('#offer').innerText();
  assert.match(offer, /library is empty/);
  assert.match(offer, new RegExp(DEFAULT.replace('.', '\\.')));
  assert.match(offer, /491 MB/);
  assert.match(await page.locator('#memory-text').innerText(), /Memory: 0 B of 4\.0 GiB \(0 loaded\)/);
  await shot('09-library-empty');
  await page.click('#offer button.download-offer');
  await waitFor('the default model in the library', () => model(DEFAULT).isVisible(), 60000);
  assert.ok(await page.locator('#offer').isHidden());
  const tags = (await json('/api/tags')).body.models.map((m) => m.name);
  assert.deepEqual(tags, [DEFAULT]);
  const facts = await model(DEFAULT).locator('.model-facts').innerText();
  assert.match(facts, /491 MB · Q4_K_M · \d+M params · qwen2 · llama\.cpp · gguf/);
  assert.match(await model(DEFAULT).locator('.model-caps').innerText(), /completion/);
  assert.match(await model(DEFAULT).locator('.model-status').innerText(), /not loaded/);
});

test('a pull shows its progress, cancels keeping the partial, and resumes', async () => {
  await page.fill('#pull-name', PULL);
  await page.click('#pull');
  const bar = page.locator(`.pull[data-name="${PULL}"] progress`);
  await waitFor('the progress bar', async () => (await bar.count()) === 1 && (await bar.getAttribute('value')) !== null, 20000, 20);
  const seen = [];
  await waitFor('a fifth of the download', async () => {
    const value = Number(await bar.evaluate((b) => b.value));
    const max = Number(await bar.evaluate((b) => b.max));
    seen.push(value);
    return value / max > 0.2;
  }, 30000, 50);
  const distinct = [...new Set(seen)];
  assert.ok(distinct.length >= 3, `the bar moved in ${distinct.length} steps: ${distinct}`);
  for (let i = 1; i < distinct.length; i++) assert.ok(distinct[i] > distinct[i - 1]);
  assert.match(await page.locator(`.pull[data-name="${PULL}"] .pull-bytes`).innerText(), /MB of 253 MB \(\d+%\)/);
  await shot('10-pull-progress');
  await page.click(`.pull[data-name="${PULL}"] button.cancel-pull`);
  await waitFor('the cancelled state', async () => /Cancelled/.test(await page.locator(`.pull[data-name="${PULL}"]`).innerText()));
  const cut = Number(await bar.evaluate((b) => b.value));
  assert.ok(cut > 0 && cut < 253_113_024);
  assert.equal((await json('/api/tags')).body.models.length, 1, 'a cancelled pull adds nothing');
  await shot('11-pull-cancelled');

  await page.click(`.pull[data-name="${PULL}"] button.resume-pull`);
  await waitFor('the pulled model in the library', () => model(PULLED).isVisible(), 60000);
  const ranged = hubRequests().filter((r) => r.range && r.status === 206);
  assert.equal(ranged.length, 1, `one resumed download: ${JSON.stringify(hubRequests())}`);
  const from = Number(ranged[0].range.split('=')[1].replace('-', ''));
  assert.ok(from > 0, 'the resume asked only for the rest');
  assert.equal(ranged[0].bytes, 253_113_024 - from);
});

test('load and unload show within a second; the memory is counted', async () => {
  const item = model(PULLED);
  await item.locator('button.load').click();
  await waitFor('the server to load it', async () => (await serverModel(PULLED)).state === 'loaded', 60000, 50);
  const loadedAt = Date.now();
  await waitFor('the view to show it loaded', async () => (await item.getAttribute('data-state')) === 'loaded', 5000, 20);
  assert.ok(Date.now() - loadedAt <= 1000, `shown ${Date.now() - loadedAt} ms after the server loaded it`);
  assert.match(await item.locator('.model-status').innerText(), /loaded · \d+(\.\d)? MiB in memory · unloads in \d+ min if idle/);
  assert.match(await page.locator('#memory-text').innerText(), /Memory: \d+(\.\d)? MiB of 4\.0 GiB \(1 loaded\)/);
  await shot('12-library-loaded');

  await item.locator('button.unload').click();
  await waitFor('the server to unload it', async () => (await serverModel(PULLED)).state === 'unloaded', 30000, 50);
  const unloadedAt = Date.now();
  await waitFor('the view to show it unloaded', async () => (await item.getAttribute('data-state')) === 'unloaded', 5000, 20);
  assert.ok(Date.now() - unloadedAt <= 1000, `shown ${Date.now() - unloadedAt} ms after the server unloaded it`);
  assert.match(await page.locator('#memory-text').innerText(), /Memory: 0 B of 4\.0 GiB \(0 loaded\)/);
});

test('delete asks first; a bad name is an error that says what to do', async () => {
  confirmAnswer = false;
  await model(PULLED).locator('button.delete-model').click();
  await sleep(300);
  assert.match(confirms.at(-1), /Delete .*253 MB.* from the library\?/);
  assert.ok(await model(PULLED).isVisible(), 'a dismissed confirmation keeps the model');
  confirmAnswer = true;
  await model(PULLED).locator('button.delete-model').click();
  await waitFor('the model to leave the view', async () => (await model(PULLED).count()) === 0, 10000);
  assert.deepEqual((await json('/api/tags')).body.models.map((m) => m.name), [DEFAULT]);
  assert.ok(await page.locator('#library-error').isHidden(), `no error after a delete: ${await page.locator('#library-error').innerText()}`);

  await page.fill('#pull-name', 'hf.co/nobody/no-such-model');
  await page.click('#pull');
  const failed = page.locator('.pull[data-name="hf.co/nobody/no-such-model"]');
  await waitFor('the failed pull', async () => (await failed.getAttribute('class') || '').includes('failed'), 20000);
  const said = await failed.innerText();
  assert.match(said, /The download failed: cannot pull hf\.co\/nobody\/no-such-model: not found/);
  assert.match(said, /Check the name/);
  assert.doesNotMatch(said, /try pulling it first|failed while serving/);
  assert.ok(await failed.locator('button.resume-pull').isVisible(), 'a Retry button');
  await shot('13-pull-failed');
  await failed.locator('button.dismiss-pull').click();
  assert.equal(await failed.count(), 0);
});

test('Chat goes back to the conversation with the model picked', async () => {
  await model(DEFAULT).locator('button.chat').click();
  await waitFor('the chat view', () => page.locator('#composer').isVisible());
  assert.ok(await page.locator('#library').isHidden());
  assert.equal(await page.locator('#model').inputValue(), DEFAULT);
  // And the toolbar button opens the view again; a new chat from the sidebar leaves it.
  await page.click('#toggle-library');
  assert.ok(await page.locator('#library').isVisible());
  assert.equal(await page.locator('#toggle-library').getAttribute('aria-expanded'), 'true');
  await page.click('#new-chat');
  assert.ok(await page.locator('#library').isHidden());
  assert.ok(await page.locator('#composer').isVisible());
});

test('an empty name says what to enter', async () => {
  await page.click('#toggle-library');
  await page.fill('#pull-name', '  ');
  await page.click('#pull');
  assert.match(await page.locator('#library-error').innerText(), /Enter a model to pull/);
});
