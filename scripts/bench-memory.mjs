#!/usr/bin/env node
// Memory of a page running Quiver, next to transformers.js (from the peers harness,
// ../shared/peers/setup.sh) doing the same work, in one run. Each scenario runs in a fresh
// headless Chromium; the resident memory of its renderer processes (the page and its
// workers live there) is sampled every 100 ms. A blank page already takes hundreds of MB
// there, so each scenario is reported as its peak's increment over a blank page's peak
// measured first in the same run, and again after `dispose()` (Quiver) where it applies.
//   work: load the model, embed 256 short texts in batches of 32, then 20 queries (searches
//   of the index where there is one, embeddings for transformers.js);
//   scenarios: Quiver all-MiniLM-L6-v2 q8_0 without an index (one worker, and a pool of
//   two) and with 10,000 documents,
//   f32 with 10,000, multilingual-e5-small (4-bit) with 10,000; transformers.js q8.
// A renderer's peak moves by tens of MB from run to run (when the garbage collector runs,
// when V8 optimizes the wasm code), so every scenario and the blank page run RUNS times
// (default 3): the median is reported, with the range.
// Writes artifacts/bench-memory.json. Run after scripts/setup.sh.
import { execSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { serve } from '../web/serve.mjs';
import { PEERS, ROOT, corpus, haveTjs, peerMounts as mounts, randomIndex } from './bench-common.mjs';
const N = 10_000;
// ONLY=regex runs the scenarios whose names match (the blank page always runs).
const ONLY = process.env.ONLY ? new RegExp(process.env.ONLY) : null;
const RUNS = Number(process.env.RUNS ?? 3);
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** The URL of a 10k-document index of random unit vectors stamped with `model`'s identity. */
function indexFor(model) {
  randomIndex(`bench-memory-${model}`, N, model, 7);
  return `/data/bench-memory-${model}.qvr`;
}

function rendererRss(profile) {
  const out = execSync('ps -eo rss=,args=', { maxBuffer: 1 << 24 }).toString();
  return out.split('\n').filter((l) => l.includes(profile) && l.includes('--type=renderer'))
    .reduce((sum, l) => sum + Number(l.trim().split(/\s+/)[0]) * 1024, 0);
}

const texts = existsSync(join(PEERS, 'corpus/short.jsonl'))
  ? corpus('short', 256)
  : Array.from({ length: 256 }, (_, i) => `product number ${i}: a short description of something to buy`);
// Each runs in the page: `work` loads, embeds and queries, then leaves the engine on
// `window.engine`; `dispose` frees it.
const quiver = async ({ model, index, threads = 1, texts }) => {
  const { Quiver } = await import('/pkg/index.js');
  const started = performance.now();
  // A pool's workers read the model from the Cache API the first one fills.
  const q = await Quiver.load({ model, index, cache: threads > 1, backend: 'cpu', threads });
  await q.stats();
  const loadMs = performance.now() - started;
  for (let i = 0; i < texts.length; i += 32) await q.embed(texts.slice(i, i + 32));
  for (let i = 0; i < 20; i++) await q.search(`Suchanfrage Nummer ${i}: Gläser für Rotwein`, { k: 10 });
  window.engine = q;
  window.dispose = () => { q.dispose(); window.engine = null; };
  return { loadMs, wasmMemoryBytes: (await q.stats()).wasmMemoryBytes };
};
const tjs = async ({ texts }) => {
  const { pipeline, env } = await import('/peer/tjs/transformers.js');
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = '/peer/models/';
  env.backends.onnx.wasm.wasmPaths = '/peer/ort/';
  const started = performance.now();
  const extractor = await pipeline('feature-extraction', 'all-MiniLM-L6-v2', { dtype: 'q8', device: 'wasm' });
  const loadMs = performance.now() - started;
  for (let i = 0; i < texts.length; i += 32) await extractor(texts.slice(i, i + 32), { pooling: 'mean', normalize: true });
  for (let i = 0; i < 20; i++) await extractor([`Suchanfrage Nummer ${i}: Gläser für Rotwein`], { pooling: 'mean', normalize: true });
  window.engine = extractor;
  window.dispose = async () => { await extractor.dispose(); window.engine = null; };
  return { loadMs };
};

const scenarios = {
  'quiver MiniLM q8_0': { run: quiver, arg: { model: '/models/all-MiniLM-L6-v2-q8_0/' } },
  'transformers.js MiniLM q8': { run: tjs, arg: {}, peer: true },
  'quiver MiniLM q8_0, pool of 2 workers': { run: quiver, arg: { model: '/models/all-MiniLM-L6-v2-q8_0/', threads: 2 } },
  [`quiver MiniLM q8_0 + ${N} documents`]: { run: quiver, arg: { model: '/models/all-MiniLM-L6-v2-q8_0/', index: () => indexFor('all-MiniLM-L6-v2-q8_0') } },
  [`quiver MiniLM f32 + ${N} documents`]: { run: quiver, arg: { model: '/models/all-MiniLM-L6-v2/', index: () => indexFor('all-MiniLM-L6-v2') } },
  [`quiver multilingual-e5-small 4-bit + ${N} documents`]: { run: quiver, arg: { model: '/models/multilingual-e5-small/', index: () => indexFor('multilingual-e5-small') } },
};

const server = await serve({ port: 0, mounts });
const base = `http://127.0.0.1:${server.address().port}`;

/** Peak renderer memory while `run(arg)` works, and after `dispose()`, in bytes. */
async function measure(run, arg) {
  const profile = mkdtempSync(join(tmpdir(), 'quiver-mem-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    env: { ...process.env, XDG_RUNTIME_DIR: profile, XDG_CACHE_HOME: profile, XDG_CONFIG_HOME: profile },
  });
  const page = await context.newPage();
  await page.goto(`${base}/web/blank.html`);
  let peak = rendererRss(profile);
  const sampler = setInterval(() => { peak = Math.max(peak, rendererRss(profile)); }, 100);
  const result = run ? await page.evaluate(run, { ...arg, texts }) : (await new Promise((r) => setTimeout(r, 3000)), {});
  await new Promise((r) => setTimeout(r, 300));
  clearInterval(sampler);
  let afterDispose = null;
  if (run) {
    await page.evaluate(() => window.dispose());
    await new Promise((r) => setTimeout(r, 1500));
    afterDispose = rendererRss(profile);
  }
  await context.close();
  return { peak, afterDispose, ...result };
}

/** `measure`, RUNS times. */
async function measureRuns(run, arg) {
  const runs = [];
  for (let i = 0; i < RUNS; i++) runs.push(await measure(run, arg));
  return runs;
}

const blankPeak = median((await measureRuns(null)).map((r) => r.peak));
const mb = (bytes) => bytes / 1e6;
const report = { documents: N, texts: texts.length, runs: RUNS, blank_peak_mb: mb(blankPeak), scenarios: {} };
for (const [name, s] of Object.entries(scenarios)) {
  if ((s.peer && !haveTjs) || (ONLY && !ONLY.test(name))) continue;
  const arg = Object.fromEntries(Object.entries(s.arg).map(([k, v]) => [k, typeof v === 'function' ? v() : v]));
  const runs = await measureRuns(s.run, arg);
  const increments = runs.map((r) => mb(r.peak - blankPeak));
  const wasm = runs.map((r) => r.wasmMemoryBytes).filter(Boolean);
  report.scenarios[name] = {
    increment_mb: median(increments),
    increment_range_mb: [Math.min(...increments), Math.max(...increments)],
    peak_renderer_rss_mb: mb(median(runs.map((r) => r.peak))),
    after_dispose_increment_mb: runs[0].afterDispose === null ? null : mb(median(runs.map((r) => r.afterDispose)) - blankPeak),
    load_ms: median(runs.map((r) => r.loadMs)),
    ...(wasm.length ? { wasm_memory_mb: mb(median(wasm)) } : {}),
  };
}
server.close();
const q8 = report.scenarios['quiver MiniLM q8_0']?.increment_mb;
const tjsQ8 = report.scenarios['transformers.js MiniLM q8']?.increment_mb;
report.quiver_over_tjs_q8 = q8 / tjsQ8;
mkdirSync(join(ROOT, 'artifacts'), { recursive: true });
writeFileSync(join(ROOT, 'artifacts/bench-memory.json'), JSON.stringify(report, null, 2));

console.log(`renderer memory (RSS) over a blank page's ${report.blank_peak_mb.toFixed(0)} MB: load, ${texts.length} texts embedded at batch 32, 20 queries; medians of ${RUNS} runs`);
console.log('| scenario | peak increment MB (range) | of which wasm memory MB | after dispose MB | load ms |');
console.log('|---|---:|---:|---:|---:|');
for (const [name, r] of Object.entries(report.scenarios)) {
  const [low, high] = r.increment_range_mb.map((v) => v.toFixed(0));
  console.log(`| ${name} | ${r.increment_mb.toFixed(0)} (${low}–${high}) | ${r.wasm_memory_mb?.toFixed(0) ?? '–'} | ${r.after_dispose_increment_mb?.toFixed(0) ?? '–'} | ${r.load_ms.toFixed(0)} |`);
}
if (Number.isFinite(report.quiver_over_tjs_q8)) console.log(`\nQuiver q8_0 ÷ transformers.js q8, peak increment: ${report.quiver_over_tjs_q8.toFixed(2)}`);
