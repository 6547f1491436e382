//! POSIX permission checks, as Linux's VFS makes them: pure functions of the caller's
//! [`Identity`] and an inode's owner, group and mode, so that every namenode applying the same
//! proposal (which carries the caller) decides the same way.
//!
//! - `EACCES` when mode bits refuse an access (search, read, write, execute).
//! - `EPERM` when only the owner (or root) may do it: chmod, chown, setting explicit times, and
//!   removing or renaming someone else's entry from a sticky directory.
//! - uid 0 passes every mode-bit check, except that executing a file needs some x bit.

use dfs_proto::{ApiError, ErrorCode, Identity};

/// `R_OK`: read a file, list a directory.
pub const MAY_READ: u32 = 4;
/// `W_OK`: write a file, add or remove a directory's entries.
pub const MAY_WRITE: u32 = 2;
/// `X_OK`: execute a file, search (walk through) a directory.
pub const MAY_EXEC: u32 = 1;

pub const S_ISUID: u32 = 0o4000;
pub const S_ISGID: u32 = 0o2000;
pub const S_ISVTX: u32 = 0o1000;
const S_IXGRP: u32 = 0o010;
const ANY_EXEC: u32 = 0o111;

/// What the checks look at of one inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub is_dir: bool,
}

fn access_denied(what: &str) -> ApiError {
    ApiError::new(ErrorCode::Access, format!("permission denied: {what}"))
}

fn not_permitted(what: &str) -> ApiError {
    ApiError::new(ErrorCode::Perm, format!("operation not permitted: {what}"))
}

fn is_owner(who: &Identity, o: &Owner) -> bool {
    who.is_root() || who.uid == o.uid
}

/// `EACCES` unless `who` may access `o` in every way `mask` (`MAY_*` bits) asks; `what` names
/// the inode in the error.
pub fn check(who: &Identity, o: &Owner, mask: u32, what: &str) -> Result<(), ApiError> {
    let mask = mask & 7;
    if who.is_root() {
        if mask & MAY_EXEC != 0 && !o.is_dir && o.perm & ANY_EXEC == 0 {
            return Err(access_denied(&format!("{what} has no execute bit")));
        }
        return Ok(());
    }
    let bits = if who.uid == o.uid {
        o.perm >> 6
    } else if who.in_group(o.gid) {
        o.perm >> 3
    } else {
        o.perm
    } & 7;
    if mask & !bits == 0 {
        Ok(())
    } else {
        Err(access_denied(&format!(
            "uid {} may not {} {what} (mode {:04o}, owner {}:{})",
            who.uid,
            verbs(mask & !bits),
            o.perm,
            o.uid,
            o.gid
        )))
    }
}

fn verbs(missing: u32) -> String {
    let mut v = Vec::new();
    if missing & MAY_READ != 0 {
        v.push("read");
    }
    if missing & MAY_WRITE != 0 {
        v.push("write");
    }
    if missing & MAY_EXEC != 0 {
        v.push("search/execute");
    }
    v.join("+")
}

/// Adding an entry to directory `dir` (create, mkdir, symlink, link, rename's target): write and
/// search on it.
pub fn may_create(who: &Identity, dir: &Owner, what: &str) -> Result<(), ApiError> {
    check(who, dir, MAY_WRITE | MAY_EXEC, what)
}

/// Removing (or renaming away, or replacing) an entry owned by `victim_uid` from directory
/// `dir`: write and search on it, and in a sticky directory only the entry's owner, the
/// directory's owner or root (`EPERM` otherwise).
pub fn may_delete(
    who: &Identity,
    dir: &Owner,
    victim_uid: u32,
    what: &str,
) -> Result<(), ApiError> {
    check(who, dir, MAY_WRITE | MAY_EXEC, what)?;
    if dir.perm & S_ISVTX != 0 && !who.is_root() && who.uid != victim_uid && who.uid != dir.uid {
        return Err(not_permitted(&format!(
            "{what} is sticky and the entry belongs to uid {victim_uid}, not {}",
            who.uid
        )));
    }
    Ok(())
}

/// chmod: only the owner or root (`EPERM`). Answers the bits to store: a caller outside the
/// file's group (and not root) cannot set setgid, so it is cleared, as Linux does.
pub fn chmod(who: &Identity, o: &Owner, perm: u32) -> Result<u32, ApiError> {
    if !is_owner(who, o) {
        return Err(not_permitted(&format!(
            "uid {} cannot chmod a file owned by uid {}",
            who.uid, o.uid
        )));
    }
    let mut perm = perm & 0o7777;
    if !who.is_root() && !who.in_group(o.gid) {
        perm &= !S_ISGID;
    }
    Ok(perm)
}

/// chown/chgrp: root may set any owner and group; the owner may only "change" the uid to itself
/// and the group to one it belongs to (`EPERM` otherwise).
pub fn chown(
    who: &Identity,
    o: &Owner,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<(), ApiError> {
    if who.is_root() {
        return Ok(());
    }
    if let Some(uid) = uid
        && (uid != o.uid || who.uid != o.uid)
    {
        return Err(not_permitted(&format!(
            "only root may give away a file (uid {} to {uid})",
            o.uid
        )));
    }
    if let Some(gid) = gid
        && (who.uid != o.uid || (gid != o.gid && !who.in_group(gid)))
    {
        return Err(not_permitted(&format!(
            "uid {} cannot change the group of a file owned by uid {} to {gid}",
            who.uid, o.uid
        )));
    }
    Ok(())
}

/// The mode a chown leaves on a non-directory: setuid goes, and setgid when group-executable
/// (Linux's `ATTR_KILL_SUID`/`ATTR_KILL_SGID`, for root as well).
pub fn mode_after_chown(o: &Owner) -> u32 {
    if o.is_dir {
        return o.perm;
    }
    let mut perm = o.perm & !S_ISUID;
    if perm & S_IXGRP != 0 {
        perm &= !S_ISGID;
    }
    perm
}

/// utimensat: setting explicit times needs ownership (`EPERM`); setting both to "now" needs
/// ownership or write permission (`EACCES`).
pub fn set_times(who: &Identity, o: &Owner, explicit: bool, what: &str) -> Result<(), ApiError> {
    if is_owner(who, o) {
        return Ok(());
    }
    if explicit {
        return Err(not_permitted(&format!(
            "uid {} cannot set the times of a file owned by uid {}",
            who.uid, o.uid
        )));
    }
    check(who, o, MAY_WRITE, what)
}

/// Owner, group and mode of a new inode in directory `parent`, from what the caller asked.
///
/// A non-root caller must name itself as the owner and one of its groups as the group (`EPERM`
/// otherwise). In a setgid directory the new inode takes the directory's group, and a new
/// directory inherits the setgid bit. A non-directory whose group the caller is not in loses
/// setgid (as Linux's `inode_init_owner`).
pub fn new_inode(
    who: &Identity,
    parent: &Owner,
    (perm, uid, gid): (u32, u32, u32),
    is_dir: bool,
) -> Result<(u32, u32, u32), ApiError> {
    if !who.is_root() {
        if uid != who.uid {
            return Err(not_permitted(&format!(
                "uid {} cannot create an inode owned by uid {uid}",
                who.uid
            )));
        }
        if !who.in_group(gid) {
            return Err(not_permitted(&format!(
                "uid {} is not in group {gid}",
                who.uid
            )));
        }
    }
    let mut perm = perm & 0o7777;
    let mut gid = gid;
    if parent.perm & S_ISGID != 0 {
        gid = parent.gid;
        if is_dir {
            perm |= S_ISGID;
        }
    }
    if !is_dir && perm & S_ISGID != 0 && !who.is_root() && !who.in_group(gid) {
        perm &= !S_ISGID;
    }
    Ok((perm, uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uid: u32, gid: u32, groups: &[u32]) -> Identity {
        Identity::new(uid, gid, groups.to_vec())
    }

    fn file(perm: u32, uid: u32, gid: u32) -> Owner {
        Owner {
            perm,
            uid,
            gid,
            is_dir: false,
        }
    }

    fn dir(perm: u32, uid: u32, gid: u32) -> Owner {
        Owner {
            perm,
            uid,
            gid,
            is_dir: true,
        }
    }

    fn code<T: std::fmt::Debug>(r: Result<T, ApiError>) -> ErrorCode {
        r.expect_err("refused").code
    }

    #[test]
    fn the_owner_class_decides_before_group_and_other() {
        let alice = user(1000, 100, &[]);
        // Owner bits deny even though group and other would allow (as Linux).
        let f = file(0o077, 1000, 100);
        assert_eq!(code(check(&alice, &f, MAY_READ, "f")), ErrorCode::Access);
        let bob = user(1001, 100, &[]);
        assert!(check(&bob, &f, MAY_READ | MAY_WRITE | MAY_EXEC, "f").is_ok());
        // Supplementary groups count.
        let carol = user(1002, 200, &[100]);
        assert!(check(&carol, &file(0o640, 1000, 100), MAY_READ, "f").is_ok());
        assert_eq!(
            code(check(&carol, &file(0o640, 1000, 100), MAY_WRITE, "f")),
            ErrorCode::Access
        );
        let other = user(1003, 300, &[]);
        assert_eq!(
            code(check(&other, &file(0o600, 1000, 100), MAY_READ, "f")),
            ErrorCode::Access
        );
        assert!(check(&other, &file(0o604, 1000, 100), MAY_READ, "f").is_ok());
        // F_OK asks nothing.
        assert!(check(&other, &file(0, 1000, 100), 0, "f").is_ok());
    }

    #[test]
    fn root_bypasses_mode_bits_except_execute_on_files() {
        let root = Identity::root();
        assert!(check(&root, &file(0, 5, 5), MAY_READ | MAY_WRITE, "f").is_ok());
        assert!(check(&root, &dir(0, 5, 5), MAY_READ | MAY_WRITE | MAY_EXEC, "d").is_ok());
        assert_eq!(
            code(check(&root, &file(0o644, 5, 5), MAY_EXEC, "f")),
            ErrorCode::Access
        );
        assert!(check(&root, &file(0o001, 5, 5), MAY_EXEC, "f").is_ok());
    }

    #[test]
    fn the_sticky_bit_protects_other_users_entries() {
        let tmp = dir(0o1777, 0, 0);
        let alice = user(1000, 1000, &[]);
        assert!(may_delete(&alice, &tmp, 1000, "tmp").is_ok());
        assert_eq!(code(may_delete(&alice, &tmp, 0, "tmp")), ErrorCode::Perm);
        assert!(may_delete(&Identity::root(), &tmp, 1000, "tmp").is_ok());
        // The directory's owner may remove anyone's entry.
        let owned = dir(0o1777, 1000, 1000);
        assert!(may_delete(&alice, &owned, 55, "d").is_ok());
        // Without the sticky bit, write and search on the directory are enough.
        assert!(may_delete(&alice, &dir(0o777, 0, 0), 0, "d").is_ok());
        // Without write permission, EACCES comes first.
        assert_eq!(
            code(may_delete(&alice, &dir(0o1755, 0, 0), 1000, "d")),
            ErrorCode::Access
        );
        assert_eq!(
            code(may_create(&alice, &dir(0o755, 0, 0), "d")),
            ErrorCode::Access
        );
        assert_eq!(
            code(may_create(&alice, &dir(0o776, 0, 0), "d")),
            ErrorCode::Access,
            "write without search is not enough"
        );
    }

    #[test]
    fn only_the_owner_or_root_chmods_and_non_members_lose_setgid() {
        let alice = user(1000, 1000, &[]);
        let f = file(0o644, 1000, 50);
        assert_eq!(code(chmod(&user(7, 7, &[]), &f, 0o777)), ErrorCode::Perm);
        assert_eq!(chmod(&alice, &f, 0o2755).expect("owner"), 0o0755);
        assert_eq!(
            chmod(&user(1000, 1000, &[50]), &f, 0o2755).expect("member"),
            0o2755
        );
        assert_eq!(chmod(&Identity::root(), &f, 0o6755).expect("root"), 0o6755);
    }

    #[test]
    fn chown_rules() {
        let alice = user(1000, 1000, &[20]);
        let f = file(0o644, 1000, 1000);
        assert_eq!(code(chown(&alice, &f, Some(1001), None)), ErrorCode::Perm);
        assert!(chown(&alice, &f, Some(1000), None).is_ok(), "a no-op chown");
        assert!(
            chown(&alice, &f, None, Some(20)).is_ok(),
            "chgrp to a member group"
        );
        assert_eq!(code(chown(&alice, &f, None, Some(30))), ErrorCode::Perm);
        let bob = user(1001, 20, &[]);
        assert_eq!(
            code(chown(&bob, &f, None, Some(20))),
            ErrorCode::Perm,
            "not the owner"
        );
        assert!(chown(&Identity::root(), &f, Some(5), Some(6)).is_ok());
        assert_eq!(mode_after_chown(&file(0o6755, 1, 1)), 0o0755);
        assert_eq!(mode_after_chown(&file(0o6745, 1, 1)), 0o2745);
        assert_eq!(mode_after_chown(&dir(0o2755, 1, 1)), 0o2755);
    }

    #[test]
    fn times_need_ownership_or_write_permission() {
        let bob = user(1001, 1001, &[]);
        let writable = file(0o666, 1000, 1000);
        assert!(set_times(&bob, &writable, false, "f").is_ok());
        assert_eq!(code(set_times(&bob, &writable, true, "f")), ErrorCode::Perm);
        assert_eq!(
            code(set_times(&bob, &file(0o644, 1000, 1000), false, "f")),
            ErrorCode::Access
        );
        assert!(set_times(&user(1000, 1, &[]), &file(0, 1000, 1000), true, "f").is_ok());
    }

    #[test]
    fn new_inodes_take_setgid_directories_group() {
        let alice = user(1000, 1000, &[]);
        let plain = dir(0o777, 0, 0);
        assert_eq!(
            new_inode(&alice, &plain, (0o644, 1000, 1000), false).expect("ok"),
            (0o644, 1000, 1000)
        );
        let shared = dir(0o2777, 0, 50);
        assert_eq!(
            new_inode(&alice, &shared, (0o755, 1000, 1000), true).expect("ok"),
            (0o2755, 1000, 50),
            "a subdirectory inherits group and setgid"
        );
        assert_eq!(
            new_inode(&alice, &shared, (0o2755, 1000, 1000), false).expect("ok"),
            (0o0755, 1000, 50),
            "a file in a group the creator is not in loses setgid"
        );
        assert_eq!(
            code(new_inode(&alice, &plain, (0o644, 0, 1000), false)),
            ErrorCode::Perm
        );
        assert_eq!(
            code(new_inode(&alice, &plain, (0o644, 1000, 0), false)),
            ErrorCode::Perm
        );
        assert!(new_inode(&Identity::root(), &plain, (0o644, 5, 6), false).is_ok());
    }
}
