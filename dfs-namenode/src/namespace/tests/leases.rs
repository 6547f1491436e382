//! Write leases (open, renew, release, expiry, takeover) and replica classification.

use super::*;

const ROOT: InodeId = InodeId::ROOT;

fn open_cmd(ino: InodeId, c: &str) -> Command {
    Command::OpenWrite {
        ino,
        client: client(c),
    }
}

fn release_cmd(ino: InodeId, c: &str) -> Command {
    Command::ReleaseLease {
        ino,
        client: client(c),
    }
}

#[test]
fn open_write_answers_attr_and_committed_blocks() {
    let mut fx = Fx::new();
    let (f, blocks) = fx.write_file(ROOT, "f", "c", 120);
    match fx.ok(open_cmd(f.ino, "c")) {
        Reply::OpenWrite(r) => {
            assert_eq!(r.attr, fx.get(f.ino));
            assert_eq!(r.blocks, blocks);
        }
        other => panic!("expected OpenWrite, got {other:?}"),
    }
    // Re-entrant for the holder, refused for others.
    fx.ok(open_cmd(f.ino, "c"));
    assert_eq!(fx.err(open_cmd(f.ino, "d")), ErrorCode::Busy);
}

#[test]
fn open_write_is_for_regular_files() {
    let mut fx = Fx::new();
    let d = fx.mkdir(ROOT, "d");
    let s = fx.attr(Command::Symlink {
        parent: ROOT,
        name: name("s"),
        target: "x".into(),
        uid: 0,
        gid: 0,
    });
    assert_eq!(fx.err(open_cmd(d.ino, "c")), ErrorCode::IsDir);
    assert_eq!(fx.err(open_cmd(s.ino, "c")), ErrorCode::Invalid);
    assert_eq!(fx.err(open_cmd(InodeId(99), "c")), ErrorCode::NotFound);
}

#[test]
fn expired_lease_is_taken_over_and_its_pending_blocks_freed() {
    let mut fx = Fx::new();
    let f = fx.create_leased(ROOT, "f", "old");
    let pending = fx.allocate(f.ino, "old", 0);
    fx.tick(9);
    assert_eq!(fx.err(open_cmd(f.ino, "new")), ErrorCode::Busy);
    fx.tick(1);
    fx.ok(open_cmd(f.ino, "new"));
    assert_eq!(fx.ns.take_freed_blocks(), vec![pending]);
    assert_eq!(
        fx.ns.replica_status(pending.id, pending.generation),
        ReplicaStatus::Orphan
    );
    let mut b = pending;
    b.len = 1;
    assert_eq!(
        fx.err(commit_cmd(f.ino, "old", vec![b], 1, false)),
        ErrorCode::Busy
    );
    assert_eq!(
        fx.err(commit_cmd(f.ino, "new", vec![b], 1, false)),
        ErrorCode::Invalid
    );
}

#[test]
fn renew_and_activity_extend_leases() {
    let mut fx = Fx::new();
    let f = fx.create_leased(ROOT, "f", "c");
    let g = fx.create_leased(ROOT, "g", "c");
    let h = fx.create_leased(ROOT, "h", "other");
    fx.tick(8);
    fx.ok(Command::RenewLease {
        client: client("c"),
    });
    fx.tick(8);
    assert!(fx.ns.has_expired_leases(fx.now), "other's lease ran out");
    fx.allocate(f.ino, "c", 0);
    fx.ok(Command::ExpireLeases);
    assert_eq!(fx.err(open_cmd(f.ino, "x")), ErrorCode::Busy);
    assert_eq!(fx.err(open_cmd(g.ino, "x")), ErrorCode::Busy);
    fx.ok(open_cmd(h.ino, "x"));
    // g was renewed 8 s ago, f just now.
    fx.tick(2);
    assert!(fx.ns.has_expired_leases(fx.now));
    fx.ok(Command::ExpireLeases);
    fx.ok(open_cmd(g.ino, "x"));
    assert_eq!(fx.err(open_cmd(f.ino, "x")), ErrorCode::Busy);
    // Renewing with no leases is fine.
    fx.ok(Command::RenewLease {
        client: client("nobody"),
    });
}

#[test]
fn expire_leases_frees_pending_and_removes_unlinked_files() {
    let mut fx = Fx::new();
    let f = fx.create_leased(ROOT, "f", "c");
    let mut committed = fx.allocate(f.ino, "c", 0);
    committed.len = 3;
    fx.commit(f.ino, "c", vec![committed], 3);
    let pending = fx.allocate(f.ino, "c", 1);
    let keep = fx.create_leased(ROOT, "keep", "c");
    fx.attr(unlink_cmd(ROOT, "f"));
    assert!(!fx.ns.has_expired_leases(fx.now));
    fx.tick(10);
    assert!(fx.ns.has_expired_leases(fx.now));
    fx.ok(Command::ExpireLeases);
    assert!(!fx.ns.has_expired_leases(fx.now));
    assert_eq!(
        fx.ns.getattr(f.ino).expect_err("gone").code,
        ErrorCode::NotFound
    );
    assert_eq!(fx.ns.take_freed_blocks(), vec![pending, committed]);
    assert_eq!(
        fx.get(keep.ino).nlink,
        1,
        "a linked file outlives its lease"
    );
}

#[test]
fn release_frees_pending_blocks() {
    let mut fx = Fx::new();
    let f = fx.create_leased(ROOT, "f", "c");
    let pending = fx.allocate(f.ino, "c", 0);
    assert_eq!(fx.err(release_cmd(f.ino, "x")), ErrorCode::Busy);
    fx.ok(release_cmd(f.ino, "c"));
    assert_eq!(fx.ns.take_freed_blocks(), vec![pending]);
    assert_eq!(fx.get(f.ino).size, 0);
    assert_eq!(fx.err(release_cmd(f.ino, "c")), ErrorCode::Stale);
    assert_eq!(fx.err(release_cmd(InodeId(99), "c")), ErrorCode::NotFound);
}

#[test]
fn replica_status_classifies_reports() {
    let mut fx = Fx::new();
    let (f, blocks) = fx.write_file(ROOT, "f", "c", 150);
    let b0 = blocks[0];
    assert_eq!(
        fx.ns.replica_status(b0.id, b0.generation),
        ReplicaStatus::Live
    );
    fx.ok(open_cmd(f.ino, "c"));
    let rewrite = fx.allocate(f.ino, "c", 0);
    assert_eq!(rewrite.id, b0.id);
    assert_eq!(
        fx.ns.replica_status(rewrite.id, rewrite.generation),
        ReplicaStatus::Live
    );
    assert_eq!(
        fx.ns.replica_status(b0.id, b0.generation),
        ReplicaStatus::Live
    );
    assert_eq!(
        fx.ns.replica_status(b0.id, Generation(999)),
        ReplicaStatus::Stale
    );
    let mut r = rewrite;
    r.len = 100;
    fx.commit(f.ino, "c", vec![r, blocks[1]], 150);
    assert_eq!(
        fx.ns.replica_status(b0.id, b0.generation),
        ReplicaStatus::Stale
    );
    fx.attr(unlink_cmd(ROOT, "f"));
    fx.ok(release_cmd(f.ino, "c"));
    assert_eq!(
        fx.ns.replica_status(b0.id, r.generation),
        ReplicaStatus::Orphan
    );
    assert_eq!(
        fx.ns.replica_status(blocks[1].id, blocks[1].generation),
        ReplicaStatus::Orphan
    );
    assert_eq!(
        fx.ns.replica_status(BlockId(1000), Generation(1)),
        ReplicaStatus::Unknown
    );
}
