// Minerva's chat UI: conversations kept on the server, replies streamed from
// /v1/chat/completions. A user message with images has OpenAI content parts as its content
// (text, then each image as a data: URI), stored so with the conversation.
import { conversations as api, models as fetchModels, streamChat, explain } from './api.js';
import { render, addCopyButtons } from './markdown.js';
import { createLibrary } from './library.js';

const $ = (id) => document.getElementById(id);
const SETTINGS = ['temperature', 'top_p', 'top_k', 'max_tokens', 'seed'];
const INTEGER = new Set(['top_k', 'max_tokens', 'seed']);
// What the server takes: PNG, JPEG, WebP and GIF, up to 20 MiB an image, 16 images a request.
const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/webp', 'image/gif']);
const MAX_IMAGE_BYTES = 20 * 1024 * 1024;
const MAX_IMAGES = 16;

const state = {
  list: [], // summaries
  current: null, // {id, title, model, system, settings, messages}
  models: [],
  generation: null, // {controller, index}
  search: '',
  pending: [], // images to send with the next message: [{url, name}]
};

// ---------- message content: text, or OpenAI content parts ----------

/** The text of a message's content (its text parts, for content parts). */
function textOf(content) {
  if (typeof content === 'string') return content;
  return (content || []).filter((p) => p.type === 'text').map((p) => p.text).join('\n');
}

/** The images of a message's content: their data: URIs. */
function imagesOf(content) {
  if (!Array.isArray(content)) return [];
  return content.filter((p) => p.type === 'image_url' && p.image_url && p.image_url.url).map((p) => p.image_url.url);
}

/** A user message's content: the text alone, or content parts when there are images. */
function contentOf(text, images) {
  if (!images.length) return text;
  return [
    ...(text ? [{ type: 'text', text }] : []),
    ...images.map((url) => ({ type: 'image_url', image_url: { url } })),
  ];
}

// ---------- theme ----------

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
}
applyTheme(localStorage.getItem('minerva.theme') ||
  (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'));
$('toggle-theme').addEventListener('click', () => {
  const next = document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark';
  localStorage.setItem('minerva.theme', next);
  applyTheme(next);
});

// ---------- errors ----------

function showError(error) {
  const box = $('error');
  if (!error) {
    box.hidden = true;
    box.textContent = '';
    return;
  }
  box.hidden = false;
  box.textContent = typeof error === 'string' ? error : explain(error);
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'icon';
  close.textContent = '✕';
  close.setAttribute('aria-label', 'Dismiss the error');
  close.addEventListener('click', () => showError(null));
  box.append(' ', close);
}

// ---------- models ----------

async function refreshModels() {
  try {
    state.models = await fetchModels();
  } catch (e) {
    $('model-state').textContent = 'server unreachable';
    return;
  }
  const select = $('model');
  const wanted = select.value || (state.current && state.current.model) || localStorage.getItem('minerva.model');
  const label = (m) => `${m.id} (${m.state || 'unknown'})`;
  const same = select.options.length === state.models.length &&
    state.models.every((m, i) => select.options[i].value === m.id);
  if (same) {
    // Only the states changed: keep the element (an open picker stays open).
    state.models.forEach((m, i) => { select.options[i].textContent = label(m); });
    showModelState();
    return;
  }
  select.replaceChildren(...state.models.map((m) => {
    const option = document.createElement('option');
    option.value = m.id;
    option.textContent = label(m);
    return option;
  }));
  if (wanted && state.models.some((m) => m.id === wanted)) {
    select.value = wanted;
  } else {
    const loaded = state.models.find((m) => m.state === 'loaded');
    if (loaded) select.value = loaded.id;
  }
  showModelState();
}

function showModelState() {
  const model = state.models.find((m) => m.id === $('model').value);
  const label = $('model-state');
  label.textContent = model ? `${model.state}${model.backend ? ` · ${model.backend}` : ''}` : 'no models';
  label.dataset.state = model ? model.state : 'none';
  showAttach();
}

/** True when the model `id` reads images (`vision` among its capabilities). */
function canSee(id) {
  const model = state.models.find((m) => m.id === id);
  return Boolean(model && model.meta && (model.meta.capabilities || []).includes('vision'));
}

$('model').addEventListener('change', async () => {
  localStorage.setItem('minerva.model', $('model').value);
  showModelState();
  if (state.current) {
    state.current.model = $('model').value;
    await save({ model: state.current.model });
  }
});

// ---------- settings ----------

function readSettings() {
  const settings = {};
  for (const key of SETTINGS) {
    const raw = $(key).value.trim();
    if (raw === '') continue;
    const value = INTEGER.has(key) ? parseInt(raw, 10) : parseFloat(raw);
    if (Number.isFinite(value)) settings[key] = value;
  }
  return settings;
}

function showSettings(conversation) {
  $('system').value = conversation ? conversation.system || '' : '';
  const settings = (conversation && conversation.settings) || {};
  for (const key of SETTINGS) $(key).value = settings[key] ?? '';
}

$('toggle-settings').addEventListener('click', () => {
  const panel = $('settings');
  panel.hidden = !panel.hidden;
  $('toggle-settings').setAttribute('aria-expanded', String(!panel.hidden));
});
for (const id of ['system', ...SETTINGS]) {
  $(id).addEventListener('change', () => {
    if (!state.current) return;
    state.current.system = $('system').value;
    state.current.settings = readSettings();
    save({ system: state.current.system, settings: state.current.settings });
  });
}

// ---------- conversation list ----------

async function refreshList() {
  try {
    state.list = await api.list(state.search);
  } catch (e) {
    showError(e);
    return;
  }
  const ul = $('conversations');
  ul.replaceChildren(...state.list.map(listItem));
}

function listItem(summary) {
  const li = document.createElement('li');
  li.className = 'conversation';
  li.dataset.id = summary.id;
  if (state.current && state.current.id === summary.id) li.setAttribute('aria-current', 'true');
  const open = document.createElement('button');
  open.type = 'button';
  open.className = 'open';
  open.textContent = summary.title;
  open.title = summary.title;
  open.addEventListener('click', () => openConversation(summary.id));
  const rename = document.createElement('button');
  rename.type = 'button';
  rename.className = 'icon rename';
  rename.textContent = '✎';
  rename.setAttribute('aria-label', `Rename ${summary.title}`);
  rename.addEventListener('click', async () => {
    const title = prompt('Rename the conversation', summary.title);
    if (title === null || !title.trim()) return;
    await save({ title: title.trim() }, summary.id);
  });
  const remove = document.createElement('button');
  remove.type = 'button';
  remove.className = 'icon delete';
  remove.textContent = '✕';
  remove.setAttribute('aria-label', `Delete ${summary.title}`);
  remove.addEventListener('click', async () => {
    if (!confirm(`Delete “${summary.title}”? This cannot be undone.`)) return;
    try {
      await api.remove(summary.id);
    } catch (e) {
      showError(e);
    }
    if (state.current && state.current.id === summary.id) newChat();
    await refreshList();
  });
  li.append(open, rename, remove);
  return li;
}

let searchTimer = null;
$('search').addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    state.search = $('search').value.trim();
    refreshList();
  }, 200);
});

async function openConversation(id) {
  if (state.generation) stop();
  library.setOpen(false);
  try {
    state.current = await api.get(id);
  } catch (e) {
    showError(e);
    return;
  }
  showError(null);
  showSettings(state.current);
  if (state.current.model && state.models.some((m) => m.id === state.current.model)) {
    $('model').value = state.current.model;
    showModelState();
  }
  renderMessages();
  document.body.classList.remove('sidebar-open');
  await refreshList();
}

function newChat() {
  if (state.generation) stop();
  library.setOpen(false);
  state.current = null;
  showSettings(null);
  showError(null);
  renderMessages();
  refreshList();
  $('prompt').focus();
}
$('new-chat').addEventListener('click', newChat);
$('open-sidebar').addEventListener('click', () => document.body.classList.add('sidebar-open'));
$('close-sidebar').addEventListener('click', () => document.body.classList.remove('sidebar-open'));

/** Saves fields of a conversation (the current one unless `id` says). */
async function save(fields, id = state.current && state.current.id) {
  if (!id) return;
  try {
    const saved = await api.update(id, fields);
    if (state.current && state.current.id === id) state.current.title = saved.title;
  } catch (e) {
    showError(e);
  }
  await refreshList();
}

// ---------- messages ----------

function renderMessages() {
  const box = $('messages');
  const messages = state.current ? state.current.messages : [];
  const nodes = messages.map((m, i) => messageNode(m, i));
  box.replaceChildren(...nodes);
  if (nodes.length === 0) {
    const empty = document.createElement('p');
    empty.className = 'empty';
    empty.textContent = 'Pick a model and say something.';
    box.append(empty);
  }
  box.scrollTop = box.scrollHeight;
}

function messageNode(message, index) {
  const node = document.createElement('article');
  node.className = `message ${message.role}`;
  node.dataset.index = index;
  node.setAttribute('aria-label', message.role === 'user' ? 'You said' : 'Assistant replied');
  const body = document.createElement('div');
  body.className = 'content';
  fillContent(body, message);
  node.append(body);
  const generating = state.generation && state.generation.index === index;
  if (message.role === 'assistant' && !generating) {
    const footer = document.createElement('div');
    footer.className = 'meta';
    const stats = document.createElement('span');
    stats.className = 'stats';
    stats.textContent = describeStats(message.stats);
    footer.append(stats);
    if (index === state.current.messages.length - 1) {
      footer.append(actionButton('Regenerate', 'regenerate', () => regenerate()));
    }
    node.append(footer);
  } else if (message.role === 'user' && !state.generation) {
    const footer = document.createElement('div');
    footer.className = 'meta';
    footer.append(actionButton('Edit', 'edit', () => editMessage(node, index)));
    node.append(footer);
  }
  return node;
}

function fillContent(body, message) {
  if (message.role === 'user') {
    const images = imagesOf(message.content);
    body.textContent = textOf(message.content);
    if (images.length) body.prepend(thumbnails(images));
  } else {
    body.innerHTML = render(message.content);
    addCopyButtons(body);
    if (message.reasoning) {
      // A thinking model's reasoning, folded above the answer (open while only it has come).
      const details = document.createElement('details');
      details.className = 'reasoning';
      details.open = !message.content;
      const summary = document.createElement('summary');
      summary.textContent = 'Thinking';
      const text = document.createElement('div');
      text.className = 'reasoning-text';
      text.textContent = message.reasoning;
      details.append(summary, text);
      body.prepend(details);
    }
  }
}

/** The images of a message as thumbnails; a click shows one larger. `onRemove(i)`, when given,
 * adds a button that removes image i. */
function thumbnails(images, onRemove) {
  const strip = document.createElement('div');
  strip.className = 'thumbs';
  images.forEach((url, i) => {
    const item = document.createElement('span');
    item.className = 'thumb';
    const img = document.createElement('img');
    img.src = url;
    img.alt = `Image ${i + 1}`;
    img.title = 'Show larger';
    img.addEventListener('click', () => showImage(url));
    item.append(img);
    if (onRemove) {
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'icon remove';
      remove.textContent = '✕';
      remove.setAttribute('aria-label', `Remove image ${i + 1}`);
      remove.addEventListener('click', () => onRemove(i));
      item.append(remove);
    }
    strip.append(item);
  });
  return strip;
}

function showImage(url) {
  $('viewer-image').src = url;
  $('viewer').showModal();
}
$('viewer').addEventListener('click', (e) => {
  if (e.target === $('viewer') || e.target === $('viewer-image')) $('viewer').close();
});

function actionButton(text, role, onClick) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = `link ${role}`;
  button.textContent = text;
  button.addEventListener('click', onClick);
  return button;
}

function describeStats(stats) {
  if (!stats) return '';
  const parts = [];
  if (stats.completion_tokens != null) parts.push(`${stats.completion_tokens} tokens`);
  if (stats.ttft_ms != null) parts.push(`first token ${(stats.ttft_ms / 1000).toFixed(2)} s`);
  if (stats.tokens_per_s != null) parts.push(`${stats.tokens_per_s.toFixed(1)} tokens/s`);
  if (stats.stopped) parts.push('stopped');
  if (stats.finish_reason === 'length') parts.push('cut at max tokens');
  if (stats.error) parts.push('failed');
  return parts.join(' · ');
}

function editMessage(node, index) {
  const body = node.querySelector('.content');
  const area = document.createElement('textarea');
  area.className = 'edit-area';
  area.setAttribute('aria-label', 'Edit the message');
  const content = state.current.messages[index].content;
  area.value = textOf(content);
  area.rows = Math.min(12, area.value.split('\n').length + 1);
  // The message's images go with it, unless removed here.
  const images = imagesOf(content);
  const strip = document.createElement('div');
  const showImages = () => strip.replaceChildren(...(images.length ? [thumbnails(images, (i) => {
    images.splice(i, 1);
    showImages();
  })] : []));
  showImages();
  const send = actionButton('Send', 'resend', () => {
    const text = area.value.trim();
    if (!text && !images.length) return;
    state.current.messages = state.current.messages.slice(0, index);
    generate(contentOf(text, images));
  });
  const cancel = actionButton('Cancel', 'cancel', () => renderMessages());
  area.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      send.click();
    }
  });
  body.replaceChildren(strip, area);
  node.querySelector('.meta').replaceChildren(send, cancel);
  area.focus();
}

// ---------- generating ----------

async function ensureConversation(first) {
  if (state.current) return;
  const title = textOf(first || '').replace(/\s+/g, ' ').trim().slice(0, 48) ||
    (imagesOf(first).length ? 'Image' : 'New chat');
  state.current = await api.create({
    title,
    model: $('model').value || null,
    system: $('system').value,
    settings: readSettings(),
  });
}

/**
 * Sends `content` (text, or content parts with images) as a new user message (or, when null,
 * answers the messages as they are).
 */
async function generate(content) {
  if (state.generation) return;
  const model = $('model').value;
  if (!model) {
    showError('No model to talk to yet: open Models to download one.');
    return;
  }
  showError(null);
  try {
    await ensureConversation(content);
  } catch (e) {
    showError(e);
    return;
  }
  const conversation = state.current;
  conversation.model = model;
  conversation.system = $('system').value;
  conversation.settings = readSettings();
  if (content !== null) conversation.messages.push({ role: 'user', content });
  const history = conversation.messages.map(({ role, content }) => ({ role, content }));
  const reply = { role: 'assistant', content: '' };
  conversation.messages.push(reply);
  const controller = new AbortController();
  state.generation = { controller, index: conversation.messages.length - 1 };
  setGenerating(true);
  renderMessages();
  await save({ messages: conversation.messages.slice(0, -1), model, system: conversation.system, settings: conversation.settings });

  const node = $('messages').lastElementChild;
  const body = node.querySelector('.content');
  node.classList.add('streaming');
  // A model that was not loaded is loading now: show it.
  setTimeout(refreshModels, 300);
  const request = {
    model,
    messages: conversation.system.trim() ? [{ role: 'system', content: conversation.system }, ...history] : history,
    ...conversation.settings,
  };
  const started = performance.now();
  let first = null;
  let pieces = 0; // the server streams one chunk per token
  let painted = false;
  const paint = () => {
    painted = false;
    fillContent(body, reply);
    const box = $('messages');
    if (box.scrollHeight - box.scrollTop - box.clientHeight < 120) box.scrollTop = box.scrollHeight;
  };
  const stats = {};
  try {
    const result = await streamChat(request, controller.signal, (delta, reasoning) => {
      if (first === null) first = performance.now();
      pieces += 1;
      if (reasoning) reply.reasoning = (reply.reasoning || '') + delta;
      else reply.content += delta;
      if (!painted) {
        painted = true;
        requestAnimationFrame(paint);
      }
    });
    stats.finish_reason = result.finish_reason;
    if (result.usage) {
      stats.prompt_tokens = result.usage.prompt_tokens;
      stats.completion_tokens = result.usage.completion_tokens;
    }
  } catch (e) {
    if (e.name === 'AbortError') {
      stats.stopped = true;
    } else {
      stats.error = true;
      showError(e);
    }
  }
  const ended = performance.now();
  // A stopped reply has no usage: count the pieces that came.
  if (stats.completion_tokens == null && pieces > 0) stats.completion_tokens = pieces;
  if (first !== null) {
    stats.ttft_ms = Math.round(first - started);
    const generated = stats.completion_tokens;
    if (generated > 1 && ended > first) stats.tokens_per_s = (generated - 1) / ((ended - first) / 1000);
  }
  reply.stats = stats;
  state.generation = null;
  setGenerating(false);
  if (!reply.content && !reply.reasoning && stats.error) conversation.messages.pop();
  if (state.current === conversation) renderMessages();
  await save({ messages: conversation.messages }, conversation.id);
  refreshModels();
}

function regenerate() {
  if (!state.current || state.generation) return;
  const messages = state.current.messages;
  if (messages.length && messages[messages.length - 1].role === 'assistant') messages.pop();
  generate(null);
}

function stop() {
  if (state.generation) state.generation.controller.abort();
}

function setGenerating(on) {
  $('send').hidden = on;
  $('stop').hidden = !on;
  $('app').classList.toggle('generating', on);
}

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('prompt').value.trim();
  const images = state.pending.map((p) => p.url);
  if ((!text && !images.length) || state.generation) return;
  if (images.length && !canSee($('model').value)) {
    showError(`${$('model').value || 'This model'} cannot read images. Pick a model with vision, or remove the attached images.`);
    return;
  }
  $('prompt').value = '';
  state.pending = [];
  showPending();
  generate(contentOf(text, images));
});
$('prompt').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $('composer').requestSubmit();
  }
});
$('stop').addEventListener('click', stop);
document.addEventListener('keydown', (e) => {
  // Esc in the image viewer only closes it.
  if (e.key === 'Escape' && state.generation && !$('viewer').open) {
    e.preventDefault();
    stop();
  }
});

// ---------- attaching images: the button, paste, drag and drop ----------

/** The attach button shows only for a model that reads images. */
let attachShownFor = null;
function showAttach() {
  const model = $('model').value;
  const vision = canSee(model);
  // The models refresh every few seconds: redraw only when the picked model changed.
  if (attachShownFor === `${vision} ${model}`) return;
  attachShownFor = `${vision} ${model}`;
  $('attach').hidden = !vision;
  $('attach').disabled = !vision;
  showPending();
}

function showPending() {
  const box = $('attachments');
  box.hidden = state.pending.length === 0;
  if (box.hidden) {
    box.replaceChildren();
    return;
  }
  const strip = thumbnails(state.pending.map((p) => p.url), (i) => {
    state.pending.splice(i, 1);
    showPending();
  });
  strip.querySelectorAll('img').forEach((img, i) => {
    img.alt = state.pending[i].name;
    img.title = state.pending[i].name;
  });
  const children = [strip];
  if (!canSee($('model').value)) {
    const note = document.createElement('span');
    note.className = 'attach-note';
    note.textContent = `${$('model').value || 'This model'} cannot read images: pick a model with vision, or remove them.`;
    children.push(note);
  }
  box.replaceChildren(...children);
}

const readAsDataURL = (file) => new Promise((resolve, reject) => {
  const reader = new FileReader();
  reader.onload = () => resolve(reader.result);
  reader.onerror = () => reject(reader.error);
  reader.readAsDataURL(file);
});

const megabytes = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** Adds `files` to the images to send, refusing (with why) what the server would refuse. */
async function attachFiles(files) {
  if (!files.length) return;
  const model = $('model').value;
  if (!canSee(model)) {
    showError(`${model || 'This model'} cannot read images: pick a model with vision to attach them.`);
    return;
  }
  const refused = [];
  const sent = state.current ? state.current.messages.reduce((n, m) => n + imagesOf(m.content).length, 0) : 0;
  for (const file of files) {
    const name = file.name || 'the pasted file';
    if (!file.type.startsWith('image/')) {
      refused.push(`“${name}” is not an image`);
    } else if (!IMAGE_TYPES.has(file.type)) {
      refused.push(`“${name}” is ${file.type.slice(6).toUpperCase()}: the server reads PNG, JPEG, WebP and GIF`);
    } else if (file.size > MAX_IMAGE_BYTES) {
      refused.push(`“${name}” is ${megabytes(file.size)}, over the 20 MB an image may be`);
    } else if (sent + state.pending.length >= MAX_IMAGES) {
      refused.push(`“${name}”: one request carries at most ${MAX_IMAGES} images, this conversation's included`);
    } else {
      try {
        state.pending.push({ url: await readAsDataURL(file), name: file.name || 'pasted image' });
      } catch (e) {
        refused.push(`“${name}” could not be read (${e && e.message ? e.message : e})`);
      }
    }
  }
  showPending();
  if (refused.length) showError(`Not attached: ${refused.join('; ')}.`);
  else showError(null);
}

$('attach').addEventListener('click', () => $('attach-input').click());
$('attach-input').addEventListener('change', async () => {
  const files = [...$('attach-input').files];
  $('attach-input').value = '';
  await attachFiles(files);
  $('prompt').focus();
});
$('prompt').addEventListener('paste', (e) => {
  const data = e.clipboardData;
  if (!data) return;
  const files = [...data.items].filter((item) => item.kind === 'file').map((item) => item.getAsFile()).filter(Boolean);
  // Text that came with an image (a copied spreadsheet cell) is pasted as text.
  if (!files.length || data.types.includes('text/plain')) return;
  e.preventDefault();
  attachFiles(files);
});
const carriesFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
const composer = $('composer');
composer.addEventListener('dragover', (e) => {
  if (!carriesFiles(e)) return;
  e.preventDefault();
  // A model without vision says why it cannot take the images when they are dropped.
  e.dataTransfer.dropEffect = 'copy';
  composer.classList.add('drop-target');
});
composer.addEventListener('dragleave', (e) => {
  if (!composer.contains(e.relatedTarget)) composer.classList.remove('drop-target');
});
composer.addEventListener('drop', (e) => {
  if (!carriesFiles(e)) return;
  e.preventDefault();
  composer.classList.remove('drop-target');
  attachFiles([...e.dataTransfer.files]);
});
// A file dropped anywhere else must not replace the page with itself.
for (const type of ['dragover', 'drop']) {
  window.addEventListener(type, (e) => {
    if (carriesFiles(e) && !composer.contains(e.target)) e.preventDefault();
  });
}

// ---------- the models view ----------

const library = createLibrary({
  onChange: refreshModels,
  onChat: async (id) => {
    await refreshModels();
    if (state.models.some((m) => m.id === id)) {
      $('model').value = id;
      $('model').dispatchEvent(new Event('change'));
    }
    library.setOpen(false);
    $('prompt').focus();
  },
});

// ---------- start ----------

await refreshModels();
// An empty library: the models view, with its offer of the default model, comes first.
if (state.models.length === 0) library.setOpen(true);
await refreshList();
setInterval(refreshModels, 5000);
$('prompt').focus();
