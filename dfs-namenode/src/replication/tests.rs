//! Planning rounds on a hand-built block map and registry.

use super::*;
use crate::namespace::ReplicaStatus;
use dfs_proto::rest::{DatanodeCommand, ReplicaRef};
use dfs_proto::{BlockId, Generation};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::time::Instant;

fn dn(s: &str) -> DatanodeId {
    DatanodeId(s.into())
}

fn node(id: &str, live: bool) -> (DatanodeInfo, bool) {
    let info = DatanodeInfo {
        id: dn(id),
        grpc_addr: format!("{id}:9866"),
        http_addr: format!("{id}:9864"),
        local_socket: None,
        capacity: 1 << 30,
        used: 0,
        remaining: 1 << 30,
        active_transfers: 0,
        last_heartbeat: Instant::now(),
        admin: AdminState::Normal,
    };
    (info, live)
}

fn block(id: u64) -> BlockInfo {
    BlockInfo {
        id: BlockId(id),
        generation: Generation(1),
        len: 100,
    }
}

fn hold(map: &mut BlockMap, node: &str, blocks: &[BlockInfo]) {
    let report: Vec<_> = blocks.iter().map(|b| (*b, ReplicaStatus::Live)).collect();
    map.full_report(&dn(node), &report);
}

fn copies(map: &mut BlockMap, node: &str) -> Vec<(BlockId, Vec<String>)> {
    map.take_replications(&dn(node))
        .into_iter()
        .filter_map(|c| match c {
            DatanodeCommand::Replicate { block, targets, .. } => {
                Some((block.id, targets.into_iter().map(|t| t.id.0).collect()))
            }
            DatanodeCommand::Delete { .. } => None,
        })
        .collect()
}

#[test]
fn a_dead_nodes_blocks_are_copied_most_urgent_first_and_only_once() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut map = BlockMap::new();
    map.policy.streams_per_node = 1;
    // Block 1 lost two of three replicas, block 2 one.
    hold(&mut map, "a", &[block(1), block(2)]);
    hold(&mut map, "b", &[block(2)]);
    hold(&mut map, "c", &[block(1), block(2)]);
    hold(&mut map, "d", &[block(1)]);
    let nodes = vec![
        node("a", true),
        node("b", true),
        node("c", false),
        node("d", false),
        node("e", true),
    ];
    let now = Instant::now();
    let s = plan(&mut map, &[block(1), block(2)], &nodes, 3, now, &mut rng);
    assert_eq!(s.under_replicated, 2);
    // One stream per source: only `a` holds block 1, so it goes first and takes a's slot.
    let from_a = copies(&mut map, "a");
    assert_eq!(from_a.len(), 1);
    assert_eq!(from_a[0].0, BlockId(1));
    assert_eq!(from_a[0].1.len(), 2, "two copies wanted, to b and e");
    let from_b = copies(&mut map, "b");
    assert_eq!(from_b.len(), 1);
    assert_eq!(from_b[0].1, vec!["e".to_string()]);

    // Pending copies are not planned again.
    let s = plan(&mut map, &[block(1), block(2)], &nodes, 3, now, &mut rng);
    assert_eq!(s.copies_scheduled, 0);
    // Once the targets report, the copy is done.
    map.incremental_report(&dn("e"), &[(block(1), ReplicaStatus::Live)], &[]);
    map.incremental_report(&dn("b"), &[(block(1), ReplicaStatus::Live)], &[]);
    assert_eq!(
        map.holders(&block(1)),
        vec![dn("a"), dn("b"), dn("c"), dn("d"), dn("e")]
    );
    // Past the deadline an unconfirmed copy is planned again.
    let later = now + Duration::from_secs(3600);
    let s = plan(&mut map, &[block(2)], &nodes, 3, later, &mut rng);
    assert_eq!(s.copies_scheduled, 1);
}

#[test]
fn surplus_replicas_are_trimmed_once() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut map = BlockMap::new();
    for n in ["a", "b", "c", "d"] {
        hold(&mut map, n, &[block(1)]);
    }
    let nodes: Vec<_> = ["a", "b", "c", "d"].iter().map(|n| node(n, true)).collect();
    let now = Instant::now();
    let s = plan(&mut map, &[block(1)], &nodes, 3, now, &mut rng);
    assert_eq!(s.surplus_deleted, 1);
    assert_eq!(
        map.holders(&block(1)).len(),
        3,
        "the doomed replica stops counting"
    );
    let s = plan(&mut map, &[block(1)], &nodes, 3, now, &mut rng);
    assert_eq!(s.surplus_deleted, 0);
}

#[test]
fn a_corrupt_replica_is_replaced_then_deleted() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut map = BlockMap::new();
    for n in ["a", "b", "c"] {
        hold(&mut map, n, &[block(1)]);
    }
    let r = ReplicaRef {
        id: BlockId(1),
        generation: Generation(1),
    };
    assert!(map.mark_corrupt(&dn("b"), r));
    assert_eq!(map.holders(&block(1)), vec![dn("a"), dn("c")]);
    let nodes: Vec<_> = ["a", "b", "c", "d"].iter().map(|n| node(n, true)).collect();
    let now = Instant::now();
    let s = plan(&mut map, &[block(1)], &nodes, 3, now, &mut rng);
    assert_eq!((s.copies_scheduled, s.corrupt_deleted), (1, 0));
    let targets: Vec<_> = ["a", "c"]
        .iter()
        .flat_map(|n| copies(&mut map, n))
        .flat_map(|(_, t)| t)
        .collect();
    assert_eq!(
        targets,
        vec!["d".to_string()],
        "never onto the corrupt holder"
    );
    map.incremental_report(&dn("d"), &[(block(1), ReplicaStatus::Live)], &[]);
    let s = plan(&mut map, &[block(1)], &nodes, 3, now, &mut rng);
    assert_eq!(s.corrupt_deleted, 1);
    assert_eq!(map.take_deletes(&dn("b")), vec![r]);
}

#[test]
fn a_decommissioning_node_is_drained_then_decommissioned() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut map = BlockMap::new();
    for n in ["a", "b", "c"] {
        hold(&mut map, n, &[block(1)]);
    }
    let mut nodes: Vec<_> = ["a", "b", "c", "d"].iter().map(|n| node(n, true)).collect();
    nodes[0].0.admin = AdminState::Decommissioning;
    let now = Instant::now();
    let s = plan(&mut map, &[block(1)], &nodes, 3, now, &mut rng);
    assert_eq!(s.copies_scheduled, 1);
    assert!(s.decommissioned.is_empty());
    map.incremental_report(&dn("d"), &[(block(1), ReplicaStatus::Live)], &[]);
    let s = plan(&mut map, &[block(1)], &nodes, 3, now, &mut rng);
    assert_eq!(s.decommissioned, vec![dn("a")]);
    assert_eq!(s.surplus_deleted, 0, "the drained replica is left alone");
}

#[test]
fn one_rounds_copies_spread_over_the_targets() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut map = BlockMap::new();
    // Twelve blocks lost their replica on `x`; each still has `a` and `b`, so any of c-f
    // may take the copy.
    let blocks: Vec<_> = (1..=12).map(block).collect();
    for n in ["a", "b", "x"] {
        hold(&mut map, n, &blocks);
    }
    let mut nodes: Vec<_> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|n| node(n, true))
        .collect();
    nodes.push(node("x", false));
    let s = plan(&mut map, &blocks, &nodes, 3, Instant::now(), &mut rng);
    assert_eq!(s.copies_scheduled, 12);
    let mut received: HashMap<String, usize> = HashMap::new();
    for source in ["a", "b"] {
        for (_, targets) in copies(&mut map, source) {
            for t in targets {
                *received.entry(t).or_default() += 1;
            }
        }
    }
    assert_eq!(received.len(), 4, "every target gets copies: {received:?}");
    assert!(
        received.values().all(|n| (2..=4).contains(n)),
        "three copies each, give or take one: {received:?}"
    );
}
