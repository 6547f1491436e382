//! rename(2): moves, replacement rules, noreplace, exchange, and link counts.

use super::*;

const ROOT: InodeId = InodeId::ROOT;

fn rename_cmd(parent: InodeId, n: &str, new_parent: InodeId, new_n: &str) -> Command {
    Command::Rename {
        parent,
        name: name(n),
        new_parent,
        new_name: name(new_n),
        noreplace: false,
        exchange: false,
    }
}

fn with_flags(cmd: Command, noreplace_flag: bool, exchange_flag: bool) -> Command {
    match cmd {
        Command::Rename {
            parent,
            name,
            new_parent,
            new_name,
            ..
        } => Command::Rename {
            parent,
            name,
            new_parent,
            new_name,
            noreplace: noreplace_flag,
            exchange: exchange_flag,
        },
        other => other,
    }
}

fn ino_of(fx: &Fx, parent: InodeId, n: &str) -> Option<InodeId> {
    fx.ns.lookup(parent, &name(n)).ok().map(|a| a.ino)
}

#[test]
fn rename_within_a_directory() {
    let mut fx = Fx::new();
    let f = fx.create(ROOT, "a");
    fx.tick(2);
    assert_eq!(fx.ok(rename_cmd(ROOT, "a", ROOT, "b")), Reply::Empty);
    assert_eq!(ino_of(&fx, ROOT, "a"), None);
    assert_eq!(ino_of(&fx, ROOT, "b"), Some(f.ino));
    let root = fx.get(ROOT);
    assert_eq!((root.size, root.mtime, root.ctime), (1, fx.now, fx.now));
    let moved = fx.get(f.ino);
    assert_eq!((moved.ctime, moved.nlink), (fx.now, 1));
}

#[test]
fn rename_a_directory_across_directories_fixes_link_counts() {
    let mut fx = Fx::new();
    let a = fx.mkdir(ROOT, "a");
    let b = fx.mkdir(ROOT, "b");
    let d = fx.mkdir(a.ino, "d");
    fx.tick(1);
    fx.ok(rename_cmd(a.ino, "d", b.ino, "d2"));
    let (a, b) = (fx.get(a.ino), fx.get(b.ino));
    assert_eq!((a.nlink, a.size, a.mtime), (2, 0, fx.now));
    assert_eq!((b.nlink, b.size, b.mtime), (3, 1, fx.now));
    assert_eq!(fx.get(d.ino).ctime, fx.now);
    // The moved directory's parent is now b: moving b into it is refused.
    assert_eq!(
        fx.err(rename_cmd(ROOT, "b", d.ino, "x")),
        ErrorCode::Invalid
    );
    fx.ok(rename_cmd(ROOT, "a", d.ino, "a"));
    assert_eq!(fx.get(ROOT).nlink, 3);
    assert_eq!(fx.get(d.ino).nlink, 3);
}

#[test]
fn rename_onto_the_same_inode_is_a_no_op() {
    let mut fx = Fx::new();
    let f = fx.create(ROOT, "a");
    fx.attr(Command::Link {
        ino: f.ino,
        new_parent: ROOT,
        new_name: name("b"),
    });
    let before = serde_json::to_string(&fx.ns).expect("serialize");
    fx.tick(1);
    fx.ok(rename_cmd(ROOT, "a", ROOT, "b"));
    fx.ok(rename_cmd(ROOT, "a", ROOT, "a"));
    assert_eq!(serde_json::to_string(&fx.ns).expect("serialize"), before);
}

#[test]
fn rename_file_over_file_replaces_it() {
    let mut fx = Fx::new();
    let (_, old_blocks) = fx.write_file(ROOT, "old", "c", 150);
    let new = fx.create(ROOT, "new");
    fx.ok(rename_cmd(ROOT, "new", ROOT, "old"));
    assert_eq!(ino_of(&fx, ROOT, "old"), Some(new.ino));
    assert_eq!(ino_of(&fx, ROOT, "new"), None);
    assert_eq!(fx.get(ROOT).size, 1);
    assert_eq!(fx.ns.take_freed_blocks(), old_blocks);
}

#[test]
fn replaced_file_with_another_link_survives() {
    let mut fx = Fx::new();
    let old = fx.create(ROOT, "old");
    fx.attr(Command::Link {
        ino: old.ino,
        new_parent: ROOT,
        new_name: name("keep"),
    });
    fx.create(ROOT, "new");
    fx.ok(rename_cmd(ROOT, "new", ROOT, "old"));
    assert_eq!(fx.get(old.ino).nlink, 1);
}

#[test]
fn rename_directory_rules() {
    let mut fx = Fx::new();
    let src = fx.mkdir(ROOT, "src");
    fx.create(src.ino, "inside");
    let empty = fx.mkdir(ROOT, "empty");
    let full = fx.mkdir(ROOT, "full");
    fx.create(full.ino, "x");
    fx.create(ROOT, "file");

    assert_eq!(
        fx.err(rename_cmd(ROOT, "src", ROOT, "full")),
        ErrorCode::NotEmpty
    );
    assert_eq!(
        fx.err(rename_cmd(ROOT, "file", ROOT, "empty")),
        ErrorCode::IsDir
    );
    assert_eq!(
        fx.err(rename_cmd(ROOT, "src", ROOT, "file")),
        ErrorCode::NotDir
    );
    assert_eq!(
        fx.err(rename_cmd(ROOT, "src", src.ino, "x")),
        ErrorCode::Invalid
    );
    let sub = fx.mkdir(src.ino, "sub");
    assert_eq!(
        fx.err(rename_cmd(ROOT, "src", sub.ino, "x")),
        ErrorCode::Invalid
    );
    assert_eq!(
        fx.err(rename_cmd(ROOT, "nope", ROOT, "x")),
        ErrorCode::NotFound
    );
    assert_eq!(
        fx.err(rename_cmd(ROOT, "src", InodeId(99), "x")),
        ErrorCode::NotFound
    );
    let file = ino_of(&fx, ROOT, "file").expect("file");
    assert_eq!(
        fx.err(rename_cmd(ROOT, "src", file, "x")),
        ErrorCode::NotDir
    );
    // Moving a parent's child over the parent itself: the target is not empty.
    assert_eq!(
        fx.err(rename_cmd(src.ino, "sub", ROOT, "src")),
        ErrorCode::NotEmpty
    );

    let root_links = fx.get(ROOT).nlink;
    fx.ok(rename_cmd(ROOT, "src", ROOT, "empty"));
    assert_eq!(ino_of(&fx, ROOT, "empty"), Some(src.ino));
    assert_eq!(
        fx.ns.getattr(empty.ino).expect_err("replaced").code,
        ErrorCode::NotFound
    );
    assert_eq!(fx.get(ROOT).nlink, root_links - 1);
}

#[test]
fn noreplace_refuses_an_existing_target() {
    let mut fx = Fx::new();
    fx.create(ROOT, "a");
    fx.create(ROOT, "b");
    let cmd = with_flags(rename_cmd(ROOT, "a", ROOT, "b"), true, false);
    assert_eq!(fx.err(cmd), ErrorCode::Exists);
    let cmd = with_flags(rename_cmd(ROOT, "a", ROOT, "c"), true, false);
    fx.ok(cmd);
    let both = with_flags(rename_cmd(ROOT, "c", ROOT, "b"), true, true);
    assert_eq!(fx.err(both), ErrorCode::Invalid);
}

#[test]
fn exchange_swaps_entries_across_directories() {
    let mut fx = Fx::new();
    let a = fx.mkdir(ROOT, "a");
    let b = fx.mkdir(ROOT, "b");
    let dir = fx.mkdir(a.ino, "x");
    let file = fx.create(b.ino, "y");
    fx.tick(1);
    fx.ok(with_flags(rename_cmd(a.ino, "x", b.ino, "y"), false, true));
    assert_eq!(ino_of(&fx, a.ino, "x"), Some(file.ino));
    assert_eq!(ino_of(&fx, b.ino, "y"), Some(dir.ino));
    let (a, b) = (fx.get(a.ino), fx.get(b.ino));
    assert_eq!((a.nlink, a.size, a.mtime), (2, 1, fx.now));
    assert_eq!((b.nlink, b.size, b.mtime), (3, 1, fx.now));
    assert_eq!(fx.get(dir.ino).ctime, fx.now);
    assert_eq!(fx.get(file.ino).ctime, fx.now);
    // The directory's parent followed it: b cannot now move into it.
    assert_eq!(
        fx.err(rename_cmd(ROOT, "b", dir.ino, "z")),
        ErrorCode::Invalid
    );
}

#[test]
fn exchange_errors() {
    let mut fx = Fx::new();
    let a = fx.mkdir(ROOT, "a");
    fx.create(a.ino, "f");
    fx.create(ROOT, "g");
    let ex = |p, n: &str, q, m: &str| with_flags(rename_cmd(p, n, q, m), false, true);
    assert_eq!(fx.err(ex(ROOT, "g", ROOT, "missing")), ErrorCode::NotFound);
    assert_eq!(fx.err(ex(ROOT, "missing", ROOT, "g")), ErrorCode::NotFound);
    // A directory swapped with one of its own entries would land inside itself.
    assert_eq!(fx.err(ex(ROOT, "a", a.ino, "f")), ErrorCode::Invalid);
    assert_eq!(fx.err(ex(a.ino, "f", ROOT, "a")), ErrorCode::Invalid);
    // Exchanging an entry with itself changes nothing.
    fx.ok(ex(ROOT, "g", ROOT, "g"));
    // Two files in the same directory.
    let g = ino_of(&fx, ROOT, "g");
    let f = ino_of(&fx, a.ino, "f");
    fx.ok(ex(ROOT, "g", a.ino, "f"));
    assert_eq!(ino_of(&fx, ROOT, "g"), f);
    assert_eq!(ino_of(&fx, a.ino, "f"), g);
}
