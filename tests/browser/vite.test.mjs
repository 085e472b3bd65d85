// `npm pack` of pkg/ installed into a fresh Vite project: the bundle builds, emits the
// worker and the wasm, and searches in Chromium.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let app, server, browser;

before(() => {
  const work = mkdtempSync(join(tmpdir(), 'quiver-vite-'));
  execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { cwd: join(ROOT, 'pkg') });
  const tarball = join(work, readdirSync(work).find((f) => f.endsWith('.tgz')));
  app = join(work, 'app');
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'fresh-vite-app', private: true, type: 'module' }));
  writeFileSync(join(app, 'index.html'), '<!doctype html><html><body><script type="module" src="/main.js"></script></body></html>');
  writeFileSync(join(app, 'main.js'), [
    "import { Quiver } from 'quiver-search';",
    "const q = await Quiver.load({ model: '/models/all-MiniLM-L6-v2/', index: '/data/catalogue.qvr' });",
    "window.kernels = (await q.stats()).modelKernels;",
    "window.results = await q.search('crystal glasses for red wine', { k: 3 });",
  ].join('\n'));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--silent', tarball], { cwd: app });
  execFileSync(join(ROOT, 'node_modules/.bin/vite'), ['build', '--logLevel', 'warn'], { cwd: app });
});

after(async () => {
  await browser?.close();
  server?.close();
});

test('the packed package works in a fresh Vite build', async () => {
  const assets = readdirSync(join(app, 'dist/assets'));
  // Both single-threaded engines: simd128 and relaxed-simd.
  assert.equal(assets.filter((f) => f.endsWith('.wasm')).length, 2, `wasm emitted: ${assets}`);
  assert.ok(assets.some((f) => f.startsWith('worker')), `no worker emitted: ${assets}`);

  const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };
  server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^\/+/, '') || 'index.html';
    const file = /^(models|data)\//.test(path) ? join(ROOT, path) : join(app, 'dist', path);
    try {
      if (!statSync(file).isFile()) throw new Error();
    } catch {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': types[extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForFunction(() => window.results, null, { timeout: 120_000 });
  const results = await page.evaluate(() => window.results);
  assert.equal(results.length, 3);
  assert.match(results[0].metadata.category, /Glass/);
  assert.equal(await page.evaluate(() => window.kernels), 'relaxed-simd', 'the bundle runs the relaxed build in Chromium');
  assert.deepEqual(errors, []);
});
