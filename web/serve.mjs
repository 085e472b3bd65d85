#!/usr/bin/env node
// A small static server for the demo on 127.0.0.1: the page, the package, the model and
// the index, nothing else. `--isolate` sends COOP/COEP headers (cross-origin isolation).
import { createServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const SERVED = ['index.html', 'web/', 'pkg/', 'models/', 'data/'];
const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.jsonl': 'application/jsonl; charset=utf-8',
  '.wasm': 'application/wasm', '.png': 'image/png', '.svg': 'image/svg+xml',
};

const args = process.argv.slice(2);
const port = Number(args[args.indexOf('--port') + 1] || process.env.PORT || 8787);
const isolate = args.includes('--isolate');

/** `mounts` maps extra URL prefixes (`peer/ort/`) to folders, for benchmark pages. */
export function serve({ port: listenPort = port, isolated = isolate, mounts = {} } = {}) {
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    let path = decodeURIComponent(url.pathname).replace(/^\/+/, '') || 'index.html';
    path = normalize(path);
    const headers = { 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' };
    if (isolated) Object.assign(headers, { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' });
    const mount = Object.keys(mounts).find((prefix) => path.startsWith(prefix));
    if (path.startsWith('..') || !(mount || SERVED.some((p) => path === p || path.startsWith(p)))) {
      res.writeHead(404, headers).end('not found');
      return;
    }
    const file = mount ? join(mounts[mount], path.slice(mount.length)) : join(ROOT, path);
    let stat;
    try { stat = statSync(file); } catch { stat = null; }
    if (!stat?.isFile()) { res.writeHead(404, headers).end('not found'); return; }
    res.writeHead(200, { ...headers, 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Content-Length': stat.size });
    if (req.method === 'HEAD') { res.end(); return; }
    createReadStream(file).pipe(res);
  });
  return new Promise((done) => server.listen(listenPort, '127.0.0.1', () => done(server)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const server = await serve();
  console.log(`Quiver demo on http://127.0.0.1:${server.address().port}/ (Ctrl-C stops)`);
}
