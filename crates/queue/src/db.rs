//! The two SQL backends behind one small interface, so the catalog's logic
//! and SQL are written once. Statements use Postgres's `$n` placeholders;
//! SQLite gets them as `?n`. Every integer column is BIGINT and every float
//! DOUBLE PRECISION on both, so parameters bind the same way.
//!
//! Connections come from a bounded [`r2d2`] pool. The pool's manager is our
//! own rather than `r2d2_postgres` / `r2d2_sqlite`: those hand out bare
//! clients, while each of our connections keeps its prepared statements and
//! knows whether an error it saw broke it. A connection is dropped only when
//! it is broken (the server went away, the socket failed, a transaction could
//! not be rolled back); an ordinary SQL error leaves it in the pool. When one
//! connection is found broken, every connection opened before it is presumed
//! broken too (a restarted server closed them all), so the calls after a
//! PostgreSQL restart get new connections instead of failing one by one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{DbErrorKind, QueueError};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    I64(i64),
    F64(f64),
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I64(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F64(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Value>);

impl Row {
    pub fn i64(&self, i: usize) -> i64 {
        match &self.0[i] {
            Value::I64(v) => *v,
            Value::F64(v) => *v as i64,
            _ => 0,
        }
    }
    pub fn opt_i64(&self, i: usize) -> Option<i64> {
        match &self.0[i] {
            Value::Null => None,
            _ => Some(self.i64(i)),
        }
    }
    pub fn f64(&self, i: usize) -> f64 {
        match &self.0[i] {
            Value::F64(v) => *v,
            Value::I64(v) => *v as f64,
            _ => 0.0,
        }
    }
    pub fn text(&self, i: usize) -> String {
        self.opt_text(i).unwrap_or_default()
    }
    pub fn opt_text(&self, i: usize) -> Option<String> {
        match &self.0[i] {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The database's clock in Unix milliseconds: leases compare against one
    /// clock however skewed the workers' clocks are.
    pub fn now_ms(self) -> &'static str {
        match self {
            Dialect::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS BIGINT)",
            Dialect::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }
    pub fn serial_key(self) -> &'static str {
        match self {
            Dialect::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Dialect::Postgres => "BIGSERIAL PRIMARY KEY",
        }
    }
    /// Row locking for a claim; SQLite serialises writers instead.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
        }
    }
    /// Row locking for a read-then-write; SQLite serialises writers instead.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => "FOR UPDATE",
        }
    }
}

/// A connection of either kind.
pub trait Conn: Send {
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, QueueError>;
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, QueueError>;
    fn batch(&mut self, sql: &str) -> Result<(), QueueError>;
    /// Starts a transaction that takes the write lock at once.
    fn begin(&mut self) -> Result<(), QueueError>;
    /// Whether this connection can no longer be used (its server or socket
    /// failed, or it was left inside a transaction it could not end).
    fn is_broken(&mut self) -> bool;
    /// Marks the connection unusable: the pool drops it instead of reusing it.
    fn mark_broken(&mut self);
    /// A round trip to the server, bounded by `timeout`.
    fn ping(&mut self, timeout: Duration) -> Result<(), QueueError>;
}

fn sqlite_placeholders(sql: &str) -> String {
    sql.replace('$', "?")
}

/// Sorts a SQLite error into what the caller can do about it.
pub(crate) fn sqlite_kind(e: &rusqlite::Error) -> DbErrorKind {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::DatabaseBusy | C::DatabaseLocked) => DbErrorKind::Timeout,
        Some(C::ConstraintViolation) => DbErrorKind::Constraint,
        Some(
            C::CannotOpen
            | C::SystemIoFailure
            | C::DiskFull
            | C::ReadOnly
            | C::OutOfMemory
            | C::NoLargeFileSupport
            | C::FileLockingProtocolFailed
            | C::PermissionDenied,
        ) => DbErrorKind::Unavailable,
        _ => DbErrorKind::Other,
    }
}

fn sqlite_err(context: &str, e: rusqlite::Error) -> QueueError {
    let kind = sqlite_kind(&e);
    QueueError::db_kind(context, e, kind)
}

/// Sorts a PostgreSQL error into what the caller can do about it.
pub(crate) fn pg_kind(e: &postgres::Error) -> DbErrorKind {
    if e.is_closed() {
        return DbErrorKind::Unavailable;
    }
    if let Some(code) = e.code() {
        let code = code.code();
        return match code {
            // serialization_failure, deadlock_detected
            "40001" | "40P01" => DbErrorKind::Conflict,
            // query_canceled (statement_timeout), lock_not_available (lock_timeout)
            "57014" | "55P03" => DbErrorKind::Timeout,
            // admin_shutdown, crash_shutdown, cannot_connect_now, database_dropped
            "57P01" | "57P02" | "57P03" | "57P04" => DbErrorKind::Unavailable,
            // connection exceptions; insufficient resources (too many
            // connections, disk full, out of memory); system (I/O) errors
            c if c.starts_with("08") || c.starts_with("53") || c.starts_with("58") => {
                DbErrorKind::Unavailable
            }
            c if c.starts_with("23") => DbErrorKind::Constraint,
            _ => DbErrorKind::Other,
        };
    }
    // No server error: a client-side failure. A certificate the client
    // rejects, a failed login or a bad setting will fail the same way again
    // (the TLS error comes wrapped in an io::Error, so look at it first);
    // socket and connect errors carry an io::Error; "timeout waiting for
    // server" is the connect timeout.
    let text = e.to_string();
    if text.starts_with("error performing TLS handshake")
        || text.starts_with("authentication")
        || text.starts_with("invalid")
    {
        return DbErrorKind::Other;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>().is_some() {
            return DbErrorKind::Unavailable;
        }
        source = s.source();
    }
    if text.starts_with("timeout") {
        DbErrorKind::Timeout
    } else if text.starts_with("error connecting")
        || text.starts_with("error communicating")
        || text.starts_with("unexpected message")
        || text.starts_with("error parsing response")
    {
        DbErrorKind::Unavailable
    } else {
        DbErrorKind::Other
    }
}

fn pg_err(context: &str, e: postgres::Error) -> QueueError {
    let kind = pg_kind(&e);
    QueueError::db_kind(context, e, kind)
}

/// Whether the connection that returned `e` is gone: closed, a socket
/// failure, or the server ending the session. A server that is out of disk
/// or too busy still has a working connection.
fn pg_breaks(e: &postgres::Error) -> bool {
    match e.code().map(|c| c.code()) {
        Some(c) => c.starts_with("08") || c.starts_with("57P"),
        None => e.is_closed() || pg_kind(e) == DbErrorKind::Unavailable,
    }
}

pub struct SqliteConn {
    conn: rusqlite::Connection,
    broken: bool,
}

impl std::fmt::Debug for SqliteConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteConn")
    }
}

impl SqliteConn {
    /// Opens the file (WAL, foreign keys on); `busy` bounds how long a
    /// statement waits for another writer's lock.
    pub fn open(path: &Path, busy: Duration) -> Result<Self, QueueError> {
        let what = format!("opening SQLite catalog {}", path.display());
        let c = rusqlite::Connection::open(path).map_err(|e| sqlite_err(&what, e))?;
        c.busy_timeout(busy)
            .map_err(|e| sqlite_err(&format!("{what}: busy_timeout"), e))?;
        wal_mode(&c, busy).map_err(|e| sqlite_err(&format!("{what}: journal_mode"), e))?;
        c.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(|e| sqlite_err(&format!("{what}: pragmas"), e))?;
        Ok(Self {
            conn: c,
            broken: false,
        })
    }

    fn checked<T>(&mut self, r: Result<T, QueueError>) -> Result<T, QueueError> {
        if let Err(e) = &r
            && e.kind() == Some(DbErrorKind::Unavailable)
        {
            self.broken = true;
        }
        r
    }
}

/// Switches the file to WAL. Changing the journal mode needs an exclusive
/// lock and SQLite answers BUSY at once, without its busy handler, when
/// another connection is opening the same new file; so the switch is retried
/// here until `busy` has passed. A file already in WAL is left alone.
fn wal_mode(c: &rusqlite::Connection, busy: Duration) -> rusqlite::Result<()> {
    let deadline = Instant::now() + busy;
    let mut pause = Duration::from_millis(5);
    loop {
        let mode = c
            .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
            .and_then(|m| {
                if m.eq_ignore_ascii_case("wal") {
                    Ok(m)
                } else {
                    c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
                }
            });
        match mode {
            Ok(_) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}

fn to_sql(v: &Value) -> rusqlite::types::Value {
    match v {
        Value::Null => rusqlite::types::Value::Null,
        Value::I64(i) => rusqlite::types::Value::Integer(*i),
        Value::F64(f) => rusqlite::types::Value::Real(*f),
        Value::Text(s) => rusqlite::types::Value::Text(s.clone()),
    }
}

impl Conn for SqliteConn {
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, QueueError> {
        let sql = sqlite_placeholders(sql);
        let params: Vec<_> = params.iter().map(to_sql).collect();
        let r = self
            .conn
            .execute(&sql, rusqlite::params_from_iter(params))
            .map(|n| n as u64)
            .map_err(|e| sqlite_err(&sql, e));
        self.checked(r)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, QueueError> {
        let sql = sqlite_placeholders(sql);
        let params: Vec<_> = params.iter().map(to_sql).collect();
        let r = (|| {
            let mut stmt = self.conn.prepare(&sql).map_err(|e| sqlite_err(&sql, e))?;
            let n = stmt.column_count();
            let rows = stmt
                .query_map(rusqlite::params_from_iter(params), |r| {
                    (0..n)
                        .map(|i| {
                            Ok(match r.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => Value::Null,
                                rusqlite::types::ValueRef::Integer(v) => Value::I64(v),
                                rusqlite::types::ValueRef::Real(v) => Value::F64(v),
                                rusqlite::types::ValueRef::Text(t) => {
                                    Value::Text(String::from_utf8_lossy(t).into_owned())
                                }
                                rusqlite::types::ValueRef::Blob(b) => {
                                    Value::Text(String::from_utf8_lossy(b).into_owned())
                                }
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map(Row)
                })
                .map_err(|e| sqlite_err(&sql, e))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|e| sqlite_err(&sql, e))
        })();
        self.checked(r)
    }

    fn batch(&mut self, sql: &str) -> Result<(), QueueError> {
        let r = self.conn.execute_batch(sql).map_err(|e| sqlite_err(sql, e));
        self.checked(r)
    }

    fn begin(&mut self) -> Result<(), QueueError> {
        self.batch("BEGIN IMMEDIATE")
    }

    fn is_broken(&mut self) -> bool {
        // A connection handed back inside a transaction would hold the write
        // lock for whoever uses it next.
        self.broken || !self.conn.is_autocommit()
    }

    fn mark_broken(&mut self) {
        self.broken = true;
    }

    fn ping(&mut self, _timeout: Duration) -> Result<(), QueueError> {
        Ok(())
    }
}

/// A PostgreSQL connection with its prepared statements: each statement is
/// parsed once per connection, then only bound and executed (one round trip
/// instead of two).
pub struct PgConn {
    client: postgres::Client,
    prepared: std::collections::HashMap<String, postgres::Statement>,
    broken: bool,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgConn")
    }
}

/// How to reach PostgreSQL: the parsed URL and, when the URL asks for TLS
/// (`sslmode=require`), the rustls connector that verifies the server.
#[derive(Clone)]
pub struct PgTarget {
    config: postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    statement_timeout: Option<Duration>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl PgTarget {
    /// Parses `url`. libpq's `sslmode=verify-ca` / `verify-full` are taken
    /// as `require`, and `sslrootcert=FILE` (or `root_cert`) names the CA
    /// that signed the server's certificate; without it the public web PKI
    /// roots are trusted. `require` always verifies the certificate and the
    /// host name (stricter than libpq's `require`); `prefer` and `disable`
    /// connect without TLS.
    pub fn parse(url: &str, o: &crate::CatalogOptions) -> Result<Self, QueueError> {
        let shown = crate::redact(url);
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let mut root_cert = o.tls_root_cert.clone();
        let mut verify = false;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslrootcert", v)) => root_cert = Some(PathBuf::from(v)),
                Some(("sslmode", "verify-ca" | "verify-full")) => {
                    verify = true;
                    kept.push("sslmode=require".to_owned());
                }
                _ => kept.push(pair.to_owned()),
            }
        }
        let url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config: postgres::Config = url.parse().map_err(|e: postgres::Error| {
            QueueError::Url(format!("{shown}: {e}{}", source_text(&e)))
        })?;
        if !url.contains("connect_timeout=") {
            config.connect_timeout(o.connect_timeout);
        }
        config.keepalives(true);
        if !url.contains("keepalives_idle=") {
            config.keepalives_idle(o.keepalive_idle);
        }
        if !url.contains("keepalives_interval=") {
            config.keepalives_interval((o.keepalive_idle / 3).max(Duration::from_secs(1)));
        }
        if !url.contains("keepalives_retries=") {
            config.keepalives_retries(3);
        }
        if config.get_application_name().is_none() {
            config.application_name("stemfeed");
        }
        let tls = if verify || config.get_ssl_mode() == postgres::config::SslMode::Require {
            Some(rustls_connector(root_cert.as_deref())?)
        } else {
            None
        };
        Ok(Self {
            config,
            tls,
            statement_timeout: o.statement_timeout,
        })
    }

    /// A new connection, its statement timeout set.
    pub fn connect(&self) -> Result<PgConn, QueueError> {
        let what = |e: postgres::Error| {
            let kind = pg_kind(&e);
            QueueError::db_kind(&format!("connecting to {}", self.describe()), e, kind)
        };
        let client = match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(postgres::NoTls),
        }
        .map_err(what)?;
        let mut conn = PgConn {
            client,
            prepared: std::collections::HashMap::new(),
            broken: false,
        };
        if let Some(t) = self.statement_timeout {
            conn.batch(&format!("SET statement_timeout = {}", t.as_millis().max(1)))?;
        }
        Ok(conn)
    }

    fn describe(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                postgres::config::Host::Tcp(s) => s.clone(),
                postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .collect();
        format!(
            "PostgreSQL {} port {} database {}{}",
            hosts.join(","),
            self.config
                .get_ports()
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(","),
            self.config.get_dbname().unwrap_or("(default)"),
            if self.tls.is_some() { " (TLS)" } else { "" }
        )
    }
}

fn source_text(e: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// rustls (pure Rust, *ring* crypto) verifying the server's certificate
/// against `root_cert` (PEM, one or more CA certificates) or, without one,
/// the web PKI roots.
fn rustls_connector(
    root_cert: Option<&Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, QueueError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let bad = |why: String| {
                QueueError::Invalid(format!(
                    "PostgreSQL TLS root certificate {}: {why}",
                    path.display()
                ))
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("no PEM certificate in the file".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    // The provider is named explicitly: other crates in the process may
    // enable a second one, and then rustls has no default to pick.
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| QueueError::Invalid(format!("PostgreSQL TLS configuration: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl PgConn {
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, QueueError> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql);
        let s = self.checked(sql, s)?;
        self.prepared.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    /// Maps a client error, marking this connection broken when it is gone.
    fn checked<T>(&mut self, sql: &str, r: Result<T, postgres::Error>) -> Result<T, QueueError> {
        r.map_err(|e| {
            if pg_breaks(&e) {
                self.broken = true;
            }
            pg_err(sql, e)
        })
    }
}

/// SQL NULL for a parameter of any type (`Option::<T>::None` only binds to T's columns).
#[derive(Debug)]
struct AnyNull;

impl postgres::types::ToSql for AnyNull {
    fn to_sql(
        &self,
        _: &postgres::types::Type,
        _: &mut postgres::types::private::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(postgres::types::IsNull::Yes)
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

fn pg_params(params: &[Value]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    params
        .iter()
        .map(|v| -> Box<dyn postgres::types::ToSql + Sync> {
            match v {
                Value::Null => Box::new(AnyNull),
                Value::I64(i) => Box::new(*i),
                Value::F64(f) => Box::new(*f),
                Value::Text(s) => Box::new(s.clone()),
            }
        })
        .collect()
}

impl Conn for PgConn {
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, QueueError> {
        let boxed = pg_params(params);
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = boxed.iter().map(|b| &**b).collect();
        let stmt = self.statement(sql)?;
        let r = self.client.execute(&stmt, &refs);
        self.checked(sql, r)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, QueueError> {
        use postgres::types::Type;
        let boxed = pg_params(params);
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = boxed.iter().map(|b| &**b).collect();
        let stmt = self.statement(sql)?;
        let rows = self.client.query(&stmt, &refs);
        let rows = self.checked(sql, rows)?;
        Ok(rows
            .iter()
            .map(|r| {
                Row(r
                    .columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| match *c.type_() {
                        Type::INT8 => r.get::<_, Option<i64>>(i).map_or(Value::Null, Value::I64),
                        Type::INT4 => r
                            .get::<_, Option<i32>>(i)
                            .map_or(Value::Null, |v| Value::I64(v.into())),
                        Type::FLOAT8 => r.get::<_, Option<f64>>(i).map_or(Value::Null, Value::F64),
                        Type::BOOL => r
                            .get::<_, Option<bool>>(i)
                            .map_or(Value::Null, |v| Value::I64(v.into())),
                        _ => r
                            .get::<_, Option<String>>(i)
                            .map_or(Value::Null, Value::Text),
                    })
                    .collect())
            })
            .collect())
    }

    fn batch(&mut self, sql: &str) -> Result<(), QueueError> {
        let r = self.client.batch_execute(sql);
        self.checked(sql, r)
    }

    fn begin(&mut self) -> Result<(), QueueError> {
        self.batch("BEGIN")
    }

    fn is_broken(&mut self) -> bool {
        self.broken || self.client.is_closed()
    }

    fn mark_broken(&mut self) {
        self.broken = true;
    }

    fn ping(&mut self, timeout: Duration) -> Result<(), QueueError> {
        let r = self
            .client
            .is_valid(timeout)
            .map_err(|e| pg_err("checking a pooled connection", e));
        if r.is_err() {
            // A ping that failed for any reason leaves the connection in an
            // unknown state: never reuse it.
            self.broken = true;
        }
        r
    }
}

/// What a pooled connection is opened to.
#[derive(Debug, Clone)]
pub enum Target {
    Sqlite { path: PathBuf, busy: Duration },
    Postgres(Box<PgTarget>),
}

impl Target {
    pub fn dialect(&self) -> Dialect {
        match self {
            Target::Sqlite { .. } => Dialect::Sqlite,
            Target::Postgres(_) => Dialect::Postgres,
        }
    }

    pub fn connect(&self) -> Result<Box<dyn Conn>, QueueError> {
        Ok(match self {
            Target::Sqlite { path, busy } => Box::new(SqliteConn::open(path, *busy)?),
            Target::Postgres(t) => Box::new(t.connect()?),
        })
    }
}

/// A connection as the pool keeps it.
pub struct Pooled {
    conn: Box<dyn Conn>,
    /// The pool's generation when this connection was opened.
    generation: u64,
    last_used: Instant,
}

impl std::fmt::Debug for Pooled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// A connection idle for longer than this is checked with a round trip
/// before it is handed out; one used more recently is trusted.
const TRUST_RECENT: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Manager {
    target: Target,
    generation: Arc<AtomicU64>,
    ping_timeout: Duration,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Pooled;
    type Error = QueueError;

    fn connect(&self) -> Result<Pooled, QueueError> {
        // Read before connecting: a connection opened while the server was
        // being found broken belongs to the old generation, never the new.
        let generation = self.generation.load(Ordering::Acquire);
        Ok(Pooled {
            conn: self.target.connect()?,
            generation,
            last_used: Instant::now(),
        })
    }

    fn is_valid(&self, c: &mut Pooled) -> Result<(), QueueError> {
        if c.generation < self.generation.load(Ordering::Acquire) || c.conn.is_broken() {
            return Err(QueueError::Invalid(
                "a pooled connection opened before a connection failure was discarded".into(),
            ));
        }
        if c.last_used.elapsed() < TRUST_RECENT {
            return Ok(());
        }
        let alive = c.conn.ping(self.ping_timeout);
        if alive.is_err() {
            // The server probably went away: so did its other connections.
            let _ = self.generation.compare_exchange(
                c.generation,
                c.generation + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        alive
    }

    fn has_broken(&self, c: &mut Pooled) -> bool {
        c.conn.is_broken() || c.generation < self.generation.load(Ordering::Acquire)
    }
}

/// Reports the pool's background connection failures through `tracing`.
#[derive(Debug)]
struct LogErrors;

impl r2d2::HandleError<QueueError> for LogErrors {
    fn handle_error(&self, error: QueueError) {
        tracing::warn!("catalog connection pool: {error}");
    }
}

/// A bounded pool of connections shared by threads.
pub struct Pool {
    pub dialect: Dialect,
    inner: Option<r2d2::Pool<Manager>>,
    generation: Arc<AtomicU64>,
    checkout_timeout: Duration,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.as_ref().map(|p| p.state());
        f.debug_struct("Pool")
            .field("dialect", &self.dialect)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl Drop for Pool {
    /// The postgres client owns a small runtime that must not be dropped on
    /// an async runtime's thread; drop the connections on a plain thread.
    fn drop(&mut self) {
        if let Some(pool) = self.inner.take() {
            drop_off_runtime(pool);
        }
    }
}

/// Drops `value` (connections) on a thread of its own and waits for it.
pub fn drop_off_runtime<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new()
        .name("catalog-close".into())
        .spawn(move || drop(value))
        .map(|h| h.join());
}

impl Pool {
    pub fn new(target: Target, o: &crate::CatalogOptions) -> Self {
        let generation = Arc::new(AtomicU64::new(0));
        let dialect = target.dialect();
        let manager = Manager {
            target,
            generation: Arc::clone(&generation),
            ping_timeout: o.connect_timeout.min(Duration::from_secs(5)),
        };
        let checkout_timeout = o.connect_timeout.max(Duration::from_millis(100));
        let inner = r2d2::Pool::builder()
            .max_size(o.max_connections.max(1))
            // Connections are opened on demand, not all at start.
            .min_idle(Some(0))
            .idle_timeout(o.idle_timeout)
            .connection_timeout(checkout_timeout)
            .test_on_check_out(true)
            .error_handler(Box::new(LogErrors))
            .build_unchecked(manager);
        Self {
            dialect,
            inner: Some(inner),
            generation,
            checkout_timeout,
        }
    }

    fn get(&self) -> Result<r2d2::PooledConnection<Manager>, QueueError> {
        let pool = self
            .inner
            .as_ref()
            .ok_or_else(|| QueueError::Invalid("catalog pool already closed".into()))?;
        pool.get().map_err(|e| QueueError::Pool {
            waited: self.checkout_timeout,
            message: e.to_string(),
        })
    }

    /// Runs `f` on a pooled connection. An SQL error leaves the connection
    /// in the pool; a broken connection is dropped, and so are all the
    /// connections opened before it.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut dyn Conn) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        let mut pc = self.get()?;
        let result = f(pc.conn.as_mut());
        pc.last_used = Instant::now();
        if result.is_err() && pc.conn.is_broken() {
            // The first to see a failure of this generation moves the pool on.
            let _ = self.generation.compare_exchange(
                pc.generation,
                pc.generation + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        result
    }

    /// Runs `f` inside a transaction, committing on success. A transaction
    /// that can be neither committed nor rolled back breaks its connection.
    pub fn tx<T>(
        &self,
        f: impl FnOnce(&mut dyn Conn) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        self.with(|c| {
            c.begin()?;
            let result = f(c).and_then(|v| c.batch("COMMIT").map(|()| v));
            // After a failed statement or COMMIT: end the transaction (on
            // PostgreSQL a ROLLBACK outside one is only a warning). A
            // connection whose ROLLBACK fails is in an unknown state.
            if result.is_err() && c.batch("ROLLBACK").is_err() {
                c.mark_broken();
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Conn, PgTarget, Pool, SqliteConn, Target};
    use crate::{CatalogOptions, DbErrorKind, QueueError};

    fn sqlite(dir: &tempfile::TempDir, busy: Duration) -> SqliteConn {
        SqliteConn::open(&dir.path().join("c.db"), busy).unwrap()
    }

    #[test]
    fn sqlite_errors_are_classified() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = sqlite(&dir, Duration::from_secs(5));
        let mut b = sqlite(&dir, Duration::from_millis(50));
        a.batch("CREATE TABLE t (k TEXT PRIMARY KEY)").unwrap();
        a.exec("INSERT INTO t (k) VALUES ($1)", &["x".into()])
            .unwrap();

        let dup = a
            .exec("INSERT INTO t (k) VALUES ($1)", &["x".into()])
            .unwrap_err();
        assert_eq!(dup.kind(), Some(DbErrorKind::Constraint), "{dup}");
        assert!(!dup.is_transient());
        assert!(dup.to_string().contains("UNIQUE"), "{dup}");

        let bad = a.query("SELEC nonsense", &[]).unwrap_err();
        assert_eq!(bad.kind(), Some(DbErrorKind::Other), "{bad}");
        assert!(!bad.is_transient());

        a.begin().unwrap();
        let busy = b.begin().unwrap_err();
        assert_eq!(busy.kind(), Some(DbErrorKind::Timeout), "{busy}");
        assert!(busy.is_transient(), "{busy}");
        assert!(busy.to_string().contains("transient"), "{busy}");
        a.batch("ROLLBACK").unwrap();
        // None of these broke a connection.
        assert!(!a.is_broken() && !b.is_broken());
    }

    #[test]
    fn refused_postgres_connection_is_transient() {
        // Nothing listens on port 1.
        let t = PgTarget::parse(
            "postgres://nobody@127.0.0.1:1/none",
            &CatalogOptions::default(),
        )
        .unwrap();
        let e = t.connect().unwrap_err();
        assert_eq!(e.kind(), Some(DbErrorKind::Unavailable), "{e}");
        assert!(e.is_transient());
        let text = e.to_string();
        assert!(
            text.contains("connecting to PostgreSQL 127.0.0.1 port 1 database none"),
            "{text}"
        );
    }

    #[test]
    fn bad_urls_and_tls_settings_are_named() {
        let o = CatalogOptions::default();
        let e = PgTarget::parse("postgres://u@h/db?nonsense=1", &o).unwrap_err();
        assert!(matches!(e, QueueError::Url(_)), "{e:?}");
        assert!(e.to_string().contains("nonsense"), "{e}");
        let e = PgTarget::parse("postgres://u:secret@h/db?bogus=1", &o).unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let url = format!(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert={}",
            empty.display()
        );
        let e = PgTarget::parse(&url, &o).unwrap_err().to_string();
        assert!(
            e.contains("TLS root certificate") && e.contains("empty.pem"),
            "{e}"
        );
        let missing = format!(
            "postgres://u@h/db?sslmode=require&sslrootcert={}",
            dir.path().join("missing.pem").display()
        );
        let e = PgTarget::parse(&missing, &o).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
        // No TLS asked for: no certificate needed.
        assert!(
            PgTarget::parse("postgres://u@h/db", &o)
                .unwrap()
                .tls
                .is_none()
        );
        assert!(
            PgTarget::parse("postgres://u@h/db?sslmode=require", &o)
                .unwrap()
                .tls
                .is_some()
        );
    }

    #[test]
    fn an_sql_error_keeps_the_pooled_connection() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::new(
            Target::Sqlite {
                path: dir.path().join("c.db"),
                busy: Duration::from_secs(5),
            },
            &CatalogOptions::default(),
        );
        // A temporary table lives as long as its connection.
        pool.with(|c| c.batch("CREATE TEMP TABLE mine (x BIGINT)"))
            .unwrap();
        pool.with(|c| c.query("SELECT * FROM no_such_table", &[]))
            .unwrap_err();
        pool.tx(|c| {
            c.exec("INSERT INTO mine (x) VALUES (1)", &[])?;
            c.exec("INSERT INTO no_such_table (x) VALUES (1)", &[])
        })
        .unwrap_err();
        let rows = pool
            .with(|c| c.query("SELECT COUNT(*) FROM mine", &[]))
            .expect("the same connection, its temporary table and all");
        assert_eq!(rows[0].i64(0), 0, "the failed transaction was rolled back");
        let state = pool.inner.as_ref().unwrap().state();
        assert_eq!((state.connections, state.idle_connections), (1, 1));
    }
}
