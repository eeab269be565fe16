//! S3 and S3-compatible servers through aws-sdk-s3: endpoint override and
//! path-style addressing for MinIO/moto/Garage-like servers, the SDK's
//! credential chain (environment, profile, instance role), streaming
//! downloads, and multipart uploads for large files.

use std::path::Path;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use tokio::io::AsyncWriteExt;

use crate::{ObjectInfo, ObjectStore, StoreError, check_key};

/// Where and how to reach the bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Options {
    pub bucket: String,
    /// Key prefix inside the bucket ("" for the whole bucket).
    pub prefix: String,
    /// Endpoint override, e.g. `http://127.0.0.1:9000` for an S3-compatible server.
    pub endpoint: Option<String>,
    /// Region; defaults to the SDK's chain, else `us-east-1`.
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most
    /// S3-compatible servers.
    pub path_style: bool,
    /// Files at least this large are uploaded in parts.
    pub multipart_threshold: u64,
    /// Part size for multipart uploads (S3's minimum is 5 MiB).
    pub part_size: u64,
    /// Static access key and secret; None uses the SDK's credential chain.
    pub credentials: Option<(String, String)>,
}

impl S3Options {
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: String::new(),
            endpoint: None,
            region: None,
            path_style: false,
            multipart_threshold: 16 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            credentials: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    opts: S3Options,
}

fn remote<E>(key: &str, op: &'static str, e: E) -> StoreError
where
    E: std::error::Error,
{
    StoreError::Remote {
        key: key.to_owned(),
        op,
        message: DisplayErrorContext(&e).to_string(),
    }
}

impl S3Store {
    pub async fn connect(opts: S3Options) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &opts.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        let shared = loader.load().await;
        let mut conf = aws_sdk_s3::config::Builder::from(&shared).force_path_style(opts.path_style);
        if shared.region().is_none() {
            conf = conf.region(aws_config::Region::new("us-east-1"));
        }
        if let Some((key, secret)) = &opts.credentials {
            conf = conf.credentials_provider(aws_sdk_s3::config::Credentials::new(
                key,
                secret,
                None,
                None,
                "stemfeed-config",
            ));
        }
        if let Some(endpoint) = &opts.endpoint {
            conf = conf.endpoint_url(endpoint);
        }
        Self {
            client: Client::from_conf(conf.build()),
            opts,
        }
    }

    /// Creates the bucket if it does not exist (setup and tests).
    pub async fn ensure_bucket(&self) -> Result<(), StoreError> {
        let b = &self.opts.bucket;
        if self.client.head_bucket().bucket(b).send().await.is_ok() {
            return Ok(());
        }
        self.client
            .create_bucket()
            .bucket(b)
            .send()
            .await
            .map(drop)
            .map_err(|e| remote(b, "create bucket", e))
    }

    fn full(&self, key: &str) -> Result<String, StoreError> {
        check_key(key)?;
        Ok(if self.opts.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.opts.prefix.trim_end_matches('/'))
        })
    }

    fn strip<'a>(&self, full: &'a str) -> &'a str {
        if self.opts.prefix.is_empty() {
            full
        } else {
            full.strip_prefix(self.opts.prefix.trim_end_matches('/'))
                .and_then(|k| k.strip_prefix('/'))
                .unwrap_or(full)
        }
    }

    /// Starts a GET of the whole object, or of `range` (an HTTP `Range`
    /// value); a missing key is [`StoreError::NotFound`].
    async fn get_object(
        &self,
        key: &str,
        range: Option<String>,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, StoreError> {
        let full = self.full(key)?;
        self.client
            .get_object()
            .bucket(&self.opts.bucket)
            .key(&full)
            .set_range(range)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(s) if s.is_no_such_key() => StoreError::NotFound {
                    key: key.to_owned(),
                },
                _ => remote(key, "get", e),
            })
    }

    async fn put_multipart(
        &self,
        key: &str,
        full: &str,
        file: &Path,
        size: u64,
    ) -> Result<(), StoreError> {
        let b = &self.opts.bucket;
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(b)
            .key(full)
            .send()
            .await
            .map_err(|e| remote(key, "start multipart upload", e))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        let result = async {
            let mut parts = Vec::new();
            let mut offset = 0u64;
            let mut number = 1i32;
            while offset < size {
                let len = self.opts.part_size.min(size - offset);
                let body = ByteStream::read_from()
                    .path(file)
                    .offset(offset)
                    .length(Length::Exact(len))
                    .build()
                    .await
                    .map_err(|e| remote(key, "read part", e))?;
                let part = self
                    .client
                    .upload_part()
                    .bucket(b)
                    .key(full)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| remote(key, "upload part", e))?;
                parts.push(
                    CompletedPart::builder()
                        .set_e_tag(part.e_tag().map(str::to_owned))
                        .part_number(number)
                        .build(),
                );
                offset += len;
                number += 1;
            }
            self.client
                .complete_multipart_upload()
                .bucket(b)
                .key(full)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| remote(key, "complete multipart upload", e))
        }
        .await;
        if result.is_err() {
            // Parts of an abandoned upload are billed until aborted.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(b)
                .key(full)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result.map(drop)
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put_file(&self, key: &str, file: &Path) -> Result<(), StoreError> {
        let full = self.full(key)?;
        let size = tokio::fs::metadata(file)
            .await
            .map_err(|source| StoreError::Io {
                key: key.to_owned(),
                op: "reading the local file",
                source,
            })?
            .len();
        if size >= self.opts.multipart_threshold {
            return self.put_multipart(key, &full, file, size).await;
        }
        let body = ByteStream::from_path(file)
            .await
            .map_err(|e| remote(key, "read local file", e))?;
        self.client
            .put_object()
            .bucket(&self.opts.bucket)
            .key(&full)
            .body(body)
            .send()
            .await
            .map(drop)
            .map_err(|e| remote(key, "put", e))
    }

    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let full = self.full(key)?;
        self.client
            .put_object()
            .bucket(&self.opts.bucket)
            .key(&full)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(drop)
            .map_err(|e| remote(key, "put", e))
    }

    async fn get_file(&self, key: &str, file: &Path) -> Result<u64, StoreError> {
        let resp = self.get_object(key, None).await?;
        let tmp = file.with_file_name(format!(
            ".{}.partial",
            file.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let io = |op, source| StoreError::Io {
            key: key.to_owned(),
            op,
            source,
        };
        let mut out = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| io("create local file", e))?;
        let mut body = resp.body;
        let mut n = 0u64;
        loop {
            match body.next().await {
                Some(Ok(chunk)) => {
                    n += chunk.len() as u64;
                    out.write_all(&chunk)
                        .await
                        .map_err(|e| io("write local file", e))?;
                }
                Some(Err(e)) => {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    return Err(remote(key, "download", e));
                }
                None => break,
            }
        }
        out.flush().await.map_err(|e| io("write local file", e))?;
        drop(out);
        tokio::fs::rename(&tmp, file)
            .await
            .map_err(|e| io("rename local file", e))?;
        Ok(n)
    }

    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let resp = self.get_object(key, None).await?;
        let data = resp
            .body
            .collect()
            .await
            .map_err(|e| remote(key, "download", e))?;
        Ok(data.into_bytes().to_vec())
    }

    async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<u8>, StoreError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let resp = self
            .get_object(
                key,
                Some(format!("bytes={}-{}", range.start, range.end - 1)),
            )
            .await?;
        let data = resp
            .body
            .collect()
            .await
            .map_err(|e| remote(key, "download range", e))?;
        Ok(data.into_bytes().to_vec())
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let full = self.full(key)?;
        match self
            .client
            .head_object()
            .bucket(&self.opts.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(h) => Ok(Some(ObjectInfo {
                key: key.to_owned(),
                size: h.content_length().unwrap_or(0).max(0) as u64,
                etag: h.e_tag().unwrap_or_default().to_owned(),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(remote(key, "head", e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let full_prefix = if self.opts.prefix.is_empty() {
            prefix.to_owned()
        } else {
            format!("{}/{prefix}", self.opts.prefix.trim_end_matches('/'))
        };
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.opts.bucket)
            .prefix(&full_prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| remote(prefix, "list", e))?;
            for o in page.contents() {
                let Some(k) = o.key() else { continue };
                out.push(ObjectInfo {
                    key: self.strip(k).to_owned(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    etag: o.e_tag().unwrap_or_default().to_owned(),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let full = self.full(key)?;
        self.client
            .delete_object()
            .bucket(&self.opts.bucket)
            .key(&full)
            .send()
            .await
            .map(drop)
            .map_err(|e| remote(key, "delete", e))
    }

    async fn presign_get(
        &self,
        key: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<String>, StoreError> {
        let full = self.full(key)?;
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(ttl)
            .map_err(|e| remote(key, "presign", e))?;
        let req = self
            .client
            .get_object()
            .bucket(&self.opts.bucket)
            .key(&full)
            .presigned(config)
            .await
            .map_err(|e| remote(key, "presign", e))?;
        Ok(Some(req.uri().to_owned()))
    }

    fn describe(&self) -> String {
        format!(
            "s3://{}/{} at {}",
            self.opts.bucket,
            self.opts.prefix,
            self.opts.endpoint.as_deref().unwrap_or("AWS")
        )
    }
}
