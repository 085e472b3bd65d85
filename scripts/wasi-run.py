"""cargo's runner for wasm32-wasip1 test binaries (scripts/test.sh's wasm kernel suite):
runs one in Wasmtime (PyPI `wasmtime`, with relaxed-simd) with the given arguments and exits
with its status."""
import sys

import wasmtime

config = wasmtime.Config()
config.wasm_simd = True
config.wasm_relaxed_simd = True
engine = wasmtime.Engine(config)
store = wasmtime.Store(engine)
wasi = wasmtime.WasiConfig()
wasi.argv = sys.argv[1:]
wasi.inherit_stdout()
wasi.inherit_stderr()
wasi.inherit_env()
store.set_wasi(wasi)
linker = wasmtime.Linker(engine)
linker.define_wasi()
instance = linker.instantiate(store, wasmtime.Module.from_file(engine, sys.argv[1]))
try:
    instance.exports(store)["_start"](store)
except wasmtime.ExitTrap as e:
    sys.exit(e.code)
