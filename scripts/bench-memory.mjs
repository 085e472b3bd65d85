#!/usr/bin/env node
// Peak memory of a page running Quiver with the multilingual model (multilingual-e5-small,
// 4-bit) and a 10,000-document index loaded, searched 20 times: the resident memory of
// Chromium's renderer processes (the page and its worker live there), sampled every 100 ms.
// Compares with all-MiniLM-L6-v2 f32 and q8_0 on the same index size.
// Writes artifacts/bench-memory.json. Run after scripts/setup.sh.
import { execFileSync, execSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from '../web/serve.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const QUIVER = join(ROOT, 'target/release/quiver');
const N = 10_000;

/** A 10k-document index of random unit vectors stamped with `model`'s identity. */
function indexFor(model) {
  const file = join(ROOT, `data/bench-memory-${model}.qvr`);
  if (existsSync(file)) return file;
  const dim = 384;
  const data = new Float32Array(N * dim);
  let seed = 7;
  for (let i = 0; i < data.length; i++) { seed = (seed * 1103515245 + 12345) >>> 0; data[i] = seed / 2 ** 31 - 1; }
  const header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${N}, ${dim}), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  const h = Buffer.from(header + ' '.repeat(pad % 64) + '\n');
  const pre = Buffer.from([0x93, ...Buffer.from('NUMPY'), 1, 0, h.length & 255, h.length >> 8]);
  const npy = join(mkdtempSync(join(tmpdir(), 'quiver-mem-')), 'v.npy');
  writeFileSync(npy, Buffer.concat([pre, h, Buffer.from(data.buffer)]));
  execFileSync(QUIVER, ['index', '--vectors', npy, '--model', join(ROOT, 'models', model), '--output', file], { stdio: 'ignore' });
  return file;
}

function rendererRss(profile) {
  const out = execSync('ps -eo rss=,args=', { maxBuffer: 1 << 24 }).toString();
  return out.split('\n').filter((l) => l.includes(profile) && l.includes('--type=renderer'))
    .reduce((sum, l) => sum + Number(l.trim().split(/\s+/)[0]) * 1024, 0);
}

const server = await serve({ port: 0 });
const base = `http://127.0.0.1:${server.address().port}`;
const report = { documents: N, models: {} };
for (const model of ['multilingual-e5-small', 'all-MiniLM-L6-v2', 'all-MiniLM-L6-v2-q8_0']) {
  const index = indexFor(model);
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
  const loadMs = await page.evaluate(async ({ model, index }) => {
    const { Quiver } = await import('/pkg/index.js');
    const started = performance.now();
    const q = await Quiver.load({ model, index, cache: false });
    const ms = performance.now() - started;
    for (let i = 0; i < 20; i++) await q.search(`Suchanfrage Nummer ${i}: Gläser für Rotwein`, { k: 10 });
    window.quiver = q;
    return ms;
  }, { model: `/models/${model}/`, index: `/data/${index.split('/').pop()}` });
  await new Promise((r) => setTimeout(r, 300));
  clearInterval(sampler);
  report.models[model] = { peak_renderer_rss_mb: peak / 1e6, load_ms: loadMs };
  await context.close();
}
server.close();
mkdirSync(join(ROOT, 'artifacts'), { recursive: true });
writeFileSync(join(ROOT, 'artifacts/bench-memory.json'), JSON.stringify(report, null, 2));
console.log(`peak renderer memory (RSS), model + ${N} documents, 20 searches`);
for (const [m, r] of Object.entries(report.models)) console.log(`${m.padEnd(24)} ${r.peak_renderer_rss_mb.toFixed(0)} MB   load ${r.load_ms.toFixed(0)} ms`);
