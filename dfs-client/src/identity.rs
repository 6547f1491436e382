//! Who a call is made for: every namenode call carries an [`Identity`] in the identity headers
//! (`dfs_proto::identity`), which the namenode checks permissions against.
//!
//! By default that is this process's own effective uid, gid and supplementary groups (the CLI).
//! A program serving other users (the FUSE mount) runs each of their operations inside
//! [`as_caller`], and every call made in that future carries the given identity instead.

use dfs_proto::Identity;
use std::future::Future;

tokio::task_local! {
    static CALLER: Identity;
}

/// Runs `fut` with every namenode call it makes carrying `who`.
pub async fn as_caller<F: Future>(who: Identity, fut: F) -> F::Output {
    CALLER.scope(who, fut).await
}

/// The identity set by [`as_caller`] around the current task, if any.
pub(crate) fn scoped() -> Option<Identity> {
    CALLER.try_with(Clone::clone).ok()
}

/// This process's effective uid and gid and its supplementary groups, from
/// `/proc/self/status`; `nobody` (65534) if that cannot be read, never root by accident.
pub fn process_identity() -> Identity {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_status(&s))
        .unwrap_or_else(|| {
            let nobody = dfs_proto::identity::NOBODY;
            Identity::new(nobody, nobody, Vec::new())
        })
}

/// The supplementary groups of process `pid` (`Groups:` of `/proc/PID/status`); `None` if the
/// process is gone.
pub fn groups_of(pid: u32) -> Option<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(groups_line(&status))
}

fn field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
}

fn groups_line(status: &str) -> Vec<u32> {
    field(status, "Groups")
        .map(|g| {
            g.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Effective ids (the second of the four numbers on `Uid:` and `Gid:`) and groups.
fn parse_status(status: &str) -> Option<Identity> {
    let effective =
        |name| -> Option<u32> { field(status, name)?.split_whitespace().nth(1)?.parse().ok() };
    Some(Identity::new(
        effective("Uid")?,
        effective("Gid")?,
        groups_line(status),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_gives_effective_ids_and_groups() {
        let status = "Name:\tcat\nUid:\t1000\t1001\t1002\t1003\nGid:\t100\t101\t102\t103\n\
                      Groups:\t4 27 100 \nNgid:\t0\n";
        assert_eq!(
            parse_status(status),
            Some(Identity::new(1001, 101, vec![4, 27, 100]))
        );
        let no_groups = "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\n";
        assert_eq!(parse_status(no_groups), Some(Identity::root()));
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_has_an_identity() {
        let me = process_identity();
        let expected = groups_of(std::process::id()).expect("own status");
        assert_eq!(me.groups, expected);
    }

    #[tokio::test]
    async fn as_caller_scopes_the_identity() {
        assert_eq!(scoped(), None);
        let who = Identity::new(5, 6, vec![7]);
        let seen = as_caller(who.clone(), async { scoped() }).await;
        assert_eq!(seen, Some(who));
    }
}
