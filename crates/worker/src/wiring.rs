//! The object store and catalog a worker, the server or a command opens
//! from the configuration.

use std::sync::Arc;

use stemfeed_core::Config;
use stemfeed_queue::Catalog;
use stemfeed_store::{LocalStore, ObjectStore, S3Options, S3Store};

/// The configured object store.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let url = config.store_url();
    if let Some(dir) = url.strip_prefix("file:") {
        let dir = dir.strip_prefix("//").unwrap_or(dir);
        return Ok(Arc::new(LocalStore::new(dir)));
    }
    let Some(rest) = url.strip_prefix("s3://") else {
        anyhow::bail!("store.url {url:?}: use file:DIR or s3://BUCKET[/PREFIX]");
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    anyhow::ensure!(!bucket.is_empty(), "store.url {url:?}: no bucket named");
    let s = &config.store;
    let mut opts = S3Options::new(bucket);
    opts.prefix = prefix.trim_matches('/').to_owned();
    opts.endpoint = s.endpoint.clone();
    opts.region = s.region.clone();
    opts.path_style = s.path_style;
    opts.multipart_threshold = s.multipart_threshold_mib.max(5) * 1024 * 1024;
    Ok(Arc::new(S3Store::connect(opts).await))
}

/// The configured catalog (migrations run on open).
pub async fn open_catalog(config: &Config) -> anyhow::Result<Arc<Catalog>> {
    let url = config.catalog_url();
    let catalog = tokio::task::spawn_blocking(move || Catalog::open(&url)).await??;
    Ok(Arc::new(catalog))
}

/// Free space of the file system holding `path`, in MiB.
pub fn free_mib(path: &std::path::Path) -> std::io::Result<u64> {
    let s = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    Ok(s.blocks_available() as u64 * s.fragment_size() as u64 / (1024 * 1024))
}
