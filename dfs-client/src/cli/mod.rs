//! The `dfs` command: argument parsing and one function per subcommand. Output and errors follow
//! coreutils: `dfs: cannot stat '/x': No such file or directory`, the remaining paths still
//! processed, exit code 1 if anything failed (2 for usage errors, from clap).

pub mod decommission;
pub mod format;
pub mod fsck;
pub mod ha;

use crate::config::ClientConfig;
use crate::error::Error;
use crate::{Client, ops};
use clap::{Parser, Subcommand};
use dfs_proto::ErrorCode;
use dfs_proto::rest::FileKind;
use format::LongEntry;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Use a dfs cluster: list, copy, move and remove files, and report on the datanodes.
#[derive(Debug, Parser)]
#[command(name = "dfs", version)]
pub struct Cli {
    /// Namenode REST addresses, comma-separated (default: DFS_CONFIG, ~/.config/dfs/client.toml,
    /// /etc/dfs/client.toml).
    #[arg(
        long,
        global = true,
        env = "DFS_NAMENODES",
        value_name = "HOST:PORT,..."
    )]
    pub namenodes: Option<String>,
    /// The cluster secret file (default: DFS_SECRET_FILE, or `secret_file` in client.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub secret_file: Option<std::path::PathBuf>,
    /// CA certificate (PEM) of a cluster that serves TLS (default: DFS_TLS_CA, or `tls_ca` in
    /// client.toml; without one, plain HTTP).
    #[arg(long, global = true, value_name = "PATH")]
    pub tls_ca: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List directory contents.
    Ls {
        /// Long listing: mode, links, owner, group, size, modification time, name.
        #[arg(short = 'l')]
        long: bool,
        /// List directories themselves, not their contents.
        #[arg(short = 'd')]
        directory: bool,
        /// Paths to list (default /).
        paths: Vec<String>,
    },
    /// Create directories.
    Mkdir {
        /// Create missing parents; no error if the directory exists.
        #[arg(short = 'p')]
        parents: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Copy a local file (or stdin, `-`) into dfs.
    Put {
        /// Overwrite REMOTE if it exists.
        #[arg(short = 'f')]
        force: bool,
        local: String,
        /// A file path, or an existing directory to put the file into.
        remote: String,
    },
    /// Copy a dfs file to a local file, a local directory, or stdout (`-`).
    Get { remote: String, local: String },
    /// Print files to stdout.
    Cat {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Remove files or directories.
    Rm {
        /// Remove directories and their contents.
        #[arg(short = 'r', short_alias = 'R')]
        recursive: bool,
        /// Ignore missing paths; never fail for them.
        #[arg(short = 'f')]
        force: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Rename SRC to DST, or move it into DST if that is a directory.
    Mv { src: String, dst: String },
    /// Show attributes, and for files the blocks with their datanodes.
    Stat {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Check the health of the files under PATH (default /): blocks, replicas, missing,
    /// corrupt and under-replicated blocks. Exits 1 if any data is missing.
    Fsck {
        path: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cluster administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Datanodes (state, capacity, blocks, last heartbeat), totals and block health.
    Report {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drain a datanode (id or gRPC address): copy its replicas elsewhere, then mark it
    /// decommissioned (safe to remove).
    Decommission {
        datanode: String,
        /// Wait until it is decommissioned.
        #[arg(long)]
        wait: bool,
    },
    /// Namenode high availability: status, add or remove a namenode.
    Ha {
        #[command(subcommand)]
        command: ha::HaCommand,
    },
}

/// Runs one command; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let config = match ClientConfig::discover(cli.namenodes.as_deref()) {
        Ok(mut config) => {
            if let Some(path) = cli.secret_file.clone() {
                config.secret_file = Some(path);
            }
            if let Some(path) = cli.tls_ca.clone() {
                config.tls_ca = Some(path);
            }
            config
        }
        Err(e) => {
            eprintln!("dfs: {e}");
            return 1;
        }
    };
    let client = match Client::new(config) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("dfs: {e}");
            return 1;
        }
    };
    let ok = match cli.command {
        Command::Ls {
            long,
            directory,
            paths,
        } => ls(&client, long, directory, paths).await,
        Command::Mkdir { parents, paths } => {
            let mut ok = true;
            for path in &paths {
                if let Err(e) = client.mkdir(path, parents).await {
                    ok = fail("create directory", path, &e);
                }
            }
            ok
        }
        Command::Put {
            force,
            local,
            remote,
        } => put(&client, &local, &remote, force).await,
        Command::Get { remote, local } => get(&client, &remote, &local).await,
        Command::Cat { paths } => {
            let mut ok = true;
            let mut stdout = tokio::io::stdout();
            for path in &paths {
                if let Err(e) = client.cat(path, &mut stdout).await {
                    ok = fail("read", path, &e);
                }
            }
            ok
        }
        Command::Rm {
            recursive,
            force,
            paths,
        } => {
            let mut ok = true;
            for path in &paths {
                match client.remove(path, recursive).await {
                    Err(e) if force && e.code() == Some(ErrorCode::NotFound) => {}
                    Err(e) => ok = fail("remove", path, &e),
                    Ok(()) => {}
                }
            }
            ok
        }
        Command::Mv { src, dst } => match client.rename(&src, &dst).await {
            Ok(_) => true,
            Err(e) => fail("move", &format!("{src}' to '{dst}"), &e),
        },
        Command::Stat { paths } => {
            let mut ok = true;
            for path in &paths {
                if let Err(e) = stat(&client, path).await {
                    ok = fail("stat", path, &e);
                }
            }
            ok
        }
        Command::Fsck { path, json } => fsck::run(&client, path, json).await,
        Command::Admin {
            command: AdminCommand::Decommission { datanode, wait },
        } => decommission::run(&client, datanode, wait).await,
        Command::Admin {
            command: AdminCommand::Ha { command },
        } => ha::run(&client, command).await,
        Command::Admin {
            command: AdminCommand::Report { json },
        } => match client.admin_report().await {
            Ok(report) if json => match serde_json::to_string_pretty(&report) {
                Ok(text) => {
                    println!("{text}");
                    true
                }
                Err(e) => {
                    eprintln!("dfs: cannot format the report: {e}");
                    false
                }
            },
            Ok(report) => {
                print!("{}", format::report_text(&report));
                true
            }
            Err(e) => {
                eprintln!("dfs: cannot get the cluster report: {}", describe(&e));
                false
            }
        },
    };
    if ok { 0 } else { 1 }
}

/// Prints `dfs: cannot VERB 'PATH': REASON` and answers false (for `ok = fail(..)`).
fn fail(verb: &str, path: &str, err: &Error) -> bool {
    eprintln!("dfs: cannot {verb} '{path}': {}", describe(err));
    false
}

/// The errno's text for namenode refusals (as coreutils prints), the full error otherwise.
pub fn describe(err: &Error) -> String {
    match err.code() {
        Some(ErrorCode::Io | ErrorCode::NotLeader | ErrorCode::Unavailable) | None => {
            err.to_string()
        }
        Some(_) => strerror(err.errno()),
    }
}

/// `No such file or directory` for ENOENT.
pub fn strerror(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

async fn ls(client: &Client, long: bool, directory: bool, paths: Vec<String>) -> bool {
    let paths = if paths.is_empty() {
        vec!["/".to_string()]
    } else {
        paths
    };
    let headers = paths.len() > 1;
    let mut ok = true;
    let mut first = true;
    for path in &paths {
        let attr = match client.resolve(path).await {
            Ok(attr) => attr,
            Err(e) => {
                ok = fail("access", path, &e);
                continue;
            }
        };
        let mut entries = Vec::new();
        if attr.kind == FileKind::Dir && !directory {
            match client.list_ino(attr.ino).await {
                Ok(list) => entries.extend(list.into_iter().map(|e| (e.name, e.attr))),
                Err(e) => {
                    ok = fail("open directory", path, &e);
                    continue;
                }
            }
            if headers {
                if !first {
                    println!();
                }
                println!("{path}:");
            }
        } else {
            entries.push((path.clone(), attr));
        }
        first = false;
        if !long {
            for (name, _) in &entries {
                println!("{name}");
            }
            continue;
        }
        let mut targets = Vec::with_capacity(entries.len());
        for (_, attr) in &entries {
            targets.push(match attr.kind {
                FileKind::Symlink => client.readlink(attr.ino).await.ok(),
                _ => None,
            });
        }
        let long_entries: Vec<LongEntry<'_>> = entries
            .iter()
            .zip(&targets)
            .map(|((name, attr), target)| LongEntry {
                name,
                attr,
                target: target.as_deref(),
            })
            .collect();
        print!("{}", format::long_listing(&long_entries));
    }
    ok
}

async fn stat(client: &Client, path: &str) -> Result<(), Error> {
    let attr = client.resolve(path).await?;
    let blocks = match attr.kind {
        FileKind::File => Some(client.blocks(attr.ino).await?),
        _ => None,
    };
    print!("{}", format::stat_text(path, &attr, blocks.as_ref()));
    Ok(())
}

/// A byte progress bar on stderr when it is a terminal, hidden otherwise.
fn progress_bar(total: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    match total {
        Some(total) => {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} {binary_bytes} {binary_bytes_per_sec}")
            {
                bar.set_style(style);
            }
            bar
        }
    }
}

async fn put(client: &Client, local: &str, remote: &str, force: bool) -> bool {
    // REMOTE an existing directory: put inside it under the local name.
    let mut target = remote.to_string();
    if let Ok(attr) = client.resolve(remote).await
        && attr.kind == FileKind::Dir
    {
        let Some(name) = Path::new(local).file_name().filter(|_| local != "-") else {
            eprintln!("dfs: cannot put '{local}' into directory '{remote}': name the file");
            return false;
        };
        target = format!(
            "{}/{}",
            remote.trim_end_matches('/'),
            name.to_string_lossy()
        );
    }
    let result = if local == "-" {
        let bar = progress_bar(None);
        let r = client
            .put_reader(
                tokio::io::stdin(),
                &target,
                ops::FILE_PERM,
                force,
                &mut |n| bar.set_position(n),
            )
            .await;
        bar.finish_and_clear();
        r
    } else {
        let size = std::fs::metadata(local).map(|m| m.len()).ok();
        let bar = progress_bar(size);
        let r = client
            .put(Path::new(local), &target, force, &mut |n| {
                bar.set_position(n)
            })
            .await;
        bar.finish_and_clear();
        r
    };
    match result {
        Ok(_) => true,
        Err(e) if e.code().is_some() => fail("create", &target, &e),
        Err(e) => fail("put", local, &e),
    }
}

async fn get(client: &Client, remote: &str, local: &str) -> bool {
    if local == "-" {
        let mut stdout = tokio::io::stdout();
        let r = client.cat(remote, &mut stdout).await;
        let _ = stdout.flush().await;
        return match r {
            Ok(_) => true,
            Err(e) => fail("read", remote, &e),
        };
    }
    let attr = match client.resolve(remote).await {
        Ok(attr) => attr,
        Err(e) => return fail("stat", remote, &e),
    };
    let mut target = PathBuf::from(local);
    if target.is_dir() {
        let name = remote
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(remote);
        target.push(name);
    }
    let bar = progress_bar(Some(attr.size));
    let r = client
        .get(remote, &target, &mut |n| bar.set_position(n))
        .await;
    bar.finish_and_clear();
    match r {
        Ok(_) => true,
        Err(e) => fail("get", remote, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn strerror_drops_the_os_error_suffix() {
        assert_eq!(strerror(libc::ENOENT), "No such file or directory");
        let e = Error::api(ErrorCode::NotFound, "no /x");
        assert_eq!(describe(&e), "No such file or directory");
    }

    #[test]
    fn flags_parse_like_coreutils() {
        let cli = Cli::try_parse_from(["dfs", "rm", "-rf", "/a", "/b"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Rm { recursive: true, force: true, ref paths } if paths.len() == 2
        ));
        let cli = Cli::try_parse_from(["dfs", "--namenodes", "a:1", "ls", "-ld"]).expect("parses");
        assert_eq!(cli.namenodes.as_deref(), Some("a:1"));
        assert!(Cli::try_parse_from(["dfs", "mkdir"]).is_err());
    }
}
