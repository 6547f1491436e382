//! Leader leases for reads: after a quorum has confirmed this node's leadership, reads for a
//! while after need no new confirmation.
//!
//! A follower that acknowledged the leader's heartbeat refuses to vote for anyone else until its
//! own election timeout has run since (openraft's leader lease), and a candidate needs a vote
//! from a quorum that includes such a follower. So no other leader can exist until at least
//! `election_timeout_min` after a confirmation was asked for. A lease of half that, counted
//! from when the confirmation was asked for, leaves a wide margin for clock-rate differences.
//! Writes acknowledged by this leader are applied here before they are acknowledged, and the
//! first confirmation of a term waits until the entries of earlier terms are applied, so a read
//! under the lease sees every acknowledged change: it stays linearizable.

use super::Raft;
use openraft::ServerState;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct ReadLease {
    /// How long a confirmation lasts.
    length: Duration,
    /// The term of the last confirmation, and until when it lasts.
    held: Mutex<Option<(u64, Instant)>>,
}

impl ReadLease {
    /// Leases of half of `election_timeout_min`.
    pub fn new(election_timeout_min: Duration) -> ReadLease {
        ReadLease {
            length: election_timeout_min / 2,
            held: Mutex::new(None),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<(u64, Instant)>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a read may be served now without confirming leadership: a lease of the current
    /// term is running and this node still leads.
    pub fn holds(&self, raft: &Raft) -> bool {
        let Some((term, until)) = *self.held() else {
            return false;
        };
        if Instant::now() >= until {
            return false;
        }
        let metrics = raft.metrics();
        let m = metrics.borrow();
        m.state == ServerState::Leader && m.current_term == term
    }

    /// Records a confirmation of leadership in `term` that was asked for at `asked`.
    pub fn confirmed(&self, term: u64, asked: Instant) {
        let until = asked + self.length;
        let mut held = self.held();
        match *held {
            Some((t, u)) if t == term && u >= until => {}
            _ => *held = Some((term, until)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_runs_from_when_confirmation_was_asked_for() {
        let lease = ReadLease::new(Duration::from_millis(600));
        assert!(lease.held().is_none());
        let asked = Instant::now();
        lease.confirmed(3, asked);
        assert_eq!(*lease.held(), Some((3, asked + Duration::from_millis(300))));
        // An older confirmation never shortens a running lease.
        lease.confirmed(3, asked - Duration::from_millis(100));
        assert_eq!(*lease.held(), Some((3, asked + Duration::from_millis(300))));
        // A new term replaces it.
        lease.confirmed(4, asked - Duration::from_millis(100));
        assert_eq!(*lease.held(), Some((4, asked + Duration::from_millis(200))));
    }
}
