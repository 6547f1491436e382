//! `dfs admin ha promote`: the surviving namenode of a two-namenode group becomes its only voter.
//!
//! Two voters cannot elect after losing one: a majority of two is two. Raft's own membership
//! change needs that majority too, so the survivor's membership is changed outside Raft, on its
//! own disk: the request is checked and written as a marker file ([`request`]), the namenode
//! restarts its Raft node in-process, and before the log is opened again [`apply_pending`]
//! appends a membership entry naming the survivor alone, in a term above every term seen, with a
//! vote for itself. On start the survivor is a one-voter group, elects itself and commits
//! everything in its log (all that the old pair had acknowledged is there: each entry was
//! durable on both).
//!
//! The risk is the one HDFS's manual failover has without fencing: if the other namenode is in
//! fact alive but unreachable, both may accept writes and diverge. The API refuses while the
//! other answers; after promoting, the other must not be started on its old data directory
//! (empty it and `dfs admin ha add` it back).

use super::log_store::{LogDb, LogStoreError};
use super::{Entry, LogId, NodeId};
use openraft::{BasicNode, CommittedLeaderId, EntryPayload, Membership, Vote};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The marker file in the data directory: a promotion asked for and not yet carried out.
const MARKER: &str = "promote.json";

/// What the marker holds: the namenode that becomes the only voter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    pub node_id: NodeId,
    pub addr: String,
}

/// Why a promotion could not be recorded or carried out.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("promotion marker {path} is unreadable: {source}")]
    Marker {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("raft log: {0}")]
    Log(#[from] LogStoreError),
    #[error("the raft log is empty: there is nothing to promote")]
    EmptyLog,
}

fn marker(data_dir: &Path) -> PathBuf {
    data_dir.join(MARKER)
}

/// Records that `promotion` is to be carried out at the next start of the Raft node (durably:
/// the file is written, fsynced and renamed into place, and the directory fsynced).
pub fn request(data_dir: &Path, promotion: &Promotion) -> Result<(), PromoteError> {
    let path = marker(data_dir);
    let io = |source| PromoteError::Io {
        path: path.clone(),
        source,
    };
    let bytes = serde_json::to_vec(promotion).map_err(|e| io(std::io::Error::other(e)))?;
    super::snapshot_file::durable_write(&path, &[&bytes])
        .map_err(|e| io(std::io::Error::other(e.to_string())))
}

/// Carries out a recorded promotion, if any, on the log at `db`: answers the membership entry
/// it appended. The marker is removed only once the entry is durable, so a crash in between
/// carries the promotion out at the next start instead.
pub fn apply_pending(data_dir: &Path, db: &LogDb) -> Result<Option<Promotion>, PromoteError> {
    let path = marker(data_dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(PromoteError::Io { path, source }),
    };
    let promotion: Promotion =
        serde_json::from_slice(&bytes).map_err(|source| PromoteError::Marker {
            path: path.clone(),
            source,
        })?;
    let entry = single_voter_entry(db, &promotion)?;
    let vote = Vote::new(entry.log_id.leader_id.term, promotion.node_id);
    db.commit_batch(|b| {
        b.append(std::slice::from_ref(&entry))?;
        b.vote(&vote)
    })?;
    std::fs::remove_file(&path).map_err(|source| PromoteError::Io {
        path: path.clone(),
        source,
    })?;
    tracing::warn!(
        node_id = promotion.node_id,
        log_id = %entry.log_id,
        "promoted: this namenode is now the only voter"
    );
    Ok(Some(promotion))
}

/// The membership entry that makes `p` the only voter: after the last entry, in a term above
/// both the last entry's and the last vote's.
fn single_voter_entry(db: &LogDb, p: &Promotion) -> Result<Entry, PromoteError> {
    let last: LogId = db.log_state()?.last_log_id.ok_or(PromoteError::EmptyLog)?;
    let voted = db.vote()?.map_or(0, |v| v.leader_id.term);
    let term = last.leader_id.term.max(voted) + 1;
    let membership = Membership::new(
        vec![BTreeSet::from([p.node_id])],
        BTreeMap::from([(
            p.node_id,
            BasicNode {
                addr: p.addr.clone(),
            },
        )]),
    );
    Ok(Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, p.node_id), last.index + 1),
        payload: EntryPayload::Membership(membership),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership_entry(term: u64, index: u64) -> Entry {
        let nodes = BTreeMap::from([
            (1, BasicNode { addr: "a:1".into() }),
            (2, BasicNode { addr: "b:2".into() }),
        ]);
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Membership(Membership::new(vec![BTreeSet::from([1, 2])], nodes)),
        }
    }

    #[test]
    fn a_promotion_appends_a_single_voter_membership_in_a_new_term() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = LogDb::open(&dir.path().join("raft.redb")).expect("open log");
        db.commit_batch(|b| {
            b.append(&[membership_entry(3, 1), membership_entry(3, 2)])?;
            b.vote(&Vote::new(5, 1))
        })
        .expect("write log");

        assert_eq!(
            apply_pending(dir.path(), &db).expect("nothing pending"),
            None
        );
        let p = Promotion {
            node_id: 2,
            addr: "b:2".into(),
        };
        request(dir.path(), &p).expect("request");
        assert_eq!(apply_pending(dir.path(), &db).expect("apply"), Some(p));

        let last = db
            .entries((std::ops::Bound::Included(3), std::ops::Bound::Unbounded))
            .expect("read log");
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].log_id.index, 3);
        assert_eq!(last[0].log_id.leader_id.term, 6);
        let EntryPayload::Membership(m) = &last[0].payload else {
            panic!("not a membership entry: {:?}", last[0].payload);
        };
        assert_eq!(m.voter_ids().collect::<Vec<_>>(), vec![2]);
        assert_eq!(db.vote().expect("vote"), Some(Vote::new(6, 2)));
        // Carried out once: the marker is gone.
        assert_eq!(apply_pending(dir.path(), &db).expect("done"), None);
    }

    #[test]
    fn an_empty_log_cannot_be_promoted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = LogDb::open(&dir.path().join("raft.redb")).expect("open log");
        let p = Promotion {
            node_id: 1,
            addr: "a:1".into(),
        };
        request(dir.path(), &p).expect("request");
        assert!(matches!(
            apply_pending(dir.path(), &db),
            Err(PromoteError::EmptyLog)
        ));
    }
}
