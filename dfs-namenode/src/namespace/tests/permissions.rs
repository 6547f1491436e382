//! Permissions as the namespace enforces them when applying commands and answering reads: the
//! caller travels in the proposal, so a refused change is refused the same way everywhere.

use super::*;

const ROOT: InodeId = InodeId::ROOT;

const ALICE: u32 = 1000;
const BOB: u32 = 1001;
const STAFF: u32 = 50;

fn alice() -> Identity {
    Identity::new(ALICE, ALICE, vec![])
}

fn bob() -> Identity {
    Identity::new(BOB, BOB, vec![STAFF])
}

fn chmod(ino: InodeId, perm: u32) -> Command {
    Command::SetAttr {
        ino,
        perm: Some(perm),
        uid: None,
        gid: None,
        size: None,
        atime: None,
        mtime: None,
        client: None,
    }
}

fn chown(ino: InodeId, uid: Option<u32>, gid: Option<u32>) -> Command {
    Command::SetAttr {
        ino,
        perm: None,
        uid,
        gid,
        size: None,
        atime: None,
        mtime: None,
        client: None,
    }
}

fn create_as(parent: InodeId, n: &str, who: &Identity, perm: u32) -> Command {
    Command::Create {
        parent,
        name: name(n),
        kind: FileKind::File,
        perm,
        uid: who.uid,
        gid: who.gid,
        lease: None,
    }
}

fn mkdir_as(parent: InodeId, n: &str, who: &Identity, perm: u32) -> Command {
    Command::Mkdir {
        parent,
        name: name(n),
        perm,
        uid: who.uid,
        gid: who.gid,
    }
}

/// Root makes `/n` with `perm`, owned by root.
fn root_dir(fx: &mut Fx, n: &str, perm: u32) -> Attr {
    fx.who = Identity::root();
    fx.attr(mkdir_as(ROOT, n, &Identity::root(), perm))
}

fn root_file(fx: &mut Fx, parent: InodeId, n: &str, perm: u32) -> Attr {
    fx.who = Identity::root();
    fx.attr(create_as(parent, n, &Identity::root(), perm))
}

#[test]
fn a_private_file_refuses_other_users_reads_and_writes() {
    let mut fx = Fx::new();
    let secret = root_file(&mut fx, ROOT, "secret", 0o600);
    let ns = &fx.ns;
    assert_eq!(
        ns.access(&alice(), secret.ino, 4)
            .expect_err("no read")
            .code,
        ErrorCode::Access
    );
    assert_eq!(
        ns.file_blocks_as(&alice(), secret.ino)
            .expect_err("no read")
            .code,
        ErrorCode::Access
    );
    assert!(ns.access(&Identity::root(), secret.ino, 6).is_ok());
    assert!(ns.access(&alice(), secret.ino, 0).is_ok(), "F_OK");
    fx.who = alice();
    assert_eq!(
        fx.err(Command::OpenWrite {
            ino: secret.ino,
            client: client("a"),
        }),
        ErrorCode::Access
    );
    assert_eq!(fx.err(truncate_cmd(secret.ino, 0, None)), ErrorCode::Access);
}

#[test]
fn only_the_owner_or_root_may_chmod_and_only_root_may_give_files_away() {
    let mut fx = Fx::new();
    let f = root_file(&mut fx, ROOT, "f", 0o644);
    fx.who = alice();
    assert_eq!(fx.err(chmod(f.ino, 0o666)), ErrorCode::Perm);
    assert_eq!(fx.err(chown(f.ino, Some(ALICE), None)), ErrorCode::Perm);

    let tmp = root_dir(&mut fx, "tmp", 0o1777);
    fx.who = alice();
    let mine = fx.attr(create_as(tmp.ino, "mine", &alice(), 0o644));
    assert_eq!(fx.attr(chmod(mine.ino, 0o600)).perm, 0o600);
    assert_eq!(fx.err(chown(mine.ino, Some(BOB), None)), ErrorCode::Perm);
    assert_eq!(fx.err(chown(mine.ino, None, Some(STAFF))), ErrorCode::Perm);
    // A non-member's chmod cannot set setgid on a file whose group it is not in.
    fx.who = Identity::root();
    fx.attr(chown(mine.ino, None, Some(STAFF)));
    fx.who = alice();
    assert_eq!(fx.attr(chmod(mine.ino, 0o2755)).perm, 0o0755);
    // Bob, in STAFF, may chgrp his own file to it.
    fx.who = bob();
    let his = fx.attr(create_as(tmp.ino, "his", &bob(), 0o644));
    assert_eq!(fx.attr(chown(his.ino, None, Some(STAFF))).gid, STAFF);
    // Root gives it away; setuid goes with a chown.
    fx.who = Identity::root();
    fx.attr(chmod(his.ino, 0o4755));
    let given = fx.attr(chown(his.ino, Some(ALICE), None));
    assert_eq!((given.uid, given.perm), (ALICE, 0o0755));
}

#[test]
fn a_sticky_directory_lets_users_add_but_not_remove_each_others_entries() {
    let mut fx = Fx::new();
    let tmp = root_dir(&mut fx, "tmp", 0o1777);
    let roots = root_file(&mut fx, tmp.ino, "roots", 0o644);
    fx.who = alice();
    let mine = fx.attr(create_as(tmp.ino, "mine", &alice(), 0o644));
    assert_eq!(fx.err(unlink_cmd(tmp.ino, "roots")), ErrorCode::Perm);
    let rename_roots = Command::Rename {
        parent: tmp.ino,
        name: name("roots"),
        new_parent: tmp.ino,
        new_name: name("stolen"),
        noreplace: false,
        exchange: false,
    };
    assert_eq!(fx.err(rename_roots), ErrorCode::Perm);
    // Replacing root's entry by renaming onto it is removing it too.
    let onto_roots = Command::Rename {
        parent: tmp.ino,
        name: name("mine"),
        new_parent: tmp.ino,
        new_name: name("roots"),
        noreplace: false,
        exchange: false,
    };
    assert_eq!(fx.err(onto_roots), ErrorCode::Perm);
    fx.ok(unlink_cmd(tmp.ino, "mine"));
    assert!(fx.ns.getattr(mine.ino).is_err());
    fx.who = Identity::root();
    fx.ok(unlink_cmd(tmp.ino, "roots"));
    assert!(fx.ns.getattr(roots.ino).is_err());
}

#[test]
fn directories_need_write_and_search_to_change_and_search_to_walk() {
    let mut fx = Fx::new();
    let d = root_dir(&mut fx, "d", 0o755);
    root_file(&mut fx, d.ino, "f", 0o644);
    fx.who = alice();
    assert_eq!(
        fx.err(create_as(d.ino, "x", &alice(), 0o644)),
        ErrorCode::Access
    );
    assert_eq!(
        fx.err(mkdir_as(d.ino, "x", &alice(), 0o755)),
        ErrorCode::Access
    );
    assert_eq!(fx.err(unlink_cmd(d.ino, "f")), ErrorCode::Access);
    // An existing name answers EEXIST before the missing write permission (as Linux).
    assert_eq!(
        fx.err(create_as(d.ino, "f", &alice(), 0o644)),
        ErrorCode::Exists
    );
    // A non-root caller cannot create in someone else's name.
    let open = root_dir(&mut fx, "open", 0o777);
    fx.who = alice();
    assert_eq!(
        fx.err(create_as(open.ino, "x", &bob(), 0o644)),
        ErrorCode::Perm
    );

    let closed = root_dir(&mut fx, "closed", 0o700);
    root_file(&mut fx, closed.ino, "inside", 0o644);
    let path = DfsPath::parse("/closed/inside").expect("path");
    let ns = &fx.ns;
    assert_eq!(
        ns.resolve_as(&alice(), &path).expect_err("no search").code,
        ErrorCode::Access
    );
    assert_eq!(
        ns.lookup_as(&alice(), closed.ino, &name("inside"))
            .expect_err("no search")
            .code,
        ErrorCode::Access
    );
    assert_eq!(
        ns.readdir_as(&alice(), closed.ino, None, 10)
            .expect_err("no read")
            .code,
        ErrorCode::Access
    );
    assert!(ns.resolve_as(&Identity::root(), &path).is_ok());
    assert!(ns.readdir_as(&alice(), ROOT, None, 10).is_ok());
}

#[test]
fn moving_a_directory_to_another_parent_needs_write_on_it() {
    let mut fx = Fx::new();
    let a = root_dir(&mut fx, "a", 0o777);
    let b = root_dir(&mut fx, "b", 0o777);
    fx.who = Identity::root();
    fx.attr(mkdir_as(a.ino, "sub", &Identity::root(), 0o755));
    fx.who = alice();
    let mv = |new_parent: InodeId| Command::Rename {
        parent: a.ino,
        name: name("sub"),
        new_parent,
        new_name: name("sub2"),
        noreplace: false,
        exchange: false,
    };
    assert_eq!(fx.err(mv(b.ino)), ErrorCode::Access);
    // Within one directory its `..` does not change: allowed.
    fx.ok(mv(a.ino));
}

#[test]
fn setgid_directories_pass_on_their_group_and_setgid_to_subdirectories() {
    let mut fx = Fx::new();
    let shared = root_dir(&mut fx, "shared", 0o777);
    fx.who = Identity::root();
    fx.attr(chown(shared.ino, None, Some(STAFF)));
    fx.attr(chmod(shared.ino, 0o2777));
    fx.who = alice();
    let f = fx.attr(create_as(shared.ino, "f", &alice(), 0o644));
    assert_eq!((f.uid, f.gid, f.perm), (ALICE, STAFF, 0o644));
    let sub = fx.attr(mkdir_as(shared.ino, "sub", &alice(), 0o755));
    assert_eq!((sub.gid, sub.perm), (STAFF, 0o2755));
    let deeper = fx.attr(mkdir_as(sub.ino, "deeper", &alice(), 0o700));
    assert_eq!((deeper.gid, deeper.perm), (STAFF, 0o2700));
}

#[test]
fn times_and_attributes_follow_linux_rules() {
    let mut fx = Fx::new();
    let tmp = root_dir(&mut fx, "tmp", 0o1777);
    let f = root_file(&mut fx, tmp.ino, "shared", 0o666);
    fx.who = alice();
    let touch = |t: SetTime| Command::SetAttr {
        ino: f.ino,
        perm: None,
        uid: None,
        gid: None,
        size: None,
        atime: Some(t),
        mtime: Some(t),
        client: None,
    };
    fx.ok(touch(SetTime::Now));
    assert_eq!(fx.err(touch(SetTime::At(ts(5)))), ErrorCode::Perm);
    // user.* attributes need write permission; a sticky directory's only from its owner.
    fx.ok(Command::SetXattr {
        ino: f.ino,
        name: "user.a".into(),
        value: b"1".to_vec(),
        mode: XattrMode::Either,
    });
    assert_eq!(
        fx.err(Command::SetXattr {
            ino: tmp.ino,
            name: "user.a".into(),
            value: b"1".to_vec(),
            mode: XattrMode::Either,
        }),
        ErrorCode::Perm
    );
    let private = root_file(&mut fx, ROOT, "private", 0o600);
    assert_eq!(
        fx.ns
            .get_xattr_as(&alice(), private.ino, "user.a")
            .expect_err("no read")
            .code,
        ErrorCode::Access
    );
}

#[test]
fn a_proposal_without_a_caller_is_applied_as_root() {
    // Entries written before permissions existed have no caller field.
    let json = r#"{"now":{"sec":1,"nsec":0},"cmd":{"op":"expire_leases"}}"#;
    let p: Proposal = serde_json::from_str(json).expect("decode");
    assert_eq!(p.caller, Identity::root());
    let as_alice = Proposal {
        now: ts(1),
        cmd: Command::ExpireLeases,
        caller: alice(),
    };
    let back: Proposal =
        serde_json::from_slice(&serde_json::to_vec(&as_alice).expect("encode")).expect("decode");
    assert_eq!(back, as_alice);
}
