//! File throughput with the CLI: `dfs put` and `dfs get` of one large file beside `cp` and `cat`
//! on the local disk.

use crate::util::{local_write, rate, timed};
use anyhow::Result;
use integration::{Cluster, random_file};
use std::process::Command;

pub async fn files(cluster: &Cluster, file_mib: usize) -> Result<()> {
    let bytes = file_mib * 1024 * 1024;
    let src = cluster.scratch("bench-src.bin");
    random_file(&src, bytes, 42)?;
    let local_copy = cluster.scratch("bench-cp.bin");
    let cp = local_write(&src, &local_copy, 3)?;
    let read_local = timed(
        "cat",
        Command::new("sh")
            .arg("-c")
            .arg(format!("cat '{}' > /dev/null", src.display())),
    )?;

    let dfs = integration::bin("dfs")?;
    let nn = cluster.namenodes_arg();
    let put = timed(
        "dfs put",
        Command::new(&dfs)
            .args(["--namenodes", &nn, "put"])
            .env("DFS_SECRET_FILE", &cluster.secret_file)
            .arg(&src)
            .arg("/bench.bin"),
    )?;
    let get = timed(
        "dfs get",
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "'{}' --namenodes {nn} get /bench.bin - > /dev/null",
                dfs.display()
            ))
            .env("DFS_SECRET_FILE", &cluster.secret_file),
    )?;
    let (cp_r, put_r, get_r, cat_r) = (
        rate(bytes, cp),
        rate(bytes, put),
        rate(bytes, get),
        rate(bytes, read_local),
    );
    println!("\nfile throughput, {file_mib} MiB, MB/s (MiB/s):");
    println!("  local cp + fsync       {cp_r:>8.0}   (best of 3)");
    println!(
        "  dfs put (3 replicas)   {put_r:>8.0}   {:.2} of local cp   (target >= 185)",
        put_r / cp_r
    );
    println!("  local cat (page cache) {cat_r:>8.0}");
    println!(
        "  dfs get                {get_r:>8.0}   {:.2} of local cat  (target >= 850)",
        get_r / cat_r
    );
    Ok(())
}
