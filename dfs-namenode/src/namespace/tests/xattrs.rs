//! Extended attributes: modes, limits, namespaces, and survival across a snapshot.

use super::*;
use dfs_proto::rest::{XATTR_NAME_MAX, XATTR_SIZE_MAX, XattrMode};

const ROOT: InodeId = InodeId::ROOT;

fn set(ino: InodeId, n: &str, v: &[u8], mode: XattrMode) -> Command {
    Command::SetXattr {
        ino,
        name: n.to_string(),
        value: v.to_vec(),
        mode,
    }
}

#[test]
fn set_get_list_remove() {
    let mut fx = Fx::new();
    let ino = fx.create(ROOT, "f").ino;
    fx.apply(set(ino, "user.b", b"2", XattrMode::Either))
        .expect("set");
    fx.apply(set(ino, "user.a", b"1", XattrMode::Create))
        .expect("create");
    assert_eq!(fx.ns.get_xattr(ino, "user.a").expect("get"), b"1");
    assert_eq!(fx.ns.list_xattr(ino).expect("list"), ["user.a", "user.b"]);
    fx.apply(set(ino, "user.a", b"one", XattrMode::Replace))
        .expect("replace");
    assert_eq!(fx.ns.get_xattr(ino, "user.a").expect("get"), b"one");
    fx.apply(Command::RemoveXattr {
        ino,
        name: "user.a".into(),
    })
    .expect("remove");
    assert_eq!(
        fx.ns.get_xattr(ino, "user.a").expect_err("gone").code,
        ErrorCode::NoData
    );
    // Directories carry attributes too.
    fx.apply(set(ROOT, "user.d", b"", XattrMode::Either))
        .expect("on a directory");
    assert_eq!(fx.ns.get_xattr(ROOT, "user.d").expect("get"), b"");
}

#[test]
fn refusals_match_linux() {
    let mut fx = Fx::new();
    let ino = fx.create(ROOT, "f").ino;
    fx.apply(set(ino, "user.x", b"v", XattrMode::Either))
        .expect("set");
    assert_eq!(
        fx.err(set(ino, "user.x", b"v", XattrMode::Create)),
        ErrorCode::Exists
    );
    assert_eq!(
        fx.err(set(ino, "user.y", b"v", XattrMode::Replace)),
        ErrorCode::NoData
    );
    let remove = Command::RemoveXattr {
        ino,
        name: "user.y".into(),
    };
    assert_eq!(fx.err(remove), ErrorCode::NoData);
    for ns in [
        "trusted.x",
        "security.x",
        "system.posix_acl_access",
        "user.",
    ] {
        assert_eq!(
            fx.err(set(ino, ns, b"v", XattrMode::Either)),
            ErrorCode::NotSupported,
            "{ns}"
        );
    }
    let long = format!("user.{}", "n".repeat(XATTR_NAME_MAX));
    assert_eq!(
        fx.err(set(ino, &long, b"v", XattrMode::Either)),
        ErrorCode::Range
    );
    let big = vec![0u8; XATTR_SIZE_MAX + 1];
    assert_eq!(
        fx.err(set(ino, "user.big", &big, XattrMode::Either)),
        ErrorCode::TooBig
    );
    fx.apply(set(ino, "user.max", &big[1..], XattrMode::Either))
        .expect("64 KiB fits");
    assert_eq!(
        fx.err(set(InodeId(999), "user.x", b"v", XattrMode::Either)),
        ErrorCode::NotFound
    );
}

#[test]
fn attributes_survive_a_snapshot_and_old_snapshots_load() {
    let mut fx = Fx::new();
    let ino = fx.create(ROOT, "f").ino;
    fx.apply(set(ino, "user.k", b"v", XattrMode::Either))
        .expect("set");
    let json = serde_json::to_string(&fx.ns).expect("serialize");
    let back: Namespace = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back.get_xattr(ino, "user.k").expect("kept"), b"v");
    // A snapshot written before attributes existed has no `xattrs` field on its inodes.
    let mut fresh = Fx::new();
    fresh.create(ROOT, "f");
    let new = serde_json::to_string(&fresh.ns).expect("serialize");
    assert!(
        new.contains(",\"xattrs\":{}"),
        "inodes serialize their attributes"
    );
    let old = new.replace(",\"xattrs\":{}", "");
    let loaded: Namespace = serde_json::from_str(&old).expect("old snapshot loads");
    assert_eq!(loaded.list_xattr(ino).expect("list"), Vec::<String>::new());
}
