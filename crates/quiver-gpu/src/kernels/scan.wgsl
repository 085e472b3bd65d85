// Scores one query against a chunk of index rows: candidates[first_row + i] =
// (score, first_row + i), one invocation per row. Rows and query are u32 words: the bits of
// f32 vectors for dot products, or binary codes (u64 codes as pairs of u32 words, low word
// first) for Hamming distances, negated so that higher is better, as for dot products.

// false: dot products; true: Hamming distances.
override HAMMING: bool = false;

struct Params {
    rows: u32,
    // u32 words per row.
    width: u32,
    first_row: u32,
    _pad: u32,
}

struct Candidate {
    score: f32,
    row: u32,
}

@group(0) @binding(0) var<storage, read> chunk: array<u32>;
@group(0) @binding(1) var<storage, read> query: array<u32>;
@group(0) @binding(2) var<storage, read_write> candidates: array<Candidate>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= params.rows) {
        return;
    }
    let base = i * params.width;
    var score = 0.0;
    if (HAMMING) {
        var distance = 0u;
        for (var w = 0u; w < params.width; w++) {
            distance += countOneBits(query[w] ^ chunk[base + w]);
        }
        // Exact: distances are far below 2^24.
        score = -f32(distance);
    } else {
        for (var d = 0u; d < params.width; d++) {
            score += bitcast<f32>(query[d]) * bitcast<f32>(chunk[base + d]);
        }
    }
    let row = params.first_row + i;
    candidates[row] = Candidate(score, row);
}
