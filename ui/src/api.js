// Talks to the server: the conversation API (/ui/api/v1), the OpenAI API (/v1) and, for the
// models view, the Ollama API's library routes (/api/pull, /api/delete, /api/generate).

const BASE = '/ui/api/v1/conversations';

/** An error with the server's message and code, and what the user can do about it. */
export class ServerError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  let code = null;
  try {
    const body = await response.json();
    if (body && typeof body.error === 'string') {
      // Ollama's shape: {"error": "message"}.
      message = body.error;
    } else if (body && body.error) {
      message = body.error.message || message;
      code = body.error.code || body.error.type || null;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ServerError(response.status, message, code);
}

const KEY = 'minerva.apiKey';

/**
 * fetch() with the server's API key, when it asks for one: a 401 asks the user for the key
 * once, keeps it in this browser (localStorage) and tries again; a key the server refuses is
 * forgotten and asked for again.
 */
async function authorized(url, init) {
  for (let attempt = 0; ; attempt++) {
    const key = localStorage.getItem(KEY);
    const headers = { ...(init.headers || {}) };
    if (key) headers.authorization = `Bearer ${key}`;
    const response = await fetch(url, { ...init, headers });
    if (attempt >= 2) return response;
    // A change to the library (pull, delete, unload) on a server with admin keys: a 403 that
    // asks for the admin key, which also works as an API key.
    const admin = response.status === 403 && /admin key/i.test(await response.clone().text());
    if (response.status !== 401 && !admin) return response;
    // Another request may have asked for the key meanwhile: try that one first.
    if (localStorage.getItem(KEY) !== key) continue;
    const entered = window.prompt(
      admin ? 'This changes the model library: enter the server\'s admin key (minerva serve --admin-key):'
        : key ? 'The server refused this API key. Enter the right one:'
          : 'This server needs an API key (minerva serve --api-key). Enter it:',
    );
    if (!entered) return response;
    localStorage.setItem(KEY, entered.trim());
  }
}

async function call(method, url, body) {
  const response = await authorized(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw await errorOf(response);
  // Some answers have no body (204, and Ollama's 200 to a delete).
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export const conversations = {
  list: (q) => call('GET', q ? `${BASE}?q=${encodeURIComponent(q)}` : BASE).then((b) => b.conversations),
  get: (id) => call('GET', `${BASE}/${encodeURIComponent(id)}`),
  create: (fields) => call('POST', BASE, fields),
  update: (id, fields) => call('PATCH', `${BASE}/${encodeURIComponent(id)}`, fields),
  remove: (id) => call('DELETE', `${BASE}/${encodeURIComponent(id)}`),
};

/** The server's models: [{id, backend, state, meta}] (meta: size, quantization, capabilities, ...). */
export async function models() {
  const body = await call('GET', '/v1/models');
  return body.data || [];
}

/** What the server says of itself: {memory_budget_bytes, catalog: [{name, size_bytes, default}]}. */
export const serverFacts = () => call('GET', '/ui/api/v1/server');

/**
 * Pulls a model into the library (Ollama's /api/pull), calling onProgress({status, total,
 * completed}) for each NDJSON line. Resolves when it succeeded; throws a ServerError when the
 * server reports an error, an AbortError when `signal` aborts it (the server keeps the partial
 * download, and pulling the same name again resumes it).
 */
export async function pull(name, signal, onProgress) {
  const response = await authorized('/api/pull', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: name, stream: true }),
    signal,
  });
  if (!response.ok) {
    const error = await errorOf(response);
    error.code = error.code || 'pull_failed';
    throw error;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let succeeded = false;
  const line = (text) => {
    if (!text.trim()) return;
    const step = JSON.parse(text);
    if (step.error) throw new ServerError(500, step.error, 'pull_failed');
    if (step.status === 'success') succeeded = true;
    onProgress(step);
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n')) >= 0) {
      line(buffer.slice(0, end));
      buffer = buffer.slice(end + 1);
    }
  }
  line(buffer);
  if (!succeeded) throw new ServerError(500, 'the pull ended before it succeeded', 'pull_failed');
}

/** Deletes a model from the library (its files go when no other name uses them). */
export const deleteModel = (name) => call('DELETE', '/api/delete', { model: name });

/** Loads a model into memory (Ollama: a generate request with no prompt). */
export const loadModel = (name) => call('POST', '/api/generate', { model: name, prompt: '', stream: false });

/** Unloads a model from memory (Ollama: keep_alive 0). */
export const unloadModel = (name) => call('POST', '/api/generate', { model: name, keep_alive: 0, stream: false });

/**
 * Streams a chat completion. Calls onDelta(text, reasoning) for each piece of the reply (the
 * second argument true for a piece of a thinking model's reasoning, `reasoning_content`) and
 * returns {usage, finish_reason} at the end. Aborting `signal` stops it (the server cancels the
 * generation when the connection closes).
 */
export async function streamChat(request, signal, onDelta) {
  const response = await authorized('/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ ...request, stream: true, stream_options: { include_usage: true } }),
    signal,
  });
  if (!response.ok) throw await errorOf(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let usage = null;
  let finish = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') return { usage, finish_reason: finish };
        const chunk = JSON.parse(data);
        if (chunk.error) {
          throw new ServerError(500, chunk.error.message || 'the generation failed', chunk.error.code || null);
        }
        if (chunk.usage) usage = chunk.usage;
        for (const choice of chunk.choices || []) {
          if (choice.delta && choice.delta.reasoning_content) onDelta(choice.delta.reasoning_content, true);
          if (choice.delta && choice.delta.content) onDelta(choice.delta.content, false);
          if (choice.finish_reason) finish = choice.finish_reason;
        }
      }
    }
  }
  return { usage, finish_reason: finish };
}

/** What to tell the user about a failed pull, with what to do about that failure. */
function explainPull(said, status) {
  if (status === 403 || /admin key/i.test(said)) {
    return `The server did not allow it: ${said}. Changing the library needs the server's admin key (minerva serve --admin-key).`;
  }
  if (/another pull is downloading/i.test(said)) {
    return 'This model is already downloading (in another tab or window). Wait for that download to finish: the model then appears in the library.';
  }
  if (/unknown pull source|not found|no GGUF file|404/i.test(said)) {
    return `The download failed: ${said}. Check the name: hf.co/OWNER/REPO[:QUANT], OWNER/REPO/FILE.gguf, an https:// URL, or a known model's name.`;
  }
  if (/connection|network|dns|tls|timed out|resolve/i.test(said)) {
    return `The download failed: ${said}. Check this machine's network connection, then pull again: what was downloaded is kept and the download resumes.`;
  }
  if (/no space/i.test(said)) return `The download failed: ${said}. Free some disk space, then pull again.`;
  return `The download failed: ${said}. Pull again to retry: a partial download resumes.`;
}

/** What to tell the user about an error, with what to do. */
export function explain(error) {
  if (error instanceof ServerError) {
    const said = error.message;
    switch (error.code) {
      case 'context_length_exceeded':
        return `The conversation no longer fits in the model's context (${said}). Start a new chat, delete or shorten earlier messages, or lower Max tokens.`;
      case 'server_busy':
      case 'queue_timeout':
        return `The server is busy (${said}). Wait a moment and press Regenerate or send again.`;
      case 'model_load_failed':
        return `The model failed to load (${said}). Check the server's log, or pick another model.`;
      case 'model_not_found':
        return `The server has no such model (${said}). Pick a model from the list.`;
      case 'pull_failed':
        return explainPull(said, error.status);
      default:
        if (error.status === 503) return `The server is busy or unavailable (${said}). Wait a moment and try again.`;
        return `The server answered ${error.status}: ${said}`;
    }
  }
  if (error && error.name === 'TypeError') {
    return `Cannot reach the Minerva server (${error.message}). Is \`minerva serve\` still running?`;
  }
  return String(error && error.message ? error.message : error);
}
