#!/usr/bin/env node
// A small static server for the demo on 127.0.0.1: the page, the package, the model and
// the index, nothing else. `--isolate` sends COOP/COEP headers (cross-origin isolation).
// Files that shrink by a fifth or more (tokenizer.json: 17 MB → 4 MB for XLM-R) are sent
// gzipped when the browser accepts it, with their decoded size in `X-Decoded-Length` so
// the page's progress shows real bytes; 4-bit weights, which barely shrink, go as they are,
// and so do files above 256 MB (a million-row index), streamed from the disk at once:
// compressing them would hold them whole in memory first.
import { createServer } from 'node:http';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const SERVED = ['index.html', 'web/', 'pkg/', 'models/', 'data/'];
const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.jsonl': 'application/jsonl; charset=utf-8',
  '.wasm': 'application/wasm', '.png': 'image/png', '.svg': 'image/svg+xml',
};

const COMPRESSIBLE = new Set(['.html', '.js', '.mjs', '.css', '.json', '.jsonl', '.wasm', '.svg', '.safetensors', '.gguf', '.qvr']);
const WORTH_IT = 0.8;
const GZIP_UP_TO = 256 << 20;
/** path → { key, body } (the gzipped bytes) or { key, body: null } (not worth it). */
const gzipped = new Map();

function gzippedBody(file, stat) {
  const key = `${stat.size}:${stat.mtimeMs}`;
  let entry = gzipped.get(file);
  if (entry?.key !== key) {
    const raw = readFileSync(file);
    // Judge big files by their first megabyte before compressing all of them.
    const probe = raw.length > 8 << 20 ? gzipSync(raw.subarray(0, 1 << 20), { level: 1 }).length / (1 << 20) : 0;
    let body = null;
    if (probe <= WORTH_IT) {
      const gz = gzipSync(raw, { level: 6 });
      if (gz.length <= WORTH_IT * raw.length) body = gz;
    }
    entry = { key, body };
    gzipped.set(file, entry);
  }
  return entry.body;
}

const args = process.argv.slice(2);
const port = Number(args[args.indexOf('--port') + 1] || process.env.PORT || 8787);
const isolate = args.includes('--isolate');

/**
 * `mounts` maps extra URL prefixes (`peer/ort/`) to folders, for benchmark pages; files
 * above `gzipUpTo` bytes are never compressed.
 */
export function serve({ port: listenPort = port, isolated = isolate, mounts = {}, gzipUpTo = GZIP_UP_TO } = {}) {
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
    const type = TYPES[extname(file)] ?? 'application/octet-stream';
    const body = COMPRESSIBLE.has(extname(file)) && stat.size <= gzipUpTo && /\bgzip\b/.test(req.headers['accept-encoding'] ?? '')
      ? gzippedBody(file, stat) : null;
    if (body) {
      res.writeHead(200, { ...headers, 'Content-Type': type, 'Content-Encoding': 'gzip', 'Vary': 'Accept-Encoding',
        'Content-Length': body.length, 'X-Decoded-Length': stat.size, 'Access-Control-Expose-Headers': 'X-Decoded-Length' });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Type': type, 'Content-Length': stat.size });
    if (req.method === 'HEAD') { res.end(); return; }
    createReadStream(file).pipe(res);
  });
  return new Promise((done) => server.listen(listenPort, '127.0.0.1', () => done(server)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const server = await serve();
  console.log(`Quiver demo on http://127.0.0.1:${server.address().port}/ (Ctrl-C stops)`);
}
