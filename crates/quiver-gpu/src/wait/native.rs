//! Waiting for a read-back natively: `poll` drives the device and runs mapping callbacks.

use std::time::Duration;

use crate::context::{Mapping, MappingOutcome};
use crate::{GpuContext, GpuError, Result};

/// The mapping's outcome once the GPU is done, or `None` when `timeout` passed first.
pub(crate) async fn mapping(
    ctx: &GpuContext,
    op: &'static str,
    mapping: Mapping,
    timeout: Option<Duration>,
) -> Result<Option<MappingOutcome>> {
    match ctx.device().poll(wgpu::PollType::Wait { submission_index: None, timeout }) {
        Ok(_) => Ok(Some(mapping.await)),
        Err(wgpu::PollError::Timeout) => Ok(None),
        Err(e) => Err(GpuError::Lost { reason: format!("{op}: {e}") }),
    }
}
