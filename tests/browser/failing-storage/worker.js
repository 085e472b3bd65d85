// The package's worker where storing fails, as with an exhausted storage quota (served at
// /failing-storage/ for the browser tests): modules evaluate in import order, so OPFS
// writes are broken before worker.js runs.
import './break.js';
import '/pkg/worker.js';
