//! `--print-config` of the real binaries: defaults < file < environment < flag, and the output
//! read back with `--config` prints the same configuration again.

use anyhow::{Result, ensure};
use integration::bin;
use std::process::Command;

/// Runs `program --print-config ARGS` with `env` set; its stdout.
fn print_config(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
    let out = Command::new(bin(program)?)
        .arg("--print-config")
        .args(args)
        .envs(env.iter().copied())
        .output()?;
    ensure!(
        out.status.success(),
        "{program} --print-config failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

fn value<'a>(toml: &'a str, key: &str) -> Option<&'a str> {
    toml.lines()
        .find_map(|l| l.strip_prefix(key)?.trim_start().strip_prefix('='))
        .map(str::trim)
}

#[test]
fn namenode_and_datanode_merge_file_env_and_flags_in_order() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nn_file = dir.path().join("nn.toml");
    std::fs::write(
        &nn_file,
        "data_dir = \"/d\"\nreplication = 2\nlease_duration = \"5s\"\nsnapshot_every = 7\n",
    )?;
    let nn_file = nn_file.to_str().unwrap_or_default();
    let env = [
        ("DFS_NAMENODE_REPLICATION", "1"),
        ("DFS_NAMENODE_LEASE_DURATION", "9s"),
        ("DFS_LOG_FORMAT", "json"),
    ];
    let out = print_config(
        "dfs-namenode",
        &["--config", nn_file, "--lease-duration", "11s"],
        &env,
    )?;
    ensure!(value(&out, "snapshot_every") == Some("7"), "file: {out}");
    ensure!(
        value(&out, "replication") == Some("1"),
        "env over file: {out}"
    );
    ensure!(
        value(&out, "lease_duration") == Some("\"11s\""),
        "flag over env: {out}"
    );
    ensure!(value(&out, "log_format") == Some("\"json\""), "{out}");
    ensure!(
        value(&out, "block_size") == Some("67108864"),
        "default: {out}"
    );

    let printed = dir.path().join("printed.toml");
    std::fs::write(&printed, &out)?;
    let again = print_config(
        "dfs-namenode",
        &["--config", printed.to_str().unwrap_or_default()],
        &[],
    )?;
    ensure!(again == out, "round trip:\n{out}\n---\n{again}");

    let dn_file = dir.path().join("dn.toml");
    std::fs::write(
        &dn_file,
        "data_dir = \"/d\"\nnamenodes = [\"a:1\"]\nscrub_rate = \"1MiB\"\nreserved = 5\n",
    )?;
    let dn_file = dn_file.to_str().unwrap_or_default();
    let out = print_config(
        "dfs-datanode",
        &["--config", dn_file, "--reserved", "9"],
        &[
            ("DFS_DATANODE_SCRUB_RATE", "2MiB"),
            ("DFS_DATANODE_RESERVED", "7"),
        ],
    )?;
    ensure!(
        value(&out, "scrub_rate") == Some("2097152"),
        "env over file: {out}"
    );
    ensure!(value(&out, "reserved") == Some("9"), "flag over env: {out}");
    ensure!(value(&out, "namenodes") == Some("[\"a:1\"]"), "file: {out}");
    Ok(())
}

#[test]
fn an_unknown_key_is_refused_by_name() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("nn.toml");
    std::fs::write(&file, "data_dir = \"/d\"\nreplicaton = 2\n")?;
    let out = Command::new(bin("dfs-namenode")?)
        .args([
            "--print-config",
            "--config",
            file.to_str().unwrap_or_default(),
        ])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "accepted an unknown key");
    ensure!(
        stderr.contains("replicaton"),
        "the error names the key: {stderr}"
    );
    Ok(())
}
