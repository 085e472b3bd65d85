// The demo and the npm package in a real browser: Debian's Chromium, headless, driven by
// playwright-core, against the page served on 127.0.0.1 with the real model and index.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from '../../web/serve.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SHARED = process.env.QUIVER_SHARED ?? join(ROOT, '..', 'shared');
const ARTIFACTS = join(ROOT, 'artifacts');
let server, browser, context, base;
// A model folder made by a test, served at /both/.
const BOTH = mkdtempSync(join(tmpdir(), 'quiver-both-weights-'));
// A model folder whose weights the cache test truncates and then mends, served at /mended/.
const MENDED = mkdtempSync(join(tmpdir(), 'quiver-mended-'));
// wasm-pack's build of the bindings, served at /wasm-pack/.
const WASM_PACK = mkdtempSync(join(tmpdir(), 'quiver-wasm-pack-'));
const problems = [];

before(async () => {
  server = await serve({ port: 0, mounts: { 'fixtures/': join(SHARED, 'fixtures'), 'both/': BOTH, 'wasm-pack/': WASM_PACK,
    'without-relaxed-simd/': join(ROOT, 'tests/browser/without-relaxed-simd'),
    'failing-storage/': join(ROOT, 'tests/browser/failing-storage'), 'mended/': MENDED } });
  base = `http://127.0.0.1:${server.address().port}`;
  const home = mkdtempSync(join(tmpdir(), 'quiver-chromium-'));
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--no-first-run', '--disable-quic', '--enable-unsafe-webgpu'],
    env: { ...process.env, XDG_RUNTIME_DIR: home, XDG_CACHE_HOME: home, XDG_CONFIG_HOME: home },
  });
  context = await browser.newContext();
  mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  server?.close();
});

async function openDemo(query = '') {
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`${page.url()}: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`${page.url()}: ${m.text()}`); });
  await page.goto(`${base}/${query}`);
  await page.waitForSelector('body[data-state]', { timeout: 180_000 });
  return page;
}

function cosine(a, b) {
  const dot = a.reduce((s, x, j) => s + x * b[j], 0);
  return dot / Math.sqrt(a.reduce((s, x) => s + x * x, 0) * b.reduce((s, x) => s + x * x, 0));
}

async function resultIds(page) {
  return page.$$eval('#results .card', (cards) => cards.map((c) => c.dataset.id));
}

async function typeQuery(page, text) {
  await page.fill('#q', text);
  await page.waitForFunction((t) => document.querySelector('#status').textContent.includes(t), text, { timeout: 30_000 });
}

test('search by meaning, filter, toggle binary search, match the native CLI', async () => {
  // The default: all-MiniLM-L6-v2 q8_0, what a site would ship.
  const page = await openDemo();
  assert.equal(await page.inputValue('#model-choice'), 'english');
  assert.equal(await page.getAttribute('body', 'data-state'), 'ready');
  // backend: auto — the panel says which backend embeds, and why.
  assert.match(await page.textContent('#backend'), /^(CPU · wasm|GPU · WebGPU)/);
  assert.match(await page.textContent('#backend-reason'), /calibrat|cached|fell back|no GPU/);
  await typeQuery(page, 'pink velvet armchair with brass legs');
  assert.equal((await resultIds(page))[0], 'abigail-lounge-chair');

  await page.fill('#max-price', '30');
  await page.waitForFunction(() => [...document.querySelectorAll('#results .card .price')].every((p) => parseFloat(p.textContent) <= 30));
  const prices = await page.$$eval('#results .card .price', (ps) => ps.map((p) => parseFloat(p.textContent)));
  assert.ok(prices.length > 0 && prices.every((p) => p <= 30), `${prices}`);
  await page.fill('#max-price', '');

  await page.check('#binary');
  await typeQuery(page, 'machine that digs deep in mines');
  const browserIds = await resultIds(page);
  assert.ok(browserIds.slice(0, 5).includes('a789-bc'), browserIds.join());

  // Same index, same query: the same results as the native CLI, the best ones in the same
  // order (the page's relaxed-simd kernels quantize inputs to 7 bits, the CLI's to 8, so
  // near-ties further down may swap).
  await page.uncheck('#binary');
  await typeQuery(page, 'something to serve cocktails');
  const inPage = await resultIds(page);
  const native = JSON.parse(execFileSync(join(ROOT, 'target/release/quiver'),
    ['search', '--index', 'data/catalogue-q8_0.qvr', '--model', 'models/all-MiniLM-L6-v2-q8_0', '--k', '12', '--json',
      'something to serve cocktails'], { cwd: ROOT })).results.map((r) => r.id);
  assert.deepEqual(inPage.slice(0, 3), native.slice(0, 3));
  assert.deepEqual([...inPage].sort(), [...native].sort());

  assert.match(await page.textContent('#backend'), /simd128/);
  await page.screenshot({ path: join(ARTIFACTS, 'demo.png'), fullPage: true });
  await page.close();
});

test('keyword and hybrid modes, the query cache and a cross-encoder re-ranker in the page', async () => {
  const page = await openDemo();
  await page.selectOption('#mode', 'keyword');
  await typeQuery(page, 'Tiefbergbaubagger');
  // Keyword search matches the words themselves: the English index has no German title.
  assert.deepEqual(await resultIds(page), []);
  await typeQuery(page, 'railroad');
  const keyword = await resultIds(page);
  assert.ok(keyword.length > 0 && keyword.length < 12, keyword.join());
  await page.selectOption('#mode', 'hybrid');
  await typeQuery(page, 'machine that digs deep in mines');
  assert.ok((await resultIds(page)).slice(0, 5).includes('a789-bc'));
  assert.match(await page.textContent('#cache'), /hits/);

  const outcome = await page.evaluate(async () => {
    const { Quiver } = await import('/pkg/index.js');
    const q = await Quiver.load({
      model: '/models/all-MiniLM-L6-v2/', index: '/data/catalogue.qvr', reranker: '/fixtures/tiny-cross-encoder/',
    });
    const codeOf = async (promise) => { try { await promise; return 'ok'; } catch (e) { return e.code; } };
    await q.search('glasses for red wine');
    await q.search('glasses for red wine', { mode: 'hybrid' });
    await q.search('glasses for red wine', { mode: 'keyword' });
    const plain = await q.search('glasses for red wine', { k: 5 });
    const reranked = await q.search('glasses for red wine', { k: 5, rerank: 20 });
    const stats = await q.stats();
    const badMode = await codeOf(q.search('x', { mode: 'psychic' }));
    q.dispose();
    const bare = await Quiver.load({ model: '/models/all-MiniLM-L6-v2/', index: '/data/catalogue.qvr' });
    const noReranker = await codeOf(bare.search('x', { rerank: 5 }));
    bare.dispose();
    return { plain, reranked, stats, badMode, noReranker };
  });
  assert.equal(outcome.stats.keyword, true);
  // One embedding for four vector/hybrid searches; keyword search needs none.
  assert.deepEqual([outcome.stats.queryCache.misses, outcome.stats.queryCache.hits], [1, 3]);
  assert.equal(outcome.reranked.length, 5);
  const scores = outcome.reranked.map((r) => r.score);
  assert.ok(scores.every((s, i) => s >= 0 && s <= 1 && (i === 0 || scores[i - 1] >= s)), `${scores}`);
  assert.notDeepEqual(scores, outcome.plain.map((r) => r.score));
  assert.equal(outcome.badMode, 'E_INVALID_ARGUMENT');
  assert.equal(outcome.noReranker, 'E_NO_RERANKER');
  await page.close();
});

test('the multilingual demo: German and English queries find products in either language', async () => {
  const page = await openDemo('?model=multilingual');
  assert.equal(await page.getAttribute('body', 'data-state'), 'ready');
  assert.equal(await page.inputValue('#model-choice'), 'multilingual');
  await typeQuery(page, 'Bagger für den Bergbau');
  assert.ok((await resultIds(page)).slice(0, 5).includes('a789-bc'), (await resultIds(page)).join());
  await typeQuery(page, 'Gläser für Wein');
  const german = await resultIds(page);
  await typeQuery(page, 'wine glasses');
  const english = await resultIds(page);
  // The same products, whichever language is asked in.
  assert.ok(german.slice(0, 3).some((id) => english.slice(0, 5).includes(id)), `${german} vs ${english}`);
  await page.screenshot({ path: join(ARTIFACTS, 'demo-multilingual.png'), fullPage: true });
  await page.close();
});

test('quantized models (q8_0, q4_0 GGUF and the 4-bit multilingual model) load and embed in the browser', async () => {
  const reference = JSON.parse(readFileSync(join(SHARED, 'fixtures/all-MiniLM-L6-v2/reference.json'), 'utf8'));
  const e5 = JSON.parse(readFileSync(join(SHARED, 'fixtures/multilingual-e5-small-q4/reference.json'), 'utf8'));
  const page = await context.newPage();
  await page.goto(`${base}/web/blank.html`);
  const out = await page.evaluate(async ({ minilm, e5 }) => {
    const { Quiver } = await import('/pkg/index.js');
    const kernels = [];
    const embed = async (model, texts) => {
      const q = await Quiver.load({ model, cache: false });
      const vectors = (await q.embed(texts, { kind: 'raw' })).map((v) => Array.from(v));
      kernels.push((await q.stats()).modelKernels);
      q.dispose();
      return vectors;
    };
    // The same model and an index given as bytes, in each form the API takes.
    const forms = [(r) => r.blob(), (r) => r.arrayBuffer(), async (r) => new Uint8Array(await r.arrayBuffer())];
    const names = ['config.json', 'tokenizer.json', 'model.gguf', 'modules.json', '1_Pooling/config.json', 'sentence_bert_config.json', 'quiver.json'];
    const given = Object.fromEntries(await Promise.all(names.map(async (name, i) =>
      [name, await forms[i % 3](await fetch(`/models/all-MiniLM-L6-v2-q8_0/${name}`))])));
    const q = await Quiver.load({ model: given, index: await (await fetch('/data/catalogue-q8_0.qvr')).blob(), cache: false });
    const fromBytes = { vectors: (await q.embed(minilm, { kind: 'raw' })).map((v) => Array.from(v)), documents: (await q.stats()).documents };
    q.dispose();
    return {
      fromBytes,
      q8_0: await embed('/models/all-MiniLM-L6-v2-q8_0/', minilm),
      q4_0: await embed('/models/all-MiniLM-L6-v2-q4_0/', minilm),
      e5: await embed('/models/multilingual-e5-small/', e5),
      kernels,
    };
  }, { minilm: reference.cases.map((c) => c.text), e5: e5.cases.map((c) => c.text) });
  const worst = (vectors, expected) => Math.min(...vectors.map((v, i) => cosine(v, expected[i])));
  const w8 = worst(out.q8_0, reference.cases.map((c) => c.mean));
  const w4 = worst(out.q4_0, reference.cases.map((c) => c.mean));
  const we5 = worst(out.e5, e5.cases.map((c) => c.embedding_for_hf_token_ids ?? c.embedding));
  console.log(`browser quantized: q8_0 worst ${w8.toFixed(5)}, q4_0 worst ${w4.toFixed(5)}, e5 q4 worst ${we5.toFixed(5)}`);
  assert.ok(w8 >= 0.995, `q8_0 ${w8}`);
  assert.ok(w4 >= 0.97, `q4_0 ${w4}`);
  assert.ok(we5 >= 0.9995, `e5 ${we5}`);
  // Chromium has relaxed-simd: its build runs.
  assert.deepEqual(out.kernels, ['relaxed-simd', 'relaxed-simd', 'relaxed-simd']);
  assert.deepEqual(out.fromBytes.vectors, out.q8_0, 'files given as bytes embed as the folder by URL does');
  assert.equal(out.fromBytes.documents, 189, 'an index given as a Blob loads');
  await page.close();
});

test('without wasm relaxed-simd (Safari), the simd128 build runs, alone or as a pool, with vectors as close to the reference', async () => {
  const reference = JSON.parse(readFileSync(join(SHARED, 'fixtures/all-MiniLM-L6-v2/reference.json'), 'utf8'));
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`${page.url()}: ${e.message}`));
  await page.goto(`${base}/web/blank.html`);
  const out = await page.evaluate(async ({ texts, WITHOUT_RELAXED }) => {
    const { Quiver } = await import('/pkg/index.js');
    const run = async (options) => {
      const q = await Quiver.load({ model: '/models/all-MiniLM-L6-v2-q8_0/', index: '/data/catalogue-q8_0.qvr', ...options });
      const vectors = (await q.embed(texts, { kind: 'raw' })).map((v) => Array.from(v));
      const found = (await q.search('pink velvet armchair with brass legs', { k: 5 })).map((r) => r.id);
      const stats = await q.stats();
      q.dispose();
      return { vectors, found, kernels: stats.modelKernels, threads: stats.threads };
    };
    return {
      relaxed: await run({ threads: 1 }),
      simd128: await run({ threads: 1, workerUrl: WITHOUT_RELAXED }),
      pool: await run({ threads: 2, workerUrl: WITHOUT_RELAXED }),
      // An app that serves only the simd128 module falls back to it.
      unserved: await run({ threads: 1, wasmRelaxedUrl: '/pkg/not-served.wasm' }),
    };
  }, { texts: reference.cases.map((c) => c.text), WITHOUT_RELAXED: '/without-relaxed-simd/worker.js' });
  assert.equal(out.relaxed.kernels, 'relaxed-simd');
  assert.equal(out.simd128.kernels, 'simd128');
  assert.equal(out.pool.kernels, 'simd128');
  assert.equal(out.unserved.kernels, 'simd128');
  assert.deepEqual(out.unserved.vectors, out.simd128.vectors);
  assert.equal(out.pool.threads.mode, 'pool');
  const worst = (vectors, expected) => Math.min(...vectors.map((v, i) => cosine(v, expected[i])));
  const expected = reference.cases.map((c) => c.mean);
  const [relaxed, simd128] = [worst(out.relaxed.vectors, expected), worst(out.simd128.vectors, expected)];
  const between = worst(out.relaxed.vectors, out.simd128.vectors);
  console.log(`q8_0 worst cosine to sentence-transformers: relaxed-simd ${relaxed.toFixed(5)}, simd128 ${simd128.toFixed(5)}; between them ${between.toFixed(5)}`);
  assert.ok(relaxed >= 0.995 && simd128 >= 0.995, `relaxed-simd ${relaxed}, simd128 ${simd128}`);
  // Each build rounds differently (7 or 8 bits per input): further from each other than from the reference.
  assert.ok(between >= 0.995, `relaxed-simd vs simd128: ${between}`);
  assert.ok(worst(out.pool.vectors, out.simd128.vectors) >= 0.99999, 'the pool embeds as its first worker');
  // The builds' vectors differ by their input rounding: near-ties below the top 3 may swap.
  assert.deepEqual(out.simd128.found.slice(0, 3), out.relaxed.found.slice(0, 3));
  assert.deepEqual([...out.simd128.found].sort(), [...out.relaxed.found].sort());
  assert.equal(out.relaxed.found[0], 'abigail-lounge-chair');
  await page.close();
});

test('a pool of workers splits embed and add like one worker; searches and bad input behave the same', async () => {
  const page = await context.newPage();
  await page.goto(`${base}/web/blank.html`);
  const out = await page.evaluate(async () => {
    const { Quiver } = await import('/pkg/index.js');
    const things = ['a linen tablecloth', 'a brass floor lamp', 'a blue ceramic mug', 'a wool rug', 'a walnut side table'];
    const texts = Array.from({ length: 45 }, (_, i) => `${things[i % things.length]}, model ${i}${' with a long description'.repeat(i % 7)}`);
    const docs = texts.map((text, i) => ({ id: `p${i}`, text, metadata: { i } }));
    const model = '/models/all-MiniLM-L6-v2-q8_0/';
    const codeOf = async (promise) => { try { await promise; return 'ok'; } catch (e) { return e.code ?? `no code: ${e.message}`; } };
    const run = async (threads) => {
      const q = await Quiver.load({ model, threads });
      const vectors = (await q.embed(texts)).map((v) => Array.from(v));
      const embedded = (await q.stats()).lastEmbedding;
      await q.add(docs);
      // Made without awaiting: each call runs after the one before it.
      const [added, removed] = await Promise.all([q.add([{ id: 'extra', text: 'a brass lamp' }]), q.remove(['extra'])]);
      const found = await q.search('a lamp for the living room', { k: 5 });
      const codes = {
        noText: await codeOf(q.add([{ id: 'x' }, ...docs.slice(0, 20)])),
        badText: await codeOf(q.embed([...texts.slice(0, 20), 42])),
        threads: await codeOf(Quiver.load({ model, threads: 0 })),
      };
      const stats = await q.stats();
      q.dispose();
      codes.disposed = await codeOf(q.embed(texts));
      return { vectors, embedded, added, removed, found, codes, documents: stats.documents, threads: stats.threads };
    };
    return { one: await run(1), pool: await run(3) };
  });
  const { one, pool } = out;
  assert.deepEqual(one.threads, { mode: 'single', workers: 1, requested: 1, isolated: false, reason: 'one worker (threads: 1)' });
  assert.equal(pool.threads.mode, 'pool');
  assert.equal(pool.threads.workers, 3);
  assert.match(pool.threads.reason, /not cross-origin isolated/);
  assert.equal(pool.embedded.workers, 3, 'the 45 texts were split across the three workers');
  assert.equal(one.embedded.workers, undefined);
  assert.equal(pool.vectors.length, 45);
  const worst = Math.min(...pool.vectors.map((v, i) => cosine(v, one.vectors[i])));
  assert.ok(worst >= 0.99999, `pool vs one worker: worst cosine ${worst}`);
  for (const run of [one, pool]) {
    assert.deepEqual([run.added, run.removed, run.documents], [46, 45, 45]);
    assert.deepEqual(run.codes, { noText: 'E_INVALID_ARGUMENT', badText: 'E_INVALID_ARGUMENT', threads: 'E_INVALID_ARGUMENT', disposed: 'E_DISPOSED' });
  }
  assert.deepEqual(pool.found.map((r) => r.id), one.found.map((r) => r.id));
  assert.equal(pool.found[0].metadata.i % 5, 1, `${JSON.stringify(pool.found[0])}`);
  for (const [a, b] of pool.found.map((r, i) => [r.score, one.found[i].score])) assert.ok(Math.abs(a - b) < 1e-4, `${a} vs ${b}`);
  await page.close();
});

test('on a cross-origin isolated page, one worker runs wasm threads and embeds, searches and fails as one thread does', async () => {
  const isolated = await serve({ port: 0, isolated: true });
  try {
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`${page.url()}: ${e.message}`));
    await page.goto(`http://127.0.0.1:${isolated.address().port}/web/blank.html`);
    assert.ok(await page.evaluate(() => crossOriginIsolated), 'the page is cross-origin isolated');
    const out = await page.evaluate(async () => {
      const { Quiver } = await import('/pkg/index.js');
      const texts = Array.from({ length: 40 }, (_, i) => `a ${['linen tablecloth', 'brass floor lamp', 'blue ceramic mug', 'wool rug'][i % 4]}, model ${i}${' with a long description'.repeat(i % 9)}`);
      const codeOf = async (promise) => { try { await promise; return 'ok'; } catch (e) { return e.code ?? `no code: ${e.message}`; } };
      const run = async (threads, cache) => {
        // By URL, so the files are hashed and cached from shared memory too.
        const q = await Quiver.load({ model: '/models/all-MiniLM-L6-v2-q8_0/', index: '/data/catalogue-q8_0.qvr', threads, cache, backend: 'cpu' });
        const vectors = (await q.embed(texts)).map((v) => Array.from(v));
        const query = Array.from((await q.embed(['a pink velvet armchair'], { kind: 'query' }))[0]);
        const found = (await q.search('pink velvet armchair with brass legs', { k: 5 })).map((r) => r.id);
        const bad = await codeOf(q.embed(['ok', 42]));
        const stats = await q.stats();
        q.dispose();
        return { vectors, query, found, bad, threads: stats.threads, memory: stats.wasmMemoryBytes };
      };
      return { one: await run(1, false), threaded: await run(2, true), cached: await run(2, true) };
    });
    const { one, threaded, cached } = out;
    assert.deepEqual(one.threads.mode, 'single');
    assert.match(one.threads.reason, /one worker \(threads: 1\)/);
    for (const run of [threaded, cached]) {
      assert.deepEqual({ ...run.threads, reason: undefined }, { mode: 'threads', workers: 1, requested: 2, isolated: true, reason: undefined }, run.threads.reason);
      assert.match(run.threads.reason, /2 wasm threads/);
      const worst = Math.min(...run.vectors.map((v, i) => cosine(v, one.vectors[i])), cosine(run.query, one.query));
      assert.ok(worst >= 0.99999, `wasm threads vs one thread: worst cosine ${worst}`);
      assert.deepEqual(run.found, one.found);
      assert.equal(run.found[0], 'abigail-lounge-chair');
      assert.equal(run.bad, 'E_INVALID_ARGUMENT');
    }
    await page.close();
  } finally {
    isolated.close();
  }
});

test('a folder holding both model.safetensors and model.gguf loads the same weights in the page as with the CLI', async () => {
  // all-MiniLM-L6-v2's files with both weights: first without a quiver.json to name one,
  // then with one naming the GGUF.
  const float = join(ROOT, 'models/all-MiniLM-L6-v2');
  for (const file of ['config.json', 'tokenizer.json', 'modules.json', 'sentence_bert_config.json', 'model.safetensors']) {
    symlinkSync(join(float, file), join(BOTH, file));
  }
  mkdirSync(join(BOTH, '1_Pooling'));
  symlinkSync(join(float, '1_Pooling/config.json'), join(BOTH, '1_Pooling/config.json'));
  symlinkSync(join(ROOT, 'models/all-MiniLM-L6-v2-q8_0/model.gguf'), join(BOTH, 'model.gguf'));
  const work = mkdtempSync(join(tmpdir(), 'quiver-both-cli-'));
  const texts = ['Stainless steel cocktail shaker', 'Hydraulic excavator for deep mining', 'Rotweingläser, 4er-Set'];
  writeFileSync(join(work, 'texts.jsonl'), texts.map((text, i) => JSON.stringify({ id: `t${i}`, text })).join('\n'));
  const quiver = (args) => execFileSync(join(ROOT, 'target/release/quiver'), args, { cwd: ROOT, stdio: 'pipe' });
  const sha256 = (file) => createHash('sha256').update(readFileSync(join(BOTH, file))).digest('hex');
  for (const expected of ['model.safetensors', 'model.gguf']) {
    if (expected === 'model.gguf') writeFileSync(join(BOTH, 'quiver.json'), JSON.stringify({ weights: 'model.gguf' }));
    const cli = (command, output) => quiver([command, '--model', BOTH, '--input', join(work, 'texts.jsonl'), '--output', output, '--backend', 'cpu']);
    const index = `texts-${expected}.qvr`;
    cli('index', join(BOTH, index));
    cli('encode', join(work, 'texts.npy'));
    const built = JSON.parse(quiver(['info', '--json', join(BOTH, index)]));
    assert.equal(built.model.weights_sha256, sha256(expected), `the CLI read ${expected}`);
    // float32 rows after the .npy header (its length is at byte 8).
    const npy = readFileSync(join(work, 'texts.npy'));
    const data = new Float32Array(npy.buffer.slice(npy.byteOffset + 10 + npy.readUInt16LE(8), npy.byteOffset + npy.length));
    const native = texts.map((_, i) => Array.from(data.subarray(i * 384, (i + 1) * 384)));

    const page = await context.newPage();
    await page.goto(`${base}/web/blank.html`);
    const out = await page.evaluate(async ({ texts, index }) => {
      const { Quiver } = await import('/pkg/index.js');
      // The index the CLI built from this folder loads only with the same weights.
      const q = await Quiver.load({ model: '/both/', index: `/both/${index}`, backend: 'cpu', cache: false });
      const vectors = (await q.embed(texts)).map((v) => Array.from(v));
      const ids = (await q.search(texts[1], { k: 1 })).map((r) => r.id);
      q.dispose();
      return { vectors, ids };
    }, { texts, index });
    await page.close();
    assert.deepEqual(out.ids, ['t1']);
    const worst = Math.min(...out.vectors.map((v, i) => cosine(v, native[i])));
    console.log(`both weights files: the page and the CLI read ${expected}; worst cosine ${worst.toFixed(7)}`);
    // The native and wasm kernels round the quantized products differently (relaxed-simd's
    // inputs have 7 bits, the CLI's 8).
    assert.ok(worst >= (expected === 'model.gguf' ? 0.999 : 0.9999), `${expected}, page vs CLI: cosine ${worst}`);
  }
});

test('the conformance suite (tests/conformance) answers in the page as with the CLI', async () => {
  const suite = join(ROOT, 'tests/conformance');
  const cases = readdirSync(suite).filter((f) => f.endsWith('.json')).sort().map((file) => {
    const c = JSON.parse(readFileSync(join(suite, file), 'utf8'));
    return { ...c, file, documents: JSON.parse(readFileSync(join(suite, 'documents', c.documents), 'utf8')) };
  });
  assert.ok(cases.length >= 4, `cases: ${cases.map((c) => c.file)}`);
  const page = await context.newPage();
  await page.goto(`${base}/web/blank.html`);
  const answers = await page.evaluate(async (cases) => {
    const { Quiver } = await import('/pkg/index.js');
    const all = [];
    for (const c of cases) {
      const q = await Quiver.load({ model: `/models/${c.model}/`, backend: 'cpu' });
      await q.add(c.documents);
      for (const { query, options } of c.searches) {
        try {
          all.push({ ids: (await q.search(query, options)).map((r) => r.id) });
        } catch (e) {
          all.push({ error: e.code ?? `no code: ${e.message}` });
        }
      }
      q.dispose();
    }
    return all;
  }, cases);
  await page.close();
  const failures = [];
  cases.flatMap((c) => c.searches.map((s) => ({ file: c.file, ...s }))).forEach((s, i) => {
    const expected = s.error !== undefined ? { error: s.error } : { ids: s.ids };
    if (JSON.stringify(answers[i]) !== JSON.stringify(expected)) {
      failures.push(`${s.file}: ${JSON.stringify(s.query)} ${JSON.stringify(s.options)}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(answers[i])}`);
    }
  });
  assert.deepEqual(failures, [], `${failures.length} of ${answers.length} searches answered otherwise`);
  console.log(`conformance: ${answers.length} searches in ${cases.length} cases answered as the CLI does`);
});

test('wasm-pack builds the bindings offline with the locked wasm-bindgen, and they load in the page', async () => {
  // --mode no-install: the wasm-bindgen-cli that set-up installed, nothing downloaded.
  execFileSync('wasm-pack', ['build', 'crates/quiver-wasm', '--target', 'web', '--mode', 'no-install', '--no-typescript',
    '--out-dir', WASM_PACK], { cwd: ROOT, stdio: 'pipe' });
  const page = await context.newPage();
  await page.goto(`${base}/web/blank.html`);
  const reads = await page.evaluate(async () => {
    const wasm = await import('/wasm-pack/quiver_wasm.js');
    await wasm.default();
    return wasm.modelReads(0);
  });
  await page.close();
  assert.deepEqual(reads.required, ['config.json', 'tokenizer.json']);
});

test('parity with sentence-transformers inside the browser', async () => {
  const reference = JSON.parse(readFileSync(join(SHARED, 'fixtures/all-MiniLM-L6-v2/reference.json'), 'utf8'));
  const page = await context.newPage();
  await page.goto(`${base}/web/blank.html`);
  const vectors = await page.evaluate(async (texts) => {
    const { Quiver } = await import('/pkg/index.js');
    const q = await Quiver.load({ model: '/models/all-MiniLM-L6-v2/' });
    const out = (await q.embed(texts, { kind: 'raw' })).map((v) => Array.from(v));
    q.dispose();
    return out;
  }, reference.cases.map((c) => c.text));
  let worst = 1;
  reference.cases.forEach((c, i) => {
    const cos = cosine(vectors[i], c.mean);
    worst = Math.min(worst, cos);
    assert.ok(cos >= 0.9999, `${c.id}: cosine ${cos}`);
  });
  console.log(`browser parity: worst cosine ${worst.toFixed(7)} over ${reference.cases.length} cases`);
  await page.close();
});

test('WebGPU on SwiftShader: GPU embeddings match the reference, auto keeps conclusive decisions, GGUF models run there too', async () => {
  const reference = JSON.parse(readFileSync(join(SHARED, 'fixtures/all-MiniLM-L6-v2/reference.json'), 'utf8'));
  // Software WebGPU is slow: a handful of short cases and the empty one.
  const cases = reference.cases.filter((c) => c.group === 'short').slice(0, 5)
    .concat(reference.cases.filter((c) => c.id === 'degenerate-empty'));
  const fresh = await browser.newContext(); // a clean localStorage: no earlier decisions
  const page = await fresh.newPage();
  page.on('pageerror', (e) => problems.push(`webgpu page: ${e.message}`));
  await page.goto(`${base}/web/blank.html`);
  const out = await page.evaluate(async (texts) => {
    if (!navigator.gpu || !(await navigator.gpu.requestAdapter())) return { noAdapter: true };
    const { Quiver } = await import('/pkg/index.js');
    const model = '/models/all-MiniLM-L6-v2/';
    const load = async (options) => {
      const q = await Quiver.load({ model, cache: false, ...options });
      const vectors = (await q.embed(texts, { kind: 'raw' })).map((v) => Array.from(v));
      const { backend, lastEmbedding } = await q.stats();
      q.dispose();
      return { backend, vectors, lastEmbedding };
    };
    const KEY = 'quiver-backend-decisions';
    const gpu = await load({ backend: 'gpu' });
    // The default budget: conclusive or not depends on this machine's speed and load.
    const auto = await load({ backend: 'auto' });
    const stored = localStorage.getItem(KEY);
    const again = await load({ backend: 'auto' });
    // A budget the slowest adapter fits in: always conclusive, stored and reused.
    localStorage.removeItem(KEY);
    const long = await load({ backend: 'auto', calibrationBudgetMs: 600_000 });
    const storedLong = localStorage.getItem(KEY);
    const reused = await load({ backend: 'auto', calibrationBudgetMs: 600_000 });
    // Quantized models on the GPU and on the CPU: two short texts each.
    const gguf = {};
    for (const name of ['all-MiniLM-L6-v2-q8_0', 'multilingual-e5-small']) {
      const embed = async (backend) => {
        const q = await Quiver.load({ model: `/models/${name}/`, backend, cache: false });
        const vectors = (await q.embed(texts.slice(0, 2), { kind: 'raw' })).map((v) => Array.from(v));
        const active = q.info.backend;
        q.dispose();
        return { active, vectors };
      };
      gguf[name] = { gpu: await embed('gpu'), cpu: await embed('cpu') };
    }
    // The catalogue scanned on the GPU and on the CPU, exact and binary.
    const onGpu = await Quiver.load({ model, index: '/data/catalogue.qvr', backend: 'gpu', cache: false });
    const onCpu = await Quiver.load({ model, index: '/data/catalogue.qvr', backend: 'cpu', cache: false });
    const searches = [];
    for (const query of ['glasses for red wine', 'machine that digs deep in mines']) {
      const [vector] = await onCpu.embed([query], { kind: 'query' });
      for (const strategy of ['exact', 'binary']) {
        const ids = async (q) => (await q.searchVector(vector, { k: 10, strategy })).map((r) => r.id);
        searches.push({ query, strategy, gpu: await ids(onGpu), cpu: await ids(onCpu) });
      }
    }
    const { gpuSearch, gpuSearchError } = await onGpu.stats();
    onGpu.dispose();
    onCpu.dispose();
    return {
      gpu, auto: auto.backend, stored, again: again.backend, long: long.backend, storedLong, reused: reused.backend,
      gguf, searches, gpuSearch, gpuSearchError,
    };
  }, cases.map((c) => c.text));
  await fresh.close();
  if (out.noAdapter) {
    assert.ok(!process.env.CI, 'CI needs a WebGPU adapter (Chromium with --enable-unsafe-webgpu gives SwiftShader)');
    console.log('SKIPPED: no WebGPU adapter in this Chromium');
    return;
  }
  const { backend } = out.gpu;
  assert.equal(backend.active, 'gpu', backend.reason);
  assert.equal(out.gpu.lastEmbedding.backend, 'gpu');
  const least = backend.gpuWeights === 'f16' ? 0.999 : 0.9999;
  let worst = 1;
  cases.forEach((c, i) => {
    const cos = cosine(out.gpu.vectors[i], c.mean);
    worst = Math.min(worst, cos);
    assert.ok(cos >= least, `${c.id}: cosine ${cos} on the GPU`);
  });
  console.log(`WebGPU (${backend.adapter.name}, ${backend.gpuWeights} weights): worst cosine ${worst.toFixed(7)} over ${cases.length} cases; set-up ${backend.gpuSetupMs.toFixed(0)} ms`);

  // Either a decision is stored and the next load reuses it, or the run was inconclusive,
  // nothing is stored and the reason says so.
  const conclusive = ({ gpuMs, gpuAllowedMs, cpuMs }) => gpuMs !== null || gpuAllowedMs >= cpuMs;
  assert.equal(out.auto.cached, false);
  assert.equal(out.auto.calibration.budgetMs, 300);
  assert.match(out.auto.reason, /^calibrated now/);
  if (conclusive(out.auto.calibration)) {
    assert.ok(out.stored?.includes(backend.adapter.name), `decisions stored: ${out.stored}`);
    assert.equal(out.again.cached, true, out.again.reason);
    assert.equal(out.again.active, out.auto.active);
  } else {
    assert.match(out.auto.reason, /inconclusive/);
    assert.ok(!out.stored?.includes(backend.adapter.name), `decisions stored: ${out.stored}`);
    assert.equal(out.auto.active, 'cpu');
  }
  console.log(`WebGPU auto: ${out.auto.reason}`);
  assert.equal(out.long.cached, false);
  assert.equal(out.long.calibration.budgetMs, 600_000);
  assert.ok(conclusive(out.long.calibration), out.long.reason);
  assert.ok(out.storedLong?.includes(backend.adapter.name), `decisions stored: ${out.storedLong}`);
  assert.equal(out.reused.cached, true, out.reused.reason);
  assert.equal(out.reused.active, out.long.active);
  console.log(`WebGPU auto with a 600 s budget: ${out.long.reason}`);

  for (const [name, { gpu, cpu }] of Object.entries(out.gguf)) {
    assert.equal(gpu.active.active, 'gpu', `${name}: ${gpu.active.reason}`);
    const worstGguf = Math.min(...gpu.vectors.map((v, i) => cosine(v, cpu.vectors[i])));
    assert.ok(worstGguf >= 0.999, `${name}: cosine ${worstGguf} between GPU and CPU`);
    console.log(`WebGPU ${name}: worst cosine ${worstGguf.toFixed(6)} to the CPU's vectors`);
  }

  assert.equal(out.gpuSearch, true, `the catalogue was not searched on the GPU: ${out.gpuSearchError}`);
  for (const { query, strategy, gpu, cpu } of out.searches) assert.deepEqual(gpu, cpu, `${strategy} "${query}"`);
});

test('bad input from JS is a clear Error, never a trap', async () => {
  const page = await context.newPage();
  await page.goto(`${base}/web/blank.html`);
  const outcome = await page.evaluate(async () => {
    const { Quiver } = await import('/pkg/index.js');
    const q = await Quiver.load({ model: '/models/all-MiniLM-L6-v2/', index: '/data/catalogue.qvr' });
    const codeOf = async (promise) => { try { await promise; return 'ok'; } catch (e) { return e.code ?? `no code: ${e.message}`; } };
    const before = (await q.stats()).documents;
    const codes = {
      number: await codeOf(q.search(42)),
      undefined: await codeOf(q.search(undefined)),
      texts: await codeOf(q.embed('not an array')),
      badOption: await codeOf(q.search('x', { strategy: 'fastest' })),
      filter: await codeOf(q.search('x', { filter: { price: { between: 3 } } })),
      shortVector: await codeOf(q.searchVector([1, 2, 3])),
      nanVector: await codeOf(q.searchVector(new Array(384).fill(NaN))),
      unknownId: await codeOf(q.remove(['no-such-product'])),
      huge: await codeOf(q.search('lamp '.repeat(200_000))),
      loneSurrogate: await codeOf(q.search('\uD800 glass \uDFFF')),
      budget: await codeOf(Quiver.load({ model: '/models/all-MiniLM-L6-v2/', calibrationBudgetMs: -1 })),
      // Misspelt options are named, not ignored.
      misspeltSearch: await codeOf(q.search('wine', { topK: 5 })),
      misspeltLoad: await codeOf(Quiver.load({ model: '/models/all-MiniLM-L6-v2/', modle: 'x' })),
      misspeltEmbed: await codeOf(q.embed(['x'], { knd: 'query' })),
      nullOptions: await codeOf(q.embed(['x'], null)),
      nullVector: await codeOf(q.searchVector(null)),
      // What a structured clone cannot carry is refused before anything is posted.
      functionFilter: await codeOf(q.search('x', { filter: { price: () => 1 } })),
      symbolMetadata: await codeOf(q.add([{ id: 'n1', text: 'x', metadata: { s: Symbol('s') } }])),
      deepFilter: await codeOf(q.search('x', { filter: Array.from({ length: 5000 }).reduce((inner) => ({ inner }), {}) })),
      cyclicMetadata: await codeOf(q.add([{ id: 'n2', text: 'x', metadata: (() => { const m = {}; m.self = m; return m; })() }])),
      // '\uD800' and '\uDFFF' would both become U+FFFD.
      loneSurrogateId: await codeOf(q.add([{ id: '\uD800', text: 'x' }])),
      functionOption: await codeOf(q.search('x', { k: () => 3 })),
      functionId: await codeOf(q.add([{ id: () => 'x', text: 'x' }])),
      symbolRemove: await codeOf(q.remove([Symbol('x')])),
      // OPFS refuses such names: refused at load, before any add is applied.
      slashPersist: await codeOf(Quiver.load({ model: '/models/all-MiniLM-L6-v2/', persist: 'a/b' })),
      emptyPersist: await codeOf(Quiver.load({ model: '/models/all-MiniLM-L6-v2/', persist: '' })),
    };
    const blank = [(await q.search('')).length, (await q.search(' \n ', { mode: 'hybrid' })).length];
    const documents = (await q.stats()).documents;
    const afterErrors = (await q.search('wine glass', { k: 1 })).length;
    q.dispose();
    codes.disposed = await codeOf(q.search('x'));
    codes.disposedVector = await codeOf(q.searchVector(null));
    return { codes, afterErrors, blank, added: documents - before };
  });
  assert.deepEqual(outcome.codes, {
    number: 'E_INVALID_ARGUMENT', undefined: 'E_INVALID_ARGUMENT', texts: 'E_INVALID_ARGUMENT',
    badOption: 'E_INVALID_ARGUMENT', filter: 'E_FILTER', shortVector: 'E_DIMENSION', nanVector: 'E_NON_FINITE',
    unknownId: 'E_UNKNOWN_ID', huge: 'ok', loneSurrogate: 'ok', budget: 'E_INVALID_ARGUMENT', disposed: 'E_DISPOSED',
    misspeltSearch: 'E_INVALID_ARGUMENT', misspeltLoad: 'E_INVALID_ARGUMENT', misspeltEmbed: 'E_INVALID_ARGUMENT',
    nullOptions: 'ok', nullVector: 'E_INVALID_ARGUMENT', functionFilter: 'E_INVALID_ARGUMENT',
    symbolMetadata: 'E_INVALID_ARGUMENT', deepFilter: 'E_INVALID_ARGUMENT', cyclicMetadata: 'E_INVALID_ARGUMENT',
    loneSurrogateId: 'E_INVALID_ARGUMENT', disposedVector: 'E_DISPOSED', functionOption: 'E_INVALID_ARGUMENT',
    functionId: 'E_INVALID_ARGUMENT', symbolRemove: 'E_INVALID_ARGUMENT',
    slashPersist: 'E_INVALID_ARGUMENT', emptyPersist: 'E_INVALID_ARGUMENT',
  });
  assert.deepEqual(outcome.blank, [0, 0], 'a blank query finds nothing');
  assert.equal(outcome.added, 0, 'a refused add adds nothing');
  assert.equal(outcome.afterErrors, 1, 'the engine still works after every error');
  await page.close();
});

test('a model file the engine refuses is never cached: once the server has the whole file, it loads', async () => {
  const source = join(ROOT, 'models/all-MiniLM-L6-v2-q8_0');
  for (const file of readdirSync(source, { recursive: true })) {
    if (file.includes('.')) writeFileSync(join(MENDED, file), readFileSync(join(source, file)), { flag: 'w' });
    else mkdirSync(join(MENDED, file), { recursive: true });
  }
  const weights = readFileSync(join(source, 'model.gguf'));
  writeFileSync(join(MENDED, 'model.gguf'), weights.subarray(0, weights.length >> 1));
  const page = await context.newPage();
  await page.goto(`${base}/web/blank.html`);
  const load = () => page.evaluate(async () => {
    const { Quiver } = await import('/pkg/index.js');
    try {
      const q = await Quiver.load({ model: '/mended/', threads: 1 });
      const dim = (await q.embed(['a lamp']))[0].length;
      q.dispose();
      return `ok ${dim}`;
    } catch (e) {
      return e.code;
    }
  });
  assert.equal(await load(), 'E_MODEL_INVALID');
  writeFileSync(join(MENDED, 'model.gguf'), weights);
  assert.equal(await load(), 'ok 384');
  const cached = await page.evaluate(async () => (await (await caches.open('quiver-v1')).keys()).map((r) => new URL(r.url).pathname));
  assert.ok(cached.includes('/mended/model.gguf'), `the good file is cached: ${cached}`);
  await page.close();
});

test('concurrent calls: 200 searches at once, and searches interleaved with adds and removes, alone and as a pool', async () => {
  const page = await context.newPage();
  await page.goto(`${base}/web/blank.html`);
  const out = await page.evaluate(async () => {
    const { Quiver } = await import('/pkg/index.js');
    const queries = ['wine glass', 'lamp', 'chair for the garden', 'blue cotton shirt', 'coffee', 'a warm blanket', 'kitchen knife', 'leather boots'];
    const ids = (results) => results.map((r) => r.id).join(',');
    const runs = {};
    for (const threads of [1, 2]) {
      const q = await Quiver.load({ model: '/models/all-MiniLM-L6-v2-q8_0/', index: '/data/catalogue-q8_0.qvr', threads });
      const expected = [];
      for (const query of queries) expected.push(ids(await q.search(query, { k: 5 })));
      const all = await Promise.allSettled(Array.from({ length: 200 }, (_, i) => q.search(queries[i % queries.length], { k: 5 })));
      const before = (await q.stats()).documents;
      // 100 searches, 10 adds (2 texts each, so a pool splits none) and 5 removes, all in flight at once.
      const mixed = [];
      for (let i = 0; i < 100; i++) {
        mixed.push(q.search(queries[i % queries.length], { k: 5 }).then((r) => r.length === 5 && r.every((hit) => typeof hit.id === 'string')));
        if (i % 10 === 0) {
          const n = i / 10;
          mixed.push(q.add([{ id: `new-${n}-a`, text: `a gadget number ${n}` }, { id: `new-${n}-b`, text: `another gadget ${n}` }]).then(() => true));
        }
        if (i % 20 === 0) mixed.push(q.remove([`new-${i / 20}-a`]).then(() => true));
      }
      const settled = await Promise.allSettled(mixed);
      runs[threads] = {
        rejected: all.filter((r) => r.status === 'rejected').length + settled.filter((r) => r.status === 'rejected').length,
        wrong: all.filter((r, i) => r.status === 'fulfilled' && ids(r.value) !== expected[i % queries.length]).length
          + settled.filter((r) => r.status === 'fulfilled' && r.value !== true).length,
        added: (await q.stats()).documents - before,
      };
      q.dispose();
    }
    return runs;
  });
  // Calls keep the order they were made in: each remove follows the add of its id.
  const clean = { rejected: 0, wrong: 0, added: 20 - 5 };
  assert.deepEqual(out, { 1: clean, 2: clean });
  await page.close();
});

test('two tabs on one persist name keep both tabs\' documents', async () => {
  const persist = `tabs-${Date.now()}`;
  const open = async () => {
    const page = await context.newPage();
    await page.goto(`${base}/web/blank.html`);
    await page.evaluate(async (persist) => {
      const { Quiver } = await import('/pkg/index.js');
      globalThis.q = await Quiver.load({ model: '/models/all-MiniLM-L6-v2-q8_0/', index: '/data/catalogue-q8_0.qvr', persist, threads: 1 });
    }, persist);
    return page;
  };
  const [a, b] = [await open(), await open()];
  const before = await a.evaluate(async () => (await q.stats()).documents);
  await a.evaluate(() => q.add([{ id: 'from-tab-a', text: 'a lamp added in the first tab' }]));
  await b.evaluate(() => q.add([{ id: 'from-tab-b', text: 'a chair added in the second tab' }]));
  await a.evaluate(() => q.remove(['from-tab-b']).catch((e) => e.code));
  const c = await open();
  const kept = await c.evaluate(async () => {
    const ids = new Set();
    for (const query of ['a lamp added in the first tab', 'a chair added in the second tab']) {
      for (const r of await q.search(query, { k: 3 })) ids.add(r.id);
    }
    return { documents: (await q.stats()).documents, a: ids.has('from-tab-a'), b: ids.has('from-tab-b') };
  });
  // Tab A removed tab B's document after taking up B's save: only A's stays.
  assert.deepEqual(kept, { documents: before + 1, a: true, b: false });
  for (const page of [a, b, c]) await page.close();
});

test('a worker stopped in the middle of an add leaves the stored index whole: the old state or the new', async () => {
  const page = await context.newPage();
  await page.goto(`${base}/web/blank.html`);
  const out = await page.evaluate(async (persist) => {
    const { Quiver } = await import('/pkg/index.js');
    const load = () => Quiver.load({ model: '/models/all-MiniLM-L6-v2-q8_0/', index: '/data/catalogue-q8_0.qvr', persist, threads: 1 });
    const first = await load();
    await first.add([{ id: 'kept', text: 'a document stored before any interruption' }]);
    first.dispose();
    const outcomes = [];
    for (const [i, ms] of [0, 2, 10, 30, 80, 200].entries()) {
      const q = await load();
      const adding = q.add([{ id: `cut-${i}`, text: `a document whose add is cut after ${ms} ms` }]).catch(() => {});
      await new Promise((done) => setTimeout(done, ms));
      q.dispose();
      await adding;
      try {
        const after = await load();
        const ids = [];
        for (const query of ['a document stored before any interruption', `a document whose add is cut after ${ms} ms`]) {
          ids.push(...(await after.search(query, { k: 2 })).map((r) => r.id));
        }
        outcomes.push({ restored: after.info.restored, kept: ids.includes('kept') });
        after.dispose();
      } catch (e) {
        outcomes.push({ error: e.code });
      }
    }
    return outcomes;
  }, `cut-${Date.now()}`);
  assert.deepEqual(out, Array(6).fill({ restored: true, kept: true }));
  await page.close();
});

test('an add or remove whose index cannot be stored rejects and changes nothing', async () => {
  const page = await context.newPage();
  await page.goto(`${base}/web/blank.html`);
  const out = await page.evaluate(async () => {
    const { Quiver } = await import('/pkg/index.js');
    const q = await Quiver.load({ model: '/models/all-MiniLM-L6-v2/', index: '/data/catalogue.qvr',
      persist: `full-${Date.now()}`, workerUrl: '/failing-storage/worker.js' });
    const codeOf = async (promise) => { try { await promise; return 'ok'; } catch (e) { return e.code ?? `no code: ${e.message}`; } };
    const first = (await q.search('wine glass', { k: 1 }))[0].id;
    const documents = (await q.stats()).documents;
    const codes = {
      add: await codeOf(q.add([{ id: 'flux', text: 'a flux capacitor for a time machine' }])),
      remove: await codeOf(q.remove([first])),
    };
    const after = {
      documents: (await q.stats()).documents,
      flux: (await q.search('flux capacitor time machine', { k: 3 })).some((r) => r.id === 'flux'),
      first: (await q.search('wine glass', { k: 1 }))[0].id,
    };
    q.dispose();
    return { codes, documents, first, after };
  });
  assert.deepEqual(out.codes, { add: 'E_IO', remove: 'E_IO' });
  assert.deepEqual(out.after, { documents: out.documents, flux: false, first: out.first });
  await page.close();
});

test('added products survive a reload; the second load needs no network for the model', async () => {
  const persist = `test-${Date.now()}`;
  const page = await openDemo(`?persist=${persist}`);
  await page.click('summary');
  await page.fill('#add-title', 'Quantum flux capacitor');
  await page.fill('#add-text', 'A time-travel component for a sports car, needs 1.21 gigawatts.');
  await page.click('#add-form button');
  await page.waitForFunction(() => /^(Added|Could not)/.test(document.querySelector('#status').textContent));
  assert.match(await page.textContent('#status'), /^Added/);

  const modelRequests = [];
  const listener = (r) => { if (r.url().includes('/models/')) modelRequests.push(r.url()); };
  context.on('request', listener);
  await page.reload();
  await page.waitForSelector('body[data-state=ready]', { timeout: 180_000 });
  context.off('request', listener);
  assert.deepEqual(modelRequests, [], 'model files come from the Cache API');
  assert.match(await page.textContent('#status'), /restored/);
  await typeQuery(page, 'time machine part');
  assert.match((await resultIds(page))[0], /^custom-/);
  await page.close();
});

test('a wrong model URL and a corrupted index give clear errors', async () => {
  let page = await openDemo('?model=/models/no-such-model/&persist=wrong-model');
  assert.equal(await page.getAttribute('body', 'data-state'), 'error');
  assert.match(await page.textContent('#status'), /E_FETCH/);
  await page.close();

  const bytes = readFileSync(join(ROOT, 'data/catalogue.qvr'));
  bytes[Math.floor(bytes.length / 2)] ^= 0xff;
  writeFileSync(join(ROOT, 'data/corrupted-for-test.qvr'), bytes);
  page = await openDemo('?index=/data/corrupted-for-test.qvr&persist=corrupted');
  assert.equal(await page.getAttribute('body', 'data-state'), 'error');
  assert.match(await page.textContent('#status'), /E_INDEX_CORRUPT/);
  await page.close();
});

test('the static server streams files above its gzip limit as they are', async () => {
  const file = 'models/all-MiniLM-L6-v2/tokenizer.json';
  const size = readFileSync(join(ROOT, file)).length;
  const limited = await serve({ port: 0, gzipUpTo: size - 1 });
  try {
    const headers = async (at) => {
      const r = await fetch(`${at}/${file}`, { method: 'HEAD', headers: { 'Accept-Encoding': 'gzip' } });
      return [r.headers.get('content-encoding'), Number(r.headers.get('content-length'))];
    };
    const [encoding, length] = await headers(base);
    assert.equal(encoding, 'gzip');
    assert.ok(length < size / 2, `${length} of ${size} bytes`);
    assert.deepEqual(await headers(`http://127.0.0.1:${limited.address().port}`), [null, size]);
  } finally {
    limited.close();
  }
});

test('no uncaught exceptions or console errors', () => {
  // Failed fetches of the wrong model URL are the only expected console noise.
  const unexpected = problems.filter((p) => !/no-such-model.*404|Failed to load resource/.test(p));
  assert.deepEqual(unexpected, []);
});
