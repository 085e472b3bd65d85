export type Strategy = 'exact' | 'int8' | 'binary' | 'binary-rescore';

/** `{ field: value }`, `{ field: [a, b] }` or `{ field: { eq, ne, in, lt, lte, gt, gte } }`; all must hold. */
export type Filter = Record<string, unknown>;

export interface SearchOptions {
  /** Results wanted (default 10). */
  k?: number;
  /** How the index is scanned (default "exact"). */
  strategy?: Strategy;
  /** binary-rescore: candidates = oversample × k (default 30). */
  oversample?: number;
  /** binary-rescore: rescore with "f32" (default) or "int8". */
  rescore?: 'f32' | 'int8';
  filter?: Filter;
  /** Rank by meaning ("vector", default), by keywords (BM25, "keyword") or both fused ("hybrid"). */
  mode?: 'vector' | 'keyword' | 'hybrid';
  /** hybrid: Reciprocal Rank Fusion ("rrf", default) or min-max normalised weighted scores ("weighted"). */
  fusion?: 'rrf' | 'weighted';
  /** rrf: the rank offset k (default 60). */
  rrfK?: number;
  /** weighted: the vector ranking's share, 0–1 (default 0.5). */
  vectorWeight?: number;
  /** hybrid: how deep each ranking is taken before fusing (default 100). */
  fusionCandidates?: number;
  /** Re-score this many top results with the reranker given to `load`. */
  rerank?: number;
}

export interface SearchResult {
  id: string;
  score: number;
  metadata: Record<string, unknown> | null;
}

export interface Progress {
  stage: 'model' | 'reranker' | 'compile' | 'backend' | 'index';
  /** With stage 'backend': the backend asked for, while the GPU is prepared and checked. */
  backend?: 'auto' | 'gpu' | 'cpu';
  file?: string;
  loaded?: number;
  total?: number;
  cached?: boolean;
  /** Bytes on the wire, when the server compressed the file (`loaded`/`total` count decoded bytes). */
  wire?: number;
}

export type FileSource = ArrayBuffer | Uint8Array | Blob;

export interface LoadOptions {
  /** URL of a folder laid out like a Hugging Face model repository, or its files by path. */
  model: string | Record<string, FileSource>;
  /** URL or bytes of an index file made by `quiver index`; omitted: an empty index. */
  index?: string | FileSource;
  /** A cross-encoder (BERT with a classification head) folder URL or files, for `search(q, { rerank: n })`. */
  reranker?: string | Record<string, FileSource>;
  onProgress?: (progress: Progress) => void;
  /** Keep model files in the Cache API (default true). */
  cache?: boolean;
  /**
   * Store the index in the origin-private file system under this name (1 to 200 characters,
   * no `/` or `\`); added documents survive reloads. An add or remove whose index cannot be
   * stored rejects with `E_IO` and changes nothing. Tabs on one name take turns (a Web Lock):
   * each add or remove first takes up what another tab stored, so no tab's documents are lost
   * (a tab sees another's documents at its next add, remove or load).
   */
  persist?: string;
  /** Where worker.js is served, if a bundler moved it. */
  workerUrl?: string | URL;
  /** Where quiver_wasm_bg.wasm is served, if a bundler moved it. */
  wasmUrl?: string | URL;
  /**
   * Where the relaxed-simd build's quiver_wasm_bg.wasm is served (default: the package's
   * `wasm-relaxed/`), if a bundler moved it. Browsers with relaxed-simd run it; where it
   * cannot be loaded, the simd128 build (`wasmUrl`) runs.
   */
  wasmRelaxedUrl?: string | URL;
  /**
   * Where the threaded engine's `quiver_wasm_bg.wasm` is served, its `quiver_wasm.js` and
   * `snippets/` beside it (default: the package's `wasm-threads/`). Bundlers do not emit
   * that folder: copy it to your static files and name it here to have wasm threads.
   */
  wasmThreadsUrl?: string | URL;
  /**
   * Where embeddings are computed (default "auto"): "gpu" (WebGPU) whenever it works, "cpu"
   * (WebAssembly SIMD), or "auto", the faster of the two on this device, measured once
   * (≤ 300 ms) per model and GPU adapter and remembered in localStorage. Without WebGPU, or
   * when the GPU fails, the CPU runs and `info.backend.reason` says why.
   */
  backend?: 'auto' | 'gpu' | 'cpu';
  /**
   * How long an "auto" calibration may take, CPU and GPU together, in milliseconds (default
   * 300). A run whose GPU ran out of budget is inconclusive and not remembered; a larger
   * budget lets a slow GPU finish, so the decision is stored.
   */
  calibrationBudgetMs?: number;
  /**
   * Threads that embed (default: half the cores, at most 4). Above 1, on a cross-origin
   * isolated page in a browser with wasm relaxed-simd, one worker runs the threaded engine:
   * wasm threads on shared memory split every product, a single query's too. Elsewhere (no
   * SharedArrayBuffer, or Safari), `embed` and `add`
   * calls split their texts across a pool of workers, each with its own instance of the
   * model, started in the background after `load`; searches stay on the first worker,
   * which holds the index. Only where the CPU embeds.
   */
  threads?: number;
}

export interface ThreadsReport {
  /**
   * "threads": one worker runs wasm threads; "pool": several workers split embeddings;
   * "single": one worker does everything on one thread.
   */
  mode: 'threads' | 'pool' | 'single';
  /** Workers running (the pool's that failed to start are not counted). */
  workers: number;
  requested: number;
  /** Whether the page is cross-origin isolated. */
  isolated: boolean;
  /** Why this mode runs, in words. */
  reason: string;
}

export interface BackendReport {
  requested: 'auto' | 'gpu' | 'cpu';
  active: 'gpu' | 'cpu';
  /** Why this backend runs, in words. */
  reason: string;
  /** Set when the GPU failed: E_GPU_UNAVAILABLE, E_GPU_LOST, E_GPU_KERNEL, E_GPU_LIMITS, E_GPU_UNSUPPORTED, … */
  fallbackCode: string | null;
  adapter: { name: string; api: string; deviceType: string; driver: string; shaderF16: boolean } | null;
  calibration: {
    sequences: number;
    tokensPerSequence: number;
    cpuMs: number;
    gpuFirstMs: number | null;
    gpuMs: number | null;
    /** How long the GPU's unfinished run was allowed (it lost, or the budget ran out). */
    gpuAllowedMs: number | null;
    totalMs: number;
    /** The budget the run had. */
    budgetMs: number | null;
  } | null;
  /** Whether the decision came from an earlier calibration. */
  cached: boolean;
  /** Adapter, weights upload and pipelines, in ms. */
  gpuSetupMs: number | null;
  /** How the GPU stores the linears' weights: 'f16' where the adapter has shader-f16. */
  gpuWeights: 'f16' | 'f32' | null;
}

export interface Stats {
  documents: number;
  dim: number | null;
  model: string | null;
  /** The index's kernels: 'simd128' in the browser. */
  kernels: string;
  /**
   * The kernels of a quantized model's products: 'relaxed-simd' where the browser has wasm
   * relaxed-simd (Chrome, Firefox, Edge), else 'simd128' (Safari).
   */
  modelKernels: string;
  /** Whether the index has a keyword index (keyword and hybrid search). */
  keyword: boolean;
  /** The engine's cache of query embeddings. */
  queryCache: { hits: number; misses: number; entries: number; capacity: number };
  /** Where texts are embedded, why, and what the calibration measured. */
  backend: BackendReport | null;
  /** The latest `embed` or `add`: texts, milliseconds, backend (only from `stats()`). */
  lastEmbedding?: { texts: number; ms: number; backend: 'gpu' | 'cpu'; workers?: number } | null;
  /** The first worker's WebAssembly memory, which only grows: its engine's peak heap (only from `stats()`). */
  wasmMemoryBytes?: number;
  /** How many workers embed, and why (only from `stats()`). */
  threads?: ThreadsReport;
  /** Whether the index is on the GPU (uploaded by the first search that runs there). */
  gpuSearch: boolean;
  /** Why the index is searched on the CPU although the GPU backend runs, if it is. */
  gpuSearchError: string | null;
}

export interface Document {
  id: string;
  text: string;
  metadata?: Record<string, unknown>;
}

/** The Cache API cache that holds fetched model files (`Quiver.clearCache` empties it). */
export declare const MODEL_CACHE: string;

/**
 * What went wrong, stable across releases (the CLI prints the same codes):
 * - `E_INVALID_ARGUMENT`: a wrong type or value, a misspelt option (named in the message),
 *   a filter or metadata that is not JSON data (a function, symbol, cycle, or more than 64
 *   levels deep), an id that is not valid UTF-16;
 * - `E_DISPOSED`: the engine was disposed; `E_BUSY`: an overlapping call inside the engine;
 * - `E_FETCH`: a file could not be fetched; `E_WORKER`: the worker failed;
 * - `E_MODEL_MISSING`, `E_MODEL_INVALID`: a model folder lacks a file, or holds a bad one;
 *   `E_MODEL_MISMATCH`: the index was embedded by another model;
 * - `E_INDEX_CORRUPT`, `E_INDEX_VERSION`: a damaged index file, or one of a newer format;
 * - `E_NO_MODEL`, `E_NO_INDEX`, `E_NO_KEYWORD_INDEX`, `E_NO_RERANKER`: what the call needs
 *   was not loaded;
 * - `E_DIMENSION`, `E_NON_FINITE`: a vector of the wrong length, or with NaN or ±∞;
 * - `E_FILTER`: a filter the engine cannot read; `E_DUPLICATE_ID`, `E_UNKNOWN_ID`: ids;
 * - `E_GPU_UNAVAILABLE`, `E_GPU_UNSUPPORTED`, `E_GPU_LIMITS`, `E_GPU_MEMORY`, `E_GPU_LOST`,
 *   `E_GPU_KERNEL`: the GPU backend (`auto` falls back to the CPU instead);
 * - `E_IO`: the index could not be stored (`persist`), and the add or remove was undone;
 * - `E_COMPUTE`, `E_INPUT`, `E_NPY`: the engine's own failures;
 *   `E_INTERNAL`: anything else (a bug: please report it).
 */
export type QuiverErrorCode =
  | 'E_INVALID_ARGUMENT' | 'E_DISPOSED' | 'E_BUSY' | 'E_FETCH' | 'E_WORKER'
  | 'E_MODEL_MISSING' | 'E_MODEL_INVALID' | 'E_MODEL_MISMATCH' | 'E_INDEX_CORRUPT' | 'E_INDEX_VERSION'
  | 'E_NO_MODEL' | 'E_NO_INDEX' | 'E_NO_KEYWORD_INDEX' | 'E_NO_RERANKER'
  | 'E_DIMENSION' | 'E_NON_FINITE' | 'E_FILTER' | 'E_DUPLICATE_ID' | 'E_UNKNOWN_ID'
  | 'E_GPU_UNAVAILABLE' | 'E_GPU_UNSUPPORTED' | 'E_GPU_LIMITS' | 'E_GPU_MEMORY' | 'E_GPU_LOST' | 'E_GPU_KERNEL'
  | 'E_COMPUTE' | 'E_INPUT' | 'E_IO' | 'E_NPY' | 'E_INTERNAL';

/** Every failure of the API: a rejected promise with one of these, never a synchronous throw. */
export declare class QuiverError extends Error {
  code: QuiverErrorCode;
}

export declare class Quiver {
  info: (Stats & { model: unknown; restored: boolean; loadMs: number }) | null;
  static load(options: LoadOptions): Promise<Quiver>;
  static clearCache(): Promise<void>;
  /** Best first; `[]` for an empty or blank query (a search box just cleared). */
  search(query: string, options?: SearchOptions): Promise<SearchResult[]>;
  searchVector(vector: ArrayLike<number>, options?: SearchOptions): Promise<SearchResult[]>;
  embed(texts: string[], options?: { kind?: 'document' | 'query' | 'raw' }): Promise<Float32Array[]>;
  add(docs: Document[]): Promise<number>;
  remove(ids: string[]): Promise<number>;
  stats(): Promise<Stats>;
  indexBytes(): Promise<Uint8Array>;
  dispose(): void;
}
