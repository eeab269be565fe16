//! The two SQL backends behind one small interface, so the catalog's logic
//! and SQL are written once. Statements use Postgres's `$n` placeholders;
//! SQLite gets them as `?n`. Every integer column is BIGINT and every float
//! DOUBLE PRECISION on both, so parameters bind the same way.

use std::sync::Mutex;
use std::time::Duration;

use crate::QueueError;

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
}

/// A connection of either kind.
pub trait Conn: Send {
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, QueueError>;
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, QueueError>;
    fn batch(&mut self, sql: &str) -> Result<(), QueueError>;
    /// Starts a transaction that takes the write lock at once.
    fn begin(&mut self) -> Result<(), QueueError>;
}

fn sqlite_placeholders(sql: &str) -> String {
    sql.replace('$', "?")
}

pub struct SqliteConn(pub rusqlite::Connection);

impl std::fmt::Debug for SqliteConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteConn")
    }
}

impl SqliteConn {
    pub fn open(path: &std::path::Path) -> Result<Self, QueueError> {
        let c = rusqlite::Connection::open(path).map_err(|e| QueueError::db("open", e))?;
        c.busy_timeout(Duration::from_secs(30))
            .map_err(|e| QueueError::db("busy_timeout", e))?;
        c.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )
        .map_err(|e| QueueError::db("pragmas", e))?;
        Ok(Self(c))
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
        self.0
            .execute(&sql, rusqlite::params_from_iter(params))
            .map(|n| n as u64)
            .map_err(|e| QueueError::db(&sql, e))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, QueueError> {
        let sql = sqlite_placeholders(sql);
        let params: Vec<_> = params.iter().map(to_sql).collect();
        let mut stmt = self.0.prepare(&sql).map_err(|e| QueueError::db(&sql, e))?;
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
            .map_err(|e| QueueError::db(&sql, e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| QueueError::db(&sql, e))
    }

    fn batch(&mut self, sql: &str) -> Result<(), QueueError> {
        self.0
            .execute_batch(sql)
            .map_err(|e| QueueError::db(sql, e))
    }

    fn begin(&mut self) -> Result<(), QueueError> {
        self.batch("BEGIN IMMEDIATE")
    }
}

/// A PostgreSQL connection with its prepared statements: each statement is
/// parsed once per connection, then only bound and executed (one round trip
/// instead of two).
pub struct PgConn {
    client: postgres::Client,
    prepared: std::collections::HashMap<String, postgres::Statement>,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgConn")
    }
}

impl PgConn {
    pub fn connect(url: &str) -> Result<Self, QueueError> {
        postgres::Client::connect(url, postgres::NoTls)
            .map(|client| Self {
                client,
                prepared: std::collections::HashMap::new(),
            })
            .map_err(|e| QueueError::db("connect", e))
    }

    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, QueueError> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self
            .client
            .prepare(sql)
            .map_err(|e| QueueError::db(sql, e))?;
        self.prepared.insert(sql.to_owned(), s.clone());
        Ok(s)
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
        self.client
            .execute(&stmt, &refs)
            .map_err(|e| QueueError::db(sql, e))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, QueueError> {
        use postgres::types::Type;
        let boxed = pg_params(params);
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = boxed.iter().map(|b| &**b).collect();
        let stmt = self.statement(sql)?;
        let rows = self
            .client
            .query(&stmt, &refs)
            .map_err(|e| QueueError::db(sql, e))?;
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
        self.client
            .batch_execute(sql)
            .map_err(|e| QueueError::db(sql, e))
    }

    fn begin(&mut self) -> Result<(), QueueError> {
        self.batch("BEGIN")
    }
}

/// A few connections shared by threads; SQLite gets one writer connection
/// per process (its file lock serialises writers anyway).
pub struct Pool {
    pub dialect: Dialect,
    open: Box<dyn Fn() -> Result<Box<dyn Conn>, QueueError> + Send + Sync>,
    idle: Mutex<Vec<Box<dyn Conn>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

impl Drop for Pool {
    /// The postgres client owns a small runtime that must not be dropped on
    /// an async runtime's thread; drop connections on a plain thread.
    fn drop(&mut self) {
        let conns = std::mem::take(self.idle.get_mut().unwrap_or_else(|e| e.into_inner()));
        if !conns.is_empty() {
            let _ = std::thread::spawn(move || drop(conns)).join();
        }
    }
}

impl Pool {
    pub fn new(
        dialect: Dialect,
        open: impl Fn() -> Result<Box<dyn Conn>, QueueError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            dialect,
            open: Box::new(open),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on a connection; a connection that failed is dropped, not reused.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut dyn Conn) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        let conn = self.idle.lock().map_err(|_| QueueError::Poisoned)?.pop();
        let mut conn = match conn {
            Some(c) => c,
            None => (self.open)()?,
        };
        let result = f(conn.as_mut());
        if result.is_ok() {
            self.idle
                .lock()
                .map_err(|_| QueueError::Poisoned)?
                .push(conn);
        }
        result
    }

    /// Runs `f` inside a transaction, committing on success.
    pub fn tx<T>(
        &self,
        f: impl FnOnce(&mut dyn Conn) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        self.with(|c| {
            c.begin()?;
            match f(c) {
                Ok(v) => {
                    c.batch("COMMIT")?;
                    Ok(v)
                }
                Err(e) => {
                    let _ = c.batch("ROLLBACK");
                    Err(e)
                }
            }
        })
    }
}
