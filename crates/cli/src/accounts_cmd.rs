//! Admin commands: people (`stemfeed users`) and machine tokens
//! (`stemfeed tokens`), written straight to the catalog.

use std::io::BufRead as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use stemfeed_core::Config;
use stemfeed_queue::Role;
use stemfeed_server::auth;

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s:?}: use submitter, curator or admin"))
}

fn parse_name(s: &str) -> Result<String, String> {
    if auth::valid_name(s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?}: 1 to 64 letters, digits, '.', '_' and '-' only"
        ))
    }
}

/// A positive number of days (fractions allowed) as a duration.
fn parse_days(s: &str) -> Result<Duration, String> {
    let days: f64 = s
        .parse()
        .map_err(|_| format!("{s:?}: a number of days, e.g. 90 or 0.5"))?;
    if !(days > 0.0 && days <= 36_500.0) {
        return Err(format!("{s:?}: more than 0 and at most 36500 days"));
    }
    Ok(Duration::from_secs_f64(days * 86_400.0))
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a person who logs in to the web UI; the password is read from
    /// $STEMFEED_PASSWORD or the first line of standard input.
    Add {
        #[arg(value_parser = parse_name)]
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// Set a new password (read like `add`); the user's sessions end.
    #[command(alias = "passwd")]
    Password { name: String },
    /// Stop a person from logging in: their sessions end now and the API
    /// tokens they own stop working.
    Disable { name: String },
    /// Let a disabled person log in again (their tokens work again).
    Enable { name: String },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create an API token for a machine; printed once, stored only as a
    /// hash. The token is its own principal: it owns nothing of a user
    /// with the same name.
    Add {
        #[arg(value_parser = parse_name)]
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Days until it stops working (fractions allowed); none: no expiry.
        #[arg(long, value_parser = parse_days)]
        expires_days: Option<Duration>,
        /// The person it belongs to: it stops working while they are disabled.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Every token: role, owner, created, expiry and when it was last used.
    List,
    /// Delete a token; it stops working at once.
    Revoke { name: String },
}

fn read_password() -> anyhow::Result<String> {
    let pw = match std::env::var("STEMFEED_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    anyhow::ensure!(
        pw.chars().count() >= 10,
        "a password needs at least 10 characters"
    );
    Ok(pw)
}

fn catalog(config: &Config) -> anyhow::Result<stemfeed_queue::Catalog> {
    Ok(stemfeed_queue::Catalog::open(&config.catalog_url())?)
}

pub fn users(cmd: UsersCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let c = catalog(config)?;
    match cmd {
        UsersCommand::Add { name, role } => {
            let hash = auth::hash_password(&read_password()?)?;
            anyhow::ensure!(c.create_user(&name, &hash, role)?, "user {name} exists");
            println!("added {name} ({})", role.as_str());
        }
        UsersCommand::Password { name } => {
            let hash = auth::hash_password(&read_password()?)?;
            anyhow::ensure!(c.set_password(&name, &hash)?, "no user {name}");
            println!("password of {name} changed; their sessions ended");
        }
        UsersCommand::Disable { name } => {
            anyhow::ensure!(c.set_user_disabled(&name, true)?, "no user {name}");
            println!("{name} disabled; their sessions ended and their tokens stopped");
        }
        UsersCommand::Enable { name } => {
            anyhow::ensure!(c.set_user_disabled(&name, false)?, "no user {name}");
            println!("{name} enabled");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn when(ms: Option<i64>, none: &str) -> String {
    ms.map_or_else(|| none.to_owned(), stemfeed_server::rfc3339)
}

pub fn tokens(cmd: TokensCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let c = catalog(config)?;
    match cmd {
        TokensCommand::Add {
            name,
            role,
            expires_days,
            owner,
        } => {
            if let Some(owner) = &owner {
                anyhow::ensure!(c.user(owner)?.is_some(), "no user {owner}");
            }
            let token = auth::random_token();
            anyhow::ensure!(
                c.create_api_token(
                    &auth::token_hash(&token),
                    &name,
                    role,
                    owner.as_deref(),
                    expires_days
                )?,
                "a token named {name} exists"
            );
            println!("{token}");
        }
        TokensCommand::List => {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            println!("NAME\tROLE\tOWNER\tCREATED\tEXPIRES\tLAST-USED");
            for t in c.api_tokens()? {
                let expires = match t.expires_ms {
                    Some(e) if e <= now_ms => format!("{} (expired)", when(Some(e), "")),
                    e => when(e, "never"),
                };
                println!(
                    "{}\t{}\t{}\t{}\t{expires}\t{}",
                    t.name,
                    t.role.as_str(),
                    t.owner.as_deref().unwrap_or("-"),
                    when(Some(t.created_ms), ""),
                    when(t.last_used_ms, "never"),
                );
            }
        }
        TokensCommand::Revoke { name } => {
            anyhow::ensure!(c.revoke_api_token(&name)?, "no token named {name}");
            println!("token {name} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}
