#!/usr/bin/env node
// Browser benchmarks in headless Chromium, Quiver next to transformers.js (from the peers
// harness, ../shared/peers/setup.sh) on the same page set-up and model:
//   all-MiniLM-L6-v2 as f32 safetensors, q8_0 and q4_0 GGUF (`quiver quantize`), and
//   transformers.js fp32 and q8 (its model_quantized.onnx);
//   cold start (empty cache) and warm start, page load → first query embedded, median of 5;
//   embedding throughput (tokens/s) at batch 1 and 32 on the harness's short corpus (and
//   batch 1's p50 ms per text: a query's embedding), on a
//   page that is not cross-origin isolated and on one that is (COOP/COEP): Quiver with one
//   worker and with THREADS (default 2) threads — a pool of workers where the page is not
//   isolated, wasm threads where it is —, transformers.js with its one thread and,
//   isolated, with THREADS onnxruntime-web threads; and 64 long texts (~255
//   tokens) at batch 32;
//   WebGPU: Quiver's GPU backend next to transformers.js `device: 'webgpu'` on the same
//   adapter (headless Chromium's is SwiftShader, software: fewer texts and one run; only
//   the ratio between the two says anything), and Quiver's `auto` calibration;
//   query latency p50/p95 at 10k and 100k documents, exact and binary + rescore;
//   size of the .wasm, raw and gzipped.
// Writes artifacts/bench-browser.json and prints a table. Ratios matter, not absolutes.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { serve } from '../web/serve.mjs';
import { PEERS, QUIVER, ROOT, corpus, haveTjs, peerMounts as mounts, randomIndex } from './bench-common.mjs';
const RUNS = Number(process.env.RUNS ?? 5);
const THREADS = Number(process.env.THREADS ?? 2);
// ONLY=regex runs the engines whose names match, and skips the auto and latency sections.
const ONLY = process.env.ONLY ? new RegExp(process.env.ONLY) : null;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const percentile = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

// Texts and their token counts (Quiver's tokenizer, the same as sentence-transformers').
const texts = corpus('short', 256);
const tmp = join(tmpdir(), `quiver-bench-${process.pid}`);
mkdirSync(tmp, { recursive: true });
/** The tokens of `texts` as the model counts them (special tokens in, padding out). */
function tokenCount(some, name) {
  writeFileSync(join(tmp, `${name}.jsonl`), some.map((text, id) => JSON.stringify({ id, text })).join('\n'));
  execFileSync(QUIVER, ['bench-embed', '--model', join(ROOT, 'models/all-MiniLM-L6-v2'), '--backend', 'cpu',
    '--corpus', join(tmp, `${name}.jsonl`), '--limit', '0', '--out', join(tmp, `${name}.npy`), '--json', join(tmp, `${name}.json`)],
  { stdio: 'ignore' });
  return JSON.parse(readFileSync(join(tmp, `${name}.json`))).n_tokens;
}
const tokens256 = tokenCount(texts, 'c');
const tokens32 = tokenCount(texts.slice(0, 32), 'c32');
// Long texts (~255 tokens after truncation): 64 of the harness's long corpus, in batches of 32.
const longTexts = corpus('long', 64);
const tokensLong = tokenCount(longTexts, 'long');
// Software WebGPU is slow: the GPU engines embed 8 texts one by one and 64 in batches of 32.
const GPU_TEXTS = { batch1: 8, batch32: 64 };
const gpuTokens = { batch1: tokenCount(texts.slice(0, GPU_TEXTS.batch1), 'g1'), batch32: tokenCount(texts.slice(0, GPU_TEXTS.batch32), 'g32') };

// Indexes of 10k and 100k random unit vectors (search cost does not depend on content).
for (const n of [10_000, 100_000]) randomIndex(`bench-${n}`, n, 'all-MiniLM-L6-v2', 12345);

// A worker that sees no relaxed-simd, as Safari's: the simd128 build runs.
const WITHOUT_RELAXED = '/without-relaxed-simd/worker.js';
const served = { ...mounts, 'without-relaxed-simd/': join(ROOT, 'tests/browser/without-relaxed-simd') };
const server = await serve({ port: 0, mounts: served });
const base = `http://127.0.0.1:${server.address().port}`;
const isolatedServer = await serve({ port: 0, mounts: served, isolated: true });
const isolatedBase = `http://127.0.0.1:${isolatedServer.address().port}`;
const home = join(tmp, 'home');
mkdirSync(home, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
    '--enable-unsafe-webgpu'],
  env: { ...process.env, XDG_RUNTIME_DIR: home, XDG_CACHE_HOME: home, XDG_CONFIG_HOME: home },
});

// Each engine starts in a fresh page from its argument; `window.engine(batch)` embeds.
const startQuiver = async ([model, backend, threads = 1, workerUrl]) => {
  const { Quiver } = await import('/pkg/index.js');
  // No index: quantized models make vectors of their own, which an f32 index refuses.
  const q = await Quiver.load({ model, backend, threads, workerUrl });
  await q.embed(['first query'], { kind: 'query' });
  window.engine = (batch) => q.embed(batch, { kind: 'raw' });
  window.backend = q.info.backend;
  // Waits for the pool's workers, so the throughput runs measure all of them.
  window.threads = (await q.stats()).threads;
};
const startTjs = async ([dtype, device, threads = 1]) => {
  const { pipeline, env } = await import('/peer/tjs/transformers.js');
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = '/peer/models/';
  env.backends.onnx.wasm.wasmPaths = '/peer/ort/';
  // onnxruntime-web runs threads only on cross-origin isolated pages.
  env.backends.onnx.wasm.numThreads = threads;
  const extractor = await pipeline('feature-extraction', 'all-MiniLM-L6-v2', { dtype, device });
  await extractor(['first query'], { pooling: 'mean', normalize: true });
  window.engine = (batch) => extractor(batch, { pooling: 'mean', normalize: true });
};
const modelBytes = (dir, files) => files.reduce((sum, f) => sum + (existsSync(join(dir, f)) ? statSync(join(dir, f)).size : 0), 0);
const MINILM_FILES = ['config.json', 'tokenizer.json', 'model.safetensors', 'model.gguf'];
const F32_BYTES = modelBytes(join(ROOT, 'models/all-MiniLM-L6-v2'), MINILM_FILES);
const TJS_FP32_BYTES = modelBytes(join(PEERS, 'models/all-MiniLM-L6-v2'), ['config.json', 'tokenizer.json', 'onnx/model.onnx']);
const engines = {
  'quiver f32': { start: startQuiver, arg: ['/models/all-MiniLM-L6-v2/', 'cpu'], bytes: F32_BYTES },
  'quiver q8_0': { start: startQuiver, arg: ['/models/all-MiniLM-L6-v2-q8_0/', 'cpu'], bytes: modelBytes(join(ROOT, 'models/all-MiniLM-L6-v2-q8_0'), MINILM_FILES) },
  'quiver q4_0': { start: startQuiver, arg: ['/models/all-MiniLM-L6-v2-q4_0/', 'cpu'], bytes: modelBytes(join(ROOT, 'models/all-MiniLM-L6-v2-q4_0'), MINILM_FILES) },
  'transformers.js fp32': { start: startTjs, arg: ['fp32', 'wasm'], peer: true, bytes: TJS_FP32_BYTES },
  'transformers.js q8': { start: startTjs, arg: ['q8', 'wasm'], peer: true, bytes: modelBytes(join(PEERS, 'models/all-MiniLM-L6-v2'), ['config.json', 'tokenizer.json', 'onnx/model_quantized.onnx']) },
  'quiver q8_0 simd128 (no relaxed-simd, as Safari)': { start: startQuiver, arg: ['/models/all-MiniLM-L6-v2-q8_0/', 'cpu', 1, WITHOUT_RELAXED], bytes: modelBytes(join(ROOT, 'models/all-MiniLM-L6-v2-q8_0'), MINILM_FILES) },
  [`quiver q8_0 pool of ${THREADS}`]: { start: startQuiver, arg: ['/models/all-MiniLM-L6-v2-q8_0/', 'cpu', THREADS], bytes: modelBytes(join(ROOT, 'models/all-MiniLM-L6-v2-q8_0'), MINILM_FILES) },
  'quiver q8_0 isolated': { start: startQuiver, arg: ['/models/all-MiniLM-L6-v2-q8_0/', 'cpu'], isolated: true, bytes: modelBytes(join(ROOT, 'models/all-MiniLM-L6-v2-q8_0'), MINILM_FILES) },
  [`quiver q8_0 ${THREADS} wasm threads isolated`]: { start: startQuiver, arg: ['/models/all-MiniLM-L6-v2-q8_0/', 'cpu', THREADS], isolated: true, bytes: modelBytes(join(ROOT, 'models/all-MiniLM-L6-v2-q8_0'), MINILM_FILES) },
  [`transformers.js q8 isolated, ${THREADS} threads`]: { start: startTjs, arg: ['q8', 'wasm', THREADS], peer: true, isolated: true, bytes: modelBytes(join(PEERS, 'models/all-MiniLM-L6-v2'), ['config.json', 'tokenizer.json', 'onnx/model_quantized.onnx']) },
  'quiver f32 webgpu': { start: startQuiver, arg: ['/models/all-MiniLM-L6-v2/', 'gpu'], gpu: true, bytes: F32_BYTES },
  'transformers.js fp32 webgpu': { start: startTjs, arg: ['fp32', 'webgpu'], peer: true, gpu: true, bytes: TJS_FP32_BYTES },
};

const report = { date: new Date().toISOString(), chromium: browser.version(), runs: RUNS, engines: {} };
/** One engine's start-up times and throughput into `report.engines[name]`. */
async function measure(name, engine) {
  const cold = [], warm = [];
  const runs = engine.gpu ? 1 : RUNS;
  const sample = engine.gpu ? GPU_TEXTS : { batch1: 32, batch32: texts.length };
  const tokens = engine.gpu ? gpuTokens : { batch1: tokens32, batch32: tokens256 };
  for (let run = 0; run < runs; run++) {
    const context = await browser.newContext();
    for (const series of [cold, warm]) {
      const page = await context.newPage();
      await page.goto(`${engine.isolated ? isolatedBase : base}/web/blank.html`);
      if (engine.isolated && !await page.evaluate(() => crossOriginIsolated)) throw new Error('the page is not cross-origin isolated');
      await page.evaluate(engine.start, engine.arg);
      series.push(await page.evaluate(() => performance.now()));
      if (series === warm && run === runs - 1) {
        // Throughput on the last warm page: batch 1 over 32 texts, batch 32 over 256.
        const result = await page.evaluate(async ({ texts, sample, longTexts }) => {
          // Batch 1 is a query as a visitor types it: each text's own time too, for the p50.
          const single = [];
          for (const t of texts.slice(0, sample.batch1)) {
            const t0 = performance.now();
            await window.engine([t]);
            single.push(performance.now() - t0);
          }
          const batch1 = single.reduce((a, b) => a + b, 0);
          await window.engine(texts.slice(0, 32));
          const t2 = performance.now();
          for (let i = 0; i < sample.batch32; i += 32) await window.engine(texts.slice(i, i + 32));
          const batch32 = performance.now() - t2;
          const t3 = performance.now();
          for (let i = 0; i < longTexts.length; i += 32) await window.engine(longTexts.slice(i, i + 32));
          return { batch1, single, batch32, long: performance.now() - t3, backend: window.backend, threads: window.threads };
        }, { texts, sample, longTexts: engine.gpu ? [] : longTexts });
        report.engines[name] = {
          tokens_per_s_batch1: tokens.batch1 / (result.batch1 / 1000),
          batch1_p50_ms: percentile(result.single, 0.5),
          tokens_per_s_batch32: tokens.batch32 / (result.batch32 / 1000),
          ...(engine.gpu ? {} : { tokens_per_s_long_batch32: tokensLong / (result.long / 1000) }),
          ...(result.backend ? { backend: result.backend } : {}),
          ...(result.threads ? { threads: result.threads } : {}),
        };
      }
      await page.close();
    }
    await context.close();
  }
  Object.assign(report.engines[name], { cold_start_ms: median(cold), warm_start_ms: median(warm), model_bytes: engine.bytes });
}
for (const [name, engine] of Object.entries(engines)) {
  if ((engine.peer && !haveTjs) || (ONLY && !ONLY.test(name))) continue;
  try {
    await measure(name, engine);
  } catch (e) {
    // A peer that cannot run here (no WebGPU in this Chromium, say) gets a row saying why.
    report.engines[name] = { error: e.message.split('\n')[0] };
  }
}
const gpuRatio = (batch) => report.engines['quiver f32 webgpu']?.[batch] / report.engines['transformers.js fp32 webgpu']?.[batch];
report.webgpu_quiver_over_tjs = { batch1: gpuRatio('tokens_per_s_batch1'), batch32: gpuRatio('tokens_per_s_batch32') };
// The targets' ratios: Quiver q8_0 over transformers.js q8, tokens/s, same isolation.
const tjsRatio = (quiver, tjs) => ({
  batch1: report.engines[quiver]?.tokens_per_s_batch1 / report.engines[tjs]?.tokens_per_s_batch1,
  batch32: report.engines[quiver]?.tokens_per_s_batch32 / report.engines[tjs]?.tokens_per_s_batch32,
  long_batch32: report.engines[quiver]?.tokens_per_s_long_batch32 / report.engines[tjs]?.tokens_per_s_long_batch32,
});
report.q8_quiver_over_tjs = {
  not_isolated_one_worker: tjsRatio('quiver q8_0', 'transformers.js q8'),
  not_isolated_pool: tjsRatio(`quiver q8_0 pool of ${THREADS}`, 'transformers.js q8'),
  isolated_one_worker: tjsRatio('quiver q8_0 isolated', `transformers.js q8 isolated, ${THREADS} threads`),
  isolated_threads: tjsRatio(`quiver q8_0 ${THREADS} wasm threads isolated`, `transformers.js q8 isolated, ${THREADS} threads`),
};

// `auto` on this browser: the calibration's cost and decision, then the cached decision.
report.auto = [];
if (!ONLY) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/web/blank.html`);
  report.auto = await page.evaluate(async () => {
    const { Quiver } = await import('/pkg/index.js');
    const out = [];
    for (let i = 0; i < 2; i++) {
      const t = performance.now();
      const q = await Quiver.load({ model: '/models/all-MiniLM-L6-v2/', backend: 'auto', cache: false });
      out.push({ load_ms: performance.now() - t, ...q.info.backend });
      q.dispose();
    }
    return out;
  });
  await context.close();
}

// Query latency in Quiver at 10k and 100k documents.
report.latency = {};
if (!ONLY) {
  const page = await browser.newPage();
  await page.goto(`${base}/web/blank.html`);
  for (const n of [10_000, 100_000]) {
    report.latency[n] = await page.evaluate(async (n) => {
      const { Quiver } = await import('/pkg/index.js');
      const q = await Quiver.load({ model: '/models/all-MiniLM-L6-v2/', index: `/data/bench-${n}.qvr`, persist: undefined });
      const out = {};
      for (const strategy of ['exact', 'binary-rescore']) {
        const times = [];
        for (let i = 0; i < 40; i++) {
          const t = performance.now();
          await q.search(`query number ${i} about kitchen glasses (${strategy})`, { k: 10, strategy });
          times.push(performance.now() - t);
        }
        out[strategy] = times;
      }
      q.dispose();
      return out;
    }, n);
    for (const s of Object.keys(report.latency[n])) {
      const t = report.latency[n][s].slice(5);
      report.latency[n][s] = { p50_ms: percentile(t, 0.5), p95_ms: percentile(t, 0.95) };
    }
  }
  await page.close();
}
await browser.close();
server.close();
isolatedServer.close();

const wasm = readFileSync(join(ROOT, 'pkg/wasm/quiver_wasm_bg.wasm'));
report.wasm_bytes = wasm.length;
report.wasm_gzip_bytes = gzipSync(wasm, { level: 9 }).length;
mkdirSync(join(ROOT, 'artifacts'), { recursive: true });
writeFileSync(join(ROOT, 'artifacts/bench-browser.json'), JSON.stringify(report, null, 2));

console.log(`Chromium ${report.chromium}, median of ${RUNS}`);
console.log('| engine | model MB | cold start ms | warm start ms | batch 1 p50 ms | tokens/s batch 1 | tokens/s batch 32 | long texts, batch 32 |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const [name, e] of Object.entries(report.engines)) {
  if (e.error) { console.log(`| ${name} | failed: ${e.error} ||||||`); continue; }
  console.log(`| ${name} | ${(e.model_bytes / 1e6).toFixed(1)} | ${e.cold_start_ms.toFixed(0)} | ${e.warm_start_ms.toFixed(0)} | ${e.batch1_p50_ms.toFixed(1)} | ${e.tokens_per_s_batch1.toFixed(0)} | ${e.tokens_per_s_batch32.toFixed(0)} | ${e.tokens_per_s_long_batch32?.toFixed(0) ?? '–'} |`);
}
console.log('\n| documents | strategy | p50 ms | p95 ms |  (text query: embed + search)');
console.log('|---:|---|---:|---:|');
for (const [n, byStrategy] of Object.entries(report.latency)) {
  for (const [s, l] of Object.entries(byStrategy)) console.log(`| ${n} | ${s} | ${l.p50_ms.toFixed(1)} | ${l.p95_ms.toFixed(1)} |`);
}
for (const [what, r] of Object.entries(report.q8_quiver_over_tjs)) {
  if (Number.isFinite(r.batch32)) console.log(`q8_0 Quiver ÷ transformers.js q8 tokens/s, ${what.replaceAll('_', ' ')}: batch 1 ${r.batch1.toFixed(2)}, batch 32 ${r.batch32.toFixed(2)}, long texts batch 32 ${r.long_batch32.toFixed(2)}`);
}
if (Number.isFinite(report.webgpu_quiver_over_tjs.batch32)) {
  console.log(`\nWebGPU, Quiver ÷ transformers.js tokens/s: batch 1 ${report.webgpu_quiver_over_tjs.batch1?.toFixed(2)}, batch 32 ${report.webgpu_quiver_over_tjs.batch32?.toFixed(2)}`);
}
for (const a of report.auto) console.log(`auto: ${a.active} (${a.cached ? 'cached' : 'calibrated'}), load ${a.load_ms.toFixed(0)} ms — ${a.reason}`);
console.log(`\nwasm: ${report.wasm_bytes} bytes, ${report.wasm_gzip_bytes} gzipped`);
