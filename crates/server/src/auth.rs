//! Who is calling: people log in with a name and password (argon2id hashes)
//! and get a session cookie with a per-session CSRF token; machines send an
//! API token as `Authorization: Bearer …`. Secrets are stored only as
//! hashes (argon2 for passwords, SHA-256 for random 256-bit tokens).
//!
//! [`Guard`] is what stands in front of the password check: login failures
//! counted per name and per client address (past a limit every attempt is
//! refused with 429 until the window ends, the right password included),
//! the same Argon2 work for names that do not exist as for those that do
//! (so timing does not tell which names exist), and Argon2 behind a
//! semaphore on blocking threads, so a burst of logins cannot take every
//! core or an unbounded amount of memory.
//!
//! The failure counter is our own small keyed window rather than
//! `governor`/`tower_governor`: those meter every request as it arrives,
//! while this must count only failed logins and refuse everything (with a
//! `Retry-After`) once a key is over the limit, which needs a look at a
//! key's state without spending from it, something a GCRA limiter has no
//! call for; and a layer limiting all requests would throttle successful
//! logins too.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use stemfeed_queue::Role;
use tokio::sync::Semaphore;

pub const SESSION_COOKIE: &str = "stemfeed_session";

/// API-token callers are named with this prefix, which no user name can
/// carry (user names are letters, digits, `.`, `_` and `-`): a token named
/// `alice` is `token:alice` and owns nothing of user `alice`'s.
pub const TOKEN_PREFIX: &str = "token:";

/// Whether `name` may name a user or a token.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|ch| ch.is_alphanumeric() || "._-".contains(ch))
}

/// 32 random bytes as hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    hex(&bytes)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("random salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?
        .to_string())
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// How many failed logins are allowed, per what, for how long.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Failures for one user name within `window`; then that name is refused.
    pub per_name: u32,
    /// Failures from one client address (an IPv6 /64) within `window`. Higher
    /// than `per_name`: many people can share one address.
    pub per_ip: u32,
    /// Counted from a key's first failure; the lockout ends with it.
    pub window: Duration,
}

/// What a failure is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Name(String),
    Net(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

/// Keys tracked at most; past this, closed windows are dropped first, then
/// keys not locked out (an attacker spraying names cannot grow memory).
const MAX_KEYS: usize = 100_000;

/// The counter of failed logins per key.
#[derive(Debug, Default)]
struct Failures {
    windows: HashMap<Key, Window>,
}

impl Failures {
    fn limit(limits: &LoginLimits, key: &Key) -> u32 {
        match key {
            Key::Name(_) => limits.per_name,
            Key::Net(_) => limits.per_ip,
        }
    }

    /// How long `key` stays locked out, if it is.
    fn locked(&self, limits: &LoginLimits, key: &Key, now: Instant) -> Option<Duration> {
        let w = self.windows.get(key)?;
        let left = (w.start + limits.window).checked_duration_since(now)?;
        (w.failures >= Self::limit(limits, key) && !left.is_zero()).then_some(left)
    }

    fn fail(&mut self, limits: &LoginLimits, key: Key, now: Instant) {
        if !self.windows.contains_key(&key) && self.windows.len() >= MAX_KEYS {
            self.windows
                .retain(|_, w| now.duration_since(w.start) < limits.window);
            if self.windows.len() >= MAX_KEYS {
                self.windows
                    .retain(|k, w| w.failures >= Self::limit(limits, k));
            }
            if self.windows.len() >= MAX_KEYS {
                return;
            }
        }
        let w = self.windows.entry(key).or_insert(Window {
            start: now,
            failures: 0,
        });
        if now.duration_since(w.start) >= limits.window {
            *w = Window {
                start: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }
}

/// The keys a login attempt counts against.
fn keys(name: &str, ip: Option<IpAddr>) -> Vec<Key> {
    // Names longer than any real one are cut: they all fail anyway.
    let name: String = name.chars().take(64).collect();
    let mut keys = vec![Key::Name(name)];
    if let Some(ip) = ip {
        keys.push(Key::Net(match ip.to_canonical() {
            // One IPv6 client usually holds a whole /64.
            IpAddr::V6(v6) => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
            v4 => v4,
        }));
    }
    keys
}

/// The login's guard: failure counting, equal work for unknown names, and
/// bounded Argon2 (see the module docs). Also holds the session lifetimes.
#[derive(Debug)]
pub struct Guard {
    limits: LoginLimits,
    failures: Mutex<Failures>,
    hashing: Arc<Semaphore>,
    /// A hash of a random password with the parameters real hashes use:
    /// verified against when the name is unknown.
    dummy_hash: String,
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// A session ends this long after login, used or not.
    pub session_absolute: Duration,
}

/// Longest wait for a free Argon2 slot before a login is answered 503.
const HASH_WAIT: Duration = Duration::from_secs(10);

/// Why a password could not be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// Every Argon2 slot stayed taken for [`HASH_WAIT`].
    Saturated,
}

impl Default for Guard {
    fn default() -> Self {
        Self::from_config(&stemfeed_core::config::ServerConfig::default())
    }
}

impl Guard {
    /// The limits of `[server]`, with one Argon2 computation per core (at
    /// most 8) at once.
    pub fn from_config(c: &stemfeed_core::config::ServerConfig) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self::new(
            LoginLimits {
                per_name: c.login_failures_per_name,
                per_ip: c.login_failures_per_address,
                window: Duration::from_secs(c.login_window_minutes.saturating_mul(60)),
            },
            cores.clamp(1, 8),
            Duration::from_secs(c.session_idle_minutes.saturating_mul(60)),
            Duration::from_secs(c.session_max_hours.saturating_mul(3600)),
        )
    }

    /// `hashers`: Argon2 computations at once (each takes ~19 MiB and a core).
    pub fn new(
        limits: LoginLimits,
        hashers: usize,
        session_idle: Duration,
        session_absolute: Duration,
    ) -> Self {
        let dummy_hash =
            hash_password(&random_token()).expect("hashing a random password in memory");
        Self {
            limits,
            failures: Mutex::default(),
            hashing: Arc::new(Semaphore::new(hashers.max(1))),
            dummy_hash,
            session_idle,
            session_absolute,
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, Failures> {
        // The counter stays consistent whatever panicked while holding it.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long logins for `name` or from `ip` stay refused, if they are.
    pub fn locked_out(&self, name: &str, ip: Option<IpAddr>) -> Option<Duration> {
        self.locked_out_at(name, ip, Instant::now())
    }

    fn locked_out_at(&self, name: &str, ip: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let f = self.failures();
        keys(name, ip)
            .iter()
            .filter_map(|k| f.locked(&self.limits, k, now))
            .max()
    }

    /// Counts a failed login against `name` and `ip`.
    pub fn failed(&self, name: &str, ip: Option<IpAddr>) {
        self.failed_at(name, ip, Instant::now());
    }

    fn failed_at(&self, name: &str, ip: Option<IpAddr>, now: Instant) {
        let mut f = self.failures();
        for k in keys(name, ip) {
            f.fail(&self.limits, k, now);
        }
    }

    /// A successful login clears the name's failures (not the address's:
    /// one right password must not reset guessing at other names).
    pub fn succeeded(&self, name: &str) {
        let mut f = self.failures();
        for k in keys(name, None) {
            f.windows.remove(&k);
        }
    }

    /// Checks `password` against `hash`, or against a dummy hash when there
    /// is none (an unknown name costs the same as a wrong password), on a
    /// blocking thread once a hashing slot is free.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, Busy> {
        let real = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.clone());
        let permit = tokio::time::timeout(HASH_WAIT, Arc::clone(&self.hashing).acquire_owned())
            .await
            .map_err(|_| Busy::Saturated)?
            .map_err(|_| Busy::Saturated)?;
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            verify_password(&password, &hash)
        })
        .await
        .unwrap_or(false);
        Ok(ok && real)
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// Unique across kinds of principal: a person by their user name, an
    /// API token as [`TOKEN_PREFIX`] + its name. Ownership (of uploads,
    /// edits) goes by this name.
    pub name: String,
    pub role: Role,
    /// Set for browser sessions: forms must echo it.
    pub csrf: Option<String>,
}

pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

/// The session cookie's name: behind https it carries the `__Host-`
/// prefix, which browsers only accept when set `Secure`, for the exact
/// host and path `/` (no subdomain can plant or read it).
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// The session cookie over https.
pub const SECURE_SESSION_COOKIE: &str = "__Host-stemfeed_session";

/// The `Set-Cookie` value that starts a session.
pub fn set_session_cookie(secure: bool, token: &str, max_age: std::time::Duration) -> String {
    format!(
        "{}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        session_cookie_name(secure),
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends a session.
pub fn clear_session_cookie(secure: bool) -> String {
    format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        session_cookie_name(secure),
        if secure { "; Secure" } else { "" }
    )
}

pub fn session_cookie(headers: &HeaderMap, secure: bool) -> Option<String> {
    let name = session_cookie_name(secure);
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Constant-time equality for secrets.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct hors", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    fn guard() -> Guard {
        Guard::new(
            LoginLimits {
                per_name: 3,
                per_ip: 5,
                window: Duration::from_secs(60),
            },
            1,
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
    }

    #[test]
    fn a_name_is_locked_out_after_its_failures_until_the_window_ends() {
        let g = guard();
        let t0 = Instant::now();
        let ip = Some("192.0.2.1".parse().unwrap());
        for _ in 0..3 {
            assert_eq!(g.locked_out_at("alice", ip, t0), None);
            g.failed_at("alice", ip, t0);
        }
        let left = g.locked_out_at("alice", ip, t0 + Duration::from_secs(10));
        assert_eq!(left, Some(Duration::from_secs(50)));
        // Other names from elsewhere are not affected.
        assert_eq!(g.locked_out_at("bob", None, t0), None);
        // The window ends: a clean slate.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(g.locked_out_at("alice", ip, later), None);
        g.failed_at("alice", ip, later);
        assert_eq!(g.locked_out_at("alice", ip, later), None);
    }

    #[test]
    fn an_address_is_locked_out_across_names_and_ipv6_by_prefix() {
        let g = guard();
        let t0 = Instant::now();
        for i in 0..5 {
            let ip = format!("2001:db8::{i}").parse().unwrap();
            assert_eq!(g.locked_out_at(&format!("n{i}"), Some(ip), t0), None);
            g.failed_at(&format!("n{i}"), Some(ip), t0);
        }
        let same_net = Some("2001:db8::ffff".parse().unwrap());
        assert!(g.locked_out_at("someone", same_net, t0).is_some());
        let other_net = Some("2001:db9::1".parse().unwrap());
        assert_eq!(g.locked_out_at("someone", other_net, t0), None);
    }

    #[test]
    fn success_clears_the_name_but_not_the_address() {
        let g = guard();
        let t0 = Instant::now();
        let ip = Some("192.0.2.9".parse().unwrap());
        for _ in 0..2 {
            g.failed_at("carol", ip, t0);
        }
        g.succeeded("carol");
        g.failed_at("carol", ip, t0);
        g.failed_at("carol", ip, t0);
        assert_eq!(g.locked_out_at("carol", None, t0), None);
        g.failed_at("dave", ip, t0);
        // 5 failures from the address in all.
        assert!(g.locked_out_at("erin", ip, t0).is_some());
    }

    #[tokio::test]
    async fn unknown_names_verify_false_after_the_same_work() {
        let g = guard();
        let h = hash_password("correct horse").unwrap();
        assert_eq!(
            g.verify("correct horse".into(), Some(h.clone())).await,
            Ok(true)
        );
        assert_eq!(g.verify("wrong".into(), Some(h)).await, Ok(false));
        assert_eq!(g.verify("correct horse".into(), None).await, Ok(false));
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("ayesha.k-2"));
        assert!(!valid_name("token:alice"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"a".repeat(65)));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }
}
