// Quiver's main-thread API. The engine runs in a module Web Worker; every method returns a
// promise, and the page never blocks while a model loads or a catalogue is embedded.

/** An error from Quiver: `code` is stable (E_FETCH, E_MODEL_INVALID, E_INDEX_CORRUPT, …). */
export class QuiverError extends Error {
  constructor(message, code) {
    super(message);
    this.name = 'QuiverError';
    this.code = code;
  }
}

function invalid(message) {
  return new QuiverError(message, 'E_INVALID_ARGUMENT');
}

function requireString(value, what) {
  if (typeof value !== 'string') throw invalid(`${what} must be a string`);
}

/** `options` (absent, or an object of `known` keys only) as an object; a misspelt key is named. */
function checkOptions(options, known, what) {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) throw invalid(`${what} must be an object`);
  const unknown = Object.keys(options).filter((key) => !known.includes(key));
  if (unknown.length) throw invalid(`unknown ${what}: ${unknown.join(', ')} (known: ${known.join(', ')})`);
  return options;
}

const LOAD_OPTIONS = ['model', 'index', 'reranker', 'onProgress', 'cache', 'persist', 'workerUrl', 'wasmUrl',
  'wasmRelaxedUrl', 'wasmThreadsUrl', 'backend', 'calibrationBudgetMs', 'threads'];
const EMBED_OPTIONS = ['kind'];
/** Deeper filters or metadata are refused: the structured clone that carries them recurses. */
const MAX_DEPTH = 64;

/**
 * Throws unless `value` is JSON data, what filters and metadata must be: no functions,
 * symbols, bigints or cycles, at most MAX_DEPTH levels deep. Checked before anything is
 * posted, whose structured clone would fail with an error that has no code.
 */
function requireData(value, what, depth = 0, ancestors = new Set()) {
  if (value === null || ['string', 'number', 'boolean', 'undefined'].includes(typeof value)) return;
  if (typeof value !== 'object') throw invalid(`${what} is a ${typeof value}, which is not JSON data`);
  if (depth >= MAX_DEPTH) throw invalid(`${what} is nested more than ${MAX_DEPTH} levels deep`);
  if (ancestors.has(value)) throw invalid(`${what} refers to an object that holds it (a cycle)`);
  ancestors.add(value);
  for (const [key, inner] of Object.entries(value)) requireData(inner, `${what}.${key}`, depth + 1, ancestors);
  ancestors.delete(value);
}

/** Throws unless `id` is a string of valid UTF-16 (a lone surrogate would collide with U+FFFD). */
function requireId(id, what) {
  requireString(id, what);
  if (!id.isWellFormed()) throw invalid(`${what} holds a lone surrogate, which is not valid UTF-16`);
}

/** Throws unless `persist` is absent or a name OPFS takes as a file name. */
function requirePersistName(persist) {
  if (persist === undefined || persist === null) return;
  requireString(persist, 'persist');
  if (!/^[^/\\\0]{1,200}$/.test(persist) || persist === '.' || persist === '..' || !persist.isWellFormed()) {
    throw invalid(`persist must be a name of 1 to 200 characters without / or \\, got ${JSON.stringify(persist)}`);
  }
}

/** Search options checked to be JSON data (the engine checks names and values). */
function searchOptions(options) {
  if (options === undefined || options === null) return undefined;
  if (typeof options !== 'object' || Array.isArray(options)) throw invalid('search options must be an object');
  requireData(options, 'search options');
  return options;
}

/** `run()`'s promise, or a rejected one where it throws: the API never throws synchronously. */
function rejecting(run) {
  try { return run(); } catch (e) { return Promise.reject(e); }
}

/** The Cache API cache that holds fetched model files (`Quiver.clearCache` empties it). */
export const MODEL_CACHE = 'quiver-v1';
// `backend: "auto"` calibrates once per model and GPU adapter; the decisions live here.
const DECISIONS_KEY = 'quiver-backend-decisions';

function storedDecisions() {
  try { return globalThis.localStorage?.getItem(DECISIONS_KEY) ?? ''; } catch { return ''; }
}

function storeDecisions(json) {
  try { if (json) globalThis.localStorage?.setItem(DECISIONS_KEY, json); } catch { /* private mode: calibrate again next time */ }
}

/** Workers by default: half the cores, at most 4 (what onnxruntime-web runs when isolated). */
function defaultThreads() {
  return Math.max(1, Math.min(4, Math.floor((globalThis.navigator?.hardwareConcurrency ?? 2) / 2)));
}

/** The threaded engine's module; its wasm-bindgen glue, `quiver_wasm.js`, sits beside it. */
const THREADED_MODULE = './wasm-threads/quiver_wasm_bg.wasm';

// A pool splits `embed` and `add` calls of at least this many texts per worker.
const TEXTS_PER_PART = 8;

export class Quiver {
  /** The worker that holds the index and answers every call but split embeddings. */
  #worker;
  /** Resolves to the pool's other workers (model only) once they have loaded. */
  #helpers = Promise.resolve([]);
  #spawned = [];
  #threads = null;
  /** Calls to the first worker run one after another, in the order they were made. */
  #order = Promise.resolve();
  #lastEmbedding = null;
  #next = 1;
  #pending = new Map();
  #disposed = false;
  /** What `load` reported: model info, documents, load time, kernels. */
  info = null;

  constructor(worker) {
    this.#worker = this.#listen(worker);
  }

  #listen(worker) {
    this.#spawned.push(worker);
    worker.onmessage = (event) => {
      const { id, ok, result, error, progress } = event.data;
      const call = this.#pending.get(id);
      if (!call) return;
      if (progress) { call.onProgress?.(progress); return; }
      this.#pending.delete(id);
      if (ok) call.resolve(result); else call.reject(new QuiverError(error.message, error.code));
    };
    worker.onerror = (event) => {
      const error = new QuiverError(`the Quiver worker failed: ${event.message ?? 'unknown error'}`, 'E_WORKER');
      for (const [id, call] of this.#pending) {
        if (call.worker !== worker) continue;
        call.reject(error);
        this.#pending.delete(id);
      }
    };
    return worker;
  }

  #send(worker, op, args, onProgress, transfer = []) {
    if (this.#disposed) return Promise.reject(new QuiverError('this Quiver engine was disposed', 'E_DISPOSED'));
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onProgress, worker });
      worker.postMessage({ id, op, args }, transfer);
    });
  }

  /** Runs `run` after every earlier call to the first worker has finished. */
  #ordered(run) {
    const result = this.#order.then(run);
    this.#order = result.catch(() => {});
    return result;
  }

  #call(op, args, onProgress, transfer) {
    return this.#ordered(() => this.#send(this.#worker, op, args, onProgress, transfer));
  }

  /**
   * Starts a worker and loads a model and an index.
   * @param {import('./index.d.ts').LoadOptions} options
   */
  static async load(options) {
    options = checkOptions(options, LOAD_OPTIONS, 'load option');
    const { model, index, reranker, onProgress, cache = true, persist, workerUrl, wasmUrl, wasmRelaxedUrl, wasmThreadsUrl, backend, calibrationBudgetMs } = options;
    if (!model) throw invalid('load needs a model: a URL of a model folder, or its files');
    requirePersistName(persist);
    const threads = options.threads ?? defaultThreads();
    if (!Number.isInteger(threads) || threads < 1) throw invalid(`threads must be a whole number ≥ 1, got ${threads}`);
    // URLs are resolved against the page here: the worker's own base is its script.
    const base = globalThis.document?.baseURI ?? globalThis.location?.href;
    const absolute = (url) => (typeof url === 'string' ? new URL(url, base).href : url);
    // Both URLs are written here, on the main thread, where bundlers (Vite, webpack)
    // recognise `new URL(…, import.meta.url)` and emit the files.
    // Spelled out in full: bundlers only recognise this exact `new Worker(new URL(…))` form.
    const spawn = () => (workerUrl
      ? new Worker(workerUrl, { type: 'module' })
      : new Worker(new URL('./worker.js', import.meta.url), { type: 'module' }));
    const wasm = (wasmUrl ?? new URL('./wasm/quiver_wasm_bg.wasm', import.meta.url)).toString();
    const wasmRelaxed = (wasmRelaxedUrl ?? new URL('./wasm-relaxed/quiver_wasm_bg.wasm', import.meta.url)).toString();
    // Not a literal: bundlers would emit the threaded module without the glue it needs.
    const wasmThreads = (wasmThreadsUrl ?? new URL(THREADED_MODULE, import.meta.url)).toString();
    const quiver = new Quiver(spawn());
    try {
      const args = {
        model: absolute(model), index: absolute(index), reranker: absolute(reranker), cache, persist, wasm: absolute(wasm),
        wasmRelaxed: absolute(wasmRelaxed), wasmThreads: absolute(wasmThreads), threads, backend, calibrationBudgetMs, decisions: storedDecisions(),
      };
      const { decisions, cores, ...info } = await quiver.#call('load', args, onProgress);
      storeDecisions(decisions);
      quiver.info = info;
      // After the first worker: the others find the model files in the cache.
      quiver.#helpers = quiver.#startPool(threads, info, cores, () => quiver.#listen(spawn()), { model: args.model, cache, wasm: args.wasm, wasmRelaxed: args.wasmRelaxed })
        .catch((e) => {
          // A worker that cannot even be created leaves the first one working alone.
          quiver.#threads = { mode: 'single', workers: 1, requested: threads, isolated: globalThis.crossOriginIsolated === true, reason: `the pool could not start: ${e?.message ?? e}` };
          return [];
        });
    } catch (e) {
      quiver.dispose();
      throw e;
    }
    return quiver;
  }

  /**
   * Unless the first worker runs wasm threads (`cores`, its report), starts `threads - 1`
   * more workers, each with its own instance of the model, in the background; searches
   * never wait for them. Resolves to those that loaded.
   */
  async #startPool(threads, info, cores, spawn, args) {
    const isolated = globalThis.crossOriginIsolated === true;
    const report = (workers, reason, mode = workers > 1 ? 'pool' : 'single') => { this.#threads = { mode, workers, requested: threads, isolated, reason }; };
    if (cores?.mode === 'threads') { report(1, `one worker: ${cores.reason}`, 'threads'); return []; }
    if (threads === 1) { report(1, 'one worker (threads: 1)'); return []; }
    if (info.backend?.active === 'gpu') { report(1, 'one worker: the GPU embeds'); return []; }
    const started = Array.from({ length: threads - 1 }, spawn);
    const loads = await Promise.allSettled(started.map((w) => this.#send(w, 'load', { ...args, backend: 'cpu', helper: true })));
    const helpers = started.filter((w, i) => {
      if (loads[i].status === 'fulfilled') return true;
      w.terminate();
      return false;
    });
    const failed = loads.find((l) => l.status === 'rejected');
    report(1 + helpers.length, [
      cores?.reason ?? 'no wasm threads',
      ': a pool of workers, each with its own instance, splits embed and add calls; searches stay on one',
      failed ? `; ${threads - 1 - helpers.length} worker(s) failed to start: ${failed.reason?.message}` : '',
    ].join(''));
    return helpers;
  }

  /**
   * Embeds `texts` across the pool in contiguous parts of about equal length: one
   * Float32Array of `texts.length × dim` values, in order.
   */
  async #embedAcross(texts, kind) {
    const workers = [this.#worker, ...await this.#helpers];
    const parts = Math.max(1, Math.min(workers.length, Math.floor(texts.length / TEXTS_PER_PART)));
    if (parts === 1 || !texts.every((t) => typeof t === 'string')) {
      this.#lastEmbedding = null;
      return this.#send(this.#worker, 'embed', { texts, kind });
    }
    const started = performance.now();
    const total = texts.reduce((sum, t) => sum + t.length + 1, 0);
    const bounds = [0];
    for (let i = 0, chars = 0; i < texts.length && bounds.length < parts; i++) {
      chars += texts[i].length + 1;
      if (chars >= (total * bounds.length) / parts) bounds.push(i + 1);
    }
    bounds.push(texts.length);
    const results = await Promise.all(bounds.slice(1).map((end, p) =>
      this.#send(workers[p], 'embed', { texts: texts.slice(bounds[p], end), kind })));
    const flat = new Float32Array(results.reduce((sum, r) => sum + r.length, 0));
    results.reduce((at, r) => { flat.set(r, at); return at + r.length; }, 0);
    this.#lastEmbedding = { texts: texts.length, ms: performance.now() - started, backend: 'cpu', workers: results.length };
    return flat;
  }

  /** Rejects once disposed, else `run()`'s promise (rejected where it throws). */
  #checked(run) {
    if (this.#disposed) return Promise.reject(new QuiverError('this Quiver engine was disposed', 'E_DISPOSED'));
    return rejecting(run);
  }

  /** Searches by meaning: `[{ id, score, metadata }]`, best first; `[]` for a blank query. */
  search(query, options) {
    return this.#checked(() => {
      requireString(query, 'the query');
      return this.#call('search', { query, options: searchOptions(options) });
    });
  }

  /** Searches with a vector of the index's dimension. */
  searchVector(vector, options) {
    return this.#checked(() => {
      if (typeof vector?.length !== 'number' || typeof vector === 'string') throw invalid('the vector must be an array of numbers');
      return this.#call('searchVector', { vector: Float32Array.from(vector), options: searchOptions(options) });
    });
  }

  /** Embeds texts: one Float32Array per text. `kind`: "document" (default), "query" or "raw". */
  async embed(texts, options) {
    const { kind = 'document' } = checkOptions(options, EMBED_OPTIONS, 'embed option');
    if (!Array.isArray(texts)) throw invalid('texts must be an array of strings');
    if (this.#disposed) throw new QuiverError('this Quiver engine was disposed', 'E_DISPOSED');
    const flat = await this.#embedAcross(texts, kind);
    const dim = texts.length ? flat.length / texts.length : 0;
    return texts.map((_, i) => flat.subarray(i * dim, (i + 1) * dim));
  }

  /** Adds or replaces `[{ id, text, metadata? }]`; persisted when loaded with `persist`. */
  add(docs) {
    return this.#checked(() => {
      requireData(docs, 'docs');
      // Documents the engine would refuse go to it whole, for its error.
      const valid = Array.isArray(docs) && docs.every((d) => typeof d?.id === 'string' && typeof d.text === 'string');
      if (!valid) return this.#call('add', { docs });
      docs.forEach((d, i) => requireId(d.id, `docs[${i}].id`));
      return this.#ordered(async () => {
        const vectors = await this.#embedAcross(docs.map((d) => d.text), 'document');
        return this.#send(this.#worker, 'addEmbedded', { docs, vectors }, undefined, [vectors.buffer]);
      });
    });
  }

  /** Removes documents by id. */
  remove(ids) {
    return this.#checked(() => {
      requireData(ids, 'ids');
      if (Array.isArray(ids)) ids.forEach((id, i) => requireId(id, `ids[${i}]`));
      return this.#call('remove', { ids });
    });
  }

  /** `{ documents, dim, model, kernels, keyword, queryCache, backend, lastEmbedding, threads }`. */
  async stats() {
    const stats = await this.#call('stats', {});
    await this.#helpers;
    return { ...stats, lastEmbedding: this.#lastEmbedding ?? stats.lastEmbedding, threads: this.#threads };
  }

  /** The index as file bytes (the native CLI reads them too). */
  indexBytes() {
    return this.#call('indexBytes', {});
  }

  /** Stops the worker and frees its memory; later calls reject with E_DISPOSED. */
  dispose() {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const worker of this.#spawned) worker.terminate();
    const error = new QuiverError('this Quiver engine was disposed', 'E_DISPOSED');
    for (const call of this.#pending.values()) call.reject(error);
    this.#pending.clear();
  }

  /** Deletes cached model files, so the next load fetches them again. */
  static async clearCache() {
    if (typeof caches !== 'undefined') await caches.delete(MODEL_CACHE);
  }
}
