//! The adapter, device and queue, created once, with what every kernel needs from them:
//! buffers checked against the device's limits, pipelines whose compile errors come back as
//! errors, and read-backs that work the same natively and in the browser.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::search::SearchKernels;
use crate::{wait, GpuError, Result};

/// One device and its queue. Cheap to clone: every clone shares the device.
#[derive(Clone)]
pub struct GpuContext {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    shader_f16: bool,
    health: Arc<Health>,
    /// Built on the first search upload, then shared by every index uploaded to the device.
    search_kernels: Arc<Mutex<Option<Arc<SearchKernels>>>>,
    pipelines_built: Arc<AtomicUsize>,
}

/// What the device reported outside any call: that it was lost, or an error nobody caught.
#[derive(Default)]
struct Health {
    lost: AtomicBool,
    lost_reason: Mutex<Option<String>>,
    uncaptured: Mutex<Option<Uncaptured>>,
}

/// A `wgpu::Error` as text: the error itself is not `Send` in the browser.
enum Uncaptured {
    OutOfMemory(String),
    Other(String),
}

impl Health {
    fn record(&self, error: wgpu::Error) {
        let error = match error {
            wgpu::Error::OutOfMemory { source } => Uncaptured::OutOfMemory(source.to_string()),
            other => Uncaptured::Other(other.to_string()),
        };
        // The first error is the cause; later ones are usually its consequences.
        let mut slot = self.uncaptured.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(error);
    }

    fn mark_lost(&self, reason: String) {
        *self.lost_reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
        self.lost.store(true, Ordering::SeqCst);
    }

    fn lost_error(&self) -> GpuError {
        let reason = self.lost_reason.lock().unwrap_or_else(|e| e.into_inner()).clone();
        GpuError::Lost { reason: reason.unwrap_or_else(|| "no reason given".into()) }
    }
}

impl GpuContext {
    /// The device of the best adapter, or `None` when there is no adapter at all (no GPU
    /// driver natively, no `navigator.gpu` in the browser). [`GpuContext::request`] says why.
    pub async fn new() -> Result<Option<GpuContext>> {
        match Self::request().await {
            Err(GpuError::NoAdapter { .. }) => Ok(None),
            other => other.map(Some),
        }
    }

    /// The device of the best adapter; [`GpuError::NoAdapter`] carries the reason when
    /// there is none. Natively Vulkan, Metal or DX12 (`WGPU_BACKEND` overrides), never
    /// OpenGL, whose compute support is partial; in the browser WebGPU.
    ///
    /// The device gets WebGPU's default limits, each lowered to what the adapter offers,
    /// and `shader-f16` when the adapter has it.
    pub async fn request() -> Result<GpuContext> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY),
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter { reason: e.to_string() })?;
        let info = adapter.get_info();
        let shader_f16 = adapter.features().contains(wgpu::Features::SHADER_F16);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("quiver"),
                required_features: if shader_f16 { wgpu::Features::SHADER_F16 } else { wgpu::Features::empty() },
                required_limits: wgpu::Limits::default().or_worse_values_from(&adapter.limits()),
                memory_hints: wgpu::MemoryHints::Performance,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::DeviceRequest { adapter: info.name.clone(), reason: e.to_string() })?;
        let health = Arc::new(Health::default());
        let on_error = health.clone();
        device.on_uncaptured_error(Arc::new(move |error| on_error.record(error)));
        let on_lost = health.clone();
        device.set_device_lost_callback(move |reason, message| on_lost.mark_lost(format!("{reason:?}: {message}")));
        Ok(GpuContext {
            device,
            queue,
            info,
            shader_f16,
            health,
            search_kernels: Arc::default(),
            pipelines_built: Arc::default(),
        })
    }

    /// Name, backend, device type and driver of the adapter.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The limits the device was created with: what every kernel splits its work to fit.
    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }

    /// Whether the device has `shader-f16` (the kernels run in f32 either way).
    pub fn shader_f16(&self) -> bool {
        self.shader_f16
    }

    /// How many compute pipelines this device has built: each kernel once per device for
    /// search, once per loaded model for the encoder.
    pub fn pipelines_built(&self) -> usize {
        self.pipelines_built.load(Ordering::Relaxed)
    }

    /// The search kernels of this device, built on first use.
    pub(crate) async fn search_kernels(&self) -> Result<Arc<SearchKernels>> {
        if let Some(built) = self.search_kernels.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(built);
        }
        // Not held across the await; a concurrent first upload may build them too, once.
        let built = Arc::new(SearchKernels::new(self).await?);
        Ok(self.search_kernels.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(built).clone())
    }

    /// Whether the device is gone (driver reset, browser tab in the background too long):
    /// every later call fails with `E_GPU_LOST`, and a new context is needed.
    pub fn is_lost(&self) -> bool {
        self.health.lost.load(Ordering::SeqCst)
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// Fails if the device was lost or reported an error since the last check; `op` names
    /// what was running.
    pub fn check(&self, op: &'static str) -> Result<()> {
        if self.is_lost() {
            return Err(self.health.lost_error());
        }
        let taken = self.health.uncaptured.lock().unwrap_or_else(|e| e.into_inner()).take();
        match taken {
            None => Ok(()),
            Some(Uncaptured::OutOfMemory(message)) => Err(GpuError::OutOfMemory { message }),
            Some(Uncaptured::Other(message)) => Err(GpuError::Kernel { kernel: op, message }),
        }
    }

    /// The most bytes one storage binding, and so one storage buffer here, may hold.
    pub fn max_binding_bytes(&self) -> u64 {
        let limits = self.device.limits();
        limits.max_storage_buffer_binding_size.min(limits.max_buffer_size)
    }

    fn check_binding_size(&self, label: &str, bytes: u64) -> Result<()> {
        let max = self.max_binding_bytes();
        if bytes > max {
            return Err(GpuError::Limits {
                what: format!("{label} needs {bytes} bytes in one storage buffer; the device allows {max}"),
            });
        }
        Ok(())
    }

    /// A storage buffer holding `values` (at least 4 bytes: empty bindings are not allowed).
    pub fn storage_buffer<T: bytemuck::Pod>(&self, label: &str, values: &[T]) -> Result<wgpu::Buffer> {
        let bytes: &[u8] = bytemuck::cast_slice(values);
        self.check_binding_size(label, bytes.len() as u64)?;
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
        Ok(self.buffer_holding(label, bytes, usage))
    }

    /// A buffer of `usage` holding `bytes`, written through the queue. Not
    /// `create_buffer_init`: it panics on a lost device, where a queued write only reports
    /// an error (which [`GpuContext::check`] returns).
    fn buffer_holding(&self, label: &str, bytes: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
        let size = (bytes.len() as u64).max(4).next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: usage | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if !bytes.is_empty() {
            if bytes.len() as u64 == size {
                self.queue.write_buffer(&buffer, 0, bytes);
            } else {
                let mut padded = bytes.to_vec();
                padded.resize(size as usize, 0);
                self.queue.write_buffer(&buffer, 0, &padded);
            }
        }
        buffer
    }

    /// A zeroed storage buffer of `bytes`.
    pub fn empty_storage_buffer(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        self.check_binding_size(label, bytes)?;
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        }))
    }

    /// A uniform buffer holding `value`, rewritable with `queue().write_buffer`.
    pub fn uniform_buffer<T: bytemuck::Pod>(&self, label: &str, value: &T) -> wgpu::Buffer {
        self.buffer_holding(label, bytemuck::bytes_of(value), wgpu::BufferUsages::UNIFORM)
    }

    /// A compute pipeline for `main` of `source`, with its override constants set. Shader
    /// and pipeline errors come back as [`GpuError::Kernel`] instead of a panic.
    pub async fn compute_pipeline(
        &self,
        kernel: &'static str,
        source: &str,
        constants: &[(&str, f64)],
    ) -> Result<wgpu::ComputePipeline> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(kernel),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions { constants, ..Default::default() },
            cache: None,
        });
        if let Some(error) = scope.pop().await {
            return Err(GpuError::Kernel { kernel, message: error.to_string() });
        }
        self.pipelines_built.fetch_add(1, Ordering::Relaxed);
        Ok(pipeline)
    }

    /// A bind group for group 0 of `pipeline`, binding each buffer whole, in order.
    pub fn bind_group(
        &self,
        label: &str,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
            .iter()
            .enumerate()
            .map(|(binding, buffer)| wgpu::BindGroupEntry {
                binding: binding as u32,
                resource: buffer.as_entire_binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }

    pub fn encoder(&self, label: &str) -> wgpu::CommandEncoder {
        self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
    }

    /// Submits `encoder` followed by a copy of the first `len` values of `source`; the
    /// returned read completes once the GPU is done. Submitting at once (not when awaited)
    /// keeps buffer writes queued before this call inside this submission.
    pub fn submit_read<T: bytemuck::Pod>(
        &self,
        op: &'static str,
        mut encoder: wgpu::CommandEncoder,
        source: &wgpu::Buffer,
        len: usize,
    ) -> PendingRead<T> {
        let bytes = (len * size_of::<T>()) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read-back"),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if bytes > 0 {
            encoder.copy_buffer_to_buffer(source, 0, &staging, 0, bytes);
        }
        self.queue.submit([encoder.finish()]);
        let (sender, mapped) = futures_channel::oneshot::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |result| {
            let _ = sender.send(result);
        });
        PendingRead { ctx: self.clone(), op, staging, len, mapped, values: std::marker::PhantomData }
    }
}

/// Values on their way back from the GPU: see [`GpuContext::submit_read`].
pub struct PendingRead<T> {
    ctx: GpuContext,
    op: &'static str,
    staging: wgpu::Buffer,
    len: usize,
    mapped: Mapping,
    values: std::marker::PhantomData<T>,
}

/// A read-back buffer's mapping: its callback's result, or cancelled when it was dropped.
pub(crate) type Mapping = futures_channel::oneshot::Receiver<MappingResult>;
pub(crate) type MappingResult = std::result::Result<(), wgpu::BufferAsyncError>;
pub(crate) type MappingOutcome = std::result::Result<MappingResult, futures_channel::oneshot::Canceled>;

impl<T: bytemuck::Pod> PendingRead<T> {
    /// The values, once the GPU is done. Natively this blocks the calling thread until then;
    /// in the browser it yields to the event loop.
    pub async fn values(self) -> Result<Vec<T>> {
        Ok(self.read(None).await?.expect("no timeout, so never timed out"))
    }

    /// The values if the GPU is done within `timeout`, else `None` (the work still runs to
    /// its end; its result is dropped). For calibration runs that must stay short.
    pub async fn values_within(self, timeout: Duration) -> Result<Option<Vec<T>>> {
        self.read(Some(timeout)).await
    }

    async fn read(self, timeout: Option<Duration>) -> Result<Option<Vec<T>>> {
        let op = self.op;
        let Some(mapped) = wait::mapping(&self.ctx, op, self.mapped, timeout).await? else { return Ok(None) };
        self.ctx.check(op)?;
        match mapped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(GpuError::Lost { reason: format!("{op}: reading back failed: {e}") }),
            Err(_) => return Err(GpuError::Lost { reason: format!("{op}: the read-back was dropped") }),
        }
        let bytes = self.len * size_of::<T>();
        let view =
            self.staging.slice(..).get_mapped_range().map_err(|e| GpuError::Lost { reason: format!("{op}: {e}") })?;
        let values = bytemuck::pod_collect_to_vec(&view[..bytes]);
        drop(view);
        self.staging.unmap();
        Ok(Some(values))
    }
}

/// Workgroups for `count` items of `per_group` each, checked against the device's limit
/// per dimension.
pub(crate) fn workgroups(ctx: &GpuContext, what: &str, count: usize, per_group: usize) -> Result<u32> {
    let groups = count.div_ceil(per_group);
    let max = ctx.limits().max_compute_workgroups_per_dimension as usize;
    if groups > max {
        return Err(GpuError::Limits {
            what: format!("{what} needs {groups} workgroups in one dimension; the device allows {max}"),
        });
    }
    Ok(groups as u32)
}
