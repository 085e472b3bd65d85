// The demo shop: the catalogue index built by `quiver index` is searched in the page.
// Product text is only ever set as textContent: catalogue data cannot inject HTML.
import { Quiver } from '/pkg/index.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
// Set-ups of the same catalogue: English-only all-MiniLM-L6-v2 (q8_0 by default, what a site
// would ship; f32 one choice away), and multilingual-e5-small (4-bit) over the English and
// German texts, so German and English queries find either.
const PRESETS = {
  english: { model: '/models/all-MiniLM-L6-v2-q8_0/', index: '/data/catalogue-q8_0.qvr', persist: 'demo-catalogue-q8_0' },
  // v2: indexes saved by earlier versions have no keyword index for the keyword/hybrid modes.
  'english-f32': { model: '/models/all-MiniLM-L6-v2/', index: '/data/catalogue.qvr', persist: 'demo-catalogue-v2' },
  multilingual: {
    model: '/models/multilingual-e5-small/', index: '/data/catalogue-multilingual.qvr', persist: 'demo-catalogue-multilingual',
  },
};
const PRESET_NAME = PRESETS[params.get('model')] ? params.get('model') : 'english';
const PRESET = PRESETS[PRESET_NAME];
const MODEL = PRESETS[params.get('model')] ? PRESET.model : params.get('model') ?? PRESET.model;
const INDEX = params.get('index') ?? PRESET.index;
// ?backend=gpu|cpu forces one; auto (default) calibrates once per device.
const BACKEND = ['gpu', 'cpu'].includes(params.get('backend')) ? params.get('backend') : 'auto';

let quiver = null;
let pending = null;

function setStatus(text, isError = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', isError);
}

function element(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function render(results) {
  const cards = results.map(({ id, score, metadata }) => {
    const m = metadata ?? {};
    const card = element('article', 'card');
    card.dataset.id = id;
    card.append(element('span', 'category', m.category ?? ''), element('h3', null, m.title ?? id));
    if (PRESET_NAME === 'multilingual' && m.title_de) card.append(element('p', 'subtitle', m.title_de));
    if (m.description) card.append(element('p', 'description', m.description));
    const meta = element('div', 'meta');
    const price = typeof m.price === 'number' ? `${m.price.toFixed(2)} ${m.currency ?? ''}` : '';
    meta.append(element('span', 'price', price), element('span', 'score', score.toFixed(3)));
    card.append(meta);
    return card;
  });
  $('results').replaceChildren(...cards);
}

function options() {
  const filter = {};
  if ($('category').value) filter.category = $('category').value;
  const max = Number($('max-price').value);
  if ($('max-price').value !== '' && Number.isFinite(max)) filter.price = { lte: max };
  return { k: 12, mode: $('mode').value, strategy: $('binary').checked ? 'binary-rescore' : 'exact', filter };
}

async function search() {
  const query = $('q').value.trim();
  if (!quiver) return;
  if (!query) { $('results').replaceChildren(); setStatus('Type to search.'); return; }
  const started = performance.now();
  try {
    const results = await quiver.search(query, options());
    const ms = performance.now() - started;
    if ($('q').value.trim() !== query) return;
    render(results);
    $('latency').textContent = `${ms.toFixed(1)} ms`;
    const { queryCache } = await quiver.stats();
    $('cache').textContent = `${queryCache.hits} hits · ${queryCache.misses} misses`;
    setStatus(`${results.length} results for “${query}”`);
  } catch (e) {
    setStatus(`Search failed: ${e.message}`, true);
  }
}

/** Which backend embeds, on what, and why (calibration times, or the GPU's failure). */
function showBackend(report, kernels) {
  const adapter = report?.adapter ? ` · ${report.adapter.name}` : '';
  $('backend').textContent = report?.active === 'gpu' ? `GPU · WebGPU${adapter}` : `CPU · wasm ${kernels}`;
  $('backend').dataset.backend = report?.active ?? 'cpu';
  $('backend-reason').textContent = report?.reason ?? '';
}

function scheduleSearch() {
  clearTimeout(pending);
  pending = setTimeout(search, 120);
}

async function loadCategories() {
  try {
    const text = await (await fetch('/data/catalogue.jsonl')).text();
    const categories = new Set(text.split('\n').filter(Boolean).map((l) => JSON.parse(l).category).filter(Boolean));
    for (const c of [...categories].sort()) $('category').append(new Option(c, c));
  } catch { /* filters stay optional */ }
}

async function main() {
  $('model-choice').value = PRESET_NAME;
  $('model-choice').addEventListener('change', () => {
    const next = new URLSearchParams({ model: $('model-choice').value });
    location.search = next.toString();
  });
  loadCategories();
  const started = performance.now();
  try {
    quiver = await Quiver.load({
      model: MODEL,
      index: INDEX,
      persist: params.get('persist') ?? PRESET.persist,
      backend: BACKEND,
      onProgress: (p) => {
        const file = p.file?.split('/').pop();
        const wire = p.wire ? `, ${(p.wire / 1e6).toFixed(1)} MB over the wire` : '';
        if (p.stage === 'model' && p.total) setStatus(`Loading the model (${file})… ${(p.loaded / 1e6).toFixed(1)} of ${(p.total / 1e6).toFixed(1)} MB${wire}${p.cached ? ' (cached)' : ''}`);
        if (p.stage === 'compile') setStatus('Preparing the model…');
        if (p.stage === 'backend') setStatus(p.backend === 'cpu' ? 'Preparing the model…' : 'Checking the GPU…');
        if (p.stage === 'index') setStatus('Loading the catalogue…');
      },
    });
  } catch (e) {
    setStatus(`Could not load: ${e.message} (${e.code})`, true);
    document.body.dataset.state = 'error';
    return;
  }
  const info = quiver.info;
  showBackend(info.backend, info.kernels);
  $('load-time').textContent = `${(performance.now() - started).toFixed(0)} ms`;
  $('count').textContent = info.documents;
  $('q').disabled = false;
  $('q').focus();
  setStatus(info.restored ? 'Ready (catalogue restored from this device).' : 'Ready. Type to search.');
  document.body.dataset.state = 'ready';
  for (const id of ['q', 'max-price']) $(id).addEventListener('input', scheduleSearch);
  for (const id of ['category', 'mode', 'binary']) $(id).addEventListener('change', search);
  $('add-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const title = $('add-title').value.trim();
    const description = $('add-text').value.trim();
    const id = `custom-${Date.now()}`;
    try {
      const count = await quiver.add([{ id, text: `${title}. ${description}`, metadata: { title, description, category: 'Added here' } }]);
      $('count').textContent = count;
      const { lastEmbedding } = await quiver.stats();
      if (lastEmbedding) {
        $('embedding').textContent = `${lastEmbedding.texts} text on the ${lastEmbedding.backend.toUpperCase()} in ${lastEmbedding.ms.toFixed(1)} ms`;
      }
      setStatus(`Added “${title}”.`);
      event.target.reset();
      if ($('q').value.trim()) search();
    } catch (e) {
      setStatus(`Could not add: ${e.message}`, true);
    }
  });
  if ($('q').value) search();
}

main();
