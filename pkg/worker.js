// The engine's Web Worker: loads the WebAssembly module, fetches (and caches) the model
// and index, and answers the main thread's requests. One request at a time, in order.
import { MODEL_CACHE } from './index.js';
import init, { Engine, modelReads } from './wasm/quiver_wasm.js';


let engine = null;
/** The latest embedding call: how many texts, on which backend, how long. */
let lastEmbedding = null;
let persistName = null;
/** Resolves to the WebAssembly module's exports once it is instantiated. */
let ready = null;

function fail(code, message) {
  return Object.assign(new Error(message), { code });
}

/** Fetches a URL through the Cache API, reporting bytes as they arrive. */
async function fetchBytes(url, { optional = false, useCache = true, progress }) {
  let cache = null;
  if (useCache && typeof caches !== 'undefined') {
    try { cache = await caches.open(MODEL_CACHE); } catch { cache = null; }
  }
  let response = cache ? await cache.match(url) : undefined;
  const cached = Boolean(response);
  if (!response) {
    try {
      response = await fetch(url);
    } catch (e) {
      throw fail('E_FETCH', `could not fetch ${url}: ${e.message}`);
    }
    if (!response.ok) {
      if (optional && response.status === 404) return null;
      throw fail('E_FETCH', `could not fetch ${url}: HTTP ${response.status}`);
    }
  }
  // A compressed response's Content-Length counts wire bytes, but the body reads decoded
  // ones: servers that compress can send the decoded size as X-Decoded-Length.
  const encoded = Boolean(response.headers.get('content-encoding'));
  const wire = encoded ? Number(response.headers.get('content-length')) || 0 : 0;
  const total = Number(response.headers.get('x-decoded-length')) || (encoded ? 0 : Number(response.headers.get('content-length')) || 0);
  const reader = response.body.getReader();
  // With a known length the chunks go straight into one buffer, never a second copy of
  // the whole file; otherwise (or when more arrives than announced) they are joined.
  let buffer = total ? new Uint8Array(total) : null;
  const chunks = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (buffer && loaded + value.length <= buffer.length) {
      buffer.set(value, loaded);
    } else {
      if (buffer) chunks.push(buffer.subarray(0, loaded));
      buffer = null;
      chunks.push(value);
    }
    loaded += value.length;
    progress({ file: url, loaded, total, cached, ...(wire ? { wire } : {}) });
  }
  let bytes = buffer && (loaded === buffer.length ? buffer : buffer.slice(0, loaded));
  if (!bytes) {
    bytes = new Uint8Array(loaded);
    let at = 0;
    for (const c of chunks) { bytes.set(c, at); at += c.length; }
  }
  if (cache && !cached) {
    // Stored decoded: the cached copy's headers must describe these bytes, not the wire's.
    const headers = new Headers(response.headers);
    for (const name of ['content-encoding', 'x-decoded-length']) headers.delete(name);
    headers.set('content-length', String(bytes.length));
    try { await cache.put(url, new Response(bytes, { headers })); } catch { /* quota: still works */ }
  }
  return bytes;
}

function joinUrl(base, path) {
  return new URL(path, base.endsWith('/') ? base : base + '/').href;
}

async function toBytes(value) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (typeof Blob !== 'undefined' && value instanceof Blob) return new Uint8Array(await value.arrayBuffer());
  throw fail('E_INVALID_ARGUMENT', 'files must be ArrayBuffer, Uint8Array, Blob or File');
}

/**
 * A model folder's files by path, from a URL (fetched, cached) or given as bytes, read in
 * the rounds the engine names (`modelReads`: the rules the CLI reads a folder by), and the
 * paths of those whose sha256 identifies the model.
 */
async function modelFiles(model, useCache, progress) {
  let name = 'model';
  let read;
  if (typeof model === 'string') {
    name = model.replace(/\/+$/, '').split('/').pop() || 'model';
    read = (path, optional) => fetchBytes(joinUrl(model, path), { optional, useCache, progress });
  } else if (model && typeof model === 'object') {
    // Absent files are left for the engine to name.
    read = async (path) => (model[path] === undefined ? null : toBytes(model[path]));
  } else {
    throw fail('E_INVALID_ARGUMENT', 'a model must be a URL or an object of files');
  }
  const files = {};
  const hashed = [];
  for (let round = 0, reads; (reads = modelReads(round, files['quiver.json'])); round++) {
    const wanted = [
      ...reads.required.map((path) => [path, false]),
      ...reads.optional.map((path) => [path, true]),
    ];
    for (const [path, optional] of wanted) {
      const bytes = await read(path, optional);
      if (bytes) files[path] = bytes;
    }
    for (const [i, path] of reads.firstOf.entries()) {
      const bytes = await read(path, i < reads.firstOf.length - 1);
      if (bytes) { files[path] = bytes; break; }
    }
    hashed.push(...reads.hashed);
  }
  return { files, name, hashed };
}

async function loadModel(model, useCache, { backend, decisions }, progress) {
  const { files, name, hashed } = await modelFiles(model, useCache, (p) => progress({ stage: 'model', ...p }));
  progress({ stage: 'compile' });
  // WebCrypto hashes natively; hashing 90 MB inside wasm takes seconds.
  const hashes = {};
  if (globalThis.crypto?.subtle) {
    for (const path of hashed.filter((p) => files[p])) {
      const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', files[path]));
      hashes[path] = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
    }
  }
  progress({ stage: 'backend', backend });
  return engine.loadModel(files, name, hashes, decisions);
}

async function loadReranker(reranker, useCache, progress) {
  const { files, name } = await modelFiles(reranker, useCache, (p) => progress({ stage: 'reranker', ...p }));
  engine.loadReranker(files, name);
}

async function opfsFile(name, create) {
  const root = await navigator.storage.getDirectory();
  const dir = await root.getDirectoryHandle('quiver', { create });
  return dir.getFileHandle(`${name}.qvr`, { create });
}

async function loadPersisted(name) {
  try {
    const handle = await opfsFile(name, false);
    return new Uint8Array(await (await handle.getFile()).arrayBuffer());
  } catch {
    return null;
  }
}

/** Replaces the stored index atomically: the writable stream commits on close only. */
async function persist() {
  if (!persistName) return;
  const handle = await opfsFile(persistName, true);
  const writable = await handle.createWritable();
  await writable.write(engine.indexBytes());
  await writable.close();
}

/** Runs an embedding call and records its time and backend for `stats`. */
async function timed(texts, run) {
  const started = performance.now();
  const result = await run();
  lastEmbedding = { texts, ms: performance.now() - started, backend: engine.stats().backend?.active ?? 'cpu' };
  return result;
}

const handlers = {
  // A pool's other workers (`helper`) only embed: they load the model and nothing else.
  async load({ model, index, reranker, cache = true, persist: name, wasm, backend, decisions = '', calibrationBudgetMs, helper = false }, progress) {
    const started = performance.now();
    ready ??= init({ module_or_path: wasm });
    await ready;
    engine?.dispose();
    engine?.free();
    engine = new Engine();
    engine.setBackend(backend, calibrationBudgetMs);
    persistName = name ?? null;
    lastEmbedding = null;
    const loaded = await loadModel(model, cache, { backend, decisions }, progress);
    if (helper) return { model: loaded.model };
    if (reranker !== undefined && reranker !== null) await loadReranker(reranker, cache, progress);
    let indexBytes = persistName ? await loadPersisted(persistName) : null;
    const restored = Boolean(indexBytes);
    if (!indexBytes && index !== undefined && index !== null) {
      progress({ stage: 'index' });
      indexBytes = typeof index === 'string'
        ? await fetchBytes(index, { useCache: false, progress: (p) => progress({ stage: 'index', ...p }) })
        : await toBytes(index);
    }
    if (indexBytes) engine.loadIndex(indexBytes); else engine.newIndex();
    return { model: loaded.model, decisions: loaded.decisions, restored, loadMs: performance.now() - started, ...engine.stats() };
  },
  search: ({ query, options }) => engine.search(query, options),
  searchVector: ({ vector, options }) => engine.searchVector(vector, options),
  embed: ({ texts, kind }) => timed(texts.length, () => engine.embed(texts, kind ?? 'document')),
  async add({ docs }) {
    const n = await timed(Array.isArray(docs) ? docs.length : 0, () => engine.add(docs));
    await persist();
    return n;
  },
  async addEmbedded({ docs, vectors }) {
    const n = engine.addEmbedded(docs, vectors);
    await persist();
    return n;
  },
  async remove({ ids }) { const n = engine.remove(ids); await persist(); return n; },
  // WebAssembly memory only grows: its size is the high-water mark of the engine's heap.
  stats: async () => ({ ...engine.stats(), lastEmbedding, wasmMemoryBytes: (await ready).memory.buffer.byteLength }),
  indexBytes: () => engine.indexBytes(),
  dispose() { engine?.dispose(); engine?.free(); engine = null; return true; },
  async clearCache() {
    if (typeof caches !== 'undefined') await caches.delete(MODEL_CACHE);
    return true;
  },
};

let queue = Promise.resolve();
self.onmessage = (event) => {
  const { id, op, args } = event.data;
  queue = queue.then(async () => {
    const progress = (p) => self.postMessage({ id, progress: p });
    try {
      const handler = handlers[op];
      if (!handler) throw fail('E_INVALID_ARGUMENT', `unknown operation ${op}`);
      if (!engine && !['load', 'clearCache', 'dispose'].includes(op)) throw fail('E_DISPOSED', 'this Quiver engine is not loaded or was disposed');
      const result = await handler(args ?? {}, progress);
      const transfer = result instanceof Float32Array || result instanceof Uint8Array ? [result.buffer] : [];
      self.postMessage({ id, ok: true, result }, transfer);
    } catch (e) {
      self.postMessage({ id, ok: false, error: { message: e?.message ?? String(e), code: e?.code ?? 'E_INTERNAL' } });
    }
  });
};
