//! `--daemon`: the parent starts the same program again in the background and waits until it
//! says the mount is live (exit 0) or why it failed (exit 1). The child reports on its stdout,
//! a pipe the parent reads one line from; nothing else is ever written to that stdout.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};

/// Set in the background child: report readiness on stdout.
const READY_ENV: &str = "DFS_FUSE_REPORT_READY";

/// In the parent: start the background child and wait for its report.
pub fn detach() -> ExitCode {
    match detach_inner() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dfs-fuse: {e}");
            ExitCode::FAILURE
        }
    }
}

fn detach_inner() -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("find own executable: {e}"))?;
    let args: Vec<OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--daemon")
        .collect();
    let mut child = Command::new(exe)
        .args(args)
        .env(READY_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Out of the terminal's process group: a ^C there does not reach the daemon.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("start the background process: {e}"))?;
    let Some(out) = child.stdout.take() else {
        return Err("no pipe to the background process".into());
    };
    let mut line = String::new();
    let _ = BufReader::new(out).read_line(&mut line);
    match line.trim_end().split_once(' ') {
        _ if line.trim_end() == "ready" => Ok(()),
        Some(("error:", why)) => Err(why.to_string()),
        _ => {
            let status = child.wait().map_err(|e| e.to_string())?;
            Err(format!(
                "the background process exited before mounting ({status})"
            ))
        }
    }
}

/// In the process that mounts: tells a waiting parent, once, how mounting went.
pub struct Readiness {
    report: bool,
    done: bool,
}

impl Readiness {
    pub fn from_env() -> Readiness {
        Readiness {
            report: std::env::var_os(READY_ENV).is_some(),
            done: false,
        }
    }

    pub fn report(&mut self, result: Result<(), String>) {
        if self.done {
            return;
        }
        self.done = true;
        if !self.report {
            return;
        }
        let line = match result {
            Ok(()) => "ready\n".to_string(),
            Err(e) => format!("error: {}\n", e.replace('\n', " ")),
        };
        let mut out = std::io::stdout().lock();
        // The parent may be gone already; nothing to do then.
        let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
    }
}
