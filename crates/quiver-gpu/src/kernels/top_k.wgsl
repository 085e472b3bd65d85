// One pass of top-k selection: each workgroup sorts a block of 1024 candidates, best first
// (higher score, then lower row: the CPU index's order), and keeps its first `keep`.
// Repeated passes shrink the candidates until one block holds them all, sorted.

struct Params {
    count: u32,
    keep: u32,
}

struct Candidate {
    score: f32,
    row: u32,
}

@group(0) @binding(0) var<storage, read> input: array<Candidate>;
@group(0) @binding(1) var<storage, read_write> output: array<Candidate>;
@group(0) @binding(2) var<uniform> params: Params;

const BLOCK: u32 = 1024u;
const THREADS: u32 = 256u;
// Each invocation compares two pairs per step: BLOCK / 2 pairs.
const PAIRS_PER_THREAD: u32 = 2u;

var<workgroup> scores: array<f32, 1024>;
var<workgroup> rows: array<u32, 1024>;

fn before(a: u32, b: u32) -> bool {
    return scores[a] > scores[b] || (scores[a] == scores[b] && rows[a] < rows[b]);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let first = group.x * BLOCK;
    for (var i = t; i < BLOCK; i += THREADS) {
        if (first + i < params.count) {
            let c = input[first + i];
            scores[i] = c.score;
            rows[i] = c.row;
        } else {
            // The lowest f32 and the last row: after every real candidate. (Not -inf: WGSL
            // compilers reject infinities, even built by bitcast.)
            scores[i] = -0x1.fffffep+127f;
            rows[i] = 0xffffffffu;
        }
    }
    workgroupBarrier();
    // Bitonic sort: runs of `size` are merged, each first half best-first.
    for (var size = 2u; size <= BLOCK; size <<= 1u) {
        for (var stride = size / 2u; stride > 0u; stride >>= 1u) {
            for (var p = 0u; p < PAIRS_PER_THREAD; p++) {
                let pair = t + p * THREADS;
                let lo = 2u * stride * (pair / stride) + pair % stride;
                let hi = lo + stride;
                let best_first = (lo & size) == 0u;
                if (before(hi, lo) == best_first) {
                    let score = scores[lo];
                    let row = rows[lo];
                    scores[lo] = scores[hi];
                    rows[lo] = rows[hi];
                    scores[hi] = score;
                    rows[hi] = row;
                }
            }
            workgroupBarrier();
        }
    }
    for (var i = t; i < params.keep; i += THREADS) {
        output[group.x * params.keep + i] = Candidate(scores[i], rows[i]);
    }
}
