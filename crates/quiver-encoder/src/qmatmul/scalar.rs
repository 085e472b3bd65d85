//! Portable kernels: the reference the others are tested against, and the fallback.

use super::{check_sizes, Activations, BlockType, Kernels, QuantizedRows, WeightRows, BLOCK};

/// The reference, for inputs quantized as `.0`.
pub struct Scalar(pub Activations);

impl Kernels for Scalar {
    fn name(&self) -> &'static str {
        "scalar"
    }

    fn activations(&self) -> Activations {
        self.0
    }

    fn matmul(&self, w: &WeightRows, x: &QuantizedRows, out: &mut [f32], stride: usize) {
        check_sizes(self, w, x, out, stride);
        let bytes = w.block_type.bytes();
        let mut values = [0i8; BLOCK];
        for j in 0..w.rows() {
            for b in 0..w.blocks {
                let block = j * w.blocks + b;
                let stored = &w.quants[block * w.step..block * w.step + bytes];
                match w.block_type {
                    BlockType::Q8_0 => values.copy_from_slice(bytemuck::cast_slice(stored)),
                    BlockType::Q4_0 => {
                        for (k, &byte) in stored.iter().enumerate() {
                            values[k] = (byte & 0x0F) as i8 - 8;
                            values[k + BLOCK / 2] = (byte >> 4) as i8 - 8;
                        }
                    }
                }
                for i in 0..x.rows() {
                    let x_block = i * x.blocks + b;
                    let x_values = &x.quants[x_block * BLOCK..(x_block + 1) * BLOCK];
                    let dot: i32 = values.iter().zip(x_values).map(|(&a, &b)| a as i32 * b as i32).sum();
                    let scale = w.scales[block] * x.scales[x_block];
                    // Unsigned inputs are `min + d·q`: the minimum times the weights' total.
                    let offset = match x.activations {
                        Activations::Signed => 0.0,
                        Activations::Unsigned7 => {
                            x.mins[x_block] * w.scales[block] * values.iter().map(|&v| v as i32).sum::<i32>() as f32
                        }
                    };
                    // The first block sets the output, so `out` needs no clearing.
                    let o = &mut out[i * stride + j];
                    *o = if b == 0 { 0.0 } else { *o } + scale * dot as f32 + offset;
                }
            }
        }
    }
}
