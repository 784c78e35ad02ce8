// Images in the chat UI, end to end: headless Chromium (Playwright) against a real `minerva
// serve` with the tiny vision model (scripts/fixtures/tiny_vlm.py: Qwen's weights and a random
// projector, so its answers are nonsense, but it reads images) and the Qwen text model next to
// it. Run by scripts/test.sh as `node --test tests/ui/vision.spec.mjs`, with MINERVA_BIN,
// MINERVA_VLM_DIR and MINERVA_QWEN_GGUF set. Writes tests/ui/screenshots/vision.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { SHOTS, required, waitFor, startServer, stopServer, launchBrowser } from './harness.mjs';

const VISION = 'model'; // the tiny VLM, served from model.gguf

let server;
let base;
let browser;
let page;
let profile;
let textModel; // the Qwen text model's id

// ---------- a PNG, made here ----------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}
/** A `size`×`size` RGB PNG: a gradient with a coloured square in the middle. */
function png(size, [r, g, b]) {
  const rows = [];
  for (let y = 0; y < size; y++) {
    const row = Buffer.alloc(1 + size * 3);
    for (let x = 0; x < size; x++) {
      const inside = Math.abs(x - size / 2) < size / 4 && Math.abs(y - size / 2) < size / 4;
      row.set(inside ? [r, g, b] : [(x * 255) / size, (y * 255) / size, 160], 1 + x * 3);
    }
    rows.push(row);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8 bits, RGB
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(rows))), chunk('IEND', Buffer.alloc(0))]);
}

// ---------- helpers ----------

async function json(path, init) {
  const response = await fetch(base + path, init);
  return { status: response.status, body: response.status === 204 ? null : await response.json() };
}

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });
}

const replies = () => page.locator('.message.assistant');
const lastReply = () => replies().last();
const pending = () => page.locator('#attachments .thumb');

async function pick(model) {
  await page.selectOption('#model', model);
}

async function setSetting(id, value) {
  if (await page.locator('#settings').isHidden()) await page.click('#toggle-settings');
  await page.fill(`#${id}`, String(value));
  await page.locator(`#${id}`).dispatchEvent('change');
  await page.click('#toggle-settings');
}

async function waitForReplyDone() {
  await waitFor('the reply to end', async () => (await page.locator('.message.streaming').count()) === 0 &&
    (await page.locator('#send').isVisible()), 60000);
}

/** How many of `locator`'s images have loaded (a data: URI the page could show). */
async function loadedImages(locator) {
  return locator.evaluateAll((imgs) => imgs.filter((img) => img.complete && img.naturalWidth > 0).length);
}

/**
 * Fires `type` (a `paste` on the prompt, or a `drop` on the composer) carrying files made in
 * the page: [{name, type, base64}] or [{name, type, size}] (that many zero bytes).
 */
async function fire(type, files) {
  await page.evaluate(({ type, files }) => {
    const data = new DataTransfer();
    for (const f of files) {
      const bytes = f.base64 ? Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0)) : new Uint8Array(f.size);
      data.items.add(new File([bytes], f.name, { type: f.type }));
    }
    const init = { bubbles: true, cancelable: true };
    if (type === 'paste') {
      document.getElementById('prompt').dispatchEvent(new ClipboardEvent('paste', { ...init, clipboardData: data }));
    } else {
      const composer = document.getElementById('composer');
      composer.dispatchEvent(new DragEvent('dragover', { ...init, dataTransfer: data }));
      composer.dispatchEvent(new DragEvent('drop', { ...init, dataTransfer: data }));
    }
  }, { type, files });
}

// ---------- the tests ----------

before(async () => {
  const dir = process.env.MINERVA_VLM_DIR;
  const model = dir && join(dir, 'model.gguf');
  const mmproj = dir && join(dir, 'mmproj.gguf');
  if (!dir || !existsSync(model) || !existsSync(mmproj)) {
    throw new Error('MINERVA_VLM_DIR must be a folder with model.gguf and mmproj.gguf (run scripts/test.sh)');
  }
  const started = await startServer(model, ['--mmproj', mmproj, '--model', required('MINERVA_QWEN_GGUF')], 'vision');
  server = started.proc;
  base = started.url;
  profile = mkdtempSync(join(tmpdir(), 'minerva-ui-chromium-'));
  ({ browser, page } = await launchBrowser(profile));
});

after(async () => {
  if (browser) await browser.close();
  await stopServer(server);
  if (profile) rmSync(profile, { recursive: true, force: true });
});

test('the attach button is there for a vision model only', async () => {
  const { body } = await json('/v1/models');
  const vision = body.data.find((m) => m.id === VISION);
  assert.ok(vision.meta.capabilities.includes('vision'), JSON.stringify(vision.meta));
  textModel = body.data.find((m) => !m.meta.capabilities.includes('vision')).id;

  await page.goto(`${base}/`);
  await waitFor('both models in the picker', async () => (await page.locator('#model option').count()) === 2);
  await pick(textModel);
  assert.equal(await page.locator('#attach').isVisible(), false);
  assert.equal(await page.locator('#attach').isDisabled(), true);
  await pick(VISION);
  await waitFor('the attach button', async () => page.locator('#attach').isVisible(), 3000);
  assert.equal(await page.locator('#attach').isEnabled(), true);
  assert.equal(await page.locator('#attach-input').getAttribute('accept'), 'image/*');
});

test('images attach by the file picker, paste and drop; others are refused plainly', async () => {
  await setSetting('max_tokens', 16);
  await setSetting('seed', 3);
  // The button opens the file picker.
  const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.click('#attach')]);
  assert.equal(chooser.isMultiple(), true);
  await chooser.setFiles({ name: 'square.png', mimeType: 'image/png', buffer: png(64, [220, 40, 40]) });
  await waitFor('the thumbnail', async () => (await pending().count()) === 1, 5000);
  assert.equal(await loadedImages(pending().locator('img')), 1);

  // A pasted image, and a dropped one.
  await fire('paste', [{ name: 'image.png', type: 'image/png', base64: png(48, [40, 200, 40]).toString('base64') }]);
  await waitFor('the pasted image', async () => (await pending().count()) === 2, 5000);
  await fire('drop', [{ name: 'dropped.png', type: 'image/png', base64: png(40, [40, 40, 220]).toString('base64') }]);
  await waitFor('the dropped image', async () => (await pending().count()) === 3, 5000);
  assert.equal(await loadedImages(pending().locator('img')), 3);

  // Not an image, an image over 20 MB, a format the server cannot read: refused, with why.
  await page.locator('#attach-input').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
  await waitFor('the refusal', async () => page.locator('#error').isVisible(), 5000);
  assert.match(await page.locator('#error').innerText(), /“notes\.txt” is not an image/);
  await fire('drop', [{ name: 'huge.png', type: 'image/png', size: 20 * 1024 * 1024 + 1 }, { name: 'vector.svg', type: 'image/svg+xml', size: 10 }]);
  await waitFor('the refusal of the huge image', async () => /huge\.png/.test(await page.locator('#error').innerText()), 5000);
  const said = await page.locator('#error').innerText();
  assert.match(said, /“huge\.png” is 20\.0 MB, over the 20 MB an image may be/);
  assert.match(said, /“vector\.svg” is SVG\+XML: the server reads PNG, JPEG, WebP and GIF/);
  assert.equal(await pending().count(), 3);

  // A thumbnail's ✕ removes it.
  await page.locator('#attachments button[aria-label="Remove image 3"]').click();
  assert.equal(await pending().count(), 2);
});

test('the images go with the message; the reply streams in; the thumbnails show', async () => {
  await page.fill('#prompt', 'What is in these pictures?');
  await page.press('#prompt', 'Enter');
  await waitFor('the reply to stream', async () => (await page.locator('.message.streaming').count()) === 1, 30000, 20);
  assert.equal(await pending().count(), 0, 'the sent images left the composer');
  await waitForReplyDone();
  assert.equal(await page.locator('#error').isVisible(), false, await page.locator('#error').innerText());
  assert.ok((await lastReply().locator('.content').innerText()).trim().length > 0);
  assert.match(await lastReply().locator('.stats').innerText(), /\d+ tokens/);
  const user = page.locator('.message.user');
  assert.equal(await user.locator('.thumbs img').count(), 2);
  assert.equal(await loadedImages(user.locator('.thumbs img')), 2);
  assert.equal(await user.locator('.content').innerText(), 'What is in these pictures?');

  // Stored as OpenAI content parts; search reads the text, not the images.
  const { body } = await json('/ui/api/v1/conversations');
  assert.equal(body.conversations.length, 1);
  const saved = (await json(`/ui/api/v1/conversations/${body.conversations[0].id}`)).body;
  assert.equal(saved.title, 'What is in these pictures?');
  const parts = saved.messages[0].content;
  assert.deepEqual(parts.map((p) => p.type), ['text', 'image_url', 'image_url']);
  assert.equal(parts[0].text, 'What is in these pictures?');
  assert.ok(parts[1].image_url.url.startsWith('data:image/png;base64,iVBOR'));
  assert.equal(saved.messages[1].role, 'assistant');
  assert.equal((await json('/ui/api/v1/conversations?q=these%20pictures')).body.conversations.length, 1);
  assert.equal((await json('/ui/api/v1/conversations?q=iVBOR')).body.conversations.length, 0);

  // A click shows one larger.
  await user.locator('.thumbs img').first().click();
  await waitFor('the viewer', async () => page.locator('#viewer').isVisible(), 3000);
  assert.equal(await loadedImages(page.locator('#viewer-image')), 1);
  await page.keyboard.press('Escape');
  await waitFor('the viewer to close', async () => !(await page.locator('#viewer').isVisible()), 3000);

  // An image waiting in the composer, for the picture.
  await page.locator('#attach-input').setInputFiles({ name: 'next.png', mimeType: 'image/png', buffer: png(64, [240, 200, 0]) });
  await waitFor('the thumbnail', async () => (await pending().count()) === 1, 5000);
  await shot('vision');
  await page.locator('#attachments button.remove').click();
  assert.equal(await pending().count(), 0);
});

test('regenerate and edit-and-resend keep the images', async () => {
  await lastReply().locator('button.regenerate').click();
  await waitFor('the regenerated reply', async () => (await page.locator('.message.streaming').count()) === 1, 10000, 20);
  await waitForReplyDone();
  assert.equal(await page.locator('#error').isVisible(), false, await page.locator('#error').innerText());
  assert.equal(await replies().count(), 1);
  assert.ok((await lastReply().locator('.content').innerText()).trim().length > 0);

  await page.locator('.message.user button.edit').click();
  assert.equal(await page.locator('.message.user .thumbs img').count(), 2);
  await page.locator('.message.user button[aria-label="Remove image 2"]').click();
  assert.equal(await page.locator('.message.user .thumbs img').count(), 1);
  await page.fill('.edit-area', 'And in this one?');
  await page.locator('button.resend').click();
  await waitForReplyDone();
  assert.equal(await page.locator('#error').isVisible(), false, await page.locator('#error').innerText());
  assert.equal(await page.locator('.message.user').count(), 1);
  assert.equal(await page.locator('.message.user .thumbs img').count(), 1);
  assert.equal(await page.locator('.message.user .content').innerText(), 'And in this one?');
});

test('after a reload the thumbnails are there again', async () => {
  await page.reload();
  await waitFor('the list', async () => (await page.locator('.conversation').count()) === 1);
  await page.locator('.conversation .open').click();
  await waitFor('its messages', async () => (await page.locator('.message').count()) === 2);
  const thumbs = page.locator('.message.user .thumbs img');
  assert.equal(await thumbs.count(), 1);
  await waitFor('the thumbnail to load', async () => (await loadedImages(thumbs)) === 1, 5000);
  assert.equal(await page.locator('.message.user .content').innerText(), 'And in this one?');
});

test('a text-only model: no attach button, and its 400 for the images is said plainly', async () => {
  await pick(textModel);
  await waitFor('the attach button to go', async () => !(await page.locator('#attach').isVisible()), 3000);
  // A dropped image is refused with why.
  await fire('drop', [{ name: 'late.png', type: 'image/png', base64: png(16, [0, 0, 0]).toString('base64') }]);
  await waitFor('the refusal', async () => page.locator('#error').isVisible(), 5000);
  assert.match(await page.locator('#error').innerText(), /cannot read images: pick a model with vision/);
  assert.equal(await pending().count(), 0);
  // The conversation has images: the server refuses them, and the page says so.
  await page.fill('#prompt', 'Describe it again.');
  await page.press('#prompt', 'Enter');
  await waitFor('the error', async () => /cannot read images/.test(await page.locator('#error').innerText()), 30000);
  assert.match(await page.locator('#error').innerText(), /The server answered 400: .*cannot read images .*use a vision model/);
  await waitForReplyDone();
  await pick(VISION);
  await waitFor('the attach button', async () => page.locator('#attach').isVisible(), 3000);
});
