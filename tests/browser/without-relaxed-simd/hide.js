// Makes this worker look like one of a browser without wasm relaxed-simd (Safari today):
// modules holding a relaxed dot product (opcode 0xfd 0x113) fail to validate.
const validate = WebAssembly.validate;
WebAssembly.validate = (bytes) =>
  !new Uint8Array(bytes).some((b, i, all) => b === 0xfd && all[i + 1] === 0x93 && all[i + 2] === 0x02) && validate(bytes);
