// Scores one query against a chunk of index rows: candidates[first_row + i] =
// (query · vectors[i], first_row + i), one invocation per row.

struct Params {
    rows: u32,
    dim: u32,
    first_row: u32,
    _pad: u32,
}

struct Candidate {
    score: f32,
    row: u32,
}

@group(0) @binding(0) var<storage, read> vectors: array<f32>;
@group(0) @binding(1) var<storage, read> query: array<f32>;
@group(0) @binding(2) var<storage, read_write> candidates: array<Candidate>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= params.rows) {
        return;
    }
    let base = i * params.dim;
    var dot = 0.0;
    for (var d = 0u; d < params.dim; d++) {
        dot += query[d] * vectors[base + d];
    }
    let row = params.first_row + i;
    candidates[row] = Candidate(dot, row);
}
