//! Bounded selection of the best `k` scores.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One result: the row in the index and its score (higher is better).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub row: usize,
    pub score: f32,
}

/// Orders worse-first so the heap's top is the entry to evict: lower score, then higher row.
struct Entry(Hit);

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.score.total_cmp(&self.0.score).then(self.0.row.cmp(&other.0.row))
    }
}

pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Entry>,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        TopK { k, heap: BinaryHeap::with_capacity(k.min(1 << 16) + 1) }
    }

    /// Whether a score could enter (cheap pre-check before evaluating a filter).
    pub fn would_accept(&self, score: f32) -> bool {
        self.heap.len() < self.k || self.heap.peek().is_some_and(|worst| score > worst.0.score)
    }

    pub fn push(&mut self, score: f32, row: usize) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Entry(Hit { row, score }));
        } else if let Some(mut worst) = self.heap.peek_mut() {
            // Rows arrive in increasing order, so an equal score never displaces an earlier row.
            if score > worst.0.score || (score == worst.0.score && row < worst.0.row) {
                *worst = Entry(Hit { row, score });
            }
        }
    }

    /// Best first.
    pub fn into_sorted(self) -> Vec<Hit> {
        self.heap.into_sorted_vec().into_iter().map(|e| e.0).collect()
    }
}
