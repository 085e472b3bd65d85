// Self-attention of every head of a right-padded batch, fused: for one query token of one
// head, scores = q·kᵀ · scale over the sequence's real keys (padding masked by its length),
// softmax, and the probability-weighted sum of v. One invocation per (head, query) of a
// sequence: neighbouring invocations are neighbouring queries of one head, reading the same
// keys and values.
//
// qkv is [batch·seq, 3·hidden], each token's row q | k | v with heads side by side (the
// fused Q/K/V linear's output); context is [batch·seq, hidden] in the same head layout.
// head_dim is a multiple of 4 and at most 64, so a head is at most 16 vec4 in registers.
// The softmax runs online (a running maximum and sum), so keys are read once.

struct Params {
    seq: u32,
    head_dim: u32,
    hidden: u32,
    scale: f32,
}

@group(0) @binding(0) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> lengths: array<u32>;
@group(0) @binding(2) var<storage, read_write> context: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> params: Params;

const MAX_VECS: u32 = 16u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let heads = params.hidden / params.head_dim;
    if (id.x >= params.seq * heads) {
        return;
    }
    let head = id.x / params.seq;
    let token = id.x % params.seq;
    let sequence = id.y;
    let length = lengths[sequence];
    // In vec4s from here on.
    let vecs = params.head_dim / 4u;
    let stride = 3u * params.hidden / 4u;
    let first = sequence * params.seq;
    let q_base = (first + token) * stride + head * vecs;
    var query: array<vec4<f32>, MAX_VECS>;
    for (var v = 0u; v < vecs; v++) {
        query[v] = qkv[q_base + v] * params.scale;
    }
    let k_base = first * stride + params.hidden / 4u + head * vecs;
    let v_base = k_base + params.hidden / 4u;
    var acc: array<vec4<f32>, MAX_VECS>;
    // Below any real score, and finite: exp(running_max - new_max) is 0 at the first key.
    var running_max = -3.0e38;
    var total = 0.0;
    for (var key = 0u; key < length; key++) {
        let k_row = k_base + key * stride;
        var score = 0.0;
        for (var v = 0u; v < vecs; v++) {
            score += dot(query[v], qkv[k_row + v]);
        }
        let new_max = max(running_max, score);
        let correction = exp(running_max - new_max);
        let p = exp(score - new_max);
        total = total * correction + p;
        let v_row = v_base + key * stride;
        for (var v = 0u; v < vecs; v++) {
            acc[v] = acc[v] * correction + p * qkv[v_row + v];
        }
        running_max = new_max;
    }
    let out = (first + token) * params.hidden / 4u + head * vecs;
    for (var v = 0u; v < vecs; v++) {
        context[out + v] = acc[v] / total;
    }
}
