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

function requireString(value, what) {
  if (typeof value !== 'string') throw new QuiverError(`${what} must be a string`, 'E_INVALID_ARGUMENT');
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

export class Quiver {
  #worker;
  #next = 1;
  #pending = new Map();
  #disposed = false;
  /** What `load` reported: model info, documents, load time, kernels. */
  info = null;

  constructor(worker) {
    this.#worker = worker;
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
      for (const call of this.#pending.values()) call.reject(error);
      this.#pending.clear();
    };
  }

  #call(op, args, onProgress, transfer = []) {
    if (this.#disposed) return Promise.reject(new QuiverError('this Quiver engine was disposed', 'E_DISPOSED'));
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onProgress });
      this.#worker.postMessage({ id, op, args }, transfer);
    });
  }

  /**
   * Starts a worker and loads a model and an index.
   * @param {import('./index.d.ts').LoadOptions} options
   */
  static async load(options = {}) {
    const { model, index, reranker, onProgress, cache = true, persist, workerUrl, wasmUrl, backend, calibrationBudgetMs } = options;
    if (!model) throw new QuiverError('load needs a model: a URL of a model folder, or its files', 'E_INVALID_ARGUMENT');
    // URLs are resolved against the page here: the worker's own base is its script.
    const base = globalThis.document?.baseURI ?? globalThis.location?.href;
    const absolute = (url) => (typeof url === 'string' ? new URL(url, base).href : url);
    // Both URLs are written here, on the main thread, where bundlers (Vite, webpack)
    // recognise `new URL(…, import.meta.url)` and emit the files.
    // Spelled out in full: bundlers only recognise this exact `new Worker(new URL(…))` form.
    const worker = workerUrl
      ? new Worker(workerUrl, { type: 'module' })
      : new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    const wasm = (wasmUrl ?? new URL('./wasm/quiver_wasm_bg.wasm', import.meta.url)).toString();
    const quiver = new Quiver(worker);
    try {
      const args = {
        model: absolute(model), index: absolute(index), reranker: absolute(reranker), cache, persist, wasm: absolute(wasm),
        backend, calibrationBudgetMs, decisions: storedDecisions(),
      };
      const { decisions, ...info } = await quiver.#call('load', args, onProgress);
      storeDecisions(decisions);
      quiver.info = info;
    } catch (e) {
      quiver.dispose();
      throw e;
    }
    return quiver;
  }

  /** Searches by meaning: `[{ id, score, metadata }]`, best first. */
  search(query, options = {}) {
    try { requireString(query, 'the query'); } catch (e) { return Promise.reject(e); }
    return this.#call('search', { query, options });
  }

  /** Searches with a vector of the index's dimension. */
  searchVector(vector, options = {}) {
    return this.#call('searchVector', { vector: Float32Array.from(vector), options });
  }

  /** Embeds texts: one Float32Array per text. `kind`: "document" (default), "query" or "raw". */
  async embed(texts, { kind = 'document' } = {}) {
    if (!Array.isArray(texts)) throw new QuiverError('texts must be an array of strings', 'E_INVALID_ARGUMENT');
    const flat = await this.#call('embed', { texts, kind });
    const dim = texts.length ? flat.length / texts.length : 0;
    return texts.map((_, i) => flat.subarray(i * dim, (i + 1) * dim));
  }

  /** Adds or replaces `[{ id, text, metadata? }]`; persisted when loaded with `persist`. */
  add(docs) {
    return this.#call('add', { docs });
  }

  /** Removes documents by id. */
  remove(ids) {
    return this.#call('remove', { ids });
  }

  /** `{ documents, dim, model, kernels, keyword, queryCache, backend, lastEmbedding }`. */
  stats() {
    return this.#call('stats', {});
  }

  /** The index as file bytes (the native CLI reads them too). */
  indexBytes() {
    return this.#call('indexBytes', {});
  }

  /** Stops the worker and frees its memory; later calls reject with E_DISPOSED. */
  dispose() {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#worker.terminate();
    const error = new QuiverError('this Quiver engine was disposed', 'E_DISPOSED');
    for (const call of this.#pending.values()) call.reject(error);
    this.#pending.clear();
  }

  /** Deletes cached model files, so the next load fetches them again. */
  static async clearCache() {
    if (typeof caches !== 'undefined') await caches.delete(MODEL_CACHE);
  }
}
