//! Matrix products with Q8_0 and Q4_0 weights on their quantized values.
//!
//! A weight matrix `[outputs, inputs]` is repacked once at load: its quantized values as
//! stored (Q8_0: 32 bytes a block; Q4_0: the 16 packed bytes, unpacked in registers) and
//! its f16 block scales widened to f32, so no kernel converts a scale. Each product
//! quantizes the input rows to 8 bits per 32-value block, as GGML's Q8_0
//! (`d = amax / 127`, `q = round(x / d)`), and sums `d_w · d_x · (integer block dot)` over
//! the blocks. The kernels, one per instruction set, multiply a tile of weight rows by a
//! few input rows at once so that every block loaded serves several dot products.
//!
//! Each kernel names the [`Layout`] it reads: the wasm kernels take the rows as stored;
//! AVX-VNNI and AVX2 take panels of 8 rows interleaved 4 values at a time, so that one
//! `vpdpbusd` (or `maddubs` + `madd`) adds 4 products to each of 8 outputs and a block's
//! sums need no horizontal additions; AVX-512 VNNI takes them 8 values at a time, two lanes
//! of a 512-bit register per row.
//!
//! Each kernel also names the [`Activations`] it multiplies: signed bytes as above, or
//! unsigned 7-bit values from each block's minimum: for wasm relaxed-simd the only range
//! in which its byte product gives the same sums on every processor, for AVX2 the range in
//! which `maddubs` never saturates.

use std::sync::OnceLock;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::checkpoint::Blocks;
use crate::{EncoderError, Result};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512_vnni;
#[cfg(target_arch = "x86_64")]
mod avx_vnni;
#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
mod relaxed_simd;
mod scalar;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;

/// Values in a quantization block (along `inputs`).
pub(crate) const BLOCK: usize = 32;
/// Weight rows in a panel of the [`Layout::Panels`] and [`Layout::WidePanels`] layouts.
pub(crate) const PANEL: usize = 8;

/// How a kernel wants the weights laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Only the x86 kernels read the panel layouts.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) enum Layout {
    /// Row after row, each block's values as stored (Q4_0's nibbles packed), read in place
    /// from the weights file: each block's values follow its f16 scale there, `2 + bytes`
    /// after the previous block's (the [`WeightRows::step`]).
    Rows,
    /// Panels of [`PANEL`] rows (the last one padded with zero rows). Per panel and block:
    /// the values as unsigned bytes `q + offset` ([`BlockType::offset`]), in 8 groups of 32 bytes, group `g` holding
    /// values `4g..4g + 4` of row 0, then of row 1, …; the panel's 8 scales side by side.
    Panels,
    /// As [`Layout::Panels`], in 4 groups of 64 bytes, group `g` holding values
    /// `8g..8g + 8` of row 0, then of row 1, ….
    WidePanels,
    /// As [`Layout::Panels`], the values as signed bytes `q` (no offset; padding rows are
    /// zeros), for inputs quantized as [`Activations::Unsigned7`].
    SignedPanels,
}

impl Layout {
    /// Consecutive values of one row side by side in a group (in [`Layout::Rows`], a row's
    /// values simply follow one another).
    pub(crate) const fn group(self) -> usize {
        match self {
            Layout::Rows => 1,
            Layout::Panels | Layout::SignedPanels => 4,
            Layout::WidePanels => 8,
        }
    }
}

/// How a kernel wants the input rows quantized, per block of 32 values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activations {
    /// GGML's Q8_0: `x ≈ d·q`, `q` in ±127, `d = amax / 127`; with each block's `Σ q`.
    Signed,
    /// `x ≈ min + d·q`, `q` in `0..=127`, `d = (max − min) / 127`: relaxed-simd's 7-bit
    /// operand, which x86 reads as unsigned and Arm as signed, alike only in that range.
    /// The product then needs each weight block's `d_w · Σ w` (its total) times `min`.
    Unsigned7,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockType {
    /// 32 signed bytes a block.
    Q8_0,
    /// 16 bytes a block: value `j` in the low nibble of byte `j`, value `j + 16` in its
    /// high nibble, each stored as `q + 8`.
    Q4_0,
}

impl BlockType {
    /// What the panel layouts add to each value to make it an unsigned byte: the least
    /// that does, so the products' offset terms stay small.
    pub(crate) fn offset(self) -> i32 {
        match self {
            BlockType::Q8_0 => 128,
            BlockType::Q4_0 => 8,
        }
    }

    /// Bytes of quantized values in one block.
    fn bytes(self) -> usize {
        match self {
            BlockType::Q8_0 => BLOCK,
            BlockType::Q4_0 => BLOCK / 2,
        }
    }
}

/// A `[outputs, inputs]` weight matrix in Q8_0 or Q4_0, laid out for the kernels.
pub(crate) struct QuantizedWeight {
    block_type: BlockType,
    layout: Layout,
    outputs: usize,
    /// Blocks in each row: `inputs / 32`.
    blocks: usize,
    /// A scale per row and block, in the layout's order.
    scales: Vec<f32>,
    /// For [`Activations::Unsigned7`], each block's `d_w · Σ w`, in the layout's order;
    /// otherwise empty.
    totals: Vec<f32>,
    /// The quantized values, in the layout's order.
    quants: Quants,
}

/// The quantized values of a [`QuantizedWeight`].
enum Quants {
    /// [`Layout::Rows`]: the stored blocks themselves, past the first scale (no copy: in
    /// wasm, whose memory never shrinks, a copy would stay for good).
    InPlace(Blocks),
    /// [`Layout::Panels`] and [`Layout::WidePanels`]: repacked.
    Packed(Vec<u8>),
}

impl Quants {
    fn bytes(&self) -> &[u8] {
        match self {
            Quants::InPlace(blocks) => &blocks.data()[2..],
            Quants::Packed(bytes) => bytes,
        }
    }
}

/// Some consecutive rows of a [`QuantizedWeight`] (whole panels, in the panel layouts).
pub(crate) struct WeightRows<'a> {
    block_type: BlockType,
    layout: Layout,
    blocks: usize,
    rows: usize,
    scales: &'a [f32],
    /// See [`QuantizedWeight::totals`].
    totals: &'a [f32],
    quants: &'a [u8],
    /// In [`Layout::Rows`], bytes from one block's values to the next's.
    step: usize,
}

impl WeightRows<'_> {
    fn rows(&self) -> usize {
        self.rows
    }
}

/// Input rows quantized per block, `rows × blocks` of each.
pub(crate) struct QuantizedRows<'a> {
    activations: Activations,
    blocks: usize,
    scales: &'a [f32],
    /// [`Activations::Signed`]: each block's sum of values (what the panel layouts'
    /// offset adds, over the offset); otherwise empty.
    sums: &'a [i32],
    /// [`Activations::Unsigned7`]: each block's minimum; otherwise empty.
    mins: &'a [f32],
    quants: &'a [i8],
}

impl QuantizedRows<'_> {
    fn rows(&self) -> usize {
        self.scales.len() / self.blocks
    }
}

/// Input rows quantized for a kernel: what [`QuantizedRows`] views.
struct QuantizedInputs {
    activations: Activations,
    blocks: usize,
    scales: Vec<f32>,
    sums: Vec<i32>,
    mins: Vec<f32>,
    quants: Vec<i8>,
}

impl QuantizedInputs {
    /// `x`, of rows of `inputs` values, quantized in parallel.
    fn new(x: &[f32], inputs: usize, activations: Activations) -> Self {
        let rows = x.len() / inputs;
        let blocks = inputs / BLOCK;
        let per_block = |used: Activations| if activations == used { rows * blocks } else { 0 };
        let mut q = QuantizedInputs {
            activations,
            blocks,
            scales: vec![0.0; rows * blocks],
            sums: vec![0; per_block(Activations::Signed)],
            mins: vec![0.0; per_block(Activations::Unsigned7)],
            quants: vec![0; rows * inputs],
        };
        let task = blocks * ROWS_PER_TASK;
        let x = x.par_chunks(inputs * ROWS_PER_TASK);
        let scales = q.scales.par_chunks_mut(task);
        let quants = q.quants.par_chunks_mut(inputs * ROWS_PER_TASK);
        match activations {
            Activations::Signed => x
                .zip(scales)
                .zip(q.sums.par_chunks_mut(task))
                .zip(quants)
                .for_each(|(((x, scales), sums), quants)| quantize_rows(x, scales, sums, quants)),
            Activations::Unsigned7 => x
                .zip(scales)
                .zip(q.mins.par_chunks_mut(task))
                .zip(quants)
                .for_each(|(((x, scales), mins), quants)| quantize_rows_unsigned7(x, scales, mins, quants)),
        }
        q
    }

    /// Rows `start..end`.
    fn rows(&self, start: usize, end: usize) -> QuantizedRows<'_> {
        // `sums` and `mins` are empty where the activations have none.
        let blocks = |empty: bool| if empty { 0..0 } else { start * self.blocks..end * self.blocks };
        QuantizedRows {
            activations: self.activations,
            blocks: self.blocks,
            scales: &self.scales[blocks(false)],
            sums: &self.sums[blocks(self.sums.is_empty())],
            mins: &self.mins[blocks(self.mins.is_empty())],
            quants: &self.quants[start * self.blocks * BLOCK..end * self.blocks * BLOCK],
        }
    }
}

/// The block products of one instruction set.
pub(crate) trait Kernels: Sync + Send {
    /// `QUIVER_KERNELS` picks a kernel by this name.
    fn name(&self) -> &'static str;
    /// How the weights must be laid out.
    fn layout(&self) -> Layout {
        Layout::Rows
    }
    /// How the input rows must be quantized.
    fn activations(&self) -> Activations {
        Activations::Signed
    }
    /// `out[i · stride + j] = x_i · w_j` for every input row `i` and weight row `j`.
    fn matmul(&self, w: &WeightRows, x: &QuantizedRows, out: &mut [f32], stride: usize);
}

/// Panics unless `w` and `x` are whole blocks of equal length in the kernel's layout and
/// `out` holds every product: the bounds the SIMD kernels' unchecked loads rely on.
fn check_sizes(kernels: &dyn Kernels, w: &WeightRows, x: &QuantizedRows, out: &[f32], stride: usize) {
    assert_eq!(w.layout, kernels.layout());
    assert_eq!(w.blocks, x.blocks);
    match w.layout {
        Layout::Rows => {
            assert_eq!(w.scales.len(), w.rows * w.blocks);
            assert!(w.step >= w.block_type.bytes());
            let last = (w.rows * w.blocks).checked_sub(1).map_or(0, |last| last * w.step + w.block_type.bytes());
            assert!(w.quants.len() >= last);
        }
        Layout::Panels | Layout::WidePanels | Layout::SignedPanels => {
            let stored = w.rows.next_multiple_of(PANEL);
            assert_eq!(w.scales.len(), stored * w.blocks);
            assert_eq!(w.quants.len(), stored * w.blocks * BLOCK);
        }
    }
    assert_eq!(x.activations, kernels.activations());
    assert_eq!(x.quants.len(), x.scales.len() * BLOCK);
    match x.activations {
        Activations::Signed => assert_eq!(x.sums.len(), x.scales.len()),
        Activations::Unsigned7 => {
            assert!(matches!(w.layout, Layout::Rows | Layout::SignedPanels));
            assert_eq!(x.mins.len(), x.scales.len());
            assert_eq!(w.totals.len(), w.scales.len());
        }
    }
    assert!(w.rows() <= stride && out.len() >= x.rows().saturating_sub(1) * stride + w.rows());
}

/// Every implementation this processor can run, the portable one first.
pub(crate) fn available() -> Vec<&'static dyn Kernels> {
    let mut all: Vec<&'static dyn Kernels> = vec![&scalar::Scalar(Activations::Signed)];
    #[cfg(target_arch = "x86_64")]
    if avx2::Avx2::detect() {
        all.push(&avx2::Avx2);
    }
    #[cfg(target_arch = "x86_64")]
    if avx_vnni::AvxVnni::detect() {
        all.push(&avx_vnni::AvxVnni);
    }
    #[cfg(target_arch = "x86_64")]
    if avx512_vnni::Avx512Vnni::detect() {
        all.push(&avx512_vnni::Avx512Vnni);
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    all.push(&simd128::Simd128);
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    all.push(&relaxed_simd::RelaxedSimd);
    all
}

/// The fastest kernels here, or those `QUIVER_KERNELS` names (`scalar`, `avx2`, …): what
/// a processor without the faster instructions runs, measured on this one.
pub(crate) fn best() -> &'static dyn Kernels {
    static BEST: OnceLock<&'static dyn Kernels> = OnceLock::new();
    *BEST.get_or_init(|| {
        let all = available();
        let wanted = std::env::var("QUIVER_KERNELS").ok();
        wanted
            .and_then(|name| all.iter().copied().find(|k| k.name() == name))
            .unwrap_or_else(|| *all.last().expect("scalar is always available"))
    })
}

/// Input rows per parallel task: enough to reuse each weight tile across many rows.
const ROWS_PER_TASK: usize = 32;

impl QuantizedWeight {
    /// Repacks a Q8_0 or Q4_0 matrix for this processor's kernels; `None` for other types.
    pub fn from_blocks(q: &Blocks) -> Result<Option<Self>> {
        Self::laid_out(q, best().layout(), best().activations())
    }

    /// Repacks a Q8_0 or Q4_0 matrix in `layout`, for inputs quantized as `activations`;
    /// `None` for other types.
    fn laid_out(q: &Blocks, layout: Layout, activations: Activations) -> Result<Option<Self>> {
        let block_type = match q.dtype {
            GgmlDType::Q8_0 => BlockType::Q8_0,
            GgmlDType::Q4_0 => BlockType::Q4_0,
            _ => return Ok(None),
        };
        let (outputs, inputs) = q.dims2()?;
        let data = q.data();
        let bytes = block_type.bytes();
        let count = outputs * inputs / BLOCK;
        // Each stored block is an f16 scale followed by the quantized values.
        // Empty matrices would divide by zero per call: a crafted config must not trap wasm.
        if inputs == 0 || outputs == 0 || inputs % BLOCK != 0 || data.len() != count * (2 + bytes) {
            return Err(EncoderError::InvalidWeights(format!(
                "a {block_type:?} matrix of {outputs}×{inputs} has {} bytes",
                data.len()
            )));
        }
        let half_scales: Vec<u8> = data.chunks_exact(2 + bytes).flat_map(|block| [block[0], block[1]]).collect();
        let scales = Tensor::from_raw_buffer(&half_scales, DType::F16, &[count], &Device::Cpu)?
            .to_dtype(DType::F32)?
            .to_vec1()?;
        let mut rows = QuantizedWeight {
            block_type,
            layout: Layout::Rows,
            outputs,
            blocks: inputs / BLOCK,
            scales,
            totals: Vec::new(),
            quants: Quants::InPlace(q.clone()),
        };
        if activations == Activations::Unsigned7 {
            rows.totals = (0..count)
                .map(|at| {
                    let (j, b) = (at / rows.blocks, at % rows.blocks);
                    let sum: i32 = (0..BLOCK).map(|k| rows.value(j, b, k) as i32).sum();
                    rows.scales[at] * sum as f32
                })
                .collect();
        }
        Ok(Some(match layout {
            Layout::Rows => rows,
            Layout::Panels | Layout::WidePanels | Layout::SignedPanels => rows.panels(layout),
        }))
    }

    /// In [`Layout::Rows`], bytes from one block's values to the next's.
    fn step(&self) -> usize {
        2 + self.block_type.bytes()
    }

    /// Value `k` of block `b` of row `j`, in [`Layout::Rows`].
    fn value(&self, j: usize, b: usize, k: usize) -> i8 {
        let block = &self.quants.bytes()[(j * self.blocks + b) * self.step()..];
        match self.block_type {
            BlockType::Q8_0 => block[k] as i8,
            BlockType::Q4_0 if k < BLOCK / 2 => (block[k] & 0x0F) as i8 - 8,
            BlockType::Q4_0 => (block[k - BLOCK / 2] >> 4) as i8 - 8,
        }
    }

    /// This matrix, in [`Layout::Rows`], repacked in a panel `layout`.
    fn panels(self, layout: Layout) -> Self {
        let panels = self.outputs.div_ceil(PANEL);
        let width = layout.group();
        let mut scales = vec![0f32; panels * self.blocks * PANEL];
        let mut totals = vec![0f32; if self.totals.is_empty() { 0 } else { scales.len() }];
        // Padding rows are zeros: `0 + offset`.
        let offset = if layout == Layout::SignedPanels { 0 } else { self.block_type.offset() };
        let mut quants = vec![offset as u8; panels * self.blocks * PANEL * BLOCK];
        for j in 0..self.outputs {
            let (panel, row) = (j / PANEL, j % PANEL);
            for b in 0..self.blocks {
                let at = (panel * self.blocks + b) * PANEL;
                scales[at + row] = self.scales[j * self.blocks + b];
                if !totals.is_empty() {
                    totals[at + row] = self.totals[j * self.blocks + b];
                }
                for k in 0..BLOCK {
                    let (group, lane) = (k / width, k % width);
                    quants[at * BLOCK + (group * PANEL + row) * width + lane] =
                        (self.value(j, b, k) as i32 + offset) as u8;
                }
            }
        }
        QuantizedWeight { layout, scales, totals, quants: Quants::Packed(quants), ..self }
    }

    pub fn inputs(&self) -> usize {
        self.blocks * BLOCK
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Weight rows `start..end`; in the panel layouts, `start` begins a panel.
    fn rows(&self, start: usize, end: usize) -> WeightRows<'_> {
        let quants = self.quants.bytes();
        let (first, last, quants) = match self.layout {
            Layout::Rows => {
                let (from, to) = (start * self.blocks * self.step(), end * self.blocks * self.step());
                // The last block needs its values only, not a next block's scale.
                (start, end, &quants[from..to.saturating_sub(2).max(from)])
            }
            Layout::Panels | Layout::WidePanels | Layout::SignedPanels => {
                assert_eq!(start % PANEL, 0, "panels are split whole");
                let last = end.next_multiple_of(PANEL);
                (start, last, &quants[start * self.blocks * BLOCK..last * self.blocks * BLOCK])
            }
        };
        let totals =
            if self.totals.is_empty() { &[][..] } else { &self.totals[first * self.blocks..last * self.blocks] };
        WeightRows {
            block_type: self.block_type,
            layout: self.layout,
            blocks: self.blocks,
            rows: end - start,
            scales: &self.scales[first * self.blocks..last * self.blocks],
            totals,
            quants,
            step: self.step(),
        }
    }

    /// `x · Wᵀ` for `x` of `rows × inputs` values: `rows × outputs` values.
    pub fn matmul(&self, x: &[f32]) -> Vec<f32> {
        let kernels = best();
        let (inputs, outputs) = (self.inputs(), self.outputs);
        let rows = x.len() / inputs;
        if rows == 0 || outputs == 0 {
            return vec![0.0; rows * outputs];
        }
        let inputs = QuantizedInputs::new(x, inputs, kernels.activations());
        let quantized = |start: usize, end: usize| inputs.rows(start, end);

        let mut out = vec![0f32; rows * outputs];
        let threads = rayon::current_num_threads();
        if threads == 1 || rows >= threads * ROWS_PER_TASK {
            out.par_chunks_mut(outputs * ROWS_PER_TASK).enumerate().for_each(|(task, out)| {
                let start = task * ROWS_PER_TASK;
                let x = quantized(start, start + out.len() / outputs);
                kernels.matmul(&self.rows(0, outputs), &x, out, outputs);
            });
        } else {
            // Few input rows (a single query): split the weight rows instead, in whole
            // panels, which keeps the other kernels' tiles of 4 rows whole too.
            let per_task = outputs.div_ceil(threads * 2).next_multiple_of(PANEL);
            let x = quantized(0, rows);
            let parts: Vec<(usize, Vec<f32>)> = (0..outputs)
                .step_by(per_task)
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|start| {
                    let end = (start + per_task).min(outputs);
                    let mut part = vec![0f32; rows * (end - start)];
                    kernels.matmul(&self.rows(start, end), &x, &mut part, end - start);
                    (start, part)
                })
                .collect();
            for (start, part) in parts {
                let width = part.len() / rows;
                for (row, values) in out.chunks_exact_mut(outputs).zip(part.chunks_exact(width)) {
                    row[start..start + width].copy_from_slice(values);
                }
            }
        }
        out
    }
}

/// Quantizes rows of `x` as GGML's Q8_0 does, one scale per 32 values, with f32 scales;
/// and sums each block's values.
#[inline(always)]
// `max` then `min`, not `clamp`: they map a NaN into range, which the unchecked cast needs.
#[allow(clippy::manual_clamp)]
// In wasm only the reference the simd128 code is tested against.
#[cfg_attr(all(target_arch = "wasm32", target_feature = "simd128"), allow(dead_code))]
fn quantize_blocks(x: &[f32], scales: &mut [f32], sums: &mut [i32], quants: &mut [i8]) {
    // Plain index loops over 8 lanes: the shape the vectoriser handles best.
    for b in 0..scales.len() {
        let block = &x[b * BLOCK..(b + 1) * BLOCK];
        let mut lanes = [0f32; 8];
        for i in (0..BLOCK).step_by(8) {
            for l in 0..8 {
                let a = block[i + l].abs();
                lanes[l] = if a > lanes[l] { a } else { lanes[l] };
            }
        }
        let mut amax = 0f32;
        for a in lanes {
            amax = if a > amax { a } else { amax };
        }
        let d = amax / 127.0;
        let inverse = if d == 0.0 { 0.0 } else { 1.0 / d };
        let q = &mut quants[b * BLOCK..(b + 1) * BLOCK];
        let mut sum = [0i32; 8];
        for i in (0..BLOCK).step_by(8) {
            for l in 0..8 {
                // Clamped (a NaN too) into ±127; adding and subtracting 1.5 · 2^23 then rounds
                // to the nearest integer in a form every instruction set vectorises.
                let r = (block[i + l] * inverse).max(-127.0).min(127.0);
                // SAFETY: `r` is an integer in [-127, 127].
                let v: i32 = unsafe { ((r + 12_582_912.0) - 12_582_912.0).to_int_unchecked() };
                q[i + l] = v as i8;
                sum[l] += v;
            }
        }
        scales[b] = d;
        sums[b] = sum.iter().sum();
    }
}

/// [`quantize_blocks`], in AVX2 where the processor has it and in wasm simd128 (the
/// vectoriser makes poor code of the portable loops' lane-wise maximum and narrowing
/// stores, and none at all for wasm).
fn quantize_rows(x: &[f32], scales: &mut [f32], sums: &mut [i32], quants: &mut [i8]) {
    #[cfg(target_arch = "x86_64")]
    if crate::ops::has_avx2() {
        // SAFETY: the processor has AVX2 and FMA.
        return unsafe { avx2::quantize(x, scales, sums, quants) };
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    simd128::quantize(x, scales, sums, quants);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    quantize_blocks(x, scales, sums, quants);
}

/// Quantizes rows of `x` as [`Activations::Unsigned7`], one scale and minimum per 32 values.
#[inline(always)]
#[allow(clippy::manual_clamp)]
#[cfg_attr(all(target_arch = "wasm32", target_feature = "simd128"), allow(dead_code))]
fn quantize_blocks_unsigned7(x: &[f32], scales: &mut [f32], mins: &mut [f32], quants: &mut [i8]) {
    for b in 0..scales.len() {
        let block = &x[b * BLOCK..(b + 1) * BLOCK];
        let (mut low, mut high) = ([f32::INFINITY; 8], [f32::NEG_INFINITY; 8]);
        for i in (0..BLOCK).step_by(8) {
            for l in 0..8 {
                let v = block[i + l];
                low[l] = if v < low[l] { v } else { low[l] };
                high[l] = if v > high[l] { v } else { high[l] };
            }
        }
        let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
        for (&lo, &hi) in low.iter().zip(&high) {
            min = if lo < min { lo } else { min };
            max = if hi > max { hi } else { max };
        }
        // A block of NaNs has no finite range: zeros, as the signed quantization gives.
        if !(max - min).is_finite() {
            (min, max) = (0.0, 0.0);
        }
        let d = (max - min) / 127.0;
        let inverse = if d == 0.0 { 0.0 } else { 1.0 / d };
        let q = &mut quants[b * BLOCK..(b + 1) * BLOCK];
        for i in (0..BLOCK).step_by(8) {
            for l in 0..8 {
                // Clamped (a NaN too) into 0..=127, rounded as in `quantize_blocks`.
                let r = ((block[i + l] - min) * inverse).max(0.0).min(127.0);
                // SAFETY: `r` is an integer in [0, 127].
                let v: i32 = unsafe { ((r + 12_582_912.0) - 12_582_912.0).to_int_unchecked() };
                q[i + l] = v as i8;
            }
        }
        scales[b] = d;
        mins[b] = min;
    }
}

/// [`quantize_blocks_unsigned7`], in AVX2 where the processor has it and in wasm simd128.
fn quantize_rows_unsigned7(x: &[f32], scales: &mut [f32], mins: &mut [f32], quants: &mut [i8]) {
    #[cfg(target_arch = "x86_64")]
    if crate::ops::has_avx2() {
        // SAFETY: the processor has AVX2 and FMA.
        return unsafe { avx2::quantize_unsigned7(x, scales, mins, quants) };
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    simd128::quantize_unsigned7(x, scales, mins, quants);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    quantize_blocks_unsigned7(x, scales, mins, quants);
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::QTensor;

    use super::*;

    fn random(len: usize, seed: &mut u64) -> Vec<f32> {
        (0..len)
            .map(|_| {
                *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The product in f64 of the dequantized weights and the quantized inputs.
    fn reference(weight: &QTensor, x: &QuantizedInputs, inputs: usize) -> Vec<f64> {
        let w: Vec<f32> = weight.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let xq: Vec<f64> = x
            .quants
            .iter()
            .enumerate()
            .map(|(i, &q)| {
                let min = x.mins.get(i / BLOCK).copied().unwrap_or(0.0);
                q as f64 * x.scales[i / BLOCK] as f64 + min as f64
            })
            .collect();
        xq.chunks_exact(inputs)
            .flat_map(|x| w.chunks_exact(inputs).map(move |w| x.iter().zip(w).map(|(a, b)| a * *b as f64).sum::<f64>()))
            .collect()
    }

    /// Every kernel, on shapes with odd row counts and tile remainders, against the f64
    /// reference; and every kernel against the scalar one, given the same quantized inputs,
    /// to float rounding.
    #[test]
    fn kernels_match_the_reference() {
        let mut seed = 7;
        for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_0] {
            for (rows, outputs, inputs) in [(1, 4, 32), (3, 7, 64), (5, 13, 96), (33, 9, 384), (70, 130, 128)] {
                let w = Tensor::from_vec(random(outputs * inputs, &mut seed), (outputs, inputs), &Device::Cpu);
                let weight = QTensor::quantize(&w.unwrap(), dtype).unwrap();
                // Inputs off centre, as after GELU: the unsigned quantization's minimum counts.
                let x: Vec<f32> = random(rows * inputs, &mut seed).iter().map(|v| v + 0.3).collect();
                let blocks_of = Blocks::from_qtensor(&weight).unwrap();
                let packed =
                    |layout, activations| QuantizedWeight::laid_out(&blocks_of, layout, activations).unwrap().unwrap();
                // The scalar kernels' product of `xq`.
                let scalar_product = |xq: &QuantizedInputs| {
                    let mut out = vec![0f32; rows * outputs];
                    let weights = packed(Layout::Rows, xq.activations);
                    scalar::Scalar(xq.activations).matmul(
                        &weights.rows(0, outputs),
                        &xq.rows(0, rows),
                        &mut out,
                        outputs,
                    );
                    out
                };
                for kernels in available() {
                    let activations = kernels.activations();
                    let xq = QuantizedInputs::new(&x, inputs, activations);
                    let expected = reference(&weight, &xq, inputs);
                    let scalar = scalar_product(&xq);
                    let mut got = vec![f32::NAN; rows * outputs];
                    let weights = packed(kernels.layout(), activations);
                    kernels.matmul(&weights.rows(0, outputs), &xq.rows(0, rows), &mut got, outputs);
                    let what = format!("{} {dtype:?} {rows}×{inputs} · {outputs}×{inputs}", kernels.name());
                    for ((g, s), e) in got.iter().zip(&scalar).zip(&expected) {
                        // Relative to the typical output size: outputs near zero are sums of
                        // larger terms.
                        let scale = (inputs as f64).sqrt() * 0.1;
                        assert!(((*g as f64) - e).abs() < 1e-5 * scale, "{what}: {g} != reference {e}");
                        assert!((g - s).abs() <= 1e-5 * (scale as f32), "{what}: {g} != scalar {s}");
                    }
                }
                // The threaded product, both ways of splitting, equals the kernel's.
                let activations = best().activations();
                let scalar = scalar_product(&QuantizedInputs::new(&x, inputs, activations));
                let full = packed(best().layout(), activations).matmul(&x);
                for (f, s) in full.iter().zip(&scalar) {
                    assert!((f - s).abs() <= 1e-5 * (inputs as f32).sqrt() * 0.1, "matmul {dtype:?}: {f} != {s}");
                }
            }
        }
    }

    /// Both dispatched quantizations (AVX2 natively, simd128 in wasm) give the portable
    /// code's values,
    /// NaN, infinities, zeros and ties included.
    #[test]
    fn quantization_matches_the_portable_code() {
        let mut seed = 5;
        let mut x: Vec<f32> = random(64 * BLOCK, &mut seed).iter().map(|v| v * 7.0).collect();
        x[3] = f32::NAN;
        x[40] = f32::INFINITY;
        x[70] = -f32::INFINITY;
        x[96..128].fill(0.0);
        x[128..160].fill(f32::NAN);
        // Ties: 0.5 · d and 1.5 · d round to even.
        x[160] = 127.0;
        x[161] = 0.5;
        x[162] = 1.5;
        x[163] = -2.5;
        let blocks = x.len() / BLOCK;
        type Quantize = fn(&[f32], &mut [f32], &mut [i32], &mut [i8]);
        let run = |f: Quantize| {
            let (mut scales, mut sums, mut quants) = (vec![0f32; blocks], vec![0i32; blocks], vec![0i8; x.len()]);
            f(&x, &mut scales, &mut sums, &mut quants);
            (scales.iter().map(|s| s.to_bits()).collect::<Vec<_>>(), sums, quants)
        };
        assert_eq!(run(quantize_rows), run(quantize_blocks));
        type Unsigned = fn(&[f32], &mut [f32], &mut [f32], &mut [i8]);
        let run = |f: Unsigned| {
            let (mut scales, mut mins, mut quants) = (vec![0f32; blocks], vec![0f32; blocks], vec![0i8; x.len()]);
            f(&x, &mut scales, &mut mins, &mut quants);
            // `+ 0.0` makes a minimum of `-0.0` the `0.0` it equals.
            let bits = |v: &[f32]| v.iter().map(|s| (s + 0.0).to_bits()).collect::<Vec<_>>();
            (bits(&scales), bits(&mins), quants)
        };
        assert_eq!(run(quantize_rows_unsigned7), run(quantize_blocks_unsigned7));
    }

    /// A build with relaxed-simd multiplies with it (the browser's relaxed build relies on
    /// it), and the wasm kernels are all checked above.
    #[test]
    #[cfg(target_arch = "wasm32")]
    fn wasm_builds_run_their_kernels() {
        let names: Vec<_> = available().iter().map(|k| k.name()).collect();
        assert!(names.contains(&"simd128"), "{names:?}");
        #[cfg(target_feature = "relaxed-simd")]
        assert_eq!(best().name(), "relaxed-simd");
    }

    /// The unsigned quantization keeps each block's range: its minimum and maximum come back
    /// to within rounding, and every value to within half a step.
    #[test]
    fn unsigned_quantization_spans_each_block() {
        let mut seed = 11;
        let x: Vec<f32> = random(4 * 64, &mut seed).iter().map(|v| v * 3.0 + 1.0).collect();
        let q = QuantizedInputs::new(&x, 64, Activations::Unsigned7);
        for (b, block) in x.chunks_exact(BLOCK).enumerate() {
            let values = &q.quants[b * BLOCK..(b + 1) * BLOCK];
            assert!(values.iter().all(|&v| (0..=127).contains(&v)), "{values:?}");
            assert!(values.contains(&0) && values.contains(&127), "{values:?}");
            for (&v, &x) in values.iter().zip(block) {
                let back = q.mins[b] + q.scales[b] * v as f32;
                assert!((back - x).abs() <= q.scales[b] * 0.5 + 1e-6, "{x} came back as {back}");
            }
        }
    }
}
