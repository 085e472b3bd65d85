//! `.npy` import and export of `[n, dim]` float32 matrices, so vectors made elsewhere
//! can be indexed and Quiver's can be analysed elsewhere.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::{IndexError, Result};

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Writes a C-order little-endian float32 matrix.
pub fn write_npy<W: Write>(mut out: W, data: &[f32], rows: usize, cols: usize) -> std::io::Result<()> {
    assert_eq!(data.len(), rows * cols, "matrix shape does not match its data");
    write_npy_header(&mut out, rows, cols)?;
    for chunk in data.chunks(1 << 16) {
        out.write_all(bytemuck::cast_slice(chunk))?;
    }
    out.flush()
}

/// Writes the header of a `[rows, cols]` float32 `.npy`; `rows × cols` little-endian f32
/// values must follow.
pub fn write_npy_header<W: Write>(mut out: W, rows: usize, cols: usize) -> std::io::Result<()> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Version 1.0: magic, version, u16 header length; header padded with spaces so the data
    // starts on a multiple of 64 bytes, ending in a newline.
    let unpadded = NPY_MAGIC.len() + 2 + 2 + dict.len() + 1;
    let padding = unpadded.next_multiple_of(64) - unpadded;
    let header = format!("{dict}{}\n", " ".repeat(padding));
    out.write_all(NPY_MAGIC)?;
    out.write_all(&[1, 0])?;
    out.write_all(&(header.len() as u16).to_le_bytes())?;
    out.write_all(header.as_bytes())
}

/// A `.npy` written a batch of rows at a time, never holding the matrix: rows go to a side
/// file (`PATH.rows`); [`NpyWriter::finish`] writes the header with the final row count and
/// copies them through into `PATH`, atomically (via `PATH.tmp`). Dropped unfinished, it
/// leaves no files.
pub struct NpyWriter {
    path: PathBuf,
    rows_path: PathBuf,
    rows_file: Option<BufWriter<File>>,
    cols: usize,
    rows: usize,
}

impl NpyWriter {
    pub fn create(path: &Path, cols: usize) -> Result<Self> {
        let rows_path = sibling(path, "rows");
        // Read back by `finish`.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&rows_path)
            .map_err(io("create", &rows_path))?;
        Ok(NpyWriter { path: path.to_owned(), rows_path, rows_file: Some(BufWriter::new(file)), cols, rows: 0 })
    }

    /// Appends whole rows of `cols` values.
    pub fn append(&mut self, data: &[f32]) -> Result<()> {
        if self.cols == 0 || !data.len().is_multiple_of(self.cols) {
            return Err(IndexError::DimensionMismatch { op: "npy append", expected: self.cols, actual: data.len() });
        }
        let out = self.rows_file.as_mut().expect("open until finish");
        out.write_all(bytemuck::cast_slice(data)).map_err(io("write", &self.rows_path))?;
        self.rows += data.len() / self.cols;
        Ok(())
    }

    /// Writes the `.npy`; returns its row count.
    pub fn finish(mut self) -> Result<usize> {
        let rows_file = self.rows_file.take().expect("open until finish");
        let mut rows_file = rows_file.into_inner().map_err(|e| io("write", &self.rows_path)(e.into_error()))?;
        rows_file.rewind().map_err(io("read", &self.rows_path))?;
        let tmp = sibling(&self.path, "tmp");
        let written = (|| {
            let mut out = BufWriter::new(File::create(&tmp)?);
            write_npy_header(&mut out, self.rows, self.cols)?;
            std::io::copy(&mut rows_file, &mut out)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io("write", &self.path)(e));
        }
        Ok(self.rows)
    }
}

impl Drop for NpyWriter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.rows_path);
    }
}

/// `path` with `.suffix` added to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".{suffix}"));
    path.with_file_name(name)
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl Fn(std::io::Error) -> IndexError + 'a {
    move |source| IndexError::Io { op, path: path.to_owned(), source }
}

/// A matrix read from `.npy`: `rows × cols` values, row-major.
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

fn npy_error(what: impl Into<String>) -> IndexError {
    IndexError::Npy { what: what.into() }
}

/// Reads a 2-D (or 1-D, taken as one row) `<f4` or `<f8` C-order array.
pub fn read_npy<R: Read>(mut input: R) -> Result<Matrix> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes).map_err(|e| npy_error(format!("could not be read: {e}")))?;
    if bytes.len() < 10 || &bytes[..6] != NPY_MAGIC {
        return Err(npy_error("does not start with the .npy magic"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12),
        v => return Err(npy_error(format!("has unsupported version {v}"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| npy_error("header is truncated or not text"))?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
        Some(rest)
    };
    let descr = field("descr").ok_or_else(|| npy_error("header has no descr"))?;
    let elem = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        return Err(npy_error(format!("holds {}, expected float32 or float64", descr.split(',').next().unwrap_or(""))));
    };
    if field("fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(npy_error("is in Fortran order; save it in C order"));
    }
    let shape = field("shape").ok_or_else(|| npy_error("header has no shape"))?;
    let inner = shape.strip_prefix('(').and_then(|s| s.split(')').next()).ok_or_else(|| npy_error("bad shape"))?;
    let dims: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| npy_error(format!("bad shape ({inner})"))))
        .collect::<Result<_>>()?;
    let (rows, cols) = match dims[..] {
        [n] => (1, n),
        [r, c] => (r, c),
        _ => return Err(npy_error(format!("has shape ({inner}); expected [rows, dim]"))),
    };
    let payload = &bytes[start + header_len..];
    let count = rows.checked_mul(cols).filter(|n| n.checked_mul(elem).is_some());
    let count = count.ok_or_else(|| npy_error(format!("shape ({inner}) overflows")))?;
    if payload.len() != count * elem {
        return Err(npy_error(format!(
            "holds {} bytes of data, shape ({rows}, {cols}) needs {}",
            payload.len(),
            count * elem
        )));
    }
    let data = if elem == 4 {
        bytemuck::pod_collect_to_vec(payload)
    } else {
        payload.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect()
    };
    Ok(Matrix { rows, cols, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let data: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
        let mut bytes = Vec::new();
        write_npy(&mut bytes, &data, 3, 4).unwrap();
        assert_eq!((bytes.len() - 48) % 16, 0);
        let m = read_npy(&bytes[..]).unwrap();
        assert_eq!((m.rows, m.cols), (3, 4));
        assert_eq!(m.data, data);
        assert!(read_npy(&bytes[..bytes.len() - 1]).is_err());
        assert!(read_npy(&b"not numpy at all"[..]).is_err());
    }

    /// Found by the `npy` fuzz target: rows × cols fits, its bytes do not.
    #[test]
    fn a_shape_whose_bytes_overflow_is_an_error() {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 2), }";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16 + 1).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.push(b'\n');
        let err = read_npy(&bytes[..]).err().unwrap();
        assert!(err.to_string().contains("overflows"), "{err}");
    }

    #[test]
    fn the_writer_streams_rows_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.npy");
        let mut npy = NpyWriter::create(&path, 2).unwrap();
        npy.append(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        npy.append(&[]).unwrap();
        npy.append(&[5.0, 6.0]).unwrap();
        let error = npy.append(&[7.0]).unwrap_err();
        assert_eq!(error.code(), "E_DIMENSION");
        assert_eq!(npy.finish().unwrap(), 3);
        let m = read_npy(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!((m.rows, m.cols, m.data), (3, 2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        let names = |dir: &Path| -> Vec<String> {
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
        };
        assert_eq!(names(dir.path()), ["out.npy"]);
        // Dropped unfinished: no side file, no output.
        let unfinished = dir.path().join("never.npy");
        let mut npy = NpyWriter::create(&unfinished, 2).unwrap();
        npy.append(&[1.0, 2.0]).unwrap();
        drop(npy);
        assert_eq!(names(dir.path()), ["out.npy"]);
    }
}
