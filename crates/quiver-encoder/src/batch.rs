//! Forward batches of token sequences: grouped by length and right-padded.

/// Groups sequences into forward batches of at most `batch_size`, longest first; returns
/// indices into `lengths`. A batch grows while its padding stays under a quarter of its
/// real tokens, so mixed lengths are not all padded to the longest.
pub fn length_batches(lengths: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let mut batches = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let longest = lengths[order[start]];
        let (mut end, mut real) = (start + 1, longest);
        while end < order.len() && end - start < batch_size.max(1) {
            let len = lengths[order[end]];
            if longest * (end - start + 1) * 4 > (real + len) * 5 {
                break;
            }
            real += len;
            end += 1;
        }
        batches.push(order[start..end].to_vec());
        start = end;
    }
    batches
}

/// The sequences one after another, each right-padded with `pad` to `seq` values.
pub(crate) fn padded<'a>(sequences: impl IntoIterator<Item = &'a [u32]>, seq: usize, pad: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for s in sequences {
        out.extend_from_slice(s);
        out.resize(out.len() + seq - s.len(), pad);
    }
    out
}
