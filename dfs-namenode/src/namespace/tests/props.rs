//! Property test: random sequences of commands keep the namespace's invariants, never change
//! state when refused (checked by [`Fx::apply`]), and replay to identical state.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

const NAMES: [&str; 3] = ["a", "b", "c"];
const CLIENTS: [&str; 2] = ["c1", "c2"];

/// A command with its inodes chosen by position among the inodes alive when it runs.
#[derive(Debug, Clone)]
enum Op {
    Create(usize, usize, Option<usize>),
    Mkdir(usize, usize),
    Symlink(usize, usize),
    Link(usize, usize, usize),
    Unlink(usize, usize),
    Rmdir(usize, usize),
    Rename(usize, usize, usize, usize, bool, bool),
    Truncate(usize, u64, Option<usize>),
    Open(usize, usize),
    Release(usize, usize),
    Allocate(usize, usize, u64),
    Commit(usize, usize, u64, bool),
    Tick(i64),
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    let n = 0..NAMES.len();
    let c = 0..CLIENTS.len();
    prop_oneof![
        (any::<usize>(), n.clone(), proptest::option::of(c.clone()))
            .prop_map(|(p, n, c)| Op::Create(p, n, c)),
        (any::<usize>(), n.clone()).prop_map(|(p, n)| Op::Mkdir(p, n)),
        (any::<usize>(), n.clone()).prop_map(|(p, n)| Op::Symlink(p, n)),
        (any::<usize>(), any::<usize>(), n.clone()).prop_map(|(i, p, n)| Op::Link(i, p, n)),
        (any::<usize>(), n.clone()).prop_map(|(p, n)| Op::Unlink(p, n)),
        (any::<usize>(), n.clone()).prop_map(|(p, n)| Op::Rmdir(p, n)),
        (
            any::<usize>(),
            n.clone(),
            any::<usize>(),
            n,
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(p, a, q, b, nr, ex)| Op::Rename(p, a, q, b, nr, ex)),
        (any::<usize>(), 0..450u64, proptest::option::of(c.clone()))
            .prop_map(|(i, s, c)| Op::Truncate(i, s, c)),
        (any::<usize>(), c.clone()).prop_map(|(i, c)| Op::Open(i, c)),
        (any::<usize>(), c.clone()).prop_map(|(i, c)| Op::Release(i, c)),
        (any::<usize>(), c.clone(), 0..5u64).prop_map(|(i, c, x)| Op::Allocate(i, c, x)),
        (any::<usize>(), c, 0..450u64, any::<bool>())
            .prop_map(|(i, c, s, r)| Op::Commit(i, c, s, r)),
        (0..8i64).prop_map(Op::Tick),
        Just(Op::Expire),
    ]
}

impl Fx {
    fn pick(&self, sel: usize) -> InodeId {
        let inodes = &self.ns.state.inodes;
        inodes
            .keys()
            .nth(sel % inodes.len())
            .copied()
            .unwrap_or(InodeId::ROOT)
    }

    /// A plausible commit: the lease's newest pending block for each index, else the committed
    /// one, cut to `size`.
    fn plausible_commit(&self, ino: InodeId, c: &str, size: u64, release: bool) -> Command {
        let committed = self.ns.file_blocks(ino).map(|(_, b)| b).unwrap_or_default();
        let mut pending: BTreeMap<u64, BlockInfo> = BTreeMap::new();
        if let Some(lease) = self.ns.state.leases.get(&ino) {
            for p in &lease.pending {
                pending.insert(p.index, p.block);
            }
        }
        let blocks = (0..size.div_ceil(BS))
            .map(|i| {
                let room = (size - i * BS).min(BS);
                if let Some(p) = pending.get(&i) {
                    BlockInfo { len: room, ..*p }
                } else if let Some(c) = committed.get(i as usize).filter(|b| !b.is_hole()) {
                    BlockInfo {
                        len: c.len.min(room),
                        ..*c
                    }
                } else {
                    BlockInfo::HOLE
                }
            })
            .collect();
        commit_cmd(ino, c, blocks, size, release)
    }

    fn command(&mut self, op: &Op) -> Option<Command> {
        let cmd = match *op {
            Op::Create(p, n, c) => {
                create_cmd(self.pick(p), NAMES[n], c.map(|c| client(CLIENTS[c])))
            }
            Op::Mkdir(p, n) => mkdir_cmd(self.pick(p), NAMES[n]),
            Op::Symlink(p, n) => Command::Symlink {
                parent: self.pick(p),
                name: name(NAMES[n]),
                target: "t".into(),
                uid: 0,
                gid: 0,
            },
            Op::Link(i, p, n) => Command::Link {
                ino: self.pick(i),
                new_parent: self.pick(p),
                new_name: name(NAMES[n]),
            },
            Op::Unlink(p, n) => unlink_cmd(self.pick(p), NAMES[n]),
            Op::Rmdir(p, n) => Command::Rmdir {
                parent: self.pick(p),
                name: name(NAMES[n]),
            },
            Op::Rename(p, a, q, b, noreplace, exchange) => Command::Rename {
                parent: self.pick(p),
                name: name(NAMES[a]),
                new_parent: self.pick(q),
                new_name: name(NAMES[b]),
                noreplace,
                exchange,
            },
            Op::Truncate(i, s, c) => truncate_cmd(self.pick(i), s, c.map(|c| CLIENTS[c])),
            Op::Open(i, c) => Command::OpenWrite {
                ino: self.pick(i),
                client: client(CLIENTS[c]),
            },
            Op::Release(i, c) => Command::ReleaseLease {
                ino: self.pick(i),
                client: client(CLIENTS[c]),
            },
            Op::Allocate(i, c, index) => Command::AllocateBlock {
                ino: self.pick(i),
                client: client(CLIENTS[c]),
                index,
                locations: Vec::new(),
            },
            Op::Commit(i, c, s, r) => self.plausible_commit(self.pick(i), CLIENTS[c], s, r),
            Op::Tick(s) => {
                self.tick(s);
                return None;
            }
            Op::Expire => Command::ExpireLeases,
        };
        Some(cmd)
    }

    /// Link counts, entry counts, parent pointers and leases agree with the directory tree.
    fn check_invariants(&self) {
        let inodes = &self.ns.state.inodes;
        let mut links: BTreeMap<InodeId, u32> = BTreeMap::new();
        for (ino, inode) in inodes {
            let Some(dir) = inode.as_dir() else { continue };
            let mut subdirs = 0;
            for child in dir.entries.values() {
                let c = inodes.get(child).expect("entry names a live inode");
                if let Some(cd) = c.as_dir() {
                    subdirs += 1;
                    assert_eq!(cd.parent, *ino, "subdirectory parent pointer");
                }
                *links.entry(*child).or_default() += 1;
            }
            assert_eq!(inode.nlink, 2 + subdirs, "directory {ino} link count");
        }
        for (ino, inode) in inodes {
            if inode.is_dir() {
                let expected = if *ino == InodeId::ROOT { 0 } else { 1 };
                assert_eq!(
                    links.get(ino).copied().unwrap_or(0),
                    expected,
                    "dir {ino} entries"
                );
                continue;
            }
            assert_eq!(
                inode.nlink,
                links.get(ino).copied().unwrap_or(0),
                "inode {ino} nlink"
            );
            if inode.nlink == 0 {
                assert!(
                    self.ns.state.leases.contains_key(ino),
                    "unlinked {ino} without lease"
                );
            }
        }
        for ino in self.ns.state.leases.keys() {
            assert!(
                inodes.get(ino).and_then(|i| i.as_file()).is_some(),
                "lease on non-file"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn random_commands_keep_invariants_and_replay_identically(ops in proptest::collection::vec(op(), 1..80)) {
        let mut fx = Fx::new();
        let mut log = Vec::new();
        for op in &ops {
            if let Some(cmd) = fx.command(op) {
                log.push(Proposal {
                    now: fx.now,
                    cmd: cmd.clone(),
                    caller: Identity::root(),
                });
                let _ = fx.apply(cmd);
                fx.check_invariants();
            }
        }
        let mut replay = Namespace::new(config());
        for p in &log {
            let _ = replay.apply(p);
        }
        prop_assert_eq!(
            serde_json::to_string(&replay).expect("serialize"),
            serde_json::to_string(&fx.ns).expect("serialize")
        );
        let loaded: Namespace =
            serde_json::from_str(&serde_json::to_string(&fx.ns).expect("serialize")).expect("load");
        prop_assert!(loaded.index_is_consistent());
    }
}
