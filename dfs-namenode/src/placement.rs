//! Block placement: which datanodes a new block's pipeline (or a replication copy) goes to.
//! Distinct live datanodes with room for a whole block, never an excluded or decommissioning
//! one (a full datanode takes no new blocks), favouring free space and low load. The
//! pick is a weighted random draw among the best candidates, so that one client's consecutive
//! blocks spread over the cluster instead of all landing on the emptiest node.

use crate::datanodes::{AdminState, DatanodeInfo};
use dfs_proto::DatanodeId;
use dfs_proto::rest::DatanodeAddr;
use rand::Rng;

/// Why no pipeline could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("no live datanode")]
    NoLiveDatanodes,
    #[error("no live datanode has room for a block of {0} bytes")]
    NoSpace(u64),
}

/// How desirable a datanode is: its free space, discounted by the transfers it is busy with.
fn weight(node: &DatanodeInfo) -> f64 {
    node.remaining as f64 / (1.0 + f64::from(node.active_transfers))
}

/// Picks up to `replication` distinct datanodes from `live` for a block of `block_size` bytes.
/// Fewer than `replication` when fewer qualify; an error when none do.
pub fn choose_pipeline(
    live: &[DatanodeInfo],
    block_size: u64,
    replication: u32,
    exclude: &[DatanodeId],
    rng: &mut impl Rng,
) -> Result<Vec<DatanodeAddr>, PlacementError> {
    if live.is_empty() {
        return Err(PlacementError::NoLiveDatanodes);
    }
    let mut candidates: Vec<&DatanodeInfo> = live
        .iter()
        .filter(|n| n.admin == AdminState::Normal)
        .filter(|n| n.remaining > block_size && !exclude.contains(&n.id))
        .collect();
    if candidates.is_empty() {
        return Err(PlacementError::NoSpace(block_size));
    }
    // The best twice-as-many-as-needed compete; the rest are left out so that a nearly full
    // or overloaded node is not picked by luck.
    candidates.sort_by(|a, b| weight(b).total_cmp(&weight(a)));
    let wanted = replication as usize;
    candidates.truncate(wanted.saturating_mul(2).max(wanted + 1));

    let mut chosen = Vec::with_capacity(wanted);
    while chosen.len() < wanted && !candidates.is_empty() {
        let total: f64 = candidates.iter().map(|n| weight(n).max(1.0)).sum();
        let mut point = rng.random::<f64>() * total;
        let mut pick = candidates.len() - 1;
        for (i, n) in candidates.iter().enumerate() {
            point -= weight(n).max(1.0);
            if point <= 0.0 {
                pick = i;
                break;
            }
        }
        chosen.push(candidates.remove(pick).addr());
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::collections::{HashMap, HashSet};
    use std::time::Instant;

    fn node(id: &str, remaining: u64, active_transfers: u32) -> DatanodeInfo {
        DatanodeInfo {
            id: DatanodeId(id.into()),
            grpc_addr: format!("{id}:9866"),
            http_addr: format!("{id}:9864"),
            local_socket: None,
            capacity: 1000,
            used: 1000 - remaining,
            remaining,
            active_transfers,
            last_heartbeat: Instant::now(),
            admin: AdminState::Normal,
        }
    }

    #[test]
    fn picks_distinct_nodes_with_room_never_excluded() {
        let mut rng = StdRng::seed_from_u64(7);
        let live = vec![
            node("a", 500, 0),
            node("b", 500, 0),
            node("c", 50, 0),
            node("d", 500, 0),
        ];
        for _ in 0..50 {
            let p = choose_pipeline(&live, 100, 3, &[DatanodeId("d".into())], &mut rng)
                .expect("room on a and b");
            let ids: HashSet<_> = p.iter().map(|a| a.id.0.clone()).collect();
            assert_eq!(ids.len(), p.len(), "distinct");
            assert_eq!(ids, HashSet::from(["a".to_string(), "b".to_string()]));
        }
    }

    #[test]
    fn errors_say_whether_nodes_are_missing_or_full() {
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(
            choose_pipeline(&[], 100, 3, &[], &mut rng),
            Err(PlacementError::NoLiveDatanodes)
        );
        assert_eq!(
            choose_pipeline(&[node("a", 10, 0)], 100, 3, &[], &mut rng),
            Err(PlacementError::NoSpace(100))
        );
    }

    #[test]
    fn blocks_spread_and_favour_free_idle_nodes() {
        let mut rng = StdRng::seed_from_u64(42);
        let live = vec![
            node("big", 900, 0),
            node("mid", 600, 0),
            node("busy", 900, 8),
            node("small", 300, 0),
        ];
        let mut firsts: HashMap<String, u32> = HashMap::new();
        for _ in 0..400 {
            let p = choose_pipeline(&live, 100, 1, &[], &mut rng).expect("room");
            *firsts.entry(p[0].id.0.clone()).or_default() += 1;
        }
        let count = |k: &str| firsts.get(k).copied().unwrap_or(0);
        assert!(count("big") > count("mid"), "{firsts:?}");
        assert!(count("mid") > 0, "spread: {firsts:?}");
        assert!(count("big") > count("busy"), "{firsts:?}");
    }
}
