// The chat UI end to end: headless Chromium (Playwright) against the real `minerva serve`
// with the real Qwen model. Run by scripts/test.sh as `node --test tests/ui/chat.spec.mjs`,
// with MINERVA_BIN and MINERVA_QWEN_GGUF set. Screenshots of the main states land in
// tests/ui/screenshots/ (or $MINERVA_UI_SCREENSHOTS).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SHOTS, required, sleep, waitFor, startServer, stopServer, launchBrowser } from './harness.mjs';

const MODEL = 'qwen2.5-coder:0.5b';

let server;
let base;
let browser;
let page;
let profile;
// What the page's prompt() dialogs are answered with, and what they asked.
let promptAnswer = 'Renamed haiku chat';
const prompts = [];

async function json(path, init) {
  const response = await fetch(base + path, init);
  return { status: response.status, body: response.status === 204 ? null : await response.json() };
}

/** Slots of the server that are busy with a request. */
async function busySlots() {
  const { body } = await json('/slots');
  return body.slots.filter((s) => s.state === 'generating' || s.state === 'prompt');
}

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });
}

const replies = () => page.locator('.message.assistant');
const lastReply = () => replies().last();

async function setSetting(id, value) {
  if (await page.locator('#settings').isHidden()) await page.click('#toggle-settings');
  await page.fill(`#${id}`, String(value));
  await page.locator(`#${id}`).dispatchEvent('change');
}

/** Sends `text` from the composer with Enter. */
async function send(text) {
  await page.fill('#prompt', text);
  await page.press('#prompt', 'Enter');
}

/** Sends `text` and waits for the new reply to be complete. */
async function sendAndWait(text) {
  const before = await replies().count();
  await send(text);
  await waitFor('the reply to start', async () => (await replies().count()) > before, 30000, 20);
  await waitForReplyDone();
}

async function waitForReplyDone() {
  await waitFor('the reply to end', async () => (await page.locator('.message.streaming').count()) === 0 &&
    (await page.locator('#send').isVisible()), 60000);
}

before(async () => {
  const started = await startServer(required('MINERVA_QWEN_GGUF'), [], 'store');
  server = started.proc;
  base = started.url;
  profile = mkdtempSync(join(tmpdir(), 'minerva-ui-chromium-'));
  ({ browser, page } = await launchBrowser(profile));
  page.on('dialog', (dialog) => {
    if (dialog.type() === 'prompt') prompts.push(dialog.message());
    return dialog.accept(dialog.type() === 'prompt' ? promptAnswer : undefined);
  });
});

after(async () => {
  if (browser) await browser.close();
  await stopServer(server);
  if (profile) rmSync(profile, { recursive: true, force: true });
});

test('the page loads with no network and lists the model with its state', async () => {
  const response = await page.goto(`${base}/`);
  assert.equal(response.status(), 200);
  assert.match(response.headers()['content-security-policy'], /default-src 'self'/);
  // Clients that are not browsers still find Ollama at /.
  assert.equal(await (await fetch(`${base}/`)).text(), 'Ollama is running');
  await waitFor('the model in the picker', async () => (await page.locator('#model option').count()) > 0);
  await page.selectOption('#model', MODEL);
  assert.match(await page.locator('#model option:checked').innerText(), /\(loaded\)/);
  assert.match(await page.locator('#model-state').innerText(), /loaded/);
  await shot('01-empty');
});

test('a reply streams token by token, with its stats', async () => {
  await setSetting('max_tokens', 40);
  await setSetting('seed', 7);
  await send('Write a haiku about the sea.');
  // The reply grows over several paints: sample its length while it streams.
  const lengths = [];
  await waitFor('the reply to start', async () => (await page.locator('.message.streaming').count()) === 1, 30000, 20);
  while ((await page.locator('.message.streaming').count()) === 1) {
    lengths.push((await lastReply().locator('.content').innerText()).length);
    await sleep(40);
  }
  const distinct = [...new Set(lengths)];
  assert.ok(distinct.length >= 4, `the reply grew in ${distinct.length} steps: ${lengths}`);
  for (let i = 1; i < distinct.length; i++) assert.ok(distinct[i] > distinct[i - 1], `lengths ${distinct}`);
  await waitForReplyDone();
  const stats = await lastReply().locator('.stats').innerText();
  assert.match(stats, /\d+ tokens/);
  assert.match(stats, /first token \d+\.\d+ s/);
  assert.match(stats, /\d+(\.\d)? tokens\/s/);
  assert.equal(await page.locator('.message.user .content').innerText(), 'Write a haiku about the sea.');
  await shot('02-reply');
});

test('regenerate replaces the reply; the conversation is saved on the server', async () => {
  await lastReply().locator('button.regenerate').click();
  await waitFor('the regenerated reply to start', async () => (await page.locator('.message.streaming').count()) === 1, 10000, 20);
  await waitForReplyDone();
  assert.equal(await replies().count(), 1);
  const { body } = await json('/ui/api/v1/conversations');
  assert.equal(body.conversations.length, 1);
  const saved = (await json(`/ui/api/v1/conversations/${body.conversations[0].id}`)).body;
  assert.equal(saved.model, MODEL);
  assert.equal(saved.settings.max_tokens, 40);
  assert.deepEqual(saved.messages.map((m) => m.role), ['user', 'assistant']);
  assert.ok(saved.messages[1].content.length > 0);
  assert.ok(saved.messages[1].stats.completion_tokens > 0);
});

test('Stop ends the generation on the server', async () => {
  await page.click('#new-chat');
  // A reply that is surely long: greedy, and a list of 300 numbers (~900 tokens).
  await setSetting('max_tokens', 1000);
  await setSetting('temperature', 0);
  await send('Count from 1 to 300, one number a line.');
  await waitFor('the story to be under way', async () =>
    (await page.locator('.message.streaming').count()) === 1 &&
    (await lastReply().locator('.content').innerText()).length > 40, 30000, 50);
  assert.ok((await busySlots()).length > 0, 'a slot generates while the reply streams');
  await page.click('#stop');
  const start = Date.now();
  await waitFor('no slot generating on the server', async () => (await busySlots()).length === 0, 5000, 50);
  console.log(`generation ended on the server ${Date.now() - start} ms after Stop`);
  await waitForReplyDone();
  assert.match(await lastReply().locator('.stats').innerText(), /\d+ tokens · first token .* · stopped/);
  const text = await lastReply().locator('.content').innerText();
  await sleep(500);
  assert.equal(await lastReply().locator('.content').innerText(), text, 'nothing arrives after Stop');
  await shot('03-stopped');
});

test('edit and resend a user message, Esc stops', async () => {
  await page.locator('.message.user button.edit').click();
  await page.fill('.edit-area', 'Count from 1 to 200, one number a line.');
  await page.locator('button.resend').click();
  await waitFor('the new reply to be under way', async () =>
    (await lastReply().locator('.content').innerText()).length > 10, 30000, 50);
  await page.keyboard.press('Escape');
  await waitForReplyDone();
  await waitFor('no slot generating', async () => (await busySlots()).length === 0, 5000, 50);
  assert.equal(await page.locator('.message.user').count(), 1);
  assert.match(await page.locator('.message.user .content').innerText(), /Count from 1 to 200/);
  assert.match(await lastReply().locator('.stats').innerText(), /stopped/);
});

test('a conversation longer than the context is a plain error', async () => {
  await page.click('#new-chat');
  await setSetting('max_tokens', 40);
  await send('word '.repeat(3000));
  await waitFor('the error', async () => page.locator('#error').isVisible(), 30000);
  assert.match(await page.locator('#error').innerText(), /no longer fits in the model's context/);
  await waitForReplyDone();
  await shot('04-context-error');
});

test('after a reload the conversations are there; rename, search, delete', async () => {
  await page.reload();
  await waitFor('the list', async () => (await page.locator('.conversation').count()) === 3);
  const titles = await page.locator('.conversation .open').allInnerTexts();
  assert.ok(titles.some((t) => t.startsWith('Write a haiku about the sea')), `${titles}`);
  assert.ok(titles.some((t) => t.startsWith('Count from 1 to 300')), `${titles}`);
  const haiku = page.locator('.conversation', { hasText: 'Write a haiku' });
  await haiku.locator('.open').click();
  await waitFor('its messages', async () => (await page.locator('.message').count()) === 2);
  assert.equal(await page.inputValue('#max_tokens'), '40');
  await haiku.locator('button.rename').click();
  await waitFor('the new title', async () => (await page.locator('.conversation .open').allInnerTexts()).includes('Renamed haiku chat'));
  await page.fill('#search', 'count from');
  await waitFor('the search', async () => (await page.locator('.conversation').count()) === 1);
  await page.fill('#search', '');
  await waitFor('the whole list', async () => (await page.locator('.conversation').count()) === 3);
  await shot('05-reloaded');

  const id = await page.locator('.conversation', { hasText: 'Renamed haiku chat' }).getAttribute('data-id');
  await page.locator('.conversation', { hasText: 'Renamed haiku chat' }).locator('button.delete').click();
  await waitFor('the deletion', async () => (await page.locator('.conversation').count()) === 2);
  assert.equal((await json(`/ui/api/v1/conversations/${id}`)).status, 404);
  assert.equal((await page.locator('.message').count()), 0, 'the deleted conversation is no longer shown');
});

test('dark theme and a narrow window', async () => {
  await page.click('#toggle-theme');
  const theme = await page.evaluate(() => document.documentElement.dataset.theme);
  await page.locator('.conversation', { hasText: 'Count from' }).locator('.open').click();
  await waitFor('messages', async () => (await page.locator('.message').count()) > 0);
  await shot(`06-${theme}`);
  await page.setViewportSize({ width: 390, height: 760 });
  await waitFor('the list to fold away', async () => page.locator('#sidebar').evaluate((e) => e.getBoundingClientRect().right <= 0), 3000);
  await page.click('#open-sidebar');
  await waitFor('the list to open', async () => page.locator('#sidebar').evaluate((e) => e.getBoundingClientRect().left >= 0));
  await shot('07-narrow');
});

test("a thinking model's reasoning is folded above its answer", async () => {
  // The same model under a template that opens a <think> block (tests/e2e/think.jinja): the
  // server sends the block as reasoning_content; this model never closes it, so the reply is
  // all reasoning, shown open.
  const template = new URL('../e2e/think.jinja', import.meta.url).pathname;
  const other = await startServer(required('MINERVA_QWEN_GGUF'), ['--chat-template', template], 'think');
  const thinking = other.url;
  try {
    await page.setViewportSize({ width: 1200, height: 800 });
    await page.goto(`${thinking}/`);
    await setSetting('max_tokens', 12);
    await sendAndWait('What is the capital of France?');
    const details = lastReply().locator('details.reasoning');
    assert.equal(await details.count(), 1);
    assert.match(await details.locator('summary').innerText(), /Thinking/);
    assert.ok((await details.locator('.reasoning-text').innerText()).trim().length > 0);
    assert.equal(await details.evaluate((d) => d.open), true);
    assert.doesNotMatch(await lastReply().locator('.content').innerText(), /<think>|<\/think>/);
    await shot('08-reasoning');
  } finally {
    await stopServer(other.proc);
    rmSync(other.store, { recursive: true, force: true });
  }
});

test('a server with an API key: the page asks for it once and keeps it', async () => {
  const keyed = await startServer(required('MINERVA_QWEN_GGUF'), ['--api-key', 'k1'], 'keyed');
  try {
    promptAnswer = 'k1';
    prompts.length = 0;
    await page.goto(`${keyed.url}/`);
    await waitFor('the model in the picker', async () => (await page.locator('#model option').count()) > 0);
    assert.equal(prompts.length, 1, `asked ${prompts.length} times: ${prompts}`);
    assert.match(prompts[0], /API key/);
    assert.equal(await page.evaluate(() => localStorage.getItem('minerva.apiKey')), 'k1');
    await setSetting('max_tokens', 8);
    await sendAndWait('Say hi.');
    assert.ok((await lastReply().locator('.content').innerText()).trim().length > 0);
    // A reload asks no more: the key is kept.
    await page.reload();
    await waitFor('the model in the picker', async () => (await page.locator('#model option').count()) > 0);
    assert.equal(prompts.length, 1);
  } finally {
    promptAnswer = 'Renamed haiku chat';
    await stopServer(keyed.proc);
    rmSync(keyed.store, { recursive: true, force: true });
  }
});
