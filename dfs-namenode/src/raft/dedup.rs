//! Exactly-once application of retried client requests.
//!
//! A client that loses its connection while a `POST` is in flight cannot know whether the
//! change was applied (a leader may commit it and die before answering). It retries with the
//! same request id (the `x-dfs-request-id` header); the id travels in the log entry, and the
//! state machine remembers the reply of every recently applied id. Applying an entry whose id
//! was already applied answers the remembered reply and changes nothing, so a retried create
//! answers the inode it made instead of `EEXIST`, and a retried allocation the same block.
//!
//! The memory is part of the applied state and of snapshots, so every namenode answers a retry
//! the same way. It is bounded: an id is forgotten after [`RETAIN`] (by the proposals' clocks)
//! or once [`CAPACITY`] newer ids have been applied.

use super::Response;
use crate::namespace::Proposal;
use dfs_proto::rest::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The HTTP header a client names a request with (the same value on every retry).
pub const REQUEST_ID_HEADER: &str = "x-dfs-request-id";
/// Longest request id kept; a longer header is ignored (the request is then not deduplicated).
pub const MAX_REQUEST_ID_LEN: usize = 128;
/// How long (proposal clock, seconds) an applied id is remembered: far longer than a client's
/// failover wait plus its request timeout.
pub const RETAIN_SECS: i64 = 300;
/// Most ids remembered at once.
pub const CAPACITY: usize = 50_000;

/// One Raft log entry's payload: the proposal and, for a client request, its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Flattened so that entries written before request ids existed still decode.
    #[serde(flatten)]
    pub proposal: Proposal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// One remembered reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Remembered {
    id: String,
    at: Timestamp,
    reply: Response,
}

/// Replies of recently applied requests, oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "Vec<Remembered>", into = "Vec<Remembered>")]
pub struct RecentRequests {
    /// Application order: a sequence number to the remembered reply.
    by_seq: BTreeMap<u64, Remembered>,
    by_id: HashMap<String, u64>,
    next_seq: u64,
}

impl From<Vec<Remembered>> for RecentRequests {
    fn from(list: Vec<Remembered>) -> RecentRequests {
        let mut recent = RecentRequests::default();
        for r in list {
            recent.insert(r);
        }
        recent
    }
}

impl From<RecentRequests> for Vec<Remembered> {
    fn from(recent: RecentRequests) -> Vec<Remembered> {
        recent.by_seq.into_values().collect()
    }
}

impl RecentRequests {
    /// The reply an already applied request got.
    pub fn get(&self, id: &str) -> Option<&Response> {
        self.by_id
            .get(id)
            .and_then(|seq| self.by_seq.get(seq))
            .map(|r| &r.reply)
    }

    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }

    /// Remembers `reply` for `id` (applied at `at`) and forgets what is too old or too many.
    pub fn remember(&mut self, id: String, at: Timestamp, reply: Response) {
        self.insert(Remembered { id, at, reply });
        let horizon = at.sec.saturating_sub(RETAIN_SECS);
        while let Some((&seq, oldest)) = self.by_seq.first_key_value() {
            if self.by_seq.len() <= CAPACITY && oldest.at.sec >= horizon {
                break;
            }
            if let Some(r) = self.by_seq.remove(&seq) {
                self.by_id.remove(&r.id);
            }
        }
    }

    fn insert(&mut self, r: Remembered) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(old) = self.by_id.insert(r.id.clone(), seq) {
            self.by_seq.remove(&old);
        }
        self.by_seq.insert(seq, r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespace::{Command, Reply};

    fn at(sec: i64) -> Timestamp {
        Timestamp { sec, nsec: 0 }
    }

    #[test]
    fn remembers_replies_and_forgets_old_ones() {
        let mut r = RecentRequests::default();
        r.remember("a".into(), at(1000), Ok(Reply::Empty));
        assert_eq!(r.get("a"), Some(&Ok(Reply::Empty)));
        assert_eq!(r.get("b"), None);
        r.remember("b".into(), at(1000 + RETAIN_SECS + 1), Ok(Reply::Empty));
        assert_eq!(r.get("a"), None, "older than the retention");
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn survives_a_snapshot_round_trip() {
        let mut r = RecentRequests::default();
        r.remember("a".into(), at(5), Ok(Reply::Empty));
        r.remember("b".into(), at(6), Ok(Reply::Empty));
        let json = serde_json::to_vec(&r).expect("encode");
        let back: RecentRequests = serde_json::from_slice(&json).expect("decode");
        assert_eq!(back.len(), 2);
        assert_eq!(back.get("b"), Some(&Ok(Reply::Empty)));
    }

    #[test]
    fn entries_without_an_id_still_decode() {
        let p = Proposal {
            now: at(1),
            cmd: Command::ExpireLeases,
            caller: dfs_proto::Identity::root(),
        };
        let old = serde_json::to_vec(&p).expect("encode");
        let req: Request = serde_json::from_slice(&old).expect("decode an old entry");
        assert_eq!(req.proposal, p);
        assert_eq!(req.request_id, None);
    }
}
