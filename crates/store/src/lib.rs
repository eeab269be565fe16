//! Object storage behind one trait, with two real backends: a local
//! directory (embedded mode) and S3 or any S3-compatible server (scale-out).
//!
//! Keys are `/`-separated paths such as `uploads/<video>/source`; the layout
//! is described in ARCHITECTURE.md. Writers put a whole output set under a
//! fresh run prefix and its manifest last, so a reader that starts from a
//! manifest never sees half a video.

use std::path::Path;

use async_trait::async_trait;

mod local;
mod s3;

pub use local::LocalStore;
pub use s3::{S3Options, S3Store};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{key}: not found in the object store")]
    NotFound { key: String },
    #[error("{key}: invalid object key ({reason})")]
    BadKey { key: String, reason: &'static str },
    #[error("{key}: {op}: {source}")]
    Io {
        key: String,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("{key}: {op}: {message}")]
    Remote {
        key: String,
        op: &'static str,
        message: String,
    },
}

impl StoreError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }
}

/// What a listing returns per object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// Changes when the object is rewritten (S3 ETag; size + mtime locally).
    pub etag: String,
}

#[async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// Streams a local file to `key` (multipart for large files on S3).
    async fn put_file(&self, key: &str, file: &Path) -> Result<(), StoreError>;
    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError>;
    /// Streams `key` to a local file (written to a temporary name, then renamed).
    async fn get_file(&self, key: &str, file: &Path) -> Result<u64, StoreError>;
    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, StoreError>;
    /// Bytes `start..end` of `key` (clamped to its size): what a player's
    /// HTTP range request for an HLS byte-range segment asks of a store the
    /// server cannot hand a file or a presigned URL for.
    async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<u8>, StoreError> {
        let bytes = self.get_bytes(key).await?;
        let end = (range.end as usize).min(bytes.len());
        Ok(bytes[(range.start as usize).min(end)..end].to_vec())
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError>;
    /// Every object under `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// A description for logs ("file:///data/objects", "s3://bucket at http://…").
    fn describe(&self) -> String;
    /// A time-limited URL a client can GET the object from directly, where
    /// the backend has them (S3).
    async fn presign_get(
        &self,
        _key: &str,
        _ttl: std::time::Duration,
    ) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    /// The file holding the object, where the backend is a directory.
    fn local_path(&self, _key: &str) -> Option<std::path::PathBuf> {
        None
    }
}

/// Rejects keys that could escape a local root or mean different objects on
/// different backends.
pub fn check_key(key: &str) -> Result<(), StoreError> {
    let bad = |reason| {
        Err(StoreError::BadKey {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() || key.len() > 1024 {
        return bad("empty or longer than 1024 bytes");
    }
    if key.starts_with('/') || key.ends_with('/') {
        return bad("leading or trailing '/'");
    }
    if key.contains('\\') || key.chars().any(char::is_control) {
        return bad("backslash or control character");
    }
    if key
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return bad("empty, '.' or '..' path segment");
    }
    Ok(())
}

/// Uploads every file under `dir` to `prefix/<relative path>`, leaving
/// `last` (relative, e.g. "manifest.json") for the very end.
pub async fn put_tree(
    store: &dyn ObjectStore,
    dir: &Path,
    prefix: &str,
    last: Option<&str>,
) -> Result<usize, StoreError> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files).map_err(|source| StoreError::Io {
        key: prefix.to_owned(),
        op: "listing the output directory",
        source,
    })?;
    files.sort();
    let (deferred, first): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|rel| Some(rel.as_str()) == last);
    let mut n = 0;
    for rel in first.iter().chain(&deferred) {
        store
            .put_file(&format!("{prefix}/{rel}"), &dir.join(rel))
            .await?;
        n += 1;
    }
    Ok(n)
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        // Partial files of an interrupted writer are not outputs.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        // Only directories and regular files: a symbolic link, FIFO or
        // device in an output tree (written by a process that decoded
        // untrusted bytes) would upload whatever it points at, or block.
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect(root, &path, out)?;
        } else if !kind.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{}: not a regular file; refusing to upload it",
                    path.display()
                ),
            ));
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_or_alias() {
        for bad in [
            "", "/abs", "a/../b", "a//b", "a/./b", "dir/", "a\\b", "a\nb", "..",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?} accepted");
        }
        for good in [
            "uploads/v1/source",
            "incoming/My Video (1).mp4",
            "videos/x/hls/360p_00001.ts",
        ] {
            check_key(good).unwrap();
        }
    }
}
