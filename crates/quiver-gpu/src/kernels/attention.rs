//! `BertSelfAttention` for all heads of a right-padded batch: scores, masked softmax and
//! the weighted sum of values in one kernel, one invocation per query of a head.

use wgpu::{BindGroup, ComputePass};

use super::Kernel;
use crate::context::workgroups;
use crate::{GpuContext, GpuError, Result};

pub const SOURCE: &str = include_str!("attention.wgsl");
/// Each invocation keeps its head's query and output in registers, as up to 16 vec4.
pub const MAX_HEAD_DIM: usize = 64;
/// Invocations per workgroup, each one (head, query) of a sequence.
const QUERIES_PER_GROUP: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AttentionParams {
    seq: u32,
    head_dim: u32,
    hidden: u32,
    scale: f32,
}

impl AttentionParams {
    /// Sequences padded to `seq` tokens, `hidden / head_dim` heads, scores scaled by
    /// 1/√head_dim.
    pub fn new(seq: usize, head_dim: usize, hidden: usize) -> Self {
        AttentionParams {
            seq: seq as u32,
            head_dim: head_dim as u32,
            hidden: hidden as u32,
            scale: 1.0 / (head_dim as f32).sqrt(),
        }
    }
}

kernel!(
    /// Binds `qkv` (`[batch·seq, 3·hidden]`), the sequences' lengths (u32), `context`
    /// (`[batch·seq, hidden]`) and a uniform [`AttentionParams`].
    Attention
);

impl Attention {
    pub async fn new(ctx: &GpuContext) -> Result<Self> {
        Ok(Attention(Kernel::build(ctx, "attention", SOURCE, &[]).await?))
    }

    /// Records attention over `[batch, seq, heads, head_dim]`.
    pub fn encode(
        &self,
        ctx: &GpuContext,
        pass: &mut ComputePass<'_>,
        group: &BindGroup,
        shape: [usize; 4],
    ) -> Result<()> {
        let [batch, seq, heads, head_dim] = shape;
        if head_dim > MAX_HEAD_DIM || !head_dim.is_multiple_of(4) {
            return Err(GpuError::Unsupported {
                what: format!("attention heads of {head_dim} dimensions (a multiple of 4, at most {MAX_HEAD_DIM})"),
            });
        }
        let queries = workgroups(ctx, "attention queries", heads * seq, QUERIES_PER_GROUP)?;
        self.dispatch(pass, group, [queries, workgroups(ctx, "attention sequences", batch, 1)?, 1]);
        Ok(())
    }
}
