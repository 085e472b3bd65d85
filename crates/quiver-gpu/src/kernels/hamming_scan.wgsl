// Hamming distances of one binary query code to a chunk of index codes (u64 codes as
// pairs of u32 words, low word first): candidates[first_row + i] = (-distance,
// first_row + i), negated so that higher is better, as for dot products.

struct Params {
    rows: u32,
    words: u32,
    first_row: u32,
    _pad: u32,
}

struct Candidate {
    score: f32,
    row: u32,
}

@group(0) @binding(0) var<storage, read> codes: array<u32>;
@group(0) @binding(1) var<storage, read> query: array<u32>;
@group(0) @binding(2) var<storage, read_write> candidates: array<Candidate>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= params.rows) {
        return;
    }
    let base = i * params.words;
    var distance = 0u;
    for (var w = 0u; w < params.words; w++) {
        distance += countOneBits(query[w] ^ codes[base + w]);
    }
    let row = params.first_row + i;
    // Exact: distances are far below 2^24.
    candidates[row] = Candidate(-f32(distance), row);
}
