// The engine's Web Worker: loads the WebAssembly module, fetches (and caches) the model
// and index, and answers the main thread's requests. One request at a time, in order.
import { MODEL_CACHE } from './index.js';
import * as single from './wasm/quiver_wasm.js';

/** The engine's module (wasm-bindgen's glue: `Engine`, `Files`, …), once started. */
let wasm = null;

let engine = null;
/** The latest embedding call: how many texts, on which backend, how long. */
let lastEmbedding = null;
let persistName = null;
/** The stored index this worker last read or wrote, as `size:lastModified`: another tab's save changes it. */
let storedStamp = null;
/** Resolves to the WebAssembly module's exports once it is instantiated. */
let ready = null;
/** How the engine uses the cores: `{ mode: 'threads' | 'single', threads, reason }`. */
let cores = null;

function fail(code, message) {
  return Object.assign(new Error(message), { code });
}

/**
 * Whether this browser runs wasm relaxed-simd (Chrome, Firefox and Edge; not Safari): a
 * module of one function using `i32x4.relaxed_dot_i8x16_i7x16_add_s`, the instruction the
 * relaxed build's kernels rest on, validates.
 */
const RELAXED_SIMD = WebAssembly.validate(new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, // magic, version
  1, 5, 1, 96, 0, 1, 123, // type: () -> v128
  3, 2, 1, 0, // one function of that type
  // its body: three i8x16.splat(i32.const …), the dot product, end
  10, 19, 1, 17, 0, 65, 1, 253, 15, 65, 2, 253, 15, 65, 3, 253, 15, 253, 147, 2, 11,
]));

/** The cached copy of a hashed file carries its sha256 (hex): a cached load hashes nothing. */
const SHA256_HEADER = 'x-quiver-sha256';

/**
 * Instantiates the threaded engine (a rayon pool of `threads` workers on shared memory)
 * where the page is cross-origin isolated and more than one thread is asked for, else the
 * single-threaded one: its relaxed-simd build where the browser has relaxed-simd. Resolves
 * to the module's exports.
 */
async function start({ wasm: url, wasmRelaxed, wasmThreads, threads = 1 }) {
  let why = threads > 1 ? 'not cross-origin isolated (no SharedArrayBuffer for wasm threads)' : 'one thread asked for';
  // The threaded build has the relaxed build's kernels: without relaxed-simd, the pool.
  if (threads > 1 && globalThis.crossOriginIsolated && !RELAXED_SIMD) why = 'no wasm relaxed-simd, which the threaded build needs';
  if (threads > 1 && wasmThreads && globalThis.crossOriginIsolated && RELAXED_SIMD) {
    try {
      // Its glue sits beside its module, imported by a URL made here: a bundler leaves the
      // threaded build out (its pool's workers import the glue by URL, which bundles break),
      // and without it this worker runs the single-threaded build and index.js the pool.
      const glue = await import(/* @vite-ignore */ /* webpackIgnore: true */ new URL('quiver_wasm.js', wasmThreads).href);
      const exports = await glue.default({ module_or_path: wasmThreads });
      await glue.initThreadPool(threads);
      wasm = glue;
      cores = { mode: 'threads', threads, reason: `cross-origin isolated: ${threads} wasm threads on shared memory` };
      return exports;
    } catch (e) {
      why = `the threaded build could not start: ${e?.message ?? e}`;
    }
  }
  // Both single-threaded builds share one glue (scripts/build-web.sh checks it). Where the
  // relaxed module cannot be had (an app serving only the one `wasmUrl` names), simd128.
  let exports = null;
  if (RELAXED_SIMD && wasmRelaxed) exports = await single.default({ module_or_path: wasmRelaxed }).catch(() => null);
  exports ??= await single.default({ module_or_path: url });
  wasm = single;
  cores = { mode: 'single', threads: 1, reason: why };
  return exports;
}

/** Bytes WebCrypto and the Cache API take: a copy where they are views of shared memory. */
function unshared(view) {
  return typeof SharedArrayBuffer !== 'undefined' && view.buffer instanceof SharedArrayBuffer ? view.slice() : view;
}

async function sha256(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', unshared(bytes)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Reads a stream into `files` at `path` chunk by chunk; `report(loaded)` as bytes arrive. */
async function receive(files, path, stream, expected, report) {
  files.begin(path, expected);
  let loaded = 0;
  if (!stream) return loaded;
  // A BYOB reader refills one buffer, where a default reader makes a new chunk each time
  // and leaves tens of MB to the garbage collector.
  let reader;
  let buffer = null;
  try {
    reader = stream.getReader({ mode: 'byob' });
    buffer = new ArrayBuffer(1 << 20);
  } catch {
    reader = stream.getReader();
  }
  for (;;) {
    const { done, value } = await (buffer ? reader.read(new Uint8Array(buffer)) : reader.read());
    if (done) return loaded;
    files.append(path, value);
    loaded += value.length;
    if (buffer) buffer = value.buffer;
    report?.(loaded);
  }
}

/** Puts bytes the page gave (ArrayBuffer, typed array, Blob or File) into `files` at `path`. */
async function put(files, path, value) {
  if (typeof Blob !== 'undefined' && value instanceof Blob) return receive(files, path, value.stream(), value.size);
  let bytes;
  if (value instanceof ArrayBuffer) bytes = new Uint8Array(value);
  else if (ArrayBuffer.isView(value)) bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  else throw fail('E_INVALID_ARGUMENT', 'files must be ArrayBuffer, Uint8Array, Blob or File');
  files.begin(path, bytes.length);
  files.append(path, bytes);
  return bytes.length;
}

/**
 * Fetches a URL through the Cache API into `files` at `path`, reporting bytes as they
 * arrive: the chunks go straight into wasm memory, so the page never holds the whole file.
 * Resolves to `{ sha256, store }` (`sha256` with `hash`, else null; `store()` puts a
 * fetched file in the cache, which the caller does once the engine has accepted it: a bad
 * file never stays cached), or to null for an `optional` file the server does not have.
 */
async function fetchInto(files, path, url, { optional = false, useCache = true, hash = false, progress }) {
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
  const loaded = await receive(files, path, response.body, total,
    (loaded) => progress({ file: url, loaded, total, cached, ...(wire ? { wire } : {}) }));
  let digest = (cached && response.headers.get(SHA256_HEADER)) || null;
  // Views of wasm memory are read at once, before anything else runs in wasm.
  if (hash && !digest && globalThis.crypto?.subtle) digest = await sha256(files.view(path));
  let store = async () => {};
  if (cache && !cached) {
    // Stored decoded: the cached copy's headers must describe these bytes, not the wire's.
    const headers = new Headers(response.headers);
    for (const name of ['content-encoding', 'x-decoded-length']) headers.delete(name);
    headers.set('content-length', String(loaded));
    if (digest) headers.set(SHA256_HEADER, digest);
    // Copied out now: the engine takes the files' memory when it loads them.
    const body = new Blob([unshared(files.view(path))]);
    store = async () => {
      try { await cache.put(url, new Response(body, { headers })); } catch { /* quota: still works */ }
    };
  }
  return { sha256: digest, store };
}

function joinUrl(base, path) {
  return new URL(path, base.endsWith('/') ? base : base + '/').href;
}

/**
 * A model folder's files, from a URL (fetched) or given by path as bytes, read into a
 * `Files` in the rounds the engine names (`modelReads`: the rules the CLI reads a folder
 * by), the sha256 of those that identify the model, and `store()`, which caches the fetched
 * ones (once the engine has loaded them). The caller frees `files`.
 */
async function modelFiles(model, useCache, progress) {
  let name = 'model';
  let read;
  const files = new wasm.Files();
  if (typeof model === 'string') {
    name = model.replace(/\/+$/, '').split('/').pop() || 'model';
    read = (path, optional, hash) => fetchInto(files, path, joinUrl(model, path), { optional, useCache, hash, progress });
  } else if (model && typeof model === 'object') {
    // Absent files are left for the engine to name.
    read = async (path, optional, hash) => {
      if (model[path] === undefined) return null;
      await put(files, path, model[path]);
      return { sha256: hash && globalThis.crypto?.subtle ? await sha256(files.view(path)) : null };
    };
  } else {
    files.free();
    throw fail('E_INVALID_ARGUMENT', 'a model must be a URL or an object of files');
  }
  const hashes = {};
  const stores = [];
  try {
    for (let round = 0, reads; (reads = wasm.modelReads(round, files.copy('quiver.json'))); round++) {
      const take = async (path, optional) => {
        const got = await read(path, optional, reads.hashed.includes(path));
        if (got?.sha256) hashes[path] = got.sha256;
        if (got?.store) stores.push(got.store);
        return Boolean(got);
      };
      for (const path of reads.required) await take(path, false);
      for (const path of reads.optional) await take(path, true);
      for (const [i, path] of reads.firstOf.entries()) {
        if (await take(path, i < reads.firstOf.length - 1)) break;
      }
    }
  } catch (e) {
    files.free();
    throw e;
  }
  return { files, name, hashes, store: () => Promise.all(stores.map((store) => store())) };
}

async function loadModel(model, useCache, { backend, decisions }, progress) {
  const { files, name, hashes, store } = await modelFiles(model, useCache, (p) => progress({ stage: 'model', ...p }));
  let loaded;
  try {
    progress({ stage: 'compile' });
    progress({ stage: 'backend', backend });
    loaded = await engine.loadModel(files, name, hashes, decisions);
  } finally {
    files.free();
  }
  await store();
  return loaded;
}

async function loadReranker(reranker, useCache, progress) {
  const { files, name, store } = await modelFiles(reranker, useCache, (p) => progress({ stage: 'reranker', ...p }));
  try {
    engine.loadReranker(files, name);
  } finally {
    files.free();
  }
  await store();
}

async function opfsFile(name, create) {
  const root = await navigator.storage.getDirectory();
  const dir = await root.getDirectoryHandle('quiver', { create });
  return dir.getFileHandle(`${name}.qvr`, { create });
}

const stampOf = (file) => `${file.size}:${file.lastModified}`;

/**
 * The stored index file, or null where there is none. An empty file is none: a first save
 * that failed after creating the file stored nothing.
 */
async function storedFile() {
  try {
    const file = await (await opfsFile(persistName, false)).getFile();
    return file.size ? file : null;
  } catch {
    return null;
  }
}

/** Reads the stored `file` into `files` at `path`, and remembers it as the one last read. */
async function readStored(files, path, file) {
  await receive(files, path, file.stream(), file.size);
  storedStamp = stampOf(file);
}

/** Replaces the stored index atomically: the writable stream commits on close only. */
async function persist() {
  const handle = await opfsFile(persistName, true);
  const writable = await handle.createWritable();
  await writable.write(engine.indexBytes());
  await writable.close();
  storedStamp = stampOf(await handle.getFile());
}

/** Loads the index `files` holds at `path` into the engine, and frees `files`. */
function loadIndexFrom(files, path) {
  try {
    engine.loadIndex(files, path);
  } finally {
    files.free();
  }
}

/**
 * Runs `change` (an add or remove) and stores the index; where storing fails, the index
 * goes back to what it was, so the call changes nothing and rejects (E_IO).
 *
 * Tabs with the same `persist` name take turns (a Web Lock), and each first takes up what
 * another tab stored since it last read or wrote, so no tab's documents are lost.
 */
function persisted(change) {
  if (!persistName) return change();
  return navigator.locks.request(`quiver-persist:${persistName}`, async () => {
    const latest = await latestStored();
    if (latest) loadIndexFrom(latest, 'index');
    const before = engine.indexBytes();
    const result = await change();
    try {
      await persist();
    } catch (e) {
      const files = new wasm.Files();
      await put(files, 'index', before);
      loadIndexFrom(files, 'index');
      throw fail('E_IO', `the index could not be stored (persist: ${persistName}), so the change was undone: ${e?.message ?? e}`);
    }
    return result;
  });
}

/** The stored index in a `Files` (at 'index') if another tab stored it since this worker last did; else null. */
async function latestStored() {
  const file = await storedFile();
  if (!file || stampOf(file) === storedStamp) return null;
  const files = new wasm.Files();
  try {
    await readStored(files, 'index', file);
  } catch (e) {
    files.free();
    throw e;
  }
  return files;
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
  async load({ model, index, reranker, cache = true, persist: name, wasm: url, wasmRelaxed, wasmThreads, threads, backend, decisions = '', calibrationBudgetMs, helper = false }, progress) {
    const started = performance.now();
    ready ??= start({ wasm: url, wasmRelaxed, wasmThreads, threads });
    await ready;
    engine?.dispose();
    engine?.free();
    engine = new wasm.Engine();
    engine.setBackend(backend, calibrationBudgetMs);
    persistName = name ?? null;
    storedStamp = null;
    lastEmbedding = null;
    const loaded = await loadModel(model, cache, { backend, decisions }, progress);
    if (helper) return { model: loaded.model };
    if (reranker !== undefined && reranker !== null) await loadReranker(reranker, cache, progress);
    const files = new wasm.Files();
    let restored = false;
    try {
      const stored = persistName ? await storedFile() : null;
      // A stored file that cannot be read leaves the given index to load, as none would.
      restored = stored !== null && await readStored(files, 'index', stored).then(() => true, () => false);
      let given = restored;
      if (!given && index !== undefined && index !== null) {
        progress({ stage: 'index' });
        if (typeof index === 'string') {
          await fetchInto(files, 'index', index, { useCache: false, progress: (p) => progress({ stage: 'index', ...p }) });
        } else {
          await put(files, 'index', index);
        }
        given = true;
      }
      if (given) engine.loadIndex(files, 'index'); else engine.newIndex();
    } finally {
      files.free();
    }
    return { model: loaded.model, decisions: loaded.decisions, restored, loadMs: performance.now() - started, cores, ...engine.stats() };
  },
  search: ({ query, options }) => engine.search(query, options),
  searchVector: ({ vector, options }) => engine.searchVector(vector, options),
  embed: ({ texts, kind }) => timed(texts.length, () => engine.embed(texts, kind ?? 'document')),
  add: ({ docs }) => persisted(() => timed(Array.isArray(docs) ? docs.length : 0, () => engine.add(docs))),
  addEmbedded: ({ docs, vectors }) => persisted(() => engine.addEmbedded(docs, vectors)),
  remove: ({ ids }) => persisted(() => engine.remove(ids)),
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
