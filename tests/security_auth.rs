//! Authentication of `stemfeed serve` read as an attacker would, against a
//! real server on loopback: guessing passwords is throttled (429 with
//! `Retry-After`, the right password included), response times do not tell
//! which names exist, sessions die with a password change, a new login, a
//! logout (whatever its CSRF token) and a disabled account, and API tokens
//! expire, are revoked, record their last use and own nothing of a user
//! who shares their name. Session idle and absolute timeouts are checked on
//! the catalog directly, with short clocks.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::server::{Server, agent};

/// A login attempt: (status, session cookie `name=value`, Retry-After).
fn login(server: &Server, name: &str, password: &str) -> (u16, Option<String>, Option<u64>) {
    let resp = agent()
        .post(&format!("{}/login", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", &server.url)
        .send(format!("name={name}&password={password}").as_bytes())
        .unwrap();
    let header = |h: &str| {
        resp.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let cookie = header("set-cookie")
        .and_then(|c| c.split(';').next().map(str::to_owned))
        .filter(|c| !c.ends_with('='));
    let retry = header("retry-after").and_then(|r| r.parse().ok());
    (resp.status().as_u16(), cookie, retry)
}

/// Logs in, expecting success; the session cookie.
fn session(server: &Server, name: &str, password: &str) -> String {
    let (code, cookie, _) = login(server, name, password);
    assert_eq!(code, 303, "login of {name}\n{}", server.log());
    cookie.expect("a session cookie")
}

/// Status of the review queue (curators only) with a cookie or a token:
/// 200 when the credential works, a redirect to the login page when not.
fn review(server: &Server, cookie: Option<&str>, token: Option<&str>) -> u16 {
    let mut req = agent().get(&format!("{}/review", server.url));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    if let Some(t) = token {
        req = req.header("authorization", &format!("Bearer {t}"));
    }
    req.call().unwrap().status().as_u16()
}

/// `stemfeed ARGS` on the server's catalog: (success, stdout).
fn admin(server: &Server, args: &[&str], password: Option<&str>) -> (bool, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stemfeed"));
    c.env_remove("STEMFEED_CONFIG")
        .env_remove("STEMFEED_PASSWORD")
        .env("STEMFEED_DATA_DIR", server.data())
        .args(args);
    if let Some(p) = password {
        c.env("STEMFEED_PASSWORD", p);
    }
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn tokens_list(server: &Server) -> String {
    let (ok, out) = admin(server, &["tokens", "list"], None);
    assert!(ok, "{out}");
    out
}

/// The `tokens list` row of `name`, split into columns.
fn token_row(server: &Server, name: &str) -> Vec<String> {
    let list = tokens_list(server);
    list.lines()
        .map(|l| l.split('\t').map(str::to_owned).collect::<Vec<_>>())
        .find(|cols| cols[0] == name)
        .unwrap_or_else(|| panic!("no token {name} in\n{list}"))
}

#[test]
fn thirty_wrong_passwords_get_429_and_then_so_does_the_right_one() {
    let server = Server::start(&["--no-worker"]);
    let password = "the-right-password";
    server.user("cur", "curator", password);
    server.user("other", "curator", password);

    let codes: Vec<u16> = (0..30)
        .map(|i| login(&server, "cur", &format!("wrong-password-{i}")).0)
        .collect();
    let refused = codes.iter().filter(|&&c| c == 401).count();
    assert!((5..=10).contains(&refused), "{codes:?}");
    assert!(codes[..refused].iter().all(|&c| c == 401), "{codes:?}");
    assert!(codes[refused..].iter().all(|&c| c == 429), "{codes:?}");

    // The right password is refused as well while the window lasts.
    let (code, cookie, retry) = login(&server, "cur", password);
    assert_eq!(code, 429);
    assert_eq!(cookie, None);
    let retry = retry.expect("Retry-After");
    assert!((1..=3600).contains(&retry), "Retry-After {retry}");

    // Another account on the same address is not locked out by this.
    session(&server, "other", password);

    // Failures are logged with the name and address, never the password.
    let log = server.log();
    assert!(
        log.contains("login failed") && log.contains("\"cur\"") && log.contains("127.0.0.1"),
        "{log}"
    );
    assert!(log.contains("too many failures"), "{log}");
    assert!(
        !log.contains("wrong-password"),
        "a password reached the log"
    );
}

#[test]
fn unknown_and_known_names_take_the_same_time() {
    let server = Server::start(&["--no-worker"]);
    server.user("known", "curator", "the-right-password");
    let time = |name: &str| {
        let start = Instant::now();
        let (code, _, _) = login(&server, name, "a-wrong-password");
        assert_eq!(code, 401, "{name}");
        start.elapsed().as_secs_f64()
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    // Interleaved, so a slow moment of the machine hits both alike; ten
    // failures for one name stay under its limit.
    for i in 0..10 {
        known.push(time("known"));
        unknown.push(time(&format!("ghost{i}")));
    }
    let (k, u) = (median(known), median(unknown));
    let ratio = k.max(u) / k.min(u);
    assert!(
        ratio < 2.0,
        "known {:.1} ms, unknown {:.1} ms",
        k * 1e3,
        u * 1e3
    );
}

#[test]
fn a_password_change_ends_the_users_sessions() {
    let server = Server::start(&["--no-worker"]);
    let (old, new) = ("the-old-password", "the-new-password");
    server.user("cur", "curator", old);
    let cookie = session(&server, "cur", old);
    assert_eq!(review(&server, Some(&cookie), None), 200);

    let (ok, out) = admin(&server, &["users", "password", "cur"], Some(new));
    assert!(ok, "{out}");
    assert_eq!(
        review(&server, Some(&cookie), None),
        303,
        "session survived"
    );
    assert_eq!(login(&server, "cur", old).0, 401);
    let cookie = session(&server, "cur", new);
    assert_eq!(review(&server, Some(&cookie), None), 200);
}

#[test]
fn logout_with_a_bad_csrf_token_still_ends_the_session() {
    let server = Server::start(&["--no-worker"]);
    server.user("cur", "curator", "the-right-password");
    let cookie = session(&server, "cur", "the-right-password");
    assert_eq!(review(&server, Some(&cookie), None), 200);
    let resp = agent()
        .post(&format!("{}/logout", server.url))
        .header("cookie", &cookie)
        .header("origin", &server.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .send(&b"csrf=not-the-token"[..])
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(
        review(&server, Some(&cookie), None),
        303,
        "session survived"
    );
}

#[test]
fn a_new_login_ends_the_older_session() {
    let server = Server::start(&["--no-worker"]);
    server.user("cur", "curator", "the-right-password");
    let first = session(&server, "cur", "the-right-password");
    assert_eq!(review(&server, Some(&first), None), 200);
    let second = session(&server, "cur", "the-right-password");
    assert_ne!(first, second);
    assert_eq!(
        review(&server, Some(&first), None),
        303,
        "old session survived"
    );
    assert_eq!(review(&server, Some(&second), None), 200);
}

#[test]
fn a_disabled_user_cannot_log_in_and_their_token_stops() {
    let server = Server::start(&["--no-worker"]);
    let pw = "the-right-password";
    server.user("cur", "curator", pw);
    let (ok, token) = admin(
        &server,
        &[
            "tokens", "add", "cur-bot", "--role", "curator", "--owner", "cur",
        ],
        None,
    );
    assert!(ok, "{token}");
    let token = token.trim().to_owned();
    let cookie = session(&server, "cur", pw);
    assert_eq!(review(&server, Some(&cookie), None), 200);
    assert_eq!(review(&server, None, Some(&token)), 200);

    let (ok, out) = admin(&server, &["users", "disable", "cur"], None);
    assert!(ok, "{out}");
    assert_eq!(
        review(&server, Some(&cookie), None),
        303,
        "session survived"
    );
    assert_eq!(
        review(&server, None, Some(&token)),
        303,
        "token still works"
    );
    let (code, cookie, _) = login(&server, "cur", pw);
    assert_eq!((code, cookie), (401, None));

    let (ok, out) = admin(&server, &["users", "enable", "cur"], None);
    assert!(ok, "{out}");
    assert_eq!(review(&server, None, Some(&token)), 200);
    session(&server, "cur", pw);
    // A token cannot belong to nobody in particular.
    let (ok, _) = admin(
        &server,
        &[
            "tokens", "add", "x", "--role", "curator", "--owner", "nobody",
        ],
        None,
    );
    assert!(!ok);
}

#[test]
fn an_expired_token_is_refused() {
    let server = Server::start(&["--no-worker"]);
    // 0.0001 days: 8.64 seconds.
    let made = Instant::now();
    let (ok, token) = admin(
        &server,
        &[
            "tokens",
            "add",
            "brief",
            "--role",
            "curator",
            "--expires-days",
            "0.0001",
        ],
        None,
    );
    assert!(ok, "{token}");
    let token = token.trim().to_owned();
    assert_eq!(review(&server, None, Some(&token)), 200);
    assert!(!token_row(&server, "brief")[4].contains("expired"));
    std::thread::sleep(Duration::from_millis(9500).saturating_sub(made.elapsed()));
    assert_eq!(
        review(&server, None, Some(&token)),
        303,
        "expired token works"
    );
    assert!(token_row(&server, "brief")[4].contains("expired"));
    // Nonsense expiries are refused.
    for days in ["0", "-1", "soon", "NaN"] {
        let (ok, _) = admin(
            &server,
            &[
                "tokens",
                "add",
                "y",
                "--role",
                "curator",
                "--expires-days",
                days,
            ],
            None,
        );
        assert!(!ok, "--expires-days {days} accepted");
    }
}

#[test]
fn tokens_list_shows_the_last_use_and_revoke_stops_a_token() {
    let server = Server::start(&["--no-worker"]);
    let token = server.token("bot", "curator");
    let row = token_row(&server, "bot");
    assert_eq!(&row[1..3], ["curator", "-"]);
    assert_eq!(row[4], "never", "expiry");
    assert_eq!(row[5], "never", "last used");

    assert_eq!(review(&server, None, Some(&token)), 200);
    let used = &token_row(&server, "bot")[5];
    assert!(used.starts_with("20") && used.ends_with('Z'), "{used}");
    assert!(
        !tokens_list(&server).contains(&token),
        "the secret is listed"
    );

    let (ok, out) = admin(&server, &["tokens", "revoke", "bot"], None);
    assert!(ok, "{out}");
    assert_eq!(
        review(&server, None, Some(&token)),
        303,
        "revoked token works"
    );
    assert!(!tokens_list(&server).contains("bot\t"));
    let (ok, _) = admin(&server, &["tokens", "revoke", "bot"], None);
    assert!(!ok, "revoking twice");
}

#[test]
fn a_token_named_like_a_user_owns_nothing_of_theirs() {
    let server = Server::start(&["--no-worker"]);
    let pw = "alices-password";
    server.user("alice", "submitter", pw);
    let token = server.token("alice", "submitter");
    let resp = agent()
        .post(&format!("{}/api/uploads", server.url))
        .header("authorization", &format!("Bearer {token}"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "10")
        .send_empty()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let location = resp
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let head = |auth: (&str, String)| {
        agent()
            .head(&format!("{}{location}", server.url))
            .header("tus-resumable", "1.0.0")
            .header(auth.0, &auth.1)
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(head(("authorization", format!("Bearer {token}"))), 200);
    let cookie = session(&server, "alice", pw);
    let as_user = head(("cookie", cookie));
    assert!(
        matches!(as_user, 403 | 404),
        "user alice reached token alice's upload: {as_user}"
    );
    // Names that could pass for a token's are not user names.
    let (ok, _) = admin(
        &server,
        &["users", "add", "token:alice", "--role", "submitter"],
        Some(pw),
    );
    assert!(!ok);
}

/// Idle and absolute session timeouts, on the catalog with short clocks.
#[test]
fn sessions_end_when_idle_and_at_their_absolute_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let c = stemfeed_queue::Catalog::open(path.to_str().unwrap()).unwrap();
    let role = stemfeed_queue::Role::Curator;
    assert!(c.create_user("busy", "x", role).unwrap());
    assert!(c.create_user("idle", "x", role).unwrap());
    let (idle, absolute) = (Duration::from_secs(2), Duration::from_millis(3500));
    let start = Instant::now();
    c.create_session("busy-session", "busy", "csrf1", absolute)
        .unwrap();
    c.create_session("idle-session", "idle", "csrf2", absolute)
        .unwrap();
    let at = |ms: u64| {
        std::thread::sleep(Duration::from_millis(ms).saturating_sub(start.elapsed()));
    };
    at(1200);
    assert!(c.session("busy-session", idle).unwrap().is_some());
    at(2600);
    // Used 1.4 s ago: alive; the unused one is past its idle time.
    assert!(c.session("busy-session", idle).unwrap().is_some());
    assert!(c.session("idle-session", idle).unwrap().is_none());
    at(3900);
    // Used 1.3 s ago, but past the absolute expiry.
    assert!(c.session("busy-session", idle).unwrap().is_none());
}
