use quiver_encoder::EncoderError;

/// Everything that can go wrong on the GPU path. The engine falls back to the CPU on any of
/// them; `code()` tells it (and the browser) which.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no GPU adapter: {reason}")]
    NoAdapter { reason: String },

    #[error("the GPU adapter {adapter} refused a device: {reason}")]
    DeviceRequest { adapter: String, reason: String },

    #[error("the GPU device was lost: {reason}")]
    Lost { reason: String },

    #[error("beyond the GPU's limits: {what}")]
    Limits { what: String },

    #[error("GPU kernel {kernel} failed: {message}")]
    Kernel { kernel: &'static str, message: String },

    #[error("the GPU ran out of memory: {message}")]
    OutOfMemory { message: String },

    #[error("the GPU path does not support {what}")]
    Unsupported { what: String },

    #[error("{op}: {what}")]
    InvalidArgument { op: &'static str, what: String },

    #[error(transparent)]
    Model(#[from] EncoderError),
}

pub type Result<T, E = GpuError> = std::result::Result<T, E>;

impl GpuError {
    /// A stable, machine-readable name for the kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            GpuError::NoAdapter { .. } | GpuError::DeviceRequest { .. } => "E_GPU_UNAVAILABLE",
            GpuError::Lost { .. } => "E_GPU_LOST",
            GpuError::Limits { .. } => "E_GPU_LIMITS",
            GpuError::Kernel { .. } => "E_GPU_KERNEL",
            GpuError::OutOfMemory { .. } => "E_GPU_MEMORY",
            GpuError::Unsupported { .. } => "E_GPU_UNSUPPORTED",
            GpuError::InvalidArgument { .. } => "E_INVALID_ARGUMENT",
            GpuError::Model(e) => e.code(),
        }
    }
}
