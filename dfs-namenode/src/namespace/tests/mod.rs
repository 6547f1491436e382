//! Unit tests of the namespace state machine, one file per concept. Every command goes through
//! [`Fx::apply`], which also checks that a refused command changed nothing and that the derived
//! block index still matches the state.

use super::*;
use dfs_proto::ErrorCode;

mod dirs;
mod files;
mod leases;
mod permissions;
mod props;
mod renames;
mod snapshots;
mod xattrs;

/// Block size of test namespaces: small, so that sizes are easy to reason about.
const BS: u64 = 100;
/// Lease length of test namespaces.
const LEASE_MS: u64 = 10_000;

fn config() -> NamespaceConfig {
    NamespaceConfig {
        block_size: BS,
        lease_ms: LEASE_MS,
    }
}

fn name(s: &str) -> Name {
    Name::new(s).expect("valid test name")
}

fn client(s: &str) -> ClientId {
    ClientId(s.to_string())
}

fn ts(sec: i64) -> Timestamp {
    Timestamp { sec, nsec: 0 }
}

/// A namespace with a clock that tests move by hand.
struct Fx {
    ns: Namespace,
    now: Timestamp,
    /// Who the next commands come from (root unless a test says otherwise).
    who: Identity,
}

impl Fx {
    fn new() -> Fx {
        Fx {
            ns: Namespace::new(config()),
            now: ts(1000),
            who: Identity::root(),
        }
    }

    fn tick(&mut self, secs: i64) {
        self.now.sec += secs;
    }

    fn apply(&mut self, cmd: Command) -> Result<Reply, ApiError> {
        let before = serde_json::to_string(&self.ns).expect("serialize");
        let freed_before = self.ns.freed.len();
        let result = self.ns.apply(&Proposal {
            now: self.now,
            cmd,
            caller: self.who.clone(),
        });
        if result.is_err() {
            let after = serde_json::to_string(&self.ns).expect("serialize");
            assert_eq!(before, after, "a refused command changed the state");
            assert_eq!(
                freed_before,
                self.ns.freed.len(),
                "a refused command freed blocks"
            );
        }
        assert!(self.ns.index_is_consistent(), "block index out of step");
        result
    }

    fn ok(&mut self, cmd: Command) -> Reply {
        let shown = format!("{cmd:?}");
        match self.apply(cmd) {
            Ok(reply) => reply,
            Err(e) => panic!("{shown} failed: {e}"),
        }
    }

    fn attr(&mut self, cmd: Command) -> Attr {
        match self.ok(cmd) {
            Reply::Attr(a) => a,
            other => panic!("expected an Attr reply, got {other:?}"),
        }
    }

    fn err(&mut self, cmd: Command) -> ErrorCode {
        let shown = format!("{cmd:?}");
        match self.apply(cmd) {
            Ok(reply) => panic!("{shown} succeeded with {reply:?}; expected an error"),
            Err(e) => {
                assert!(!e.message.is_empty(), "error without a message");
                e.code
            }
        }
    }

    fn create(&mut self, parent: InodeId, n: &str) -> Attr {
        self.attr(create_cmd(parent, n, None))
    }

    fn create_leased(&mut self, parent: InodeId, n: &str, c: &str) -> Attr {
        self.attr(create_cmd(parent, n, Some(client(c))))
    }

    fn mkdir(&mut self, parent: InodeId, n: &str) -> Attr {
        self.attr(mkdir_cmd(parent, n))
    }

    fn get(&self, ino: InodeId) -> Attr {
        self.ns.getattr(ino).expect("inode exists")
    }

    fn allocate(&mut self, ino: InodeId, c: &str, index: u64) -> BlockInfo {
        match self.ok(Command::AllocateBlock {
            ino,
            client: client(c),
            index,
            locations: Vec::new(),
        }) {
            Reply::Located(l) => {
                assert_eq!(l.index, index);
                l.block
            }
            other => panic!("expected Located, got {other:?}"),
        }
    }

    fn commit(&mut self, ino: InodeId, c: &str, blocks: Vec<BlockInfo>, size: u64) -> Attr {
        self.attr(commit_cmd(ino, c, blocks, size, false))
    }

    /// Creates a file leased to `c` and writes `size` bytes to it in fresh blocks.
    fn write_file(
        &mut self,
        parent: InodeId,
        n: &str,
        c: &str,
        size: u64,
    ) -> (Attr, Vec<BlockInfo>) {
        let attr = self.create_leased(parent, n, c);
        let mut blocks = Vec::new();
        for i in 0..size.div_ceil(BS) {
            let mut b = self.allocate(attr.ino, c, i);
            b.len = (size - i * BS).min(BS);
            blocks.push(b);
        }
        let attr = self.attr(commit_cmd(attr.ino, c, blocks.clone(), size, true));
        (attr, blocks)
    }
}

fn create_cmd(parent: InodeId, n: &str, lease: Option<ClientId>) -> Command {
    Command::Create {
        parent,
        name: name(n),
        kind: FileKind::File,
        perm: 0o644,
        uid: 1000,
        gid: 100,
        lease,
    }
}

fn mkdir_cmd(parent: InodeId, n: &str) -> Command {
    Command::Mkdir {
        parent,
        name: name(n),
        perm: 0o755,
        uid: 1000,
        gid: 100,
    }
}

fn commit_cmd(ino: InodeId, c: &str, blocks: Vec<BlockInfo>, size: u64, release: bool) -> Command {
    Command::Commit {
        ino,
        client: client(c),
        blocks,
        size,
        release,
    }
}

fn unlink_cmd(parent: InodeId, n: &str) -> Command {
    Command::Unlink {
        parent,
        name: name(n),
    }
}

fn setattr_cmd(ino: InodeId) -> Command {
    Command::SetAttr {
        ino,
        perm: None,
        uid: None,
        gid: None,
        size: None,
        atime: None,
        mtime: None,
        client: None,
    }
}

fn truncate_cmd(ino: InodeId, size: u64, c: Option<&str>) -> Command {
    Command::SetAttr {
        ino,
        perm: None,
        uid: None,
        gid: None,
        size: Some(size),
        atime: None,
        mtime: None,
        client: c.map(client),
    }
}
