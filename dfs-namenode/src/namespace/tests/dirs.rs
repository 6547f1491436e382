//! create, mkdir, symlink, link, unlink, rmdir, and the read side: lookup, resolve, readdir.

use super::*;

const ROOT: InodeId = InodeId::ROOT;

#[test]
fn fresh_namespace_holds_only_the_root() {
    let fx = Fx::new();
    let root = fx.get(ROOT);
    assert_eq!(root.kind, FileKind::Dir);
    assert_eq!((root.perm, root.uid, root.gid), (0o755, 0, 0));
    assert_eq!((root.nlink, root.size, root.block_size), (2, 0, 0));
    assert_eq!(fx.ns.config(), &config());
    let stats = fx.ns.stats();
    assert_eq!((stats.inodes, stats.directories, stats.files), (1, 1, 0));
}

#[test]
fn create_makes_a_file_and_updates_the_parent() {
    let mut fx = Fx::new();
    fx.tick(5);
    let a = fx.attr(Command::Create {
        parent: ROOT,
        name: name("a"),
        kind: FileKind::File,
        perm: 0o100644,
        uid: 7,
        gid: 8,
        lease: None,
    });
    assert_eq!(a.ino, InodeId(2));
    assert_eq!(a.kind, FileKind::File);
    assert_eq!(a.perm, 0o644, "file type bits are masked off");
    assert_eq!((a.uid, a.gid, a.nlink, a.size), (7, 8, 1, 0));
    assert_eq!(a.block_size, BS);
    assert_eq!((a.atime, a.mtime, a.ctime), (fx.now, fx.now, fx.now));
    let root = fx.get(ROOT);
    assert_eq!(root.size, 1);
    assert_eq!((root.mtime, root.ctime), (fx.now, fx.now));
    assert_eq!(root.nlink, 2, "a file does not add a link to its parent");
    assert_eq!(fx.create(ROOT, "b").ino, InodeId(3));
    assert_eq!(fx.ns.lookup(ROOT, &name("a")).expect("exists"), a);
}

#[test]
fn create_fifo_and_refused_kinds() {
    let mut fx = Fx::new();
    let mut cmd = create_cmd(ROOT, "p", None);
    if let Command::Create { kind, .. } = &mut cmd {
        *kind = FileKind::Fifo;
    }
    let fifo = fx.attr(cmd.clone());
    assert_eq!((fifo.kind, fifo.block_size), (FileKind::Fifo, 0));
    for bad in [FileKind::Dir, FileKind::Symlink] {
        if let Command::Create { kind, name: n, .. } = &mut cmd {
            *kind = bad;
            *n = name("other");
        }
        assert_eq!(fx.err(cmd.clone()), ErrorCode::Invalid);
    }
    // A FIFO has no blocks to write under a lease.
    if let Command::Create { kind, lease, .. } = &mut cmd {
        *kind = FileKind::Fifo;
        *lease = Some(client("c"));
    }
    assert_eq!(fx.err(cmd), ErrorCode::Invalid);
}

#[test]
fn create_errors() {
    let mut fx = Fx::new();
    let f = fx.create(ROOT, "f");
    assert_eq!(fx.err(create_cmd(ROOT, "f", None)), ErrorCode::Exists);
    assert_eq!(
        fx.err(create_cmd(InodeId(99), "x", None)),
        ErrorCode::NotFound
    );
    assert_eq!(fx.err(create_cmd(f.ino, "x", None)), ErrorCode::NotDir);
    assert_eq!(fx.err(mkdir_cmd(ROOT, "f")), ErrorCode::Exists);
}

#[test]
fn create_with_lease_gives_the_write_lease() {
    let mut fx = Fx::new();
    let f = fx.create_leased(ROOT, "f", "c1");
    fx.allocate(f.ino, "c1", 0);
    let open = Command::OpenWrite {
        ino: f.ino,
        client: client("c2"),
    };
    assert_eq!(fx.err(open), ErrorCode::Busy);
}

#[test]
fn mkdir_counts_links() {
    let mut fx = Fx::new();
    let d = fx.mkdir(ROOT, "d");
    assert_eq!(
        (d.kind, d.nlink, d.size, d.perm),
        (FileKind::Dir, 2, 0, 0o755)
    );
    assert_eq!(fx.get(ROOT).nlink, 3);
    let e = fx.mkdir(d.ino, "e");
    fx.create(d.ino, "f");
    let d = fx.get(d.ino);
    assert_eq!((d.nlink, d.size), (3, 2));
    assert_eq!(fx.get(e.ino).nlink, 2);
    assert_eq!(fx.err(mkdir_cmd(InodeId(50), "x")), ErrorCode::NotFound);
    assert_eq!(fx.err(mkdir_cmd(ROOT, "d")), ErrorCode::Exists);
    let stats = fx.ns.stats();
    assert_eq!((stats.directories, stats.files, stats.inodes), (3, 1, 4));
}

fn symlink_cmd(n: &str, target: &str) -> Command {
    Command::Symlink {
        parent: ROOT,
        name: name(n),
        target: target.to_string(),
        uid: 1,
        gid: 2,
    }
}

#[test]
fn symlinks_hold_their_target() {
    let mut fx = Fx::new();
    let s = fx.attr(symlink_cmd("s", "../a/b"));
    assert_eq!(
        (s.kind, s.size, s.perm, s.nlink),
        (FileKind::Symlink, 6, 0o777, 1)
    );
    assert_eq!(fx.ns.readlink(s.ino).expect("symlink"), "../a/b");
    assert_eq!(fx.err(symlink_cmd("e", "")), ErrorCode::Invalid);
    assert_eq!(
        fx.err(symlink_cmd("l", &"x".repeat(4097))),
        ErrorCode::NameTooLong
    );
    fx.attr(symlink_cmd("max", &"x".repeat(4096)));
    assert_eq!(fx.err(symlink_cmd("s", "t")), ErrorCode::Exists);
    let f = fx.create(ROOT, "f");
    let readlink_err = |ino| fx.ns.readlink(ino).expect_err("not a symlink").code;
    assert_eq!(readlink_err(f.ino), ErrorCode::Invalid);
    assert_eq!(readlink_err(InodeId(77)), ErrorCode::NotFound);
    assert_eq!(fx.ns.stats().symlinks, 2);
}

fn link_cmd(ino: InodeId, parent: InodeId, n: &str) -> Command {
    Command::Link {
        ino,
        new_parent: parent,
        new_name: name(n),
    }
}

#[test]
fn link_adds_a_name() {
    let mut fx = Fx::new();
    let f = fx.create(ROOT, "f");
    let d = fx.mkdir(ROOT, "d");
    fx.tick(3);
    let l = fx.attr(link_cmd(f.ino, d.ino, "g"));
    assert_eq!((l.ino, l.nlink, l.ctime), (f.ino, 2, fx.now));
    assert_eq!(fx.get(d.ino).mtime, fx.now);
    assert_eq!(fx.ns.lookup(d.ino, &name("g")).expect("linked").ino, f.ino);

    assert_eq!(fx.err(link_cmd(d.ino, ROOT, "d2")), ErrorCode::Perm);
    assert_eq!(
        fx.err(link_cmd(InodeId(99), ROOT, "x")),
        ErrorCode::NotFound
    );
    assert_eq!(fx.err(link_cmd(f.ino, ROOT, "d")), ErrorCode::Exists);
    assert_eq!(fx.err(link_cmd(f.ino, f.ino, "x")), ErrorCode::NotDir);
    assert_eq!(
        fx.err(link_cmd(f.ino, InodeId(99), "x")),
        ErrorCode::NotFound
    );
}

#[test]
fn unlink_drops_a_link_and_frees_at_zero() {
    let mut fx = Fx::new();
    let (f, blocks) = fx.write_file(ROOT, "f", "c", 250);
    assert_eq!(blocks.len(), 3);
    fx.attr(link_cmd(f.ino, ROOT, "g"));
    fx.tick(1);
    let after = fx.attr(unlink_cmd(ROOT, "f"));
    assert_eq!((after.nlink, after.ctime), (1, fx.now));
    assert!(fx.ns.take_freed_blocks().is_empty(), "one link remains");
    let after = fx.attr(unlink_cmd(ROOT, "g"));
    assert_eq!(after.nlink, 0);
    assert_eq!(
        fx.ns.getattr(f.ino).expect_err("gone").code,
        ErrorCode::NotFound
    );
    assert_eq!(fx.ns.take_freed_blocks(), blocks);
    assert_eq!(fx.get(ROOT).size, 0);
    assert_eq!(fx.ns.stats().blocks, 0);
}

#[test]
fn unlink_errors() {
    let mut fx = Fx::new();
    let d = fx.mkdir(ROOT, "d");
    assert_eq!(fx.err(unlink_cmd(ROOT, "nope")), ErrorCode::NotFound);
    assert_eq!(fx.err(unlink_cmd(ROOT, "d")), ErrorCode::IsDir);
    assert_eq!(fx.err(unlink_cmd(InodeId(99), "x")), ErrorCode::NotFound);
    let f = fx.create(d.ino, "f");
    assert_eq!(fx.err(unlink_cmd(f.ino, "x")), ErrorCode::NotDir);
}

#[test]
fn unlinked_file_lives_while_leased() {
    let mut fx = Fx::new();
    let f = fx.create_leased(ROOT, "f", "c");
    let mut b = fx.allocate(f.ino, "c", 0);
    b.len = 10;
    fx.commit(f.ino, "c", vec![b], 10);
    let pending = fx.allocate(f.ino, "c", 1);
    assert_eq!(fx.attr(unlink_cmd(ROOT, "f")).nlink, 0);
    let orphan = fx.get(f.ino);
    assert_eq!((orphan.nlink, orphan.size), (0, 10));
    assert!(fx.ns.take_freed_blocks().is_empty());
    assert_eq!(fx.err(link_cmd(f.ino, ROOT, "back")), ErrorCode::NotFound);
    // The writer can still work on it, then closes it.
    fx.ok(Command::ReleaseLease {
        ino: f.ino,
        client: client("c"),
    });
    assert_eq!(
        fx.ns.getattr(f.ino).expect_err("gone").code,
        ErrorCode::NotFound
    );
    let mut freed = fx.ns.take_freed_blocks();
    freed.sort_by_key(|b| b.id);
    assert_eq!(freed, vec![b, pending]);
}

fn rmdir_cmd(parent: InodeId, n: &str) -> Command {
    Command::Rmdir {
        parent,
        name: name(n),
    }
}

#[test]
fn rmdir_removes_empty_directories_only() {
    let mut fx = Fx::new();
    let d = fx.mkdir(ROOT, "d");
    fx.mkdir(d.ino, "e");
    fx.create(ROOT, "f");
    assert_eq!(fx.err(rmdir_cmd(ROOT, "d")), ErrorCode::NotEmpty);
    assert_eq!(fx.err(rmdir_cmd(ROOT, "f")), ErrorCode::NotDir);
    assert_eq!(fx.err(rmdir_cmd(ROOT, "zz")), ErrorCode::NotFound);
    assert_eq!(fx.err(rmdir_cmd(InodeId(99), "zz")), ErrorCode::NotFound);
    fx.tick(1);
    assert_eq!(fx.ok(rmdir_cmd(d.ino, "e")), Reply::Empty);
    let dir = fx.get(d.ino);
    assert_eq!((dir.nlink, dir.size, dir.mtime), (2, 0, fx.now));
    fx.ok(rmdir_cmd(ROOT, "d"));
    assert_eq!(fx.get(ROOT).nlink, 2);
    assert_eq!(
        fx.ns.getattr(d.ino).expect_err("gone").code,
        ErrorCode::NotFound
    );
}

#[test]
fn inode_ids_are_never_reused() {
    let mut fx = Fx::new();
    let a = fx.create(ROOT, "a");
    fx.attr(unlink_cmd(ROOT, "a"));
    let b = fx.create(ROOT, "a");
    assert!(b.ino > a.ino);
}

#[test]
fn resolve_walks_paths_without_following_symlinks() {
    let mut fx = Fx::new();
    let a = fx.mkdir(ROOT, "a");
    let f = fx.create(a.ino, "f");
    fx.attr(Command::Symlink {
        parent: a.ino,
        name: name("s"),
        target: "/a".into(),
        uid: 0,
        gid: 0,
    });
    let resolve = |p: &str| fx.ns.resolve(&DfsPath::parse(p).expect("valid path"));
    assert_eq!(resolve("/").expect("root").ino, ROOT);
    assert_eq!(resolve("/a/f").expect("file").ino, f.ino);
    assert_eq!(resolve("/a/s").expect("symlink").kind, FileKind::Symlink);
    let code = |p: &str| resolve(p).expect_err("fails").code;
    assert_eq!(code("/a/f/x"), ErrorCode::NotDir);
    assert_eq!(
        code("/a/s/f"),
        ErrorCode::NotDir,
        "symlinks are not followed"
    );
    assert_eq!(code("/a/nope"), ErrorCode::NotFound);
    assert_eq!(code("/nope/f"), ErrorCode::NotFound);
}

#[test]
fn lookup_errors() {
    let mut fx = Fx::new();
    let f = fx.create(ROOT, "f");
    let code = |p, n: &str| fx.ns.lookup(p, &name(n)).expect_err("fails").code;
    assert_eq!(code(ROOT, "x"), ErrorCode::NotFound);
    assert_eq!(code(f.ino, "x"), ErrorCode::NotDir);
    assert_eq!(code(InodeId(42), "x"), ErrorCode::NotFound);
}

#[test]
fn readdir_pages_in_name_order() {
    let mut fx = Fx::new();
    for n in ["c", "a", "e", "b", "d"] {
        fx.create(ROOT, n);
    }
    let names = |r: &ReadDirResponse| r.entries.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
    let all = fx.ns.readdir(ROOT, None, 100).expect("dir");
    assert_eq!(names(&all), ["a", "b", "c", "d", "e"]);
    assert!(!all.more);
    assert_eq!(
        all.entries[0].attr,
        fx.ns.lookup(ROOT, &name("a")).expect("a")
    );

    let p1 = fx.ns.readdir(ROOT, None, 2).expect("dir");
    assert_eq!((names(&p1), p1.more), (vec!["a".into(), "b".into()], true));
    let p2 = fx.ns.readdir(ROOT, Some("b"), 2).expect("dir");
    assert_eq!((names(&p2), p2.more), (vec!["c".into(), "d".into()], true));
    let p3 = fx.ns.readdir(ROOT, Some("d"), 2).expect("dir");
    assert_eq!((names(&p3), p3.more), (vec!["e".to_string()], false));
    let exact = fx.ns.readdir(ROOT, Some("c"), 2).expect("dir");
    assert!(!exact.more, "nothing after the last entry of an exact page");
    // `after` need not be an existing name.
    let between = fx.ns.readdir(ROOT, Some("bb"), 10).expect("dir");
    assert_eq!(names(&between), ["c", "d", "e"]);
    let none = fx.ns.readdir(ROOT, None, 0).expect("dir");
    assert!(none.entries.is_empty() && none.more);

    let f = fx.ns.lookup(ROOT, &name("a")).expect("a").ino;
    let code = |ino| fx.ns.readdir(ino, None, 10).expect_err("fails").code;
    assert_eq!(code(f), ErrorCode::NotDir);
    assert_eq!(code(InodeId(99)), ErrorCode::NotFound);
}
