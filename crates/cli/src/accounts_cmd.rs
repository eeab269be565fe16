//! Admin commands: people (`stemfeed users add`) and machine tokens
//! (`stemfeed tokens add`), written straight to the catalog.

use std::io::BufRead as _;
use std::process::ExitCode;

use clap::Subcommand;
use stemfeed_core::Config;
use stemfeed_queue::Role;
use stemfeed_server::auth;

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s:?}: use submitter, curator or admin"))
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a person who logs in to the web UI; the password is read from
    /// $STEMFEED_PASSWORD or the first line of standard input.
    Add {
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// Set a new password (read like `add`).
    Password { name: String },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create an API token for a machine; printed once, stored only as a hash.
    Add {
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
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
            anyhow::ensure!(
                !name.is_empty()
                    && name.len() <= 64
                    && name
                        .chars()
                        .all(|ch| ch.is_alphanumeric() || "._-".contains(ch)),
                "user name {name:?}: letters, digits, '.', '_' and '-' only"
            );
            let hash = auth::hash_password(&read_password()?)?;
            anyhow::ensure!(c.create_user(&name, &hash, role)?, "user {name} exists");
            println!("added {name} ({})", role.as_str());
        }
        UsersCommand::Password { name } => {
            let hash = auth::hash_password(&read_password()?)?;
            anyhow::ensure!(c.set_password(&name, &hash)?, "no user {name}");
            println!("password of {name} changed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn tokens(cmd: TokensCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let c = catalog(config)?;
    match cmd {
        TokensCommand::Add { name, role } => {
            let token = auth::random_token();
            anyhow::ensure!(
                c.create_api_token(&auth::token_hash(&token), &name, role)?,
                "a token named {name} exists"
            );
            println!("{token}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
