//! A bounded least-recently-used cache of query embeddings: a search box sends the same
//! query again and again (typing, paging, toggling a filter), and embedding it is most of
//! a search's time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Counters for the stats panels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
    pub capacity: usize,
}

#[derive(Default)]
struct Entries {
    vectors: HashMap<String, (Arc<[f32]>, u64)>,
    clock: u64,
    hits: u64,
    misses: u64,
}

/// Query text → embedding, at most `capacity` entries; the least recently used goes first.
pub struct QueryCache {
    capacity: usize,
    entries: Mutex<Entries>,
}

impl QueryCache {
    /// Entries kept by default: a session's worth of distinct queries, ~400 KB at dim 384.
    pub const DEFAULT_CAPACITY: usize = 256;

    /// A cache of `capacity` entries; 0 turns caching off (misses are still counted).
    pub fn new(capacity: usize) -> Self {
        QueryCache { capacity, entries: Mutex::default() }
    }

    /// The cached vector of `query` (a hit), or `None` (a miss: embed it and [`store`] it).
    ///
    /// [`store`]: QueryCache::store
    pub fn lookup(&self, query: &str) -> Option<Arc<[f32]>> {
        let mut entries = self.lock();
        entries.clock += 1;
        let now = entries.clock;
        if let Some((vector, used)) = entries.vectors.get_mut(query) {
            *used = now;
            let vector = vector.clone();
            entries.hits += 1;
            return Some(vector);
        }
        entries.misses += 1;
        None
    }

    /// Remembers `query`'s vector, evicting the least recently used entry when full.
    pub fn store(&self, query: &str, vector: Vec<f32>) -> Arc<[f32]> {
        let vector: Arc<[f32]> = vector.into();
        if self.capacity > 0 {
            let mut entries = self.lock();
            if entries.vectors.len() >= self.capacity && !entries.vectors.contains_key(query) {
                let oldest = entries.vectors.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    entries.vectors.remove(&oldest);
                }
            }
            let now = entries.clock;
            entries.vectors.insert(query.to_owned(), (vector.clone(), now));
        }
        vector
    }

    pub fn stats(&self) -> CacheStats {
        let entries = self.lock();
        CacheStats {
            hits: entries.hits,
            misses: entries.misses,
            entries: entries.vectors.len(),
            capacity: self.capacity,
        }
    }

    /// Forgets every vector (a new model makes them stale); the counters stay.
    pub fn clear(&self) {
        self.lock().vectors.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock leaves plain data behind: still usable.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for QueryCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cached vector of `query`, or `embed(query)`, remembered: what a caller does.
    fn get_or_embed<E>(
        cache: &QueryCache,
        query: &str,
        embed: impl FnOnce(&str) -> Result<Vec<f32>, E>,
    ) -> Result<Arc<[f32]>, E> {
        match cache.lookup(query) {
            Some(vector) => Ok(vector),
            None => Ok(cache.store(query, embed(query)?)),
        }
    }

    fn embed(calls: &mut usize) -> impl FnOnce(&str) -> Result<Vec<f32>, ()> + '_ {
        move |q| {
            *calls += 1;
            Ok(vec![q.len() as f32])
        }
    }

    #[test]
    fn evicts_the_least_recently_used() {
        let cache = QueryCache::new(2);
        let mut calls = 0;
        get_or_embed(&cache, "a", embed(&mut calls)).unwrap();
        get_or_embed(&cache, "bb", embed(&mut calls)).unwrap();
        get_or_embed(&cache, "a", embed(&mut calls)).unwrap(); // "bb" is now the oldest
        get_or_embed(&cache, "ccc", embed(&mut calls)).unwrap();
        assert_eq!(calls, 3);
        assert_eq!(&*get_or_embed(&cache, "a", embed(&mut calls)).unwrap(), &[1.0]);
        assert_eq!(calls, 3);
        get_or_embed(&cache, "bb", embed(&mut calls)).unwrap();
        assert_eq!(calls, 4);
        assert_eq!(cache.stats(), CacheStats { hits: 2, misses: 4, entries: 2, capacity: 2 });
    }

    #[test]
    fn errors_are_not_cached_and_zero_capacity_keeps_nothing() {
        let cache = QueryCache::new(0);
        assert!(get_or_embed(&cache, "x", |_| Err::<Vec<f32>, _>("model failed")).is_err());
        let mut calls = 0;
        get_or_embed(&cache, "x", embed(&mut calls)).unwrap();
        get_or_embed(&cache, "x", embed(&mut calls)).unwrap();
        assert_eq!((calls, cache.stats().entries, cache.stats().misses), (2, 0, 3));
    }
}
