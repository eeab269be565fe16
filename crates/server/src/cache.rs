//! A bounded in-memory cache of published manifests, so a player's HLS
//! segment requests do not re-read `manifest.json` from the store each time.
//!
//! The key is the video's output prefix together with the id of the job
//! that published it. `videos/<id>/manifest.json` is repointed when a new
//! run completes, but that run belongs to a new job: what one job
//! published never changes. Only approved jobs are cached (see
//! `media::media`): by approval the job's run is complete and pointed at.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use stemfeed_pipeline::Manifest;

/// A manifest and the key prefix its paths are relative to.
pub type Cached = Arc<(Manifest, String)>;

/// Published manifests by (output prefix, job id).
pub type ManifestCache = Bounded<Cached>;

/// How many manifests the server keeps.
pub const MANIFESTS: usize = 1024;

/// A bounded map from (prefix, job id) to cheap-to-clone values, dropping
/// the least recently used entry when full.
#[derive(Debug)]
pub struct Bounded<V> {
    capacity: usize,
    inner: Mutex<Inner<V>>,
}

#[derive(Debug)]
struct Inner<V> {
    /// key → (value, last use).
    map: HashMap<(String, i64), (V, u64)>,
    tick: u64,
}

impl<V: Clone> Default for Bounded<V> {
    fn default() -> Self {
        Self::new(MANIFESTS)
    }
}

impl<V: Clone> Bounded<V> {
    /// A cache of at most `capacity` manifests (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                tick: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<V>> {
        // A panic while holding the lock leaves a map that is still valid.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, prefix: &str, job: i64) -> Option<V> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let entry = inner.map.get_mut(&(prefix.to_owned(), job))?;
        entry.1 = tick;
        Some(entry.0.clone())
    }

    /// Keeps `value`, dropping the least recently used entry when full.
    pub fn insert(&self, prefix: &str, job: i64, value: V) {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let key = (prefix.to_owned(), job);
        if !inner.map.contains_key(&key) && inner.map.len() >= self.capacity {
            let oldest = inner
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                inner.map.remove(&k);
            }
        }
        inner.map.insert(key, (value, tick));
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::Bounded;

    #[test]
    fn bounded_least_recently_used() {
        let c = Bounded::new(2);
        assert!(c.is_empty());
        c.insert("videos/a", 1, "a1");
        c.insert("videos/b", 1, "b1");
        // A new job of the same video is another entry.
        assert_eq!(c.get("videos/a", 2), None);
        assert_eq!(c.get("videos/a", 1), Some("a1"));
        // Full: b is the least recently used and goes.
        c.insert("videos/c", 1, "c1");
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("videos/b", 1), None);
        assert_eq!(c.get("videos/a", 1), Some("a1"));
        assert_eq!(c.get("videos/c", 1), Some("c1"));
        // Replacing an entry does not evict another.
        c.insert("videos/c", 1, "c2");
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("videos/c", 1), Some("c2"));
    }
}
