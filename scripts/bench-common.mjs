// What the browser benchmarks share: the peers harness's cache (transformers.js, its
// models, the corpora; ../shared/peers/setup.sh fills it) and indexes of random vectors.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const QUIVER = join(ROOT, 'target/release/quiver');
export const PEERS = process.env.PEERS_CACHE ?? join(homedir(), '.cache/quiver-peers');

const tjsDir = join(PEERS, 'node/node_modules/@huggingface/transformers/dist');
/** Whether the harness installed transformers.js. */
export const haveTjs = existsSync(join(tjsDir, 'transformers.js'));
/** Where web/serve.mjs serves transformers.js, onnxruntime-web and the peers' models. */
export const peerMounts = haveTjs ? {
  'peer/tjs/': tjsDir,
  'peer/ort/': join(PEERS, 'node/node_modules/onnxruntime-web/dist'),
  'peer/models/': join(PEERS, 'models'),
} : {};

/** The first `n` texts of the harness's `short` or `long` corpus. */
export function corpus(name, n) {
  return readFileSync(join(PEERS, `corpus/${name}.jsonl`), 'utf8').split('\n').filter(Boolean).slice(0, n).map((l) => JSON.parse(l).text);
}

/**
 * `data/NAME.qvr` (made once): `rows` random unit vectors of 384 dimensions from `seed`,
 * stamped with the identity of `models/MODEL`. Returns the file's path.
 */
export function randomIndex(name, rows, model, seed) {
  const file = join(ROOT, `data/${name}.qvr`);
  if (existsSync(file)) return file;
  const dim = 384;
  const data = new Float32Array(rows * dim);
  for (let i = 0; i < data.length; i++) { seed = (seed * 1103515245 + 12345) >>> 0; data[i] = seed / 2 ** 31 - 1; }
  const header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${dim}), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  const h = Buffer.from(header + ' '.repeat(pad % 64) + '\n');
  const pre = Buffer.from([0x93, ...Buffer.from('NUMPY'), 1, 0, h.length & 255, h.length >> 8]);
  const npy = join(mkdtempSync(join(tmpdir(), 'quiver-bench-')), 'v.npy');
  writeFileSync(npy, Buffer.concat([pre, h, Buffer.from(data.buffer)]));
  execFileSync(QUIVER, ['index', '--vectors', npy, '--model', join(ROOT, 'models', model), '--output', file], { stdio: 'ignore' });
  return file;
}
