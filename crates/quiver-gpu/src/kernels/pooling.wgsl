// One vector per sequence from its token vectors: mean, [CLS] or maximum over the real
// tokens (padding never counts: the length says how many are real), then optionally
// L2-normalised as `torch.nn.functional.normalize` (norm clamped at 1e-12). One workgroup
// per sequence.

struct Params {
    seq: u32,
    hidden: u32,
    // 0: mean, 1: [CLS], 2: max.
    mode: u32,
    normalize: u32,
}

@group(0) @binding(0) var<storage, read> tokens: array<f32>;
@group(0) @binding(1) var<storage, read> lengths: array<u32>;
@group(0) @binding(2) var<storage, read_write> pooled: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

// THREADS and workgroup_sum come from workgroup_sum.wgsl, prepended by the Rust.

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let sequence = group.x;
    let length = lengths[sequence];
    let hidden = params.hidden;
    let base = sequence * params.seq * hidden;
    let out_base = sequence * hidden;
    var squares = 0.0;
    for (var d = t; d < hidden; d += THREADS) {
        var v = tokens[base + d];
        switch params.mode {
            case 1u: {}
            case 2u: {
                for (var j = 1u; j < length; j++) {
                    v = max(v, tokens[base + j * hidden + d]);
                }
            }
            default: {
                for (var j = 1u; j < length; j++) {
                    v += tokens[base + j * hidden + d];
                }
                v /= f32(length);
            }
        }
        pooled[out_base + d] = v;
        squares += v * v;
    }
    if (params.normalize != 0u) {
        let norm = max(sqrt(workgroup_sum(squares, t)), 1e-12);
        for (var d = t; d < hidden; d += THREADS) {
            pooled[out_base + d] /= norm;
        }
    }
}
