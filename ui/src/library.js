// The models view: the library with each model's facts and state, pulls with their progress,
// delete, load and unload, the memory budget, and an offer of the default model when the
// library is empty.
import {
  models as fetchModels, serverFacts, pull, deleteModel, loadModel, unloadModel, explain,
} from './api.js';

const $ = (id) => document.getElementById(id);

/** `bytes` in units of `base` (1000 or 1024): "1.2 MB", "2.0 GiB". */
function human(bytes, base, units) {
  if (bytes == null || !Number.isFinite(bytes)) return '?';
  let value = bytes;
  let unit = 0;
  while (value >= base && unit < units.length - 1) {
    value /= base;
    unit += 1;
  }
  return `${value >= 100 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/** Download and file sizes in decimal units, as Ollama and LM Studio show them. */
export const humanBytes = (bytes) => human(bytes, 1000, ['B', 'kB', 'MB', 'GB', 'TB']);

/** Memory, in binary units as the budget is given (`--max-memory 2G` is 2.0 GiB). */
export const humanMemory = (bytes) => human(bytes, 1024, ['B', 'KiB', 'MiB', 'GiB', 'TiB']);

function humanParams(n) {
  if (!n) return null;
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B params`;
  return `${Math.round(n / 1e6)}M params`;
}

function until(seconds) {
  const left = Math.round(seconds - Date.now() / 1000);
  if (left <= 0) return 'unloads soon';
  if (left < 90) return `unloads in ${left} s if idle`;
  return `unloads in ${Math.round(left / 60)} min if idle`;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

function button(text, className, onClick, label) {
  const node = element('button', className, text);
  node.type = 'button';
  if (label) node.setAttribute('aria-label', label);
  node.addEventListener('click', onClick);
  return node;
}

/**
 * The view. `onChange()` is called when the set of models or their states changed (the chat's
 * model picker refreshes); `onChat(id)` when the user picks a model to chat with.
 */
export function createLibrary({ onChange, onChat }) {
  const view = {
    open: false,
    models: [],
    facts: null,
    pulls: new Map(), // name -> {controller, status, total, completed, state, error}
    busy: new Set(), // names with a load, unload or delete in flight
    timer: null,
  };

  function showError(message) {
    const box = $('library-error');
    box.hidden = !message;
    box.textContent = message || '';
  }

  async function refresh() {
    try {
      const [models, facts] = await Promise.all([
        fetchModels(),
        view.facts ? Promise.resolve(view.facts) : serverFacts(),
      ]);
      view.models = models;
      view.facts = facts;
    } catch (e) {
      showError(explain(e));
      return;
    }
    render();
  }

  function render() {
    renderMemory();
    renderPulls();
    renderOffer();
    renderModels();
  }

  function renderMemory() {
    const used = view.models.reduce((sum, m) => sum + ((m.meta && m.meta.memory_bytes) || 0), 0);
    const budget = view.facts && view.facts.memory_budget_bytes;
    const loaded = view.models.filter((m) => m.state === 'loaded').length;
    const meter = $('memory-meter');
    if (budget) {
      meter.hidden = false;
      meter.max = budget;
      meter.value = Math.min(used, budget);
      $('memory-text').textContent =
        `Memory: ${humanMemory(used)} of ${humanMemory(budget)} (${loaded} loaded)`;
    } else {
      meter.hidden = true;
      $('memory-text').textContent = `Memory: ${humanMemory(used)} in use (${loaded} loaded, no budget)`;
    }
  }

  function renderPulls() {
    const box = $('pulls');
    box.replaceChildren(...[...view.pulls.entries()].map(([name, p]) => {
      const item = element('div', `pull ${p.state}`);
      item.dataset.name = name;
      const head = element('div', 'pull-head');
      head.append(element('strong', 'pull-name', name));
      // `pulling <digest>` is a file downloading.
      const status = /^pulling [0-9a-f]{12}$/.test(p.status || '') ? 'downloading' : p.status;
      const said = {
        running: status || 'starting',
        cancelled: 'Cancelled. The partial download is kept: Resume goes on from there.',
        failed: p.error,
        done: 'Downloaded.',
      }[p.state];
      head.append(element('span', 'pull-status', said));
      item.append(head);
      if (p.state === 'running' || p.state === 'cancelled') {
        const bar = element('progress', 'pull-bar');
        bar.max = p.total || 1;
        if (p.total) bar.value = p.completed || 0;
        else bar.removeAttribute('value'); // indeterminate until a size is known
        bar.setAttribute('aria-label', `Download of ${name}`);
        item.append(bar);
        if (p.total) {
          const pct = Math.floor((100 * (p.completed || 0)) / p.total);
          item.append(element('span', 'pull-bytes',
            `${humanBytes(p.completed || 0)} of ${humanBytes(p.total)} (${pct}%)`));
        }
      }
      const actions = element('div', 'pull-actions');
      if (p.state === 'running') {
        actions.append(button('Cancel', 'cancel-pull', () => p.controller.abort(), `Cancel the download of ${name}`));
      } else {
        if (p.state !== 'done') actions.append(button(p.state === 'cancelled' ? 'Resume' : 'Retry', 'resume-pull', () => startPull(name)));
        actions.append(button('Dismiss', 'link dismiss-pull', () => {
          view.pulls.delete(name);
          renderPulls();
        }));
      }
      item.append(actions);
      return item;
    }));
  }

  function renderOffer() {
    const box = $('offer');
    const offer = view.facts && view.facts.catalog.find((o) => o.default);
    const empty = view.models.length === 0;
    box.hidden = !(empty && offer && !view.pulls.has(offer.name));
    if (box.hidden) return;
    box.replaceChildren(
      element('p', 'offer-text', 'Your library is empty. Start with the default model:'),
      element('strong', 'offer-name', offer.name),
      element('span', 'offer-size', humanBytes(offer.size_bytes)),
      button('Download', 'primary download-offer', () => startPull(offer.name), `Download ${offer.name}`),
    );
  }

  function renderModels() {
    const list = $('library-models');
    if (view.models.length === 0) {
      list.replaceChildren(element('li', 'library-empty', 'No models yet. Pull one by name above.'));
      return;
    }
    list.replaceChildren(...view.models.map(modelItem));
  }

  function modelItem(m) {
    const meta = m.meta || {};
    const li = element('li', 'library-model');
    li.dataset.id = m.id;
    li.dataset.state = m.state;
    const head = element('div', 'model-head');
    head.append(element('strong', 'model-name', m.id));
    const state = element('span', `model-status state-${m.state}`);
    let stateText = {
      loaded: 'loaded', loading: 'loading…', unloading: 'unloading…', unloaded: 'not loaded', failed: 'failed to load',
    }[m.state] || m.state;
    if (m.state === 'loaded' && meta.memory_bytes) stateText += ` · ${humanMemory(meta.memory_bytes)} in memory`;
    if (m.state === 'loaded' && meta.expires_at) stateText += ` · ${until(meta.expires_at)}`;
    state.textContent = stateText;
    head.append(state);
    li.append(head);

    const facts = [humanBytes(meta.size), meta.quantization, humanParams(meta.n_params),
      meta.architecture, m.backend, meta.format].filter(Boolean);
    li.append(element('div', 'model-facts', facts.join(' · ')));
    const caps = element('div', 'model-caps');
    for (const c of meta.capabilities || []) caps.append(element('span', 'badge', c));
    li.append(caps);
    if (m.state === 'failed' && meta.error) li.append(element('div', 'model-error', meta.error));

    const actions = element('div', 'model-actions');
    const busy = view.busy.has(m.id);
    const act = (text, cls, fn, label) => {
      const b = button(text, cls, fn, label);
      b.disabled = busy;
      return b;
    };
    if (m.state === 'loaded') {
      actions.append(act('Unload', 'unload', () => change(m.id, () => unloadModel(m.id)), `Unload ${m.id}`));
    } else if (m.state !== 'loading' && m.state !== 'unloading') {
      actions.append(act('Load', 'load', () => change(m.id, () => loadModel(m.id)), `Load ${m.id}`));
    }
    if (!(meta.capabilities || []).length || (meta.capabilities || []).includes('completion')) {
      actions.append(act('Chat', 'chat', () => onChat(m.id), `Chat with ${m.id}`));
    }
    if (meta.in_library !== false) {
      actions.append(act('Delete', 'danger delete-model', () => remove(m.id), `Delete ${m.id}`));
    } else {
      actions.append(element('span', 'model-note', 'served from a file (minerva serve --model)'));
    }
    li.append(actions);
    return li;
  }

  /** Runs a load, unload or delete of `name`, showing its state at once and after. */
  async function change(name, action) {
    view.busy.add(name);
    const model = view.models.find((m) => m.id === name);
    if (model) {
      // Show the step at once; the next refresh tells the server's view.
      model.state = model.state === 'loaded' ? 'unloading' : 'loading';
    }
    render();
    showError(null);
    const poll = setInterval(refresh, 250);
    try {
      await action();
    } catch (e) {
      showError(explain(e));
    } finally {
      clearInterval(poll);
      view.busy.delete(name);
      await refresh();
      onChange();
    }
  }

  async function remove(name) {
    const model = view.models.find((m) => m.id === name);
    const size = model && model.meta ? ` (${humanBytes(model.meta.size)})` : '';
    if (!confirm(`Delete ${name}${size} from the library? Its files are removed unless another name uses them.`)) return;
    view.busy.add(name);
    render();
    try {
      await deleteModel(name);
    } catch (e) {
      showError(explain(e));
    }
    view.busy.delete(name);
    await refresh();
    onChange();
  }

  async function startPull(name) {
    const existing = view.pulls.get(name);
    if (existing && existing.state === 'running') return;
    const p = { controller: new AbortController(), status: 'starting', total: 0, completed: 0, state: 'running' };
    view.pulls.set(name, p);
    showError(null);
    render();
    let painted = false;
    try {
      await pull(name, p.controller.signal, (step) => {
        p.status = step.status;
        if (step.total) {
          p.total = step.total;
          p.completed = step.completed || 0;
        }
        if (!painted) {
          painted = true;
          requestAnimationFrame(() => {
            painted = false;
            renderPulls();
          });
        }
      });
      p.state = 'done';
      setTimeout(() => {
        if (view.pulls.get(name) === p) {
          view.pulls.delete(name);
          renderPulls();
        }
      }, 4000);
    } catch (e) {
      if (e.name === 'AbortError') {
        p.state = 'cancelled';
      } else {
        p.state = 'failed';
        p.error = explain(e);
      }
    }
    render();
    await refresh();
    onChange();
  }

  $('pull-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $('pull-name').value.trim();
    if (!name) {
      showError('Enter a model to pull: hf.co/OWNER/REPO[:QUANT], OWNER/REPO/FILE.gguf, an https:// URL, or a known model\'s name.');
      $('pull-name').focus();
      return;
    }
    $('pull-name').value = '';
    startPull(name);
  });

  function setOpen(open) {
    view.open = open;
    $('library').hidden = !open;
    $('app').classList.toggle('library-open', open);
    $('toggle-library').setAttribute('aria-expanded', String(open));
    clearInterval(view.timer);
    view.timer = null;
    if (open) {
      refresh().then(() => {
        const known = $('known-models');
        known.replaceChildren(...((view.facts && view.facts.catalog) || []).map((o) => {
          const option = document.createElement('option');
          option.value = o.name;
          option.label = `${o.name} (${humanBytes(o.size_bytes)})`;
          return option;
        }));
      });
      // While the view is open, states (loading, unloading, keep_alive ends) show within a second.
      view.timer = setInterval(refresh, 1000);
    }
  }

  $('toggle-library').addEventListener('click', () => setOpen(!view.open));
  $('close-library').addEventListener('click', () => setOpen(false));

  return { setOpen };
}
