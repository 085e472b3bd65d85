// The package's worker as a browser without wasm relaxed-simd runs it (`workerUrl` for the
// browser tests and scripts/bench-browser.mjs, served at /without-relaxed-simd/): modules evaluate in import order, so the
// feature test is hidden before worker.js looks.
import './hide.js';
import '/pkg/worker.js';
