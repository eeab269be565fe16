//! `stemfeed serve`: the HTTP server (submission API, curator UI, feed) and,
//! in embedded mode, the worker pool in the same process — one command for
//! the whole product on one machine. `--no-worker` runs only the server
//! (scale-out: workers run elsewhere as `stemfeed worker`).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use stemfeed_core::Config;
use stemfeed_queue::Role;
use stemfeed_server::{App, ServerSettings, auth, tus};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Data directory (embedded store, catalog, partial uploads); overrides the config.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Serve only; workers run elsewhere.
    #[arg(long)]
    no_worker: bool,
    /// Largest upload accepted, in MiB.
    #[arg(long, default_value_t = 1024)]
    max_upload_mib: u64,
    /// Unfinished uploads are deleted this many seconds after their last
    /// byte (tus `Upload-Expires`).
    #[arg(long, env = "STEMFEED_UPLOAD_EXPIRY_SECONDS", default_value_t = 86_400)]
    upload_expiry_seconds: u64,
    /// Unfinished uploads one submitter may have at once.
    #[arg(long, env = "STEMFEED_MAX_OPEN_UPLOADS", default_value_t = 10)]
    max_open_uploads: u64,
    /// Declared MiB of one submitter's unfinished uploads, together.
    #[arg(
        long,
        env = "STEMFEED_MAX_UPLOAD_MIB_IN_FLIGHT",
        default_value_t = 8192
    )]
    max_upload_mib_in_flight: u64,
    /// Refuse uploads (507) unless this many MiB stay free on the disk of
    /// partial uploads after them.
    #[arg(long, env = "STEMFEED_UPLOAD_MIN_FREE_MIB", default_value_t = 1024)]
    upload_min_free_mib: u64,
}

/// Creates the first admin when there is no user yet; returns the password.
async fn first_admin(app: &App, data_dir: &std::path::Path) -> anyhow::Result<Option<String>> {
    if app
        .db(|c| c.user_count())
        .await
        .map_err(|e| anyhow::anyhow!(e.1))?
        > 0
    {
        return Ok(None);
    }
    let password = auth::random_token()[..20].to_owned();
    let p = password.clone();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&p)).await??;
    app.db(move |c| c.create_user("admin", &hash, Role::Admin))
        .await
        .map_err(|e| anyhow::anyhow!(e.1))?;
    std::fs::create_dir_all(data_dir)?;
    let path = data_dir.join("admin-password.txt");
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    writeln!(f, "admin {password}")?;
    Ok(Some(password))
}

/// The server's state over the configured catalog and store: what `serve`
/// runs, and what commands that read the review data (exports) use.
pub async fn app(
    config: &Config,
    server: ServerSettings,
    max_upload_bytes: u64,
    uploads: tus::UploadLimits,
) -> anyhow::Result<Arc<App>> {
    Ok(Arc::new(App {
        catalog: stemfeed_worker::open_catalog(config).await?,
        store: stemfeed_worker::open_store(config).await?,
        tagger: stemfeed_pipeline::tag::tagger(&config.tagging)?,
        upload_dir: config.data_dir.join("partial-uploads"),
        max_upload_bytes,
        max_attempts: config.worker.max_attempts,
        guard: auth::Guard::from_config(&config.server),
        server,
        uploads: tus::Uploads::new(uploads),
        manifests: stemfeed_server::cache::ManifestCache::default(),
        exports: stemfeed_server::export::Exports::new(
            config.data_dir.clone(),
            config.worker.profile.clone(),
            crate::probe_cmd::load_profile(config.worker.profile.as_deref())?
                .platform
                .on_approval,
        ),
        accuracy_refresh: Default::default(),
    }))
}

pub fn run(args: &ServeArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let mut config = config.clone();
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        config.server.check().map_err(anyhow::Error::msg)?;
        // A bad certificate or key stops the start, before anything listens.
        stemfeed_server::tls_acceptor(&config.server).map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let server = ServerSettings::new(&config.server, addr);
        let app = app(
            &config,
            server.clone(),
            args.max_upload_mib * 1024 * 1024,
            tus::UploadLimits {
                expiry: std::time::Duration::from_secs(args.upload_expiry_seconds.max(1)),
                max_open_per_submitter: args.max_open_uploads,
                max_bytes_per_submitter: args.max_upload_mib_in_flight.saturating_mul(1024 * 1024),
                min_free_mib: args.upload_min_free_mib,
            },
        )
        .await?;
        tokio::spawn(tus::sweep(Arc::clone(&app)));
        // Workers judge new tracks by what curators changed in approved ones.
        tokio::spawn(stemfeed_server::keep_accuracy(
            Arc::clone(&app),
            std::time::Duration::from_secs(300),
        ));
        {
            let app = Arc::clone(&app);
            tokio::spawn(async move {
                match stemfeed_server::import_old_runs(&app).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!("stored the recognised tracks of {n} older runs as their first caption versions"),
                    Err(e) => tracing::warn!("importing the tracks of older runs: {}", e.1),
                }
            });
        }
        let admin = first_admin(&app, &config.data_dir).await?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        stemfeed_worker::on_signals(tx);
        let url = &server.public_url;
        println!("stemfeed is running at {url}/  (listening on {addr}; review UI: {url}/review, feed: {url}/feed.json)");
        match admin {
            Some(pw) => println!("first admin login: admin / {pw}  (also in {})", config.data_dir.join("admin-password.txt").display()),
            None if config.data_dir.join("admin-password.txt").is_file() => {
                println!("admin login: see {}", config.data_dir.join("admin-password.txt").display())
            }
            None => println!("log in with an existing account (`stemfeed users add NAME --role curator` makes one)"),
        }
        let _ = std::io::stdout().flush();
        let pool = if args.no_worker {
            None
        } else {
            let options = crate::worker_cmd::options(Some(format!("serve-{}", std::process::id())), false, &config)?;
            let rx = rx.clone();
            Some(tokio::spawn(async move { stemfeed_worker::run_pool(options, rx).await }))
        };
        let mut shutdown = rx.clone();
        let grace = std::time::Duration::from_secs(config.worker.shutdown_grace_seconds);
        stemfeed_server::serve(
            listener,
            stemfeed_server::router(app),
            &config.server,
            async move {
                let _ = shutdown.wait_for(|s| *s).await;
            },
            grace,
        )
        .await?;
        if let Some(pool) = pool {
            pool.await??;
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
