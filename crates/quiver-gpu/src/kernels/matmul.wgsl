// out = act(input · weightᵀ + bias): input [m, k] row-major, weight [n, k] as `nn.Linear`
// stores it, out [m, n]; k is a multiple of 4, so rows are read as vec4.
//
// With `shader-f16`, matmul.rs declares `weight` as vec4<f16> (half the memory and the
// bandwidth) and enables f16; weights are widened to f32 as they are staged, so every
// product and sum stays f32.
//
// Each workgroup computes a 64×64 tile of `out`, staging 64×16 slices of `input` and
// `weight` in workgroup memory (one vec4 load per invocation each); each of its 16×16
// invocations accumulates a 4×4 block, strided by 16 so that neighbouring invocations
// write neighbouring addresses, from 8 vec4 reads per 64 multiply-adds.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    _pad: u32,
}

// 0: none, 1: GELU with erf (`"gelu"`), 2: GELU's tanh approximation (`"gelu_new"`), 3: ReLU.
override ACTIVATION: u32 = 0u;

@group(0) @binding(0) var<storage, read> input: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

const TILE: u32 = 64u;
// vec4s per row of a slice: 16 values of k.
const SLICE: u32 = 4u;

// [TILE rows][SLICE]: row r's slice of k at r * SLICE.
var<workgroup> input_tile: array<vec4<f32>, 256>;
var<workgroup> weight_tile: array<vec4<f32>, 256>;

// erf as a rational function of x (odd numerator, even denominator) on [-4, 4], beyond
// which erf is ±1 in f32: Eigen's `generic_fast_erf_float`, within a few ulp of erf.
// Abramowitz–Stegun 7.1.26 (|error| ≤ 1.5e-7) would also do, but needs exp.
fn erf(value: f32) -> f32 {
    let x = clamp(value, -4.0, 4.0);
    let x2 = x * x;
    var p = x2 * -2.72614225801306e-10 + 2.77068142495902e-08;
    p = x2 * p + -2.10102402082508e-06;
    p = x2 * p + -5.69250639462346e-05;
    p = x2 * p + -7.34990630326855e-04;
    p = x2 * p + -2.95459980854025e-03;
    p = x2 * p + -1.60960333262415e-02;
    p = x * p;
    var q = x2 * -1.45660718464996e-05 + -2.13374055278905e-04;
    q = x2 * q + -1.68282697438203e-03;
    q = x2 * q + -7.37332916720468e-03;
    q = x2 * q + -1.42647390514189e-02;
    return p / q;
}

fn activate(x: f32) -> f32 {
    switch ACTIVATION {
        case 1u: {
            return 0.5 * x * (1.0 + erf(x * 0.70710678118654752));
        }
        case 2u: {
            // Clamped: tanh is ±1 in f32 well before 15, and some drivers' tanh overflows.
            let inner = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -15.0, 15.0);
            return 0.5 * x * (1.0 + tanh(inner));
        }
        case 3u: {
            return max(x, 0.0);
        }
        default: {
            return x;
        }
    }
}

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) index: u32,
) {
    let row0 = group.y * TILE;
    let col0 = group.x * TILE;
    let k4 = params.k / 4u;
    // The invocation's vec4 of each slice it stages.
    let r = index / SLICE;
    let kk = index % SLICE;
    // acc[i][j] is out[row0 + local.y + 16i][col0 + local.x + 16j].
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < k4; k0 += SLICE) {
        var x = vec4<f32>();
        if (row0 + r < params.m && k0 + kk < k4) {
            x = input[(row0 + r) * k4 + k0 + kk];
        }
        input_tile[index] = x;
        var w = vec4<f32>();
        if (col0 + r < params.n && k0 + kk < k4) {
            w = vec4<f32>(weight[(col0 + r) * k4 + k0 + kk]);
        }
        weight_tile[index] = w;
        workgroupBarrier();
        for (var s = 0u; s < SLICE; s++) {
            let w0 = weight_tile[local.x * SLICE + s];
            let w1 = weight_tile[(local.x + 16u) * SLICE + s];
            let w2 = weight_tile[(local.x + 32u) * SLICE + s];
            let w3 = weight_tile[(local.x + 48u) * SLICE + s];
            for (var i = 0u; i < 4u; i++) {
                let a = input_tile[(local.y + 16u * i) * SLICE + s];
                acc[i] += vec4<f32>(dot(a, w0), dot(a, w1), dot(a, w2), dot(a, w3));
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + local.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + local.x + 16u * j;
            if (row < params.m && col < params.n) {
                out[row * params.n + col] = activate(acc[i][j] + bias[col]);
            }
        }
    }
}
