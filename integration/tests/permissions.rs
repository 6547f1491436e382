//! POSIX permissions through a real `allow_other` mount, enforced by the namenode: processes
//! running as another user (`setpriv`, uid/gid 65534 = nobody) are refused what a local disk
//! would refuse them, with the same errno. Needs root, /dev/fuse and `setpriv` (util-linux).

use anyhow::{Result, bail, ensure};
use integration::mount::Mount;
use integration::{Cluster, ClusterConfig};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

const NOBODY: &str = "65534";
const STAFF: u32 = 50;

/// Runs `script` as root; fails unless it exits 0.
fn root(script: &str) -> Result<String> {
    run(Command::new("bash").arg("-c").arg(script), script)
}

/// Runs `script` as uid/gid 65534 with the supplementary groups `groups` (none if empty).
fn nobody_cmd(script: &str, groups: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid", NOBODY, "--regid", NOBODY]);
    if groups.is_empty() {
        c.arg("--clear-groups");
    } else {
        c.args(["--groups", groups]);
    }
    c.args(["bash", "-c", script]);
    c
}

fn nobody(script: &str) -> Result<String> {
    run(&mut nobody_cmd(script, ""), script)
}

/// Runs `script` as nobody expecting failure; answers its stderr.
fn nobody_fails(script: &str, groups: &str) -> Result<String> {
    let out = nobody_cmd(script, groups).output()?;
    ensure!(
        !out.status.success(),
        "`{script}` as nobody succeeded but should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

fn run(cmd: &mut Command, script: &str) -> Result<String> {
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "`{script}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Lets other users walk down to the mount point (test temp directories are 0700).
fn open_path_to(dir: &Path) -> Result<()> {
    for d in dir.ancestors().skip(1) {
        if d == Path::new("/") {
            break;
        }
        let meta = std::fs::metadata(d)?;
        let mode = meta.permissions().mode();
        if mode & 0o001 == 0 {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o011))?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_users_get_eacces_and_eperm_as_on_a_local_disk() -> Result<()> {
    let cluster = Cluster::start(ClusterConfig::default()).await?;
    let mount = Mount::start(&cluster, &["-o", "allow_other"])?;
    open_path_to(&mount.dir)?;
    let m = mount.dir.to_str().unwrap_or_default().to_string();

    // A root-only file: nobody may neither read, append to, chmod nor chown it.
    root(&format!(
        "echo secret > {m}/private && chmod 600 {m}/private"
    ))?;
    let err = nobody_fails(&format!("cat {m}/private"), "")?;
    assert!(err.contains("Permission denied"), "cat: {err}");
    let err = nobody_fails(&format!("echo x >> {m}/private"), "")?;
    assert!(err.contains("Permission denied"), "append: {err}");
    let err = nobody_fails(&format!("chmod 644 {m}/private"), "")?;
    assert!(err.contains("Operation not permitted"), "chmod: {err}");
    let err = nobody_fails(&format!("chown {NOBODY} {m}/private"), "")?;
    assert!(err.contains("Operation not permitted"), "chown: {err}");
    // access(2) says the same (bash's `test -r` asks the kernel, which asks the mount).
    assert_eq!(
        nobody(&format!("test -r {m}/private && echo y || echo n"))?,
        "n\n"
    );
    assert_eq!(root(&format!("cat {m}/private"))?, "secret\n");

    // Nobody cannot add to root's 0755 root directory, nor list a 0700 one.
    let err = nobody_fails(&format!("touch {m}/intruder"), "")?;
    assert!(err.contains("Permission denied"), "touch: {err}");
    root(&format!("mkdir -m 700 {m}/closed"))?;
    let err = nobody_fails(&format!("ls {m}/closed"), "")?;
    assert!(err.contains("Permission denied"), "ls: {err}");

    // A sticky 1777 directory: nobody adds files and removes its own, not root's.
    root(&format!(
        "mkdir {m}/tmp && chmod 1777 {m}/tmp && echo r > {m}/tmp/roots"
    ))?;
    nobody(&format!("echo mine > {m}/tmp/mine && cat {m}/tmp/mine"))?;
    let meta = std::fs::metadata(mount.path("tmp/mine"))?;
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    let err = nobody_fails(&format!("rm -f {m}/tmp/roots"), "")?;
    assert!(err.contains("Operation not permitted"), "rm: {err}");
    let err = nobody_fails(&format!("mv {m}/tmp/roots {m}/tmp/taken"), "")?;
    assert!(err.contains("Operation not permitted"), "mv: {err}");
    // Giving one's own file away is root's privilege too.
    let err = nobody_fails(&format!("chown 0 {m}/tmp/mine"), "")?;
    assert!(err.contains("Operation not permitted"), "chown away: {err}");
    nobody(&format!("chmod 600 {m}/tmp/mine && rm {m}/tmp/mine"))?;
    assert!(mount.path("tmp/roots").exists());

    // Supplementary groups count: a 0640 file of group STAFF is readable by a member only.
    root(&format!(
        "echo team > {m}/team && chgrp {STAFF} {m}/team && chmod 640 {m}/team"
    ))?;
    let err = nobody_fails(&format!("cat {m}/team"), "")?;
    assert!(err.contains("Permission denied"), "non-member: {err}");
    let member = run(
        &mut nobody_cmd(&format!("cat {m}/team"), &STAFF.to_string()),
        "cat team as a member",
    )?;
    assert_eq!(member, "team\n");

    // A setgid directory: new entries take its group, new subdirectories its setgid bit.
    root(&format!(
        "mkdir {m}/shared && chgrp {STAFF} {m}/shared && chmod 2777 {m}/shared"
    ))?;
    nobody(&format!("mkdir {m}/shared/sub && touch {m}/shared/f"))?;
    let sub = std::fs::metadata(mount.path("shared/sub"))?;
    assert_eq!(sub.gid(), STAFF);
    assert_eq!(sub.mode() & 0o2000, 0o2000, "mode {:o}", sub.mode());
    assert_eq!(std::fs::metadata(mount.path("shared/f"))?.gid(), STAFF);
    Ok(())
}
