#!/usr/bin/env node
// What keyword fusion and re-ranking add to a query's latency, natively (the release CLI)
// and in headless Chromium (the npm package), on 10,500 real Debian package synopses with
// the 42 judged queries of tests/data/eval/debian-packages:
//   vector (exact), hybrid (BM25 + RRF), vector + re-ranking the top 20 and the top 100 with
//   a cross-encoder of ms-marco-MiniLM-L-6-v2's shape (scripts/make_bench_reranker.py: random
//   head, so only its timing means anything).
// Each query is new to the engine (no cache hits), so every figure includes embedding it.
// Writes artifacts/bench-search-features.json and prints p50/p95 in ms. Ratios matter.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from '../web/serve.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const QUIVER = join(ROOT, 'target/release/quiver');
const MODEL = join(ROOT, 'models/all-MiniLM-L6-v2');
const INDEX = join(ROOT, 'data/synopses.qvr');
const RERANKER = join(ROOT, 'data/bench-reranker');
const percentile = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const summary = (xs) => ({ p50: percentile(xs, 0.5), p95: percentile(xs, 0.95) });

if (!existsSync(INDEX)) {
  execFileSync(QUIVER, ['index', '--model', MODEL, '--input', join(ROOT, 'data/debian-synopses.jsonl'), '--output', INDEX], { stdio: 'inherit' });
}
if (!existsSync(join(RERANKER, 'model.safetensors'))) {
  execFileSync('python3', [join(ROOT, 'scripts/make_bench_reranker.py'), MODEL, RERANKER], { stdio: 'inherit' });
}
const queries = readFileSync(join(ROOT, 'tests/data/eval/debian-packages/queries.jsonl'), 'utf8')
  .split('\n').filter(Boolean).map((l) => JSON.parse(l).text);
// Each variant gets its own copy of every query (a different trailing mark) so that no
// search is served from the query cache.
const variants = {
  vector: { cli: ['--mode', 'vector'], js: { mode: 'vector' }, mark: '' },
  hybrid: { cli: ['--mode', 'hybrid'], js: { mode: 'hybrid' }, mark: '.' },
  'rerank-20': { cli: ['--rerank', RERANKER, '--rerank-top', '20'], js: { rerank: 20 }, mark: '!' },
  'rerank-100': { cli: ['--rerank', RERANKER, '--rerank-top', '100'], js: { rerank: 100 }, mark: '?' },
};

const tmp = join(tmpdir(), `quiver-features-${process.pid}`);
mkdirSync(tmp, { recursive: true });
const native = {};
for (const [name, v] of Object.entries(variants)) {
  const file = join(tmp, `${name}.jsonl`);
  writeFileSync(file, queries.map((q) => JSON.stringify(q + v.mark)).join('\n'));
  const out = execFileSync(QUIVER, ['search', '--index', INDEX, '--model', MODEL, '--queries', file, '--k', '10', ...v.cli],
    { cwd: ROOT, maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  native[name] = summary(out.split('\n').filter(Boolean).map((l) => JSON.parse(l).ms));
}

const server = await serve({ port: 0 });
const base = `http://127.0.0.1:${server.address().port}`;
const home = join(tmp, 'home');
mkdirSync(home, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  env: { ...process.env, XDG_RUNTIME_DIR: home, XDG_CACHE_HOME: home, XDG_CONFIG_HOME: home },
});
const page = await browser.newPage();
await page.goto(`${base}/web/blank.html`);
const inBrowser = await page.evaluate(async ({ queries, variants }) => {
  const { Quiver } = await import('/pkg/index.js');
  const q = await Quiver.load({ model: '/models/all-MiniLM-L6-v2/', index: '/data/synopses.qvr', reranker: '/data/bench-reranker/' });
  await q.search('warm up', { rerank: 20 });
  const out = {};
  for (const [name, v] of Object.entries(variants)) {
    out[name] = [];
    for (const query of queries) {
      const started = performance.now();
      await q.search(query + v.mark, { k: 10, ...v.js });
      out[name].push(performance.now() - started);
    }
  }
  q.dispose();
  return out;
}, { queries, variants });
await browser.close();
server.close();

const report = { documents: 10500, queries: queries.length, native, browser: {} };
for (const [name, times] of Object.entries(inBrowser)) report.browser[name] = summary(times);
mkdirSync(join(ROOT, 'artifacts'), { recursive: true });
writeFileSync(join(ROOT, 'artifacts/bench-search-features.json'), JSON.stringify(report, null, 2));
console.log('ms per query (embedding included), 10,500 documents, 42 queries');
console.log('variant      native p50   p95   | browser p50   p95');
for (const name of Object.keys(variants)) {
  const n = report.native[name], b = report.browser[name];
  console.log(`${name.padEnd(12)} ${n.p50.toFixed(1).padStart(9)} ${n.p95.toFixed(1).padStart(6)}   | ${b.p50.toFixed(1).padStart(10)} ${b.p95.toFixed(1).padStart(6)}`);
}
