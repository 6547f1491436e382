//! The FUSE mount doing what users do: real commands (`ls`, `cp`, `tar`, `dd`, `mv`, ...) on a
//! real mount of a real cluster (one namenode, three datanodes, 1 MiB blocks so files span
//! blocks). Needs root and /dev/fuse; `fusermount3` (apt `fuse3`) for the unmount in `Drop`.

use anyhow::{Context, Result, bail, ensure};
use integration::mount::{Mount, is_mounted};
use integration::{Cluster, ClusterConfig, random_file};
use std::path::Path;
use std::process::Command;

const MIB: usize = 1024 * 1024;

/// Runs `script` with `bash -c` and fails with its stderr unless it exits 0.
fn sh(script: &str) -> Result<String> {
    let out = Command::new("bash").arg("-c").arg(script).output()?;
    if !out.status.success() {
        bail!(
            "`{script}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `script` expecting it to fail; returns its stderr.
fn sh_fails(script: &str) -> Result<String> {
    let out = Command::new("bash").arg("-c").arg(script).output()?;
    ensure!(
        !out.status.success(),
        "`{script}` succeeded but should fail"
    );
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

fn sha(path: &Path) -> Result<String> {
    let out = sh(&format!("sha256sum '{}'", p(path)))?;
    Ok(out
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everyday_commands() -> Result<()> {
    let cluster = Cluster::start(ClusterConfig::default()).await?;
    let mount = Mount::start(&cluster, &[])?;
    let m = p(&mount.dir).to_string();

    // mkdir -p, echo, cat, >> appends, ls -la.
    sh(&format!(
        "mkdir -p {m}/a/b/c && echo hello > {m}/a/b/c/f.txt"
    ))?;
    sh(&format!("echo world >> {m}/a/b/c/f.txt"))?;
    assert_eq!(sh(&format!("cat {m}/a/b/c/f.txt"))?, "hello\nworld\n");
    let ls = sh(&format!("ls -la {m}/a/b/c"))?;
    assert!(ls.contains("f.txt") && ls.contains(" 12 "), "ls -la: {ls}");

    // mv of a file and of a directory, across directories.
    sh(&format!(
        "mv {m}/a/b/c/f.txt {m}/a/g.txt && mv {m}/a/b {m}/moved"
    ))?;
    assert_eq!(sh(&format!("cat {m}/a/g.txt"))?, "hello\nworld\n");
    assert!(sh(&format!("ls {m}/moved"))?.contains('c'));
    sh_fails(&format!("cat {m}/a/b/c/f.txt"))?;

    // truncate -s down and up.
    random_file(&mount.path("t.bin"), 3 * MIB + 5, 1)?;
    sh(&format!("truncate -s 1500000 {m}/t.bin"))?;
    assert_eq!(std::fs::metadata(mount.path("t.bin"))?.len(), 1_500_000);
    sh(&format!("truncate -s 2M {m}/t.bin"))?;
    let data = std::fs::read(mount.path("t.bin"))?;
    assert_eq!(data.len(), 2 * MIB);
    assert!(
        data[1_500_000..].iter().all(|&b| b == 0),
        "grown part not zero"
    );

    // dd conv=notrunc into the middle of a multi-block file.
    let local = cluster.scratch("mid.bin");
    random_file(&local, 5 * MIB, 2)?;
    sh(&format!("cp {} {m}/mid.bin", p(&local)))?;
    sh(&format!(
        "dd if=/dev/zero of={m}/mid.bin bs=100000 seek=20 count=15 conv=notrunc status=none"
    ))?;
    sh(&format!(
        "dd if=/dev/zero of={} bs=100000 seek=20 count=15 conv=notrunc status=none",
        p(&local)
    ))?;
    assert_eq!(sha(&mount.path("mid.bin"))?, sha(&local)?);

    // Hard links: same inode, link count 2; symlinks resolve.
    sh(&format!(
        "ln {m}/a/g.txt {m}/hard && ln -s a/g.txt {m}/soft"
    ))?;
    let st = sh(&format!("stat -c '%i %h' {m}/a/g.txt {m}/hard"))?;
    let lines: Vec<&str> = st.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], lines[1], "hard link differs: {st}");
    assert!(lines[0].ends_with(" 2"), "link count: {st}");
    assert_eq!(sh(&format!("readlink {m}/soft"))?.trim(), "a/g.txt");
    assert_eq!(sh(&format!("cat {m}/soft"))?, "hello\nworld\n");

    // chmod and chown are honoured.
    sh(&format!(
        "chmod 0640 {m}/a/g.txt && chown 1234:5678 {m}/a/g.txt"
    ))?;
    assert_eq!(
        sh(&format!("stat -c '%a %u %g' {m}/a/g.txt"))?.trim(),
        "640 1234 5678"
    );

    // mknod of a device is refused, a FIFO works.
    sh(&format!("mkfifo {m}/fifo && test -p {m}/fifo"))?;
    sh_fails(&format!("mknod {m}/dev c 1 3"))?;

    // rm -r removes a tree; rmdir of a non-empty dir is ENOTEMPTY.
    let err = sh_fails(&format!("rmdir {m}/moved"))?;
    assert!(err.contains("not empty"), "rmdir: {err}");
    sh(&format!("rm -r {m}/moved"))?;
    sh_fails(&format!("ls {m}/moved"))?;

    // df shows the cluster's raw capacity.
    let report = cluster.report().await?;
    let df = sh(&format!("df -B1 --output=size {m} | tail -1"))?;
    let size: u64 = df.trim().parse().context("df size")?;
    ensure!(
        size > 0 && size.abs_diff(report.capacity) < 4096,
        "df says {size}, cluster capacity {}",
        report.capacity
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_copy_and_tar_round_trip() -> Result<()> {
    let cluster = Cluster::start(ClusterConfig::default()).await?;
    let mount = Mount::start(&cluster, &[])?;
    let m = p(&mount.dir).to_string();

    // 200 MiB in and out with cp, identical checksums.
    let local = cluster.scratch("big.bin");
    random_file(&local, 200 * MIB, 3)?;
    sh(&format!("cp {} {m}/big.bin", p(&local)))?;
    let back = cluster.scratch("big.out");
    sh(&format!("cp {m}/big.bin {}", p(&back)))?;
    assert_eq!(sha(&local)?, sha(&back)?);
    assert_eq!(
        std::fs::metadata(mount.path("big.bin"))?.len(),
        200 * MIB as u64
    );

    // A source tree through tar, in and out, byte-identical.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tree = cluster.scratch("tree.tar");
    sh(&format!(
        "tar -C {} -cf {} dfs-proto/src dfs-client/src docs",
        p(&src),
        p(&tree)
    ))?;
    sh(&format!("mkdir {m}/src && tar -C {m}/src -xf {}", p(&tree)))?;
    let out = cluster.scratch("tree-out");
    std::fs::create_dir_all(&out)?;
    sh(&format!(
        "tar -C {m}/src -cf - . | tar -C {} -xf -",
        p(&out)
    ))?;
    sh(&format!(
        "diff -r {}/dfs-proto/src {}/dfs-proto/src",
        p(&src),
        p(&out)
    ))?;
    sh(&format!(
        "diff -r {}/dfs-client/src {}/dfs-client/src",
        p(&src),
        p(&out)
    ))?;
    sh(&format!("diff -r {}/docs {}/docs", p(&src), p(&out)))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_mounts_share_files_and_leases() -> Result<()> {
    let cluster = Cluster::start(ClusterConfig::default()).await?;
    let one = Mount::start(&cluster, &[])?;
    let two = Mount::start(&cluster, &[])?;
    let (a, b) = (p(&one.dir).to_string(), p(&two.dir).to_string());

    // Close-to-open: written and closed in one, read in the other.
    let local = cluster.scratch("x.bin");
    random_file(&local, 3 * MIB + 17, 4)?;
    sh(&format!("cp {} {a}/x.bin", p(&local)))?;
    assert_eq!(sha(&two.path("x.bin"))?, sha(&local)?);

    // Mount one holds the write lease while a descriptor is open for writing: mount two
    // cannot open the file for writing. The holder says when its open has succeeded (marker
    // file), so mount two tries only while the lease is surely held.
    let marker = cluster.scratch("holder-open");
    let mut holder = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "exec 3>>{a}/x.bin || exit 1; echo more >&3; touch {}; sleep 120",
            p(&marker)
        ))
        .spawn()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !marker.exists() {
        anyhow::ensure!(
            holder.try_wait()?.is_none(),
            "the holder could not open the file for writing"
        );
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the holder did not open the file within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let err = sh_fails(&format!("echo x >> {b}/x.bin"));
    let _ = holder.kill();
    let _ = holder.wait();
    let err = err?;
    assert!(err.contains("busy"), "expected EBUSY, got: {err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlink_while_open_and_unmount_with_open_file() -> Result<()> {
    let cluster = Cluster::start(ClusterConfig::default()).await?;
    let mut mount = Mount::start(&cluster, &[])?;
    let m = p(&mount.dir).to_string();

    // Unlinked while open: still readable through the open descriptor.
    let local = cluster.scratch("u.bin");
    random_file(&local, 2 * MIB + 3, 5)?;
    sh(&format!("cp {} {m}/u.bin", p(&local)))?;
    let out = cluster.scratch("u.out");
    sh(&format!(
        "exec 3<{m}/u.bin; rm {m}/u.bin; cat <&3 > {}",
        p(&out)
    ))?;
    assert_eq!(sha(&out)?, sha(&local)?);
    sh_fails(&format!("ls {m}/u.bin"))?;

    // Unmount (SIGTERM) while a file is open: closed data is not lost.
    sh(&format!("echo kept > {m}/closed.txt"))?;
    let mut holder = Command::new("bash")
        .arg("-c")
        .arg(format!("exec 3<{m}/closed.txt; sleep 60"))
        .spawn()?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = mount.pid().context("dfs-fuse pid")?;
    // SAFETY: kill(2) on the pid of a process this test started; no memory is involved.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    integration::poll_until(std::time::Duration::from_secs(20), || async {
        (!is_mounted(&mount.dir)).then_some(())
    })
    .await?;
    let _ = holder.kill();
    let _ = holder.wait();
    mount.stop()?;
    assert_eq!(cluster.dfs_ok(&["cat", "/closed.txt"])?, "kept\n");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_mode_and_user_xattrs() -> Result<()> {
    let cluster = Cluster::start(ClusterConfig::default()).await?;
    let dir = cluster.scratch("daemon-mnt");
    std::fs::create_dir_all(&dir)?;
    let fuse = integration::bin("dfs-fuse")?;

    // A bad option: the parent exits non-zero with the child's error.
    let out = Command::new(&fuse)
        .args([
            "--daemon",
            "--namenodes",
            &cluster.namenodes_arg(),
            "-o",
            "bogus",
        ])
        .arg(&dir)
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus"));

    // --daemon returns 0 only once the mount is live.
    let status = Command::new(&fuse)
        .args(["--daemon", "--namenodes", &cluster.namenodes_arg()])
        .env("DFS_SECRET_FILE", &cluster.secret_file)
        .arg(&dir)
        .status()?;
    assert!(status.success());
    assert!(
        is_mounted(&dir),
        "--daemon returned before the mount was live"
    );

    // user. xattrs round-trip; other namespaces are ENOTSUP; an ioctl is ENOTTY, as on ext4.
    let d = p(&dir).to_string();
    sh(&format!("echo data > {d}/x"))?;
    let script = format!(
        "import os, errno\n\
         p = '{d}/x'\n\
         os.setxattr(p, 'user.color', b'blue')\n\
         assert os.getxattr(p, 'user.color') == b'blue'\n\
         assert 'user.color' in os.listxattr(p)\n\
         os.removexattr(p, 'user.color')\n\
         try:\n    os.getxattr(p, 'user.color'); raise SystemExit('still there')\n\
         except OSError as e:\n    assert e.errno == errno.ENODATA, e\n\
         try:\n    os.setxattr(p, 'trusted.x', b'1'); raise SystemExit('trusted set')\n\
         except OSError as e:\n    assert e.errno == errno.EOPNOTSUPP, e\n\
         import fcntl, termios\n\
         try:\n    fcntl.ioctl(open(p), termios.TCGETS, bytes(64)); raise SystemExit('ioctl served')\n\
         except OSError as e:\n    assert e.errno == errno.ENOTTY, e\n"
    );
    let out = Command::new("python3").arg("-c").arg(&script).output()?;
    ensure!(
        out.status.success(),
        "xattr script: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    sh(&format!("fusermount3 -u {d}"))?;
    ensure!(!is_mounted(&dir), "still mounted after fusermount3 -u");
    Ok(())
}

/// `renameat2(2)` on two paths: 0 or the errno.
fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> Result<i32> {
    use std::os::unix::ffi::OsStrExt;
    let from = std::ffi::CString::new(from.as_os_str().as_bytes())?;
    let to = std::ffi::CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both strings are valid NUL-terminated paths that live across the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            flags,
        )
    };
    Ok(if rc == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_flags_and_a_read_only_mount() -> Result<()> {
    let cluster = Cluster::start(ClusterConfig::default()).await?;
    let mount = Mount::start(&cluster, &[])?;
    let (a, b) = (mount.path("a.txt"), mount.path("b.txt"));
    std::fs::write(&a, "first\n")?;
    std::fs::write(&b, "second\n")?;

    // RENAME_NOREPLACE onto an existing name: EEXIST, and both files stay as they were.
    assert_eq!(renameat2(&a, &b, libc::RENAME_NOREPLACE)?, libc::EEXIST);
    assert_eq!(std::fs::read_to_string(&a)?, "first\n");
    assert_eq!(std::fs::read_to_string(&b)?, "second\n");
    // ... and onto a free name it renames.
    let c = mount.path("c.txt");
    assert_eq!(renameat2(&a, &c, libc::RENAME_NOREPLACE)?, 0);
    ensure!(!a.exists(), "a.txt is still there after the rename");

    // RENAME_EXCHANGE swaps two names atomically, also a file with a directory.
    assert_eq!(renameat2(&b, &c, libc::RENAME_EXCHANGE)?, 0);
    assert_eq!(std::fs::read_to_string(&b)?, "first\n");
    assert_eq!(std::fs::read_to_string(&c)?, "second\n");
    let d = mount.path("d");
    std::fs::create_dir(&d)?;
    assert_eq!(renameat2(&b, &d, libc::RENAME_EXCHANGE)?, 0);
    ensure!(
        d.is_file() && b.is_dir(),
        "file and directory were not exchanged"
    );
    assert_eq!(std::fs::read_to_string(&d)?, "first\n");
    // Exchanging with a name that does not exist: ENOENT.
    assert_eq!(
        renameat2(&c, &mount.path("none"), libc::RENAME_EXCHANGE)?,
        libc::ENOENT
    );

    // A second mount with -o ro reads everything and changes nothing: EROFS.
    let ro = Mount::start(&cluster, &["-o", "ro"])?;
    assert_eq!(std::fs::read_to_string(ro.path("d"))?, "first\n");
    let erofs = |r: std::io::Result<()>| r.err().and_then(|e| e.raw_os_error());
    assert_eq!(
        erofs(std::fs::write(ro.path("new.txt"), "x")),
        Some(libc::EROFS)
    );
    assert_eq!(erofs(std::fs::write(ro.path("d"), "x")), Some(libc::EROFS));
    assert_eq!(
        erofs(std::fs::create_dir(ro.path("dir"))),
        Some(libc::EROFS)
    );
    assert_eq!(
        erofs(std::fs::remove_file(ro.path("c.txt"))),
        Some(libc::EROFS)
    );
    assert_eq!(
        erofs(std::fs::rename(ro.path("c.txt"), ro.path("e.txt"))),
        Some(libc::EROFS)
    );
    let perms = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    assert_eq!(
        erofs(std::fs::set_permissions(ro.path("c.txt"), perms)),
        Some(libc::EROFS)
    );
    // The writable mount saw none of it.
    assert_eq!(std::fs::read_to_string(&d)?, "first\n");
    ensure!(!mount.path("new.txt").exists() && mount.path("c.txt").exists());
    Ok(())
}

/// 4 KiB reads at `offsets` of `path`, through one descriptor, each checked against `want`.
fn check_reads(file: &std::fs::File, offsets: &[u64], want: &[u8], what: &str) -> Result<()> {
    use std::os::unix::fs::FileExt;
    for &off in offsets {
        let end = (off as usize + 4096).min(want.len());
        let mut buf = vec![0u8; end - off as usize];
        file.read_exact_at(&mut buf, off)?;
        ensure!(
            buf == want[off as usize..end],
            "{what}: wrong bytes at {off}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_reads_fill_the_page_cache_with_current_data() -> Result<()> {
    let cluster = Cluster::start(ClusterConfig::default()).await?;
    let one = Mount::start(&cluster, &[])?;
    // Reading over gRPC, as from a machine without a datanode: a replica of this machine is
    // read by the 4 KiB page instead (`local_reads::a_small_local_read_checks_only_the_pages_it_reads`).
    let two = Mount::start_with_env(&cluster, &[], &[("DFS_LOCAL_READS", "false")])?;
    let local = cluster.scratch("r.bin");
    random_file(&local, 3 * MIB + 5000, 21)?;
    sh(&format!("cp {} {}", p(&local), p(&one.path("r.bin"))))?;
    let mut want = std::fs::read(&local)?;

    // Mount two has none of the file cached: each small read brings its whole 64 KiB piece
    // into the kernel's page cache, and the reads around it are served from there. Offsets in
    // pieces read before, across a block boundary and in the last, partial piece.
    let len = want.len() as u64;
    let offsets: Vec<u64> = [
        0,
        8192,
        61440,
        MIB as u64 - 4096,
        MIB as u64,
        MIB as u64 + 12288,
        2 * MIB as u64 + 40960,
        len - 5000 + 904,
        len - 4096,
        3 * MIB as u64,
    ]
    .to_vec();
    let reader = std::fs::File::open(two.path("r.bin"))?;
    check_reads(&reader, &offsets, &want, "first reads")?;
    check_reads(&reader, &offsets, &want, "reads again")?;

    // This mount writes the file while the reader stays open: its reads see the new bytes.
    sh(&format!(
        "printf 'NEWBYTES%.0s' $(seq 1 2048) | dd of={} bs=4096 seek=2 conv=notrunc status=none",
        p(&two.path("r.bin"))
    ))?;
    let patch: Vec<u8> = b"NEWBYTES".iter().copied().cycle().take(16384).collect();
    want[8192..8192 + patch.len()].copy_from_slice(&patch);
    check_reads(&reader, &offsets, &want, "after this mount's write")?;
    ensure!(
        std::fs::metadata(two.path("r.bin"))?.len() == len,
        "the write changed the size"
    );

    // Another mount replaces the content; a new open here sees it (close-to-open), not the
    // pieces cached before.
    drop(reader);
    random_file(&local, 3 * MIB + 5000, 22)?;
    sh(&format!("cp {} {}", p(&local), p(&one.path("r.bin"))))?;
    let want = std::fs::read(&local)?;
    let reader = std::fs::File::open(two.path("r.bin"))?;
    check_reads(&reader, &offsets, &want, "after another mount's rewrite")?;

    // Truncated here, the file keeps its new size however many pieces were cached.
    sh(&format!("truncate -s 100000 {}", p(&two.path("r.bin"))))?;
    ensure!(
        std::fs::metadata(two.path("r.bin"))?.len() == 100_000,
        "the truncate did not hold"
    );
    let short = &want[..100_000];
    check_reads(&reader, &[0, 65536, 95904], short, "after the truncate")?;
    ensure!(
        sh(&format!("wc -c < {}", p(&two.path("r.bin"))))?.trim() == "100000",
        "a read after the truncate sees the old size"
    );
    Ok(())
}
