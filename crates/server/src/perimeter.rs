//! What stands between the internet and the handlers: body limits per route
//! group, request timeouts, a global concurrency limit with load shedding,
//! header size limits (in hyper, and a tighter one here), security headers
//! on every response, request ids, and 500s that tell the caller nothing
//! but the id under which the details were logged. Built from tower-http
//! and tower layers; [`serve`] runs hyper directly (rather than
//! `axum::serve`) because only there can the header size and the time to
//! send the headers be bounded.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use stemfeed_core::config::ServerConfig;
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

/// Scripts, styles, images and media only from this origin (the UI has no
/// inline script or style: `static/review.js` and `static/review.css`), and
/// no framing by anyone. `media-src blob:` lets hls.js attach its Media
/// Source to the player (the object URL it makes for it).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; media-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The public URL and the limits, resolved from `[server]` and the address
/// the server listens on.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Origin feed and media URLs are built from, without a trailing slash.
    pub public_url: String,
    pub limits: ServerConfig,
}

impl ServerSettings {
    /// `config.public_url`, else `http://<listening>`.
    pub fn new(config: &ServerConfig, listening: SocketAddr) -> Self {
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{listening}"))
            .trim_end_matches('/')
            .to_owned();
        Self {
            public_url,
            limits: config.clone(),
        }
    }
}

/// The `[server]` numbers in the units the layers take.
#[derive(Debug, Clone)]
pub struct Limits {
    pub form_body: usize,
    pub edit_body: usize,
    max_header_bytes: usize,
    header_read_timeout: Duration,
    request_timeout: Duration,
    upload_idle_timeout: Duration,
    max_concurrent: usize,
    /// The public URL is https: browsers are told to use nothing else.
    https: bool,
}

/// The layers of a route group with small bodies.
pub type Bounded = ServiceBuilder<
    Stack<TimeoutLayer, Stack<RequestBodyLimitLayer, Stack<DefaultBodyLimit, Identity>>>,
>;

impl Limits {
    pub fn new(c: &ServerConfig) -> Self {
        Self {
            form_body: c.form_body_kib.saturating_mul(1024),
            edit_body: c.edit_body_kib.saturating_mul(1024),
            max_header_bytes: c.max_header_kib.saturating_mul(1024),
            header_read_timeout: Duration::from_secs(c.header_read_timeout_seconds),
            request_timeout: Duration::from_secs(c.request_timeout_seconds),
            upload_idle_timeout: Duration::from_secs(c.upload_idle_timeout_seconds),
            max_concurrent: c.max_concurrent_requests,
            https: c
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://")),
        }
    }

    /// At most `body` bytes (a larger Content-Length is answered 413 before
    /// a byte is read; a chunked body is cut off there), and an answer
    /// within the request timeout (408). Media bodies stream after the
    /// answer has started, so the timeout does not cut a download short.
    pub fn bounded(&self, body: usize) -> Bounded {
        ServiceBuilder::new()
            .layer(DefaultBodyLimit::max(body))
            .layer(RequestBodyLimitLayer::new(body))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                self.request_timeout,
            ))
    }

    /// The tus PATCH: no overall time (a large upload on a slow phone takes
    /// long), but a body that sends nothing for the idle timeout is cut off.
    pub fn streaming(&self) -> RequestBodyTimeoutLayer {
        RequestBodyTimeoutLayer::new(self.upload_idle_timeout)
    }
}

/// The layers every response passes through, innermost first: panics become
/// 500s, requests beyond the concurrency limit are shed with 503, oversized
/// headers are refused with 431, every answer gets a request id (and a 500
/// a generic body naming it), and the security headers go on everything,
/// refusals included.
pub fn layers(router: Router, limits: &Limits) -> Router {
    let header = |name, value: &'static str| {
        SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
    };
    // Only when the public URL is https: over plain HTTP the header would be
    // ignored, and on a local http setup it must not pin the host to TLS.
    let hsts_value = limits
        .https
        .then(|| HeaderValue::from_static("max-age=31536000"));
    let hsts = move |_: &Response| hsts_value.clone();
    router
        .layer(CatchPanicLayer::custom(|_| {
            let mut resp = StatusCode::INTERNAL_SERVER_ERROR.into_response();
            resp.extensions_mut()
                .insert(InternalDetail("a handler panicked".to_owned()));
            resp
        }))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    crate::ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy, try again")
                }))
                .load_shed()
                .concurrency_limit(limits.max_concurrent),
        )
        .layer(middleware::from_fn_with_state(
            limits.max_header_bytes,
            header_size,
        ))
        .layer(middleware::from_fn(request_id))
        .layer(header(
            header::CONTENT_SECURITY_POLICY,
            CONTENT_SECURITY_POLICY,
        ))
        .layer(header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(header(header::REFERRER_POLICY, "same-origin"))
        .layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            hsts,
        ))
}

/// What went wrong behind a 500, carried from [`crate::ApiError`] to the
/// log; never sent.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

fn new_request_id() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the OS random source");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Gives each request an id (`x-request-id` on the answer) and turns every
/// 500 into `{"error":"internal error","request_id":…}`, logging the detail
/// under that id.
async fn request_id(req: Request, next: Next) -> Response {
    let id = new_request_id();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut resp = next.run(req).await;
    if resp.status() == StatusCode::INTERNAL_SERVER_ERROR {
        let detail = resp
            .extensions_mut()
            .remove::<InternalDetail>()
            .map_or_else(|| "no detail".to_owned(), |d| d.0);
        tracing::error!(request_id = %id, %method, path, "{detail}");
        let body = serde_json::json!({ "error": "internal error", "request_id": id });
        resp = (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// 431 when the request line and headers together exceed the limit. hyper
/// already refuses what does not fit its read buffer; this is the tighter,
/// configured bound, answered with the security headers.
async fn header_size(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let size = req.uri().to_string().len()
        + req
            .headers()
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if size > limit {
        return crate::ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("request headers over {limit} bytes"),
        )
        .into_response();
    }
    next.run(req).await
}

/// The TLS acceptor for `[server] tls_cert` and `tls_key` (rustls: TLS 1.2
/// and 1.3, safe default suites, HTTP/2 and HTTP/1.1 by ALPN), or `None`
/// when neither is set. Errors name the file and what is wrong with it.
pub fn tls_acceptor(config: &ServerConfig) -> Result<Option<tokio_rustls::TlsAcceptor>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("server.tls_cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "server.tls_cert {}: no certificate in it",
            cert.display()
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("server.tls_key {}: {e}", key.display()))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS settings: {e}"))?
    .with_no_client_auth()
    .with_single_cert(chain, private)
    .map_err(|e| {
        format!(
            "server.tls_cert {} and server.tls_key {}: {e}",
            cert.display(),
            key.display()
        )
    })?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(
        tls,
    ))))
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open
/// requests finish (at most `grace`). Unlike `axum::serve`, the time to send
/// the headers and their size are bounded (slow-header clients cannot hold
/// connections open; a huge header block is refused by hyper with 431).
/// With `[server] tls_cert` and `tls_key` it speaks HTTPS only; the TLS
/// handshake has the same time limit as the headers.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: &ServerConfig,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let tls = tls_acceptor(limits).map_err(std::io::Error::other)?;
    let l = Limits::new(limits);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(l.header_read_timeout)
        // The read buffer bounds the head; keep it large enough for
        // upload throughput, the tighter header limit is checked above.
        .max_buf_size(l.max_header_bytes.max(64 * 1024));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(l.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(64);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off
                        // rather than spin.
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // The client's address as axum's `ConnectInfo`: login
                // failures are counted per address (auth::Guard).
                let service = TowerToHyperService::new(tower::ServiceExt::map_request(
                    router.clone(),
                    move |mut req: hyper::Request<hyper::body::Incoming>| {
                        req.extensions_mut()
                            .insert(axum::extract::ConnectInfo(peer));
                        req
                    },
                ));
                let Some(tls) = &tls else {
                    let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!("connection ended: {e}");
                        }
                    });
                    continue;
                };
                let (tls, builder, watcher) = (tls.clone(), builder.clone(), graceful.watcher());
                let handshake_limit = l.header_read_timeout;
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(handshake_limit, tls.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, "TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!("connection ended: {e}");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still open after {grace:?}: closing them");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;
    use crate::ApiError;

    #[tokio::test]
    async fn a_500_body_holds_only_the_request_id() {
        let router = Router::new().route(
            "/",
            get(|| async {
                Err::<(), _>(ApiError::internal(
                    "SELECT * FROM users: disk I/O error at /var/lib/stemfeed/catalog.db",
                ))
            }),
        );
        let app = layers(router, &Limits::new(&ServerConfig::default()));
        let resp = app
            .oneshot(Request::get("/").body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(
            resp.headers()[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        let body = to_bytes(resp.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({ "error": "internal error", "request_id": id })
        );
    }
}
