//! The embedded backend: objects are files under a root directory.
//! Writes go to a hidden temporary file in the target directory and are
//! renamed into place, so a reader sees either the old object or the new one.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::{ObjectInfo, ObjectStore, StoreError, check_key};

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

fn io<'a>(key: &'a str, op: &'static str) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            StoreError::NotFound {
                key: key.to_owned(),
            }
        } else {
            StoreError::Io {
                key: key.to_owned(),
                op,
                source,
            }
        }
    }
}

fn tmp_name(path: &Path) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{n}.partial", std::process::id()))
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file holding `key` (after the key is checked).
    pub fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    async fn write_with<F>(&self, key: &str, write: F) -> Result<(), StoreError>
    where
        F: FnOnce(PathBuf) -> std::io::Result<()> + Send + 'static,
    {
        let path = self.path_of(key)?;
        let key_owned = key.to_owned();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = tmp_name(&path);
            // Durable before it is reported: the file's bytes, then the
            // rename in its directory, reach the disk (a put that returned
            // survives a power cut).
            let result = write(tmp.clone())
                .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
                .and_then(|()| std::fs::rename(&tmp, &path))
                .and_then(|()| sync_dir(path.parent()));
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Remote {
            key: key_owned.clone(),
            op: "write",
            message: e.to_string(),
        })?
        .map_err(io(key, "write"))
    }
}

/// fsync of a directory, so a rename in it is durable.
fn sync_dir(dir: Option<&Path>) -> std::io::Result<()> {
    match dir {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

fn info(key: String, meta: &std::fs::Metadata) -> ObjectInfo {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    ObjectInfo {
        key,
        size: meta.len(),
        etag: format!("{:x}-{mtime:x}", meta.len()),
    }
}

fn walk(root: &Path, dir: &Path, prefix: &str, out: &mut Vec<ObjectInfo>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let meta = entry.metadata()?;
        if meta.is_dir() {
            walk(root, &path, prefix, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            let key = rel.to_string_lossy().replace('\\', "/");
            if key.starts_with(prefix) {
                out.push(info(key, &meta));
            }
        }
    }
    Ok(())
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put_file(&self, key: &str, file: &Path) -> Result<(), StoreError> {
        let src = file.to_path_buf();
        self.write_with(key, move |tmp| std::fs::copy(&src, &tmp).map(drop))
            .await
    }

    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.write_with(key, move |tmp| std::fs::write(&tmp, &bytes))
            .await
    }

    async fn get_file(&self, key: &str, file: &Path) -> Result<u64, StoreError> {
        let path = self.path_of(key)?;
        let dst = file.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let tmp = tmp_name(&dst);
            let n = std::fs::copy(&path, &tmp)?;
            std::fs::rename(&tmp, &dst)?;
            Ok(n)
        })
        .await
        .map_err(|e| StoreError::Remote {
            key: key.to_owned(),
            op: "read",
            message: e.to_string(),
        })?
        .map_err(io(key, "read"))
    }

    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.path_of(key)?;
        tokio::fs::read(&path).await.map_err(io(key, "read"))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let path = self.path_of(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(info(key.to_owned(), &meta))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(key, "head")(e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let root = self.root.clone();
        let prefix_owned = prefix.to_owned();
        let mut out = tokio::task::spawn_blocking(move || {
            // Walk only the deepest directory the prefix names.
            let dir = match prefix_owned.rfind('/') {
                Some(i) => root.join(&prefix_owned[..i]),
                None => root.clone(),
            };
            let mut out = Vec::new();
            walk(&root, &dir, &prefix_owned, &mut out).map(|()| out)
        })
        .await
        .map_err(|e| StoreError::Remote {
            key: prefix.to_owned(),
            op: "list",
            message: e.to_string(),
        })?
        .map_err(io(prefix, "list"))?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(key, "delete")(e)),
        }
    }

    fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.path_of(key).ok()
    }
}
