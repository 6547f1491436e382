//! The `dfs` binary against the fake cluster: exit codes and coreutils-style messages.

mod fake;

use fake::{FakeDatanode, FakeNamenode};
use std::process::Output;

async fn dfs(namenode: &str, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dfs"));
    cmd.arg("--namenodes").arg(namenode).args(args);
    tokio::task::spawn_blocking(move || cmd.output().expect("run dfs"))
        .await
        .expect("join")
}

#[tokio::test]
async fn put_cat_stat_and_errors() {
    let dns = [FakeDatanode::start().await, FakeDatanode::start().await];
    let nn = FakeNamenode::start(64 * 1024, &dns).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("hello.txt");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&local, &data).expect("write local");

    let out = dfs(&nn.addr, &["put", &local.to_string_lossy(), "/"]).await;
    assert!(
        out.status.success(),
        "put: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = dfs(&nn.addr, &["cat", "/hello.txt"]).await;
    assert!(out.status.success());
    assert!(out.stdout == data, "cat output differs");

    let out = dfs(&nn.addr, &["stat", "/hello.txt"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("Size: 200000"), "{text}");
    assert!(text.contains("Blocks: 4"), "{text}");

    let out = dfs(&nn.addr, &["put", &local.to_string_lossy(), "/hello.txt"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "dfs: cannot create '/hello.txt': File exists"
    );

    let out = dfs(&nn.addr, &["cat", "/missing", "/hello.txt"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "dfs: cannot read '/missing': No such file or directory"
    );
    assert!(out.stdout == data, "later paths are still processed");

    let out = dfs(&nn.addr, &["rm", "-f", "/missing"]).await;
    assert_eq!(out.status.code(), Some(0));
    let out = dfs(&nn.addr, &["rm", "/hello.txt"]).await;
    assert_eq!(out.status.code(), Some(0));
    let out = dfs(&nn.addr, &["rm"]).await;
    assert_eq!(out.status.code(), Some(2), "usage error");
}
