//! `stemfeed.toml` plus environment overrides.
//!
//! Precedence, lowest to highest: built-in defaults (embedded mode under
//! `./stemfeed-data`), the config file, `STEMFEED_*` environment variables,
//! and finally command-line flags applied by the binary. Unknown keys in the
//! file are rejected by name so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Environment variable naming the config file.
pub const ENV_CONFIG: &str = "STEMFEED_CONFIG";
/// Environment variable overriding [`Config::data_dir`].
pub const ENV_DATA_DIR: &str = "STEMFEED_DATA_DIR";
/// Environment variable overriding [`Config::models_dir`].
pub const ENV_MODELS_DIR: &str = "STEMFEED_MODELS_DIR";
/// Config file looked for in the working directory when none is named.
pub const DEFAULT_CONFIG_FILE: &str = "stemfeed.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// Resolved configuration. Every path is absolute or relative to the working
/// directory the process was started in.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Embedded mode's object store, catalog and outputs.
    pub data_dir: PathBuf,
    /// Installed Whisper models (ggml files and their metadata). Lives outside
    /// the repository; defaults to the user's cache directory.
    pub models_dir: PathBuf,
    pub asr: AsrConfig,
    pub tagging: TaggingConfig,
    pub store: StoreConfig,
    pub catalog: CatalogConfig,
    pub worker: WorkerConfig,
    pub server: ServerConfig,
}

/// Environment variable overriding `server.public_url`.
pub const ENV_PUBLIC_URL: &str = "STEMFEED_PUBLIC_URL";

/// Environment variable overriding `store.url`.
pub const ENV_STORE_URL: &str = "STEMFEED_STORE_URL";
/// Environment variable overriding `store.endpoint`.
pub const ENV_S3_ENDPOINT: &str = "STEMFEED_S3_ENDPOINT";
/// Environment variable overriding `catalog.url`.
pub const ENV_CATALOG_URL: &str = "STEMFEED_CATALOG_URL";

/// `[store]`: where uploads and outputs live.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `file:DIR` or `s3://BUCKET[/PREFIX]`; default `file:<data_dir>/objects`.
    pub url: Option<String>,
    /// S3 endpoint override for S3-compatible servers (MinIO, Garage, moto…).
    pub endpoint: Option<String>,
    /// S3 region (default: the SDK's chain, else us-east-1).
    pub region: Option<String>,
    /// Path-style addressing; most S3-compatible servers need it.
    pub path_style: bool,
    /// Files at least this many MiB go up as multipart uploads.
    pub multipart_threshold_mib: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: None,
            endpoint: None,
            region: None,
            path_style: true,
            multipart_threshold_mib: 16,
        }
    }
}

/// `[catalog]`: the queue and catalog database.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// `sqlite:PATH` or `postgres://…`; default `sqlite:<data_dir>/catalog.db`.
    pub url: Option<String>,
}

/// `[worker]`: the job runner.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Jobs transcoding at once (CPU-bound).
    pub transcode_slots: usize,
    /// Jobs captioning at once (GPU or CPU threads).
    pub asr_slots: usize,
    /// A job's lease; heartbeats renew it every third of this.
    pub lease_seconds: u64,
    /// Attempts before a job is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubles with each attempt.
    pub retry_backoff_seconds: f64,
    /// How often an idle worker looks for jobs and new uploads.
    pub poll_millis: u64,
    /// Turn objects under `incoming/` into jobs.
    pub watch: bool,
    /// On SIGTERM/SIGINT: time for running jobs to finish before their leases are released.
    pub shutdown_grace_seconds: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    pub metrics_listen: Option<String>,
    /// Profile TOML for jobs (default: the built-in short-form profile).
    pub profile: Option<PathBuf>,
    /// Run the caption stage (off for transcode-only deployments).
    pub captions: bool,
    /// Refuse to start unless stage processes can be fully sandboxed here
    /// (no network, Landlock file confinement, no signals to the worker).
    /// Set false only on a machine you accept running decoders unconfined.
    pub require_sandbox: bool,
    /// Stop claiming jobs while the work directory's file system has less
    /// free space than this (MiB); jobs are not charged an attempt for it.
    pub min_free_mib: u64,
    /// Address-space limit of a stage child process (MiB); 0 = none.
    /// CUDA reserves far more virtual memory than it uses: GPU workers
    /// should set 0 here.
    pub stage_memory_mib: u64,
    /// Largest file a stage child may write (MiB).
    pub stage_file_mib: u64,
    /// Wall-clock limit of a stage: this many seconds plus
    /// `stage_seconds_per_media_second` × the profile's longest accepted
    /// duration (the transcode) or the probed duration (captions).
    pub stage_base_seconds: u64,
    pub stage_seconds_per_media_second: f64,
    /// The stages this worker claims: `transcode` (probe, validate,
    /// loudness, ASR audio, renditions) and `captions` with `tags` (which
    /// run on the transcript, so the two go together). CPU boxes take
    /// `["transcode"]`, GPU boxes `["captions", "tags"]`; a worker with all
    /// of them (the default) runs a job whole, captions beside the encode.
    pub stages: Vec<String>,
}

/// The stage names `worker.stages` accepts.
pub const WORKER_STAGES: [&str; 3] = ["transcode", "captions", "tags"];

impl WorkerConfig {
    /// Whether this worker claims the transcode part of jobs.
    pub fn transcodes(&self) -> bool {
        self.stages.iter().any(|s| s == "transcode")
    }

    /// Whether this worker claims the captions part (captions and tags).
    pub fn captions_and_tags(&self) -> bool {
        self.stages.iter().any(|s| s == "captions")
    }

    /// Checks what serde cannot: known stage names, captions with tags.
    pub fn check(&self) -> Result<(), String> {
        if let Some(bad) = self
            .stages
            .iter()
            .find(|s| !WORKER_STAGES.contains(&s.as_str()))
        {
            return Err(format!(
                "worker.stages: unknown stage {bad:?} (known: {})",
                WORKER_STAGES.join(", ")
            ));
        }
        if self.stages.is_empty() {
            return Err("worker.stages is empty: a worker needs at least one stage".to_owned());
        }
        let has = |name: &str| self.stages.iter().any(|s| s == name);
        if has("captions") != has("tags") {
            return Err(
                "worker.stages: \"captions\" and \"tags\" go together (tags are read from the transcript in the same stage)"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            transcode_slots: 1,
            asr_slots: 1,
            lease_seconds: 60,
            max_attempts: 3,
            retry_backoff_seconds: 10.0,
            poll_millis: 1000,
            watch: true,
            shutdown_grace_seconds: 30,
            metrics_listen: None,
            profile: None,
            captions: true,
            require_sandbox: true,
            min_free_mib: 512,
            stage_memory_mib: 6144,
            stage_file_mib: 4096,
            stage_base_seconds: 120,
            stage_seconds_per_media_second: 20.0,
            stages: WORKER_STAGES.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// `[server]`: what `stemfeed serve` shows the internet and what it accepts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The origin clients reach the server at, e.g. `https://feed.example.org`;
    /// feed and media URLs are built from it, never from the request's `Host`.
    /// Default: `http://<listen address>`.
    pub public_url: Option<String>,
    /// Largest body of a form, a login or a JSON request (KiB).
    pub form_body_kib: usize,
    /// Largest body of a caption or tags edit (KiB).
    pub edit_body_kib: usize,
    /// Largest request line plus headers (KiB); more is refused with 431.
    pub max_header_kib: usize,
    /// Time to receive a request's headers.
    pub header_read_timeout_seconds: u64,
    /// Time to answer a request (every route but the tus PATCH, whose body
    /// may take long; media bodies stream after the answer starts).
    pub request_timeout_seconds: u64,
    /// A tus PATCH whose body sends nothing for this long is cut off.
    pub upload_idle_timeout_seconds: u64,
    /// Requests handled at once; more are answered 503 at once.
    pub max_concurrent_requests: usize,
    /// PEM certificate chain; with `tls_key`, `serve` speaks HTTPS itself
    /// (rustls). Without them it speaks plain HTTP, for a proxy in front.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Failed logins for one user name within `login_window_minutes`
    /// before that name is refused (429) until the window ends.
    pub login_failures_per_name: u32,
    /// Failed logins from one client address (IPv6: its /64) within the
    /// window; higher, since many people can share an address.
    pub login_failures_per_address: u32,
    pub login_window_minutes: u64,
    /// A session unused this long ends.
    pub session_idle_minutes: u64,
    /// A session ends this long after its login, used or not.
    pub session_max_hours: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            public_url: None,
            form_body_kib: 64,
            edit_body_kib: 2048,
            max_header_kib: 16,
            header_read_timeout_seconds: 10,
            request_timeout_seconds: 30,
            upload_idle_timeout_seconds: 60,
            max_concurrent_requests: 512,
            tls_cert: None,
            tls_key: None,
            login_failures_per_name: 10,
            login_failures_per_address: 50,
            login_window_minutes: 15,
            session_idle_minutes: 30,
            session_max_hours: 12,
        }
    }
}

impl ServerConfig {
    /// Checks what serde cannot: a public URL is an http(s) origin.
    pub fn check(&self) -> Result<(), String> {
        if let Some(url) = &self.public_url {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"))
                .ok_or_else(|| {
                    format!("server.public_url {url:?} must start with http:// or https://")
                })?;
            if rest.is_empty() || rest.trim_end_matches('/').contains(['/', '?', '#', ' ']) {
                return Err(format!(
                    "server.public_url {url:?} must be an origin, like https://feed.example.org"
                ));
            }
        }
        if self.form_body_kib == 0 || self.edit_body_kib == 0 || self.max_concurrent_requests == 0 {
            return Err("server limits must be above 0".to_owned());
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(
                "server.tls_cert and server.tls_key go together: set both or neither".to_owned(),
            );
        }
        if self.login_failures_per_name == 0
            || self.login_failures_per_address == 0
            || self.login_window_minutes == 0
            || self.session_idle_minutes == 0
            || self.session_max_hours == 0
        {
            return Err("server login and session limits must be above 0".to_owned());
        }
        Ok(())
    }
}

impl Config {
    /// The object store URL, defaulting to a directory in the data dir.
    pub fn store_url(&self) -> String {
        self.store
            .url
            .clone()
            .unwrap_or_else(|| format!("file:{}", self.data_dir.join("objects").display()))
    }

    /// The catalog URL, defaulting to SQLite in the data dir.
    pub fn catalog_url(&self) -> String {
        self.catalog
            .url
            .clone()
            .unwrap_or_else(|| format!("sqlite:{}", self.data_dir.join("catalog.db").display()))
    }
}

/// `[tagging]`: where the taxonomy comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaggingConfig {
    /// A taxonomy TOML to use instead of the built-in `pipelines/taxonomy.toml`.
    pub taxonomy: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AsrConfig {
    /// Installed model name used when a job does not ask for another.
    pub model: String,
    /// CPU threads per whisper inference.
    pub threads: usize,
    /// Use the GPU when the binary was built with one.
    pub gpu: bool,
    /// Installed model per spoken language (ISO 639-1 → model name), e.g.
    /// `ur = "small"`; languages not listed use `model`.
    pub models: std::collections::BTreeMap<String, String>,
}

impl Default for AsrConfig {
    fn default() -> Self {
        Self {
            model: "base".to_owned(),
            threads: std::thread::available_parallelism().map_or(2, |n| n.get().min(8)),
            gpu: true,
            models: std::collections::BTreeMap::new(),
        }
    }
}

/// The on-disk shape of `stemfeed.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    data_dir: Option<PathBuf>,
    models_dir: Option<PathBuf>,
    #[serde(default)]
    asr: AsrConfig,
    #[serde(default)]
    tagging: TaggingConfig,
    #[serde(default)]
    store: StoreConfig,
    #[serde(default)]
    catalog: CatalogConfig,
    #[serde(default)]
    worker: WorkerConfig,
    #[serde(default)]
    server: ServerConfig,
}

impl Config {
    /// Defaults for embedded mode, with no file and no environment applied.
    pub fn defaults() -> Self {
        Self {
            data_dir: PathBuf::from("stemfeed-data"),
            models_dir: default_models_dir(),
            asr: AsrConfig::default(),
            tagging: TaggingConfig::default(),
            store: StoreConfig::default(),
            catalog: CatalogConfig::default(),
            worker: WorkerConfig::default(),
            server: ServerConfig::default(),
        }
    }

    /// Loads `path` if given, else `$STEMFEED_CONFIG`, else `./stemfeed.toml`
    /// when it exists; then applies environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let env_path = std::env::var_os(ENV_CONFIG).map(PathBuf::from);
        let chosen = path.map(Path::to_path_buf).or(env_path);
        let mut config = match chosen {
            Some(p) => Self::from_file(&p)?,
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                Self::from_file(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => Self::defaults(),
        };
        if let Some(dir) = std::env::var_os(ENV_DATA_DIR) {
            config.data_dir = PathBuf::from(dir);
        }
        if let Some(dir) = std::env::var_os(ENV_MODELS_DIR) {
            config.models_dir = PathBuf::from(dir);
        }
        if let Ok(url) = std::env::var(ENV_STORE_URL) {
            config.store.url = Some(url);
        }
        if let Ok(endpoint) = std::env::var(ENV_S3_ENDPOINT) {
            config.store.endpoint = Some(endpoint);
        }
        if let Ok(url) = std::env::var(ENV_CATALOG_URL) {
            config.catalog.url = Some(url);
        }
        if let Ok(url) = std::env::var(ENV_PUBLIC_URL) {
            config.server.public_url = Some(url);
        }
        Ok(config)
    }

    /// Parses one config file on top of the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    fn from_toml(text: &str) -> Result<Self, String> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        file.server.check()?;
        file.worker.check()?;
        let defaults = Self::defaults();
        Ok(Self {
            data_dir: file.data_dir.unwrap_or(defaults.data_dir),
            models_dir: file.models_dir.map_or(defaults.models_dir, expand_home),
            asr: file.asr,
            tagging: file.tagging,
            store: file.store,
            catalog: file.catalog,
            worker: file.worker,
            server: file.server,
        })
    }
}

/// `$XDG_CACHE_HOME/stemfeed/models`, else `~/.cache/stemfeed/models`.
pub fn default_models_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("stemfeed").join("models")
}

fn expand_home(path: PathBuf) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.data_dir, PathBuf::from("stemfeed-data"));
        assert_eq!(c.asr.model, "base");
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let err = Config::from_toml("data_dri = \"x\"").unwrap_err();
        assert!(err.contains("data_dri"), "{err}");
        let err = Config::from_toml("[asr]\nthreds = 4").unwrap_err();
        assert!(err.contains("threds"), "{err}");
        let err = Config::from_toml("[worker]\nleas_seconds = 4").unwrap_err();
        assert!(err.contains("leas_seconds"), "{err}");
    }

    #[test]
    fn file_values_apply() {
        let c = Config::from_toml("models_dir = \"/m\"\n[asr]\nmodel = \"tiny.en\"\nthreads = 3\nmodels = { ur = \"small\" }")
            .unwrap();
        assert_eq!(c.models_dir, PathBuf::from("/m"));
        assert_eq!(c.asr.model, "tiny.en");
        assert_eq!(c.asr.threads, 3);
        assert!(c.asr.gpu);
        assert_eq!(c.asr.models.get("ur").map(String::as_str), Some("small"));
    }

    #[test]
    fn server_section() {
        let c = Config::from_toml(
            "[server]\npublic_url = \"https://feed.example.org\"\nform_body_kib = 8",
        )
        .unwrap();
        assert_eq!(
            c.server.public_url.as_deref(),
            Some("https://feed.example.org")
        );
        assert_eq!(c.server.form_body_kib, 8);
        assert!(c.server.check().is_ok());
        let err = Config::from_toml("[server]\npublic_ulr = \"x\"").unwrap_err();
        assert!(err.contains("public_ulr"), "{err}");
        for bad in [
            "feed.example.org",
            "https://feed.example.org/path",
            "ftp://x",
        ] {
            let s = ServerConfig {
                public_url: Some(bad.to_owned()),
                ..ServerConfig::default()
            };
            assert!(s.check().is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = Config::from_file(Path::new("/nonexistent/stemfeed.toml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/stemfeed.toml"));
    }
}
