//! Through the FUSE mount, beside the same work on the local disk in the same run: sequential
//! write and cold read of one large file, 4 KiB random reads at queue depth 1, create / stat /
//! `ls -l` / rm of 10,000 files in one directory, and 2,000 files of 64 KiB written and read
//! back; plus the mount's peak memory. The section starts from an empty page cache (root only).

use crate::util::{cp_sync, rate, timed};
use anyhow::{Context, Result};
use integration::mount::Mount;
use integration::{Cluster, random_file};
use rand::{Rng, SeedableRng};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// One row of figures: the mount's and the local disk's.
struct Row {
    what: &'static str,
    unit: &'static str,
    dfs: f64,
    local: f64,
    target: &'static str,
}

fn drop_caches() {
    // Root only; without it the "cold" read is warm, which the output then says.
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3\n");
}

fn can_drop_caches() -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/vm/drop_caches")
        .is_ok()
}

fn seq_read(path: &Path) -> Result<Duration> {
    drop_caches();
    timed(
        "cat",
        Command::new("sh")
            .arg("-c")
            .arg(format!("cat '{}' > /dev/null", path.display())),
    )
}

/// 4 KiB reads at random 4 KiB-aligned offsets, one at a time, for `count` reads; IOPS.
fn random_reads(path: &Path, count: usize) -> Result<f64> {
    drop_caches();
    let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let len = file.metadata()?.len();
    let pages = (len / 4096).max(1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut buf = vec![0u8; 4096];
    let start = Instant::now();
    for _ in 0..count {
        let off = rng.random_range(0..pages) * 4096;
        file.read_exact_at(&mut buf, off)?;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

/// Creates, stats, lists and removes `n` empty files in `dir`; ops/s each, and `ls -l` seconds.
fn many_files(dir: &Path, n: usize) -> Result<(f64, f64, f64, f64)> {
    std::fs::create_dir_all(dir)?;
    let names: Vec<_> = (0..n).map(|i| dir.join(format!("file-{i:05}"))).collect();
    let start = Instant::now();
    for p in &names {
        File::create(p)?;
    }
    let create = n as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for p in &names {
        std::fs::symlink_metadata(p)?;
    }
    let stat = n as f64 / start.elapsed().as_secs_f64();
    drop_caches();
    let ls = timed(
        "ls -l",
        Command::new("sh")
            .arg("-c")
            .arg(format!("ls -l '{}' > /dev/null", dir.display())),
    )?
    .as_secs_f64();
    let start = Instant::now();
    for p in &names {
        std::fs::remove_file(p)?;
    }
    let rm = n as f64 / start.elapsed().as_secs_f64();
    Ok((create, stat, ls, rm))
}

/// Writes `n` files of 64 KiB, then reads them back; files/s each.
fn small_files(dir: &Path, n: usize) -> Result<(f64, f64)> {
    std::fs::create_dir_all(dir)?;
    let data = vec![0x5au8; 64 * 1024];
    let start = Instant::now();
    for i in 0..n {
        let mut f = File::create(dir.join(format!("small-{i:05}")))?;
        f.write_all(&data)?;
    }
    let write = n as f64 / start.elapsed().as_secs_f64();
    drop_caches();
    let mut buf = Vec::with_capacity(data.len());
    let start = Instant::now();
    for i in 0..n {
        buf.clear();
        File::open(dir.join(format!("small-{i:05}")))?.read_to_end(&mut buf)?;
        anyhow::ensure!(buf.len() == data.len(), "short small file {i}");
    }
    let read = n as f64 / start.elapsed().as_secs_f64();
    Ok((write, read))
}

/// Peak resident memory of a process, from `/proc/PID/status` (VmHWM).
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub fn mount(cluster: &Cluster, file_mib: usize) -> Result<()> {
    // Start from an empty page cache, as `--only mount` does: earlier sections leave gigabytes
    // cached (`dfs put`/`get` of the big file), and on a virtual machine that hands memory
    // back to its host, growing the cache again costs CPU by the gigabyte. Measured with
    // `--only files,mount`: the mount's sequential write 132-155 MB/s without this, 309-321
    // with it (236-283 with `--only mount`).
    timed("sync", &mut Command::new("sync"))?;
    drop_caches();
    let mount = Mount::start(cluster, &[])?;
    let local = cluster.scratch("local-disk");
    std::fs::create_dir_all(&local)?;
    let bytes = file_mib * 1024 * 1024;
    let src = cluster.scratch("mount-src.bin");
    random_file(&src, bytes, 11)?;

    let mut rows = Vec::new();
    let (dfs_file, local_file) = (mount.path("seq.bin"), local.join("seq.bin"));
    let w_dfs = cp_sync(&src, &dfs_file)?;
    let w_local = cp_sync(&src, &local_file)?;
    let rss = mount.pid().and_then(peak_rss_mib);
    rows.push(Row {
        what: "sequential write",
        unit: "MB/s",
        dfs: rate(bytes, w_dfs),
        local: rate(bytes, w_local),
        target: ">= 185",
    });
    let r_dfs = seq_read(&dfs_file)?;
    let r_local = seq_read(&local_file)?;
    rows.push(Row {
        what: "sequential read (cold)",
        unit: "MB/s",
        dfs: rate(bytes, r_dfs),
        local: rate(bytes, r_local),
        target: ">= 850",
    });
    rows.push(Row {
        what: "4 KiB random read, QD1",
        unit: "IOPS",
        dfs: random_reads(&dfs_file, 20_000)?,
        local: random_reads(&local_file, 20_000)?,
        target: ">= 17000",
    });
    std::fs::remove_file(&dfs_file)?;
    std::fs::remove_file(&local_file)?;

    let n = 10_000;
    let (c_d, s_d, l_d, rm_d) = many_files(&mount.path("many"), n)?;
    let (c_l, s_l, l_l, rm_l) = many_files(&local.join("many"), n)?;
    rows.push(Row {
        what: "create (10,000 in a dir)",
        unit: "files/s",
        dfs: c_d,
        local: c_l,
        target: ">= 15000",
    });
    rows.push(Row {
        what: "stat",
        unit: "ops/s",
        dfs: s_d,
        local: s_l,
        target: ">= 28000",
    });
    rows.push(Row {
        what: "ls -l of 10,000 files",
        unit: "s",
        dfs: l_d,
        local: l_l,
        target: "<= 0.4",
    });
    rows.push(Row {
        what: "rm",
        unit: "files/s",
        dfs: rm_d,
        local: rm_l,
        target: ">= 15000",
    });
    let (sw_d, sr_d) = small_files(&mount.path("small"), 2000)?;
    let (sw_l, sr_l) = small_files(&local.join("small"), 2000)?;
    rows.push(Row {
        what: "64 KiB files written",
        unit: "files/s",
        dfs: sw_d,
        local: sw_l,
        target: ">= 1100",
    });
    rows.push(Row {
        what: "64 KiB files read",
        unit: "files/s",
        dfs: sr_d,
        local: sr_l,
        target: ">= 4100",
    });

    println!(
        "\nthrough the FUSE mount ({file_mib} MiB file; cold reads {}):",
        if can_drop_caches() {
            "after dropping the page cache"
        } else {
            "NOT cold: cannot drop caches without root"
        }
    );
    println!(
        "  {:<26} {:>12} {:>12} {:>8}   target",
        "", "dfs", "local disk", "unit"
    );
    for r in &rows {
        println!(
            "  {:<26} {:>12.2} {:>12.2} {:>8}   {}",
            r.what, r.dfs, r.local, r.unit, r.target
        );
    }
    match rss {
        Some(m) => println!(
            "  mount peak memory (VmHWM) after the sequential write: {m:.1} MiB (target < 64)"
        ),
        None => println!("  mount peak memory: unknown (no /proc entry for the mount process)"),
    }
    Ok(())
}
