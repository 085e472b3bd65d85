//! Progress bars on stderr for commands that embed a file.

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use quiver::ingest::read_records;

use crate::args::FieldArgs;

/// A bar over `len` items, or a spinner when the count is unknown.
pub fn progress_bar(len: Option<u64>, what: &str) -> ProgressBar {
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let template = if len.is_some() {
        "{spinner} {msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta})"
    } else {
        "{spinner} {msg} {pos} ({per_sec})"
    };
    bar.set_style(ProgressStyle::with_template(template).unwrap().progress_chars("=> "));
    bar.set_message(what.to_owned());
    bar
}

/// How many records the input holds (a first pass over it), if it can be read.
pub fn count_records(path: &Path, fields: &FieldArgs) -> Option<u64> {
    let records = read_records(path, fields.format, &fields.fields()).ok()?;
    Some(records.count() as u64)
}
