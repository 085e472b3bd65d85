//! Each kernel against a plain CPU reference (in f64) on random data, on whatever adapter
//! there is (lavapipe in CI).

mod common;

use quiver_encoder::config::Activation;
use quiver_encoder::Pooling;
use quiver_gpu::kernels::attention::{Attention, AttentionParams};
use quiver_gpu::kernels::layer_norm::{LayerNorm, LayerNormParams};
use quiver_gpu::kernels::matmul::{Matmul, MatmulParams};
use quiver_gpu::kernels::pooling::{Pooling as Pool, PoolingParams};
use quiver_gpu::{wgpu, GpuContext, Precision};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random(rng: &mut StdRng, len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|_| rng.gen_range(-scale..scale)).collect()
}

fn buffer<T: bytemuck::Pod>(ctx: &GpuContext, values: &[T]) -> wgpu::Buffer {
    ctx.storage_buffer("test", values).unwrap()
}

/// Records one dispatch with `record`, runs it and reads back `len` floats of `out`.
fn run(
    ctx: &GpuContext,
    out: &wgpu::Buffer,
    len: usize,
    record: impl FnOnce(&mut wgpu::ComputePass<'_>) -> quiver_gpu::Result<()>,
) -> Vec<f32> {
    let mut encoder = ctx.encoder("test");
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        record(&mut pass).unwrap();
    }
    pollster::block_on(ctx.submit_read("test", encoder, out, len).values()).unwrap()
}

fn assert_close(got: &[f32], want: &[f64], tolerance: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g as f64 - w).abs() <= tolerance * (1.0 + w.abs()), "{what}[{i}]: {g} != {w}");
    }
}

/// erf to ~1e-15 by its Taylor series (converges for every x; |x| ≤ 6 here).
fn erf(x: f64) -> f64 {
    let (mut term, mut sum) = (x, x);
    for n in 1..200 {
        term *= -x * x / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

fn activate(activation: Option<Activation>, x: f64) -> f64 {
    match activation {
        None => x,
        Some(Activation::Gelu) => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
        Some(Activation::GeluNew) => 0.5 * x * (1.0 + (0.797_884_560_802_865_4 * (x + 0.044715 * x * x * x)).tanh()),
        Some(Activation::Relu) => x.max(0.0),
    }
}

/// `act(input · weightᵀ + bias)` on the GPU.
fn gpu_matmul(
    ctx: &GpuContext,
    activation: Option<Activation>,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    [m, n, k]: [usize; 3],
) -> Vec<f32> {
    let matmul = pollster::block_on(Matmul::new(ctx, activation, Precision::F32)).unwrap();
    let out = ctx.empty_storage_buffer("out", (m * n * 4) as u64).unwrap();
    let params = ctx.uniform_buffer("params", &MatmulParams::new(m, n, k));
    let bind_group = matmul.bind(ctx, [&buffer(ctx, input), &buffer(ctx, weight), &buffer(ctx, bias), &out, &params]);
    run(ctx, &out, m * n, |pass| matmul.encode(ctx, pass, &bind_group, [m, n, k]))
}

#[test]
fn matmul_with_bias_and_each_activation() {
    let Some(ctx) = common::context() else { return };
    let mut rng = StdRng::seed_from_u64(1);
    // Neither dimension a multiple of the 64×64 tile or of the 16-deep k slice.
    let [m, n, k] = [70, 130, 52];
    let input = random(&mut rng, m * k, 1.0);
    let weight = random(&mut rng, n * k, 0.5);
    let bias = random(&mut rng, n, 1.0);
    for activation in [None, Some(Activation::Gelu), Some(Activation::GeluNew), Some(Activation::Relu)] {
        let got = gpu_matmul(&ctx, activation, &input, &weight, &bias, [m, n, k]);
        let want: Vec<f64> = (0..m * n)
            .map(|e| {
                let (row, col) = (e / n, e % n);
                let dot: f64 = (0..k).map(|i| input[row * k + i] as f64 * weight[col * k + i] as f64).sum();
                activate(activation, dot + bias[col] as f64)
            })
            .collect();
        assert_close(&got, &want, 1e-5, &format!("matmul {activation:?}"));
    }
}

/// GELU's erf must be accurate at every scale, not just on average: x · 1 + 0 through the
/// fused matmul, against erf in f64.
#[test]
fn gelu_is_exact_to_float_precision() {
    let Some(ctx) = common::context() else { return };
    let xs: Vec<f32> = (-1200..=1200).map(|i| i as f32 * 0.005).collect();
    // Rows [x, 0, 0, 0]: k is a multiple of 4.
    let input: Vec<f32> = xs.iter().flat_map(|&x| [x, 0.0, 0.0, 0.0]).collect();
    let got = gpu_matmul(&ctx, Some(Activation::Gelu), &input, &[1.0, 0.0, 0.0, 0.0], &[0.0], [xs.len(), 1, 4]);
    let worst = xs
        .iter()
        .zip(&got)
        .map(|(&x, &g)| (g as f64 - activate(Some(Activation::Gelu), x as f64)).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-6, "GELU error {worst}");
}

#[test]
fn layer_norm_with_residual_and_repeating_addend() {
    let Some(ctx) = common::context() else { return };
    let mut rng = StdRng::seed_from_u64(2);
    let kernel = pollster::block_on(LayerNorm::new(&ctx)).unwrap();
    let (rows, width, eps) = (6, 100, 1e-12);
    let x = random(&mut rng, rows * width, 2.0);
    let norm = random(&mut rng, 2 * width, 1.0);
    // period = rows: a residual per row; period 2: an addend repeating like positions.
    for period in [rows, 2] {
        let addend = random(&mut rng, period * width, 1.0);
        let x_buffer = buffer(&ctx, &x);
        let params = ctx.uniform_buffer("params", &LayerNormParams::new(rows, width, period, eps));
        let bind_group = kernel.bind(&ctx, [&x_buffer, &buffer(&ctx, &addend), &buffer(&ctx, &norm), &params]);
        let got = run(&ctx, &x_buffer, rows * width, |pass| kernel.encode(&ctx, pass, &bind_group, rows));
        let mut want = Vec::new();
        for row in 0..rows {
            let v: Vec<f64> =
                (0..width).map(|i| (x[row * width + i] + addend[(row % period) * width + i]) as f64).collect();
            let mean = v.iter().sum::<f64>() / width as f64;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / width as f64;
            want.extend(
                (0..width).map(|i| (v[i] - mean) / (var + eps).sqrt() * norm[i] as f64 + norm[width + i] as f64),
            );
        }
        assert_close(&got, &want, 1e-5, &format!("layer norm, period {period}"));
    }
}

#[test]
fn attention_over_a_padded_batch() {
    let Some(ctx) = common::context() else { return };
    let mut rng = StdRng::seed_from_u64(3);
    let kernel = pollster::block_on(Attention::new(&ctx)).unwrap();
    // 70 > 64 keys: more than one tile of the online softmax; lengths 1 and 33 are padded.
    let (seq, heads, head_dim) = (70, 3, 8);
    let lengths = [70u32, 1, 33, 64];
    let (batch, hidden) = (lengths.len(), heads * head_dim);
    let qkv = random(&mut rng, batch * seq * 3 * hidden, 2.0);
    let context = ctx.empty_storage_buffer("context", (batch * seq * hidden * 4) as u64).unwrap();
    let params = ctx.uniform_buffer("params", &AttentionParams::new(seq, head_dim, hidden));
    let bind_group = kernel.bind(&ctx, [&buffer(&ctx, &qkv), &buffer(&ctx, &lengths), &context, &params]);
    let got = run(&ctx, &context, batch * seq * hidden, |pass| {
        kernel.encode(&ctx, pass, &bind_group, [batch, seq, heads, head_dim])
    });
    let at = |b: usize, token: usize, part: usize, head: usize, d: usize| {
        qkv[(b * seq + token) * 3 * hidden + part * hidden + head * head_dim + d] as f64
    };
    let scale = 1.0 / (head_dim as f64).sqrt();
    let mut want = vec![0.0; batch * seq * hidden];
    for (b, &len) in lengths.iter().enumerate() {
        let len = len as usize;
        for head in 0..heads {
            // Padded query rows are computed too (and ignored by pooling).
            for token in 0..seq {
                let scores: Vec<f64> = (0..len)
                    .map(|j| {
                        (0..head_dim).map(|d| at(b, token, 0, head, d) * at(b, j, 1, head, d)).sum::<f64>() * scale
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = exps.iter().sum();
                for d in 0..head_dim {
                    want[(b * seq + token) * hidden + head * head_dim + d] =
                        (0..len).map(|j| exps[j] / total * at(b, j, 2, head, d)).sum();
                }
            }
        }
    }
    assert_close(&got, &want, 1e-5, "attention");
}

#[test]
fn pooling_mean_cls_max_and_normalisation() {
    let Some(ctx) = common::context() else { return };
    let mut rng = StdRng::seed_from_u64(4);
    let kernel = pollster::block_on(Pool::new(&ctx)).unwrap();
    // hidden 100 > 64 invocations: several dimensions each.
    let (seq, hidden) = (5, 100);
    let lengths = [5u32, 2, 1];
    let batch = lengths.len();
    let tokens = random(&mut rng, batch * seq * hidden, 3.0);
    // Padding must never count: make it stand out.
    let mut padded = tokens.clone();
    for (b, &len) in lengths.iter().enumerate() {
        for t in len as usize..seq {
            padded[(b * seq + t) * hidden..(b * seq + t + 1) * hidden].fill(1e6);
        }
    }
    for mode in [Pooling::Mean, Pooling::Cls, Pooling::Max] {
        for normalize in [false, true] {
            let pooled = ctx.empty_storage_buffer("pooled", (batch * hidden * 4) as u64).unwrap();
            let params = ctx.uniform_buffer("params", &PoolingParams::new(seq, hidden, mode, normalize));
            let bind_group = kernel.bind(&ctx, [&buffer(&ctx, &padded), &buffer(&ctx, &lengths), &pooled, &params]);
            let got = run(&ctx, &pooled, batch * hidden, |pass| kernel.encode(&ctx, pass, &bind_group, batch));
            let mut want = vec![0f32; batch * hidden];
            for (b, &len) in lengths.iter().enumerate() {
                let out = &mut want[b * hidden..(b + 1) * hidden];
                quiver_encoder::pooling::pool(
                    mode,
                    &tokens[b * seq * hidden..(b + 1) * seq * hidden],
                    hidden,
                    len as usize,
                    out,
                );
                if normalize {
                    quiver_encoder::pooling::normalize(out);
                }
            }
            let want: Vec<f64> = want.iter().map(|&x| x as f64).collect();
            assert_close(&got, &want, 1e-6, &format!("pooling {mode:?}, normalize {normalize}"));
        }
    }
}
