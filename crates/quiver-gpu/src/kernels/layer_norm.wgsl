// x[row] = LayerNorm(x[row] + addend[row % period]) · gamma + beta, one workgroup per row.
//
// After a linear (whose bias the matmul added) the addend is the residual, period = rows:
// `BertSelfOutput` / `BertOutput`. For the embeddings x holds the words' vectors and the
// addend is position + token type 0 per position, period = the padded sequence length.

struct Params {
    rows: u32,
    width: u32,
    period: u32,
    eps: f32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> addend: array<f32>;
// gamma, then beta: one binding for both keeps every kernel within 4 storage buffers.
@group(0) @binding(2) var<storage, read> norm: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

// THREADS and workgroup_sum come from workgroup_sum.wgsl, prepended by the Rust.

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let row = group.x;
    if (row >= params.rows) {
        return;
    }
    let width = params.width;
    let base = row * width;
    let addend_base = (row % params.period) * width;
    var sum = 0.0;
    for (var i = t; i < width; i += THREADS) {
        let v = x[base + i] + addend[addend_base + i];
        x[base + i] = v;
        sum += v;
    }
    let mean = workgroup_sum(sum, t) / f32(width);
    var squares = 0.0;
    for (var i = t; i < width; i += THREADS) {
        let d = x[base + i] - mean;
        squares += d * d;
    }
    let inv = 1.0 / sqrt(workgroup_sum(squares, t) / f32(width) + params.eps);
    for (var i = t; i < width; i += THREADS) {
        x[base + i] = (x[base + i] - mean) * inv * norm[i] + norm[width + i];
    }
}
