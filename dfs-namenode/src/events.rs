//! Recent cluster events for the status page: a bounded in-memory ring, newest last, fed where
//! things happen on this namenode (a datanode registered, lost or back, a leader elected, a
//! corrupt replica reported, re-replication started and finished). Soft state like the rest of
//! the status: a restart forgets it, and each namenode records what it observed itself.
//! Each event is also logged once, with structured fields, where it is recorded.

use crate::node::Node;
use dfs_proto::rest::Timestamp;
use std::collections::VecDeque;
use std::sync::Mutex;

/// Events kept; older ones are dropped.
pub const CAPACITY: usize = 200;

/// What kind of thing happened (the page colours rows by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    DatanodeRegistered,
    DatanodeLost,
    DatanodeBack,
    LeaderElected,
    NoLeader,
    CorruptReplica,
    ReplicationStarted,
    ReplicationFinished,
    Decommissioned,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::DatanodeRegistered => "datanode registered",
            EventKind::DatanodeLost => "datanode lost",
            EventKind::DatanodeBack => "datanode back",
            EventKind::LeaderElected => "leader elected",
            EventKind::NoLeader => "no leader",
            EventKind::CorruptReplica => "corrupt replica",
            EventKind::ReplicationStarted => "re-replication started",
            EventKind::ReplicationFinished => "re-replication finished",
            EventKind::Decommissioned => "decommissioned",
        }
    }

    /// Whether an operator should look (the page highlights these).
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            EventKind::DatanodeLost | EventKind::NoLeader | EventKind::CorruptReplica
        )
    }
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Wall-clock time on this namenode.
    pub at: Timestamp,
    pub kind: EventKind,
    pub message: String,
}

/// The ring of recent events.
#[derive(Debug, Default)]
pub struct Events {
    ring: Mutex<VecDeque<Event>>,
}

impl Events {
    pub fn new() -> Events {
        Events::default()
    }

    /// Records an event, dropping the oldest past [`CAPACITY`].
    pub fn push(&self, kind: EventKind, message: impl Into<String>) {
        let event = Event {
            at: crate::node::now(),
            kind,
            message: message.into(),
        };
        // Every update is one push and maybe one pop: the ring stays valid after a panic.
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() >= CAPACITY {
            ring.pop_front();
        }
        ring.push_back(event);
    }

    /// The recorded events, newest first.
    pub fn recent(&self) -> Vec<Event> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().rev().cloned().collect()
    }
}

/// Notices changes of leader from this namenode's Raft metrics (polled by a periodic task).
#[derive(Debug, Default)]
pub struct LeaderWatch {
    /// The leader seen last time; `None` before the first look.
    last: Option<Option<u64>>,
}

impl LeaderWatch {
    pub fn observe(&mut self, node: &Node) {
        let (leader, term) = {
            let m = node.raft.metrics();
            let m = m.borrow();
            (m.current_leader, m.current_term)
        };
        if self.last == Some(leader) {
            return;
        }
        let first = self.last.is_none();
        self.last = Some(leader);
        match leader {
            Some(id) => {
                let addr = node.leader_addr().unwrap_or_default();
                let how = if first { "leader is" } else { "new leader:" };
                tracing::info!(leader = id, leader_addr = %addr, term, "leader elected");
                node.events.push(
                    EventKind::LeaderElected,
                    format!("{how} namenode {id} ({addr}), term {term}"),
                );
            }
            None if !first => {
                tracing::warn!(term, "leader lost; election under way");
                node.events.push(
                    EventKind::NoLeader,
                    format!("leader lost; election under way (term {term})"),
                );
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_events_newest_first() {
        let events = Events::new();
        for i in 0..CAPACITY + 5 {
            events.push(EventKind::DatanodeLost, format!("event {i}"));
        }
        let recent = events.recent();
        assert_eq!(recent.len(), CAPACITY);
        assert_eq!(recent[0].message, format!("event {}", CAPACITY + 4));
        assert_eq!(recent[CAPACITY - 1].message, "event 5");
    }
}
