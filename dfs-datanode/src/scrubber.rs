//! The block scrubber: re-reads every stored replica and checks it against its checksums, paced
//! by a byte rate, so bit rot is found before a reader needs the replica. A replica that fails
//! is reported to the namenodes (`ReportBadReplicas`); the leader copies the block from a good
//! replica and then tells this datanode to delete the bad one. A pass over every replica is
//! followed by a pause before the next.

use crate::Node;
use crate::block_store::{BlockStore, Replica, StoreError};
use crate::throttle::Throttle;
use dfs_proto::TRANSFER_CHUNK;
use dfs_proto::checksum::{verify, verify_pages};
use dfs_proto::rest::{BadReplica, ReportBadReplicas, ReportBadReplicasRequest};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How the scrubber is paced.
#[derive(Debug, Clone, Copy)]
pub struct ScrubSettings {
    /// Bytes per second read; 0 turns the scrubber off.
    pub rate: u64,
    /// Pause between passes (the first pass starts after at most a minute).
    pub interval: Duration,
}

/// What checking one replica found.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Good,
    Corrupt(String),
    /// Deleted or unreadable for a reason other than its contents.
    Gone,
}

/// Reads a whole replica and checks every piece and page against the sidecar.
fn check(store: &BlockStore, replica: Replica, throttle: &Throttle) -> Verdict {
    let reader = match store.open_reader(replica) {
        Ok(r) => r,
        Err(StoreError::NotFound(_)) => return Verdict::Gone,
        Err(StoreError::Corrupt { reason, .. }) => return Verdict::Corrupt(reason),
        Err(e) => return Verdict::Corrupt(e.to_string()),
    };
    let length = reader.length();
    let mut pos = 0;
    while pos < length {
        throttle.take_blocking(TRANSFER_CHUNK as u64);
        let chunk = match reader.read_chunk(pos, TRANSFER_CHUNK) {
            Ok(c) => c,
            Err(e) => return Verdict::Corrupt(e.to_string()),
        };
        if chunk.data.is_empty() {
            return Verdict::Corrupt(format!("short read at offset {pos}"));
        }
        if let Err(e) = verify(&chunk) {
            return Verdict::Corrupt(e.to_string());
        }
        let checked = match reader.page_checksums(pos, chunk.data.len()) {
            Ok(Some(crcs)) => verify_pages(pos, &chunk.data, &crcs).map_err(|e| e.to_string()),
            Ok(None) => Ok(()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(reason) = checked {
            return Verdict::Corrupt(reason);
        }
        pos += chunk.data.len() as u64;
    }
    Verdict::Good
}

/// Runs passes until `shutdown` is cancelled.
pub async fn run(
    node: Arc<Node>,
    namenodes: Vec<String>,
    settings: ScrubSettings,
    shutdown: CancellationToken,
) {
    if settings.rate == 0 {
        tracing::info!("scrubber off");
        return;
    }
    let throttle = Arc::new(Throttle::new(settings.rate));
    let mut reported: HashSet<Replica> = HashSet::new();
    let mut pause = settings.interval.min(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = settings.interval;
        let store = Arc::clone(&node.store);
        let Ok(replicas) = tokio::task::spawn_blocking(move || store.list()).await else {
            continue;
        };
        let (mut checked, mut bad) = (0usize, 0usize);
        let present: HashSet<Replica> = replicas
            .iter()
            .map(|b| Replica {
                id: b.id,
                generation: b.generation,
            })
            .collect();
        reported.retain(|r| present.contains(r));
        for replica in present {
            if shutdown.is_cancelled() {
                return;
            }
            if reported.contains(&replica) {
                continue;
            }
            let (store, t) = (Arc::clone(&node.store), Arc::clone(&throttle));
            let verdict =
                match tokio::task::spawn_blocking(move || check(&store, replica, &t)).await {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(error = %e, "scrub task failed");
                        continue;
                    }
                };
            checked += 1;
            node.metrics.scrub_checked.increment(1);
            if let Verdict::Corrupt(reason) = verdict {
                bad += 1;
                node.metrics.scrub_corrupt.increment(1);
                tracing::warn!(%replica, %reason, "scrubber found a corrupt replica");
                if report(&node, &namenodes, replica).await {
                    reported.insert(replica);
                }
            }
        }
        tracing::info!(checked, bad, "scrub pass done");
    }
}

/// Tells every namenode (the leader acts on it); true if some namenode took it.
async fn report(node: &Node, namenodes: &[String], replica: Replica) -> bool {
    let request = ReportBadReplicasRequest {
        replicas: vec![BadReplica {
            block: replica.into(),
            datanode: node.store.datanode_id().clone(),
        }],
    };
    let mut taken = false;
    for namenode in namenodes {
        match node
            .rest
            .post::<ReportBadReplicas>(namenode, &request)
            .await
        {
            Ok(_) => taken = true,
            Err(e) => tracing::debug!(%namenode, error = %e, "bad replica report not taken"),
        }
    }
    taken
}
