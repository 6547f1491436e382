//! setattr (chmod, chown, utimens, truncate), block allocation and commit.

use super::*;

const ROOT: InodeId = InodeId::ROOT;

fn located(fx: &mut Fx, cmd: Command) -> LocatedBlock {
    match fx.ok(cmd) {
        Reply::Located(l) => l,
        other => panic!("expected Located, got {other:?}"),
    }
}

fn alloc_cmd(ino: InodeId, c: &str, index: u64) -> Command {
    Command::AllocateBlock {
        ino,
        client: client(c),
        index,
        locations: Vec::new(),
    }
}

#[test]
fn setattr_changes_owner_mode_and_times() {
    let mut fx = Fx::new();
    let f = fx.create(ROOT, "f");
    fx.tick(10);
    let mut cmd = setattr_cmd(f.ino);
    if let Command::SetAttr {
        perm,
        uid,
        gid,
        atime,
        mtime,
        ..
    } = &mut cmd
    {
        *perm = Some(0o104755);
        *uid = Some(5);
        *gid = Some(6);
        *atime = Some(SetTime::At(ts(42)));
        *mtime = Some(SetTime::Now);
    }
    let a = fx.attr(cmd);
    assert_eq!((a.perm, a.uid, a.gid), (0o4755, 5, 6));
    assert_eq!((a.atime, a.mtime, a.ctime), (ts(42), fx.now, fx.now));
    assert_eq!(a.data_version, f.data_version, "no content change");
    // Nothing to set: nothing changes.
    fx.tick(1);
    let same = fx.attr(setattr_cmd(f.ino));
    assert_eq!(same, a);
    assert_eq!(fx.err(setattr_cmd(InodeId(99))), ErrorCode::NotFound);
}

#[test]
fn setattr_works_on_directories_and_symlinks() {
    let mut fx = Fx::new();
    let d = fx.mkdir(ROOT, "d");
    let mut cmd = setattr_cmd(d.ino);
    if let Command::SetAttr { perm, .. } = &mut cmd {
        *perm = Some(0o700);
    }
    assert_eq!(fx.attr(cmd).perm, 0o700);
}

#[test]
fn truncate_only_applies_to_regular_files() {
    let mut fx = Fx::new();
    let d = fx.mkdir(ROOT, "d");
    let s = fx.attr(Command::Symlink {
        parent: ROOT,
        name: name("s"),
        target: "t".into(),
        uid: 0,
        gid: 0,
    });
    assert_eq!(fx.err(truncate_cmd(d.ino, 0, None)), ErrorCode::IsDir);
    assert_eq!(fx.err(truncate_cmd(s.ino, 0, None)), ErrorCode::Invalid);
    assert_eq!(
        fx.err(truncate_cmd(InodeId(99), 0, None)),
        ErrorCode::NotFound
    );
    let f = fx.create(ROOT, "f");
    assert_eq!(
        fx.err(truncate_cmd(f.ino, u64::MAX, None)),
        ErrorCode::FileTooBig
    );
}

#[test]
fn truncate_down_frees_and_shortens_blocks() {
    let mut fx = Fx::new();
    let (f, blocks) = fx.write_file(ROOT, "f", "c", 350);
    assert_eq!(blocks.len(), 4);
    fx.tick(1);
    let a = fx.attr(truncate_cmd(f.ino, 150, None));
    assert_eq!(a.size, 150);
    assert_eq!(a.data_version, f.data_version + 1);
    assert_eq!((a.mtime, a.ctime), (fx.now, fx.now));
    let (_, now_blocks) = fx.ns.file_blocks(f.ino).expect("file");
    assert_eq!(now_blocks.len(), 2);
    assert_eq!(now_blocks[0], blocks[0]);
    assert_eq!(now_blocks[1].id, blocks[1].id);
    assert_eq!(now_blocks[1].generation, blocks[1].generation);
    assert_eq!(now_blocks[1].len, 50);
    assert_eq!(fx.ns.take_freed_blocks(), blocks[2..].to_vec());

    // Truncating exactly at a block boundary keeps the block before it whole.
    fx.attr(truncate_cmd(f.ino, 100, None));
    let (_, b) = fx.ns.file_blocks(f.ino).expect("file");
    assert_eq!(b, vec![blocks[0]]);
    fx.attr(truncate_cmd(f.ino, 0, None));
    assert!(fx.ns.file_blocks(f.ino).expect("file").1.is_empty());
    assert_eq!(fx.ns.take_freed_blocks().len(), 2);
}

#[test]
fn truncate_up_only_grows_the_size() {
    let mut fx = Fx::new();
    let (f, blocks) = fx.write_file(ROOT, "f", "c", 120);
    let a = fx.attr(truncate_cmd(f.ino, 1000, None));
    assert_eq!((a.size, a.data_version), (1000, f.data_version + 1));
    assert_eq!(fx.ns.file_blocks(f.ino).expect("file").1, blocks);
    assert!(fx.ns.take_freed_blocks().is_empty());
}

#[test]
fn truncate_respects_another_clients_lease() {
    let mut fx = Fx::new();
    let f = fx.create_leased(ROOT, "f", "writer");
    assert_eq!(fx.err(truncate_cmd(f.ino, 0, None)), ErrorCode::Busy);
    assert_eq!(
        fx.err(truncate_cmd(f.ino, 0, Some("other"))),
        ErrorCode::Busy
    );
    fx.attr(truncate_cmd(f.ino, 10, Some("writer")));
    // chmod is not a content change: allowed for anyone.
    let mut chmod = setattr_cmd(f.ino);
    if let Command::SetAttr { perm, .. } = &mut chmod {
        *perm = Some(0o600);
    }
    fx.attr(chmod);
    fx.tick(LEASE_MS as i64 / 1000);
    assert_eq!(
        fx.attr(truncate_cmd(f.ino, 0, None)).size,
        0,
        "lease expired"
    );
}

#[test]
fn allocate_requires_the_lease() {
    let mut fx = Fx::new();
    let f = fx.create(ROOT, "f");
    assert_eq!(fx.err(alloc_cmd(f.ino, "c", 0)), ErrorCode::Stale);
    fx.ok(Command::OpenWrite {
        ino: f.ino,
        client: client("c"),
    });
    assert_eq!(fx.err(alloc_cmd(f.ino, "other", 0)), ErrorCode::Busy);
    assert_eq!(
        fx.err(alloc_cmd(f.ino, "c", (1 << 32) + 1)),
        ErrorCode::FileTooBig
    );
    assert_eq!(fx.err(alloc_cmd(InodeId(99), "c", 0)), ErrorCode::NotFound);
    fx.allocate(f.ino, "c", 1 << 32);
}

#[test]
fn allocate_hands_out_fresh_ids_and_generations() {
    let mut fx = Fx::new();
    let f = fx.create_leased(ROOT, "f", "c");
    let locations = vec![DatanodeAddr {
        id: dfs_proto::DatanodeId("dn1".into()),
        grpc: "127.0.0.1:1".into(),
        local_socket: None,
    }];
    let l = located(
        &mut fx,
        Command::AllocateBlock {
            ino: f.ino,
            client: client("c"),
            index: 0,
            locations: locations.clone(),
        },
    );
    assert_eq!(l.locations, locations);
    assert_eq!(
        l.block,
        BlockInfo {
            id: BlockId(1),
            generation: Generation(1),
            len: 0
        }
    );
    let b1 = fx.allocate(f.ino, "c", 1);
    assert_eq!((b1.id, b1.generation), (BlockId(2), Generation(2)));
    // A retry of an uncommitted index is a new block.
    let again = fx.allocate(f.ino, "c", 0);
    assert_eq!((again.id, again.generation), (BlockId(3), Generation(3)));
    let mut b0 = l.block;
    b0.len = 100;
    fx.commit(f.ino, "c", vec![b0], 100);
    // Rewriting a committed block keeps its id with a new generation.
    let rewrite = fx.allocate(f.ino, "c", 0);
    assert_eq!(
        (rewrite.id, rewrite.generation),
        (BlockId(1), Generation(4))
    );
}

#[test]
fn commit_swaps_in_new_blocks_and_frees_the_old() {
    let mut fx = Fx::new();
    let (f, old) = fx.write_file(ROOT, "f", "c", 250);
    fx.ok(Command::OpenWrite {
        ino: f.ino,
        client: client("c"),
    });
    let mut new1 = fx.allocate(f.ino, "c", 1);
    new1.len = 100;
    let mut new3 = fx.allocate(f.ino, "c", 3);
    new3.len = 30;
    fx.tick(1);
    let list = vec![old[0], new1, BlockInfo::HOLE, new3];
    let a = fx.commit(f.ino, "c", list.clone(), 330);
    assert_eq!((a.size, a.data_version), (330, f.data_version + 1));
    assert_eq!((a.mtime, a.ctime), (fx.now, fx.now));
    assert_eq!(fx.ns.file_blocks(f.ino).expect("file").1, list);
    // Block 1's old generation and block 2 (now a hole) are freed.
    assert_eq!(fx.ns.take_freed_blocks(), vec![old[1], old[2]]);
    let stats = fx.ns.stats();
    assert_eq!(stats.blocks, 3);
    assert_eq!(fx.ns.committed_blocks().count(), 3);
    // A committed block may be shortened in place.
    let mut short = old[0];
    short.len = 10;
    fx.commit(f.ino, "c", vec![short], 10);
    assert_eq!(fx.ns.file_blocks(f.ino).expect("file").1, vec![short]);
}

#[test]
fn commit_refuses_bad_block_lists() {
    let mut fx = Fx::new();
    let (f, old) = fx.write_file(ROOT, "f", "c", 150);
    fx.ok(Command::OpenWrite {
        ino: f.ino,
        client: client("c"),
    });
    let mut p2 = fx.allocate(f.ino, "c", 2);
    p2.len = 10;
    let cases: Vec<(Vec<BlockInfo>, u64)> = vec![
        // A pending block at another index than it was allocated for.
        (vec![old[0], p2], 250),
        // A block nobody allocated.
        (
            vec![BlockInfo {
                id: BlockId(77),
                generation: Generation(77),
                len: 1,
            }],
            1,
        ),
        // A committed block with a stale generation.
        (
            vec![BlockInfo {
                generation: Generation(99),
                ..old[0]
            }],
            100,
        ),
        // Longer than the block size.
        (vec![old[0], old[1], BlockInfo { len: BS + 1, ..p2 }], 300),
        // Lying wholly beyond the size.
        (vec![old[0], old[1], p2], 200),
        // A committed block grown without a new generation.
        (vec![old[0], BlockInfo { len: 60, ..old[1] }], 160),
        // A hole that is not a hole.
        (
            vec![BlockInfo {
                len: 5,
                ..BlockInfo::HOLE
            }],
            5,
        ),
    ];
    for (blocks, size) in cases {
        assert_eq!(
            fx.err(commit_cmd(f.ino, "c", blocks.clone(), size, false)),
            ErrorCode::Invalid,
            "{blocks:?} size {size}"
        );
    }
    assert_eq!(
        fx.err(commit_cmd(f.ino, "c", vec![], u64::MAX, false)),
        ErrorCode::FileTooBig
    );
    assert_eq!(
        fx.err(commit_cmd(f.ino, "x", vec![], 0, false)),
        ErrorCode::Busy
    );
    // The good version of the first case.
    fx.commit(f.ino, "c", vec![old[0], old[1], p2], 210);
}

#[test]
fn commit_without_the_lease_is_stale() {
    let mut fx = Fx::new();
    let (f, blocks) = fx.write_file(ROOT, "f", "c", 50);
    assert_eq!(
        fx.err(commit_cmd(f.ino, "c", blocks, 50, false)),
        ErrorCode::Stale
    );
    assert_eq!(
        fx.err(commit_cmd(InodeId(99), "c", vec![], 0, false)),
        ErrorCode::NotFound
    );
}

#[test]
fn commit_with_release_ends_the_lease() {
    let mut fx = Fx::new();
    let f = fx.create_leased(ROOT, "f", "c");
    let mut used = fx.allocate(f.ino, "c", 0);
    used.len = 5;
    let unused = fx.allocate(f.ino, "c", 1);
    fx.attr(commit_cmd(f.ino, "c", vec![used], 5, true));
    assert_eq!(fx.ns.take_freed_blocks(), vec![unused]);
    assert_eq!(fx.err(alloc_cmd(f.ino, "c", 0)), ErrorCode::Stale);
    fx.ok(Command::OpenWrite {
        ino: f.ino,
        client: client("other"),
    });
}

#[test]
fn file_blocks_is_for_regular_files() {
    let mut fx = Fx::new();
    let d = fx.mkdir(ROOT, "d");
    let code = |ino| fx.ns.file_blocks(ino).expect_err("not a file").code;
    assert_eq!(code(d.ino), ErrorCode::IsDir);
    assert_eq!(code(InodeId(99)), ErrorCode::NotFound);
}
