//! Typed views of an index's arrays that are either owned or borrowed from the loaded file
//! (a memory map natively, one `Vec<u8>` in the browser), copied only when changed.

use std::sync::Arc;

use bytemuck::Pod;

/// The bytes of a loaded index file.
pub type Backing = Arc<dyn AsRef<[u8]> + Send + Sync>;

#[derive(Clone)]
pub enum Section<T: Pod> {
    Owned(Vec<T>),
    Shared { bytes: Backing, start: usize, len: usize },
}

impl<T: Pod> Default for Section<T> {
    fn default() -> Self {
        Section::Owned(Vec::new())
    }
}

impl<T: Pod> Section<T> {
    /// A view of `len` elements at byte `start` of `bytes`; copies them when the bytes are
    /// not aligned for `T` (a `Vec<u8>` from JS need not be). The caller checked the bounds.
    pub(crate) fn borrow(bytes: &Backing, start: usize, len: usize) -> Self {
        let raw = &(**bytes).as_ref()[start..start + len * size_of::<T>()];
        if bytemuck::try_cast_slice::<u8, T>(raw).is_ok() {
            Section::Shared { bytes: bytes.clone(), start, len }
        } else {
            Section::Owned(bytemuck::pod_collect_to_vec(raw))
        }
    }

    pub fn as_slice(&self) -> &[T] {
        match self {
            Section::Owned(v) => v,
            Section::Shared { bytes, start, len } => {
                bytemuck::cast_slice(&(**bytes).as_ref()[*start..*start + *len * size_of::<T>()])
            }
        }
    }

    pub fn to_mut(&mut self) -> &mut Vec<T> {
        if let Section::Shared { .. } = self {
            *self = Section::Owned(self.as_slice().to_vec());
        }
        match self {
            Section::Owned(v) => v,
            Section::Shared { .. } => unreachable!(),
        }
    }
}
