//! Determinism and snapshots: the same proposals give byte-identical state, and a namespace
//! survives a serde round trip and keeps working.

use super::*;

const ROOT: InodeId = InodeId::ROOT;

/// A mixed workload touching every kind of state.
fn workload() -> Vec<Proposal> {
    let mut fx = Fx::new();
    let mut log = Vec::new();
    let mut run = |fx: &mut Fx, cmd: Command| {
        log.push(Proposal {
            now: fx.now,
            cmd: cmd.clone(),
            caller: Identity::root(),
        });
        let _ = fx.apply(cmd);
        fx.tick(1);
    };
    for i in 0..5 {
        run(&mut fx, mkdir_cmd(ROOT, &format!("d{i}")));
        run(
            &mut fx,
            create_cmd(InodeId(2 + 2 * i), "f", Some(client("c"))),
        );
    }
    for index in 0..3 {
        run(
            &mut fx,
            Command::AllocateBlock {
                ino: InodeId(3),
                client: client("c"),
                index,
                locations: Vec::new(),
            },
        );
    }
    run(
        &mut fx,
        commit_cmd(
            InodeId(3),
            "c",
            vec![BlockInfo {
                id: BlockId(1),
                generation: Generation(1),
                len: 100,
            }],
            100,
            false,
        ),
    );
    run(
        &mut fx,
        Command::Symlink {
            parent: ROOT,
            name: name("s"),
            target: "/d0/f".into(),
            uid: 0,
            gid: 0,
        },
    );
    run(&mut fx, unlink_cmd(InodeId(4), "f"));
    run(
        &mut fx,
        Command::Rename {
            parent: ROOT,
            name: name("d1"),
            new_parent: InodeId(2),
            new_name: name("moved"),
            noreplace: false,
            exchange: false,
        },
    );
    run(&mut fx, truncate_cmd(InodeId(3), 50, Some("c")));
    log
}

#[test]
fn same_proposals_give_identical_state() {
    let log = workload();
    let mut a = Namespace::new(config());
    let mut b = Namespace::new(config());
    let mut replies_a = Vec::new();
    let mut replies_b = Vec::new();
    for p in &log {
        replies_a.push(a.apply(p));
    }
    for p in &log {
        replies_b.push(b.apply(p));
    }
    assert_eq!(replies_a, replies_b);
    assert!(replies_a.iter().all(Result::is_ok), "{replies_a:?}");
    let ja = serde_json::to_string(&a).expect("serialize");
    let jb = serde_json::to_string(&b).expect("serialize");
    assert_eq!(ja, jb);
    assert_eq!(a.take_freed_blocks(), b.take_freed_blocks());
}

#[test]
fn snapshot_round_trip_keeps_working() {
    let mut fx = Fx::new();
    for p in workload() {
        fx.now = p.now;
        let _ = fx.apply(p.cmd);
    }
    let json = serde_json::to_string(&fx.ns).expect("serialize");
    let mut loaded: Namespace = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(serde_json::to_string(&loaded).expect("serialize"), json);
    assert!(loaded.index_is_consistent(), "index rebuilt on load");
    assert_eq!(loaded.stats(), fx.ns.stats());
    assert_eq!(
        loaded.replica_status(BlockId(1), Generation(1)),
        ReplicaStatus::Live
    );
    assert_eq!(
        loaded.replica_status(BlockId(2), Generation(2)),
        ReplicaStatus::Live,
        "pending blocks survive in the lease"
    );
    let highest_ino = fx.ns.state.next_inode;
    let now = fx.now;
    let attr = match loaded.apply(&Proposal {
        now,
        cmd: create_cmd(ROOT, "after", Some(client("c"))),
        caller: Identity::root(),
    }) {
        Ok(Reply::Attr(a)) => a,
        other => panic!("create after load: {other:?}"),
    };
    assert_eq!(attr.ino.0, highest_ino);
    let located = loaded.apply(&Proposal {
        now,
        cmd: Command::AllocateBlock {
            ino: attr.ino,
            client: client("c"),
            index: 0,
            locations: Vec::new(),
        },
        caller: Identity::root(),
    });
    match located {
        Ok(Reply::Located(l)) => {
            assert_eq!(l.block.id.0, fx.ns.state.next_block);
            assert_eq!(l.block.generation.0, fx.ns.state.next_generation);
        }
        other => panic!("allocate after load: {other:?}"),
    }
}
