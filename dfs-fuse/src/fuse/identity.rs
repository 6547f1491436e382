//! The identity of a FUSE request: the uid and gid the kernel gives, and the supplementary
//! groups of the requesting process, read from `/proc/PID/status` (the kernel does not send
//! them) and kept for a second per pid so a burst of requests reads the file once.

use crate::fs::Caller;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a process's groups are trusted (a process rarely changes them; a pid is rarely
/// reused within a second).
const GROUPS_TTL: Duration = Duration::from_secs(1);
/// Most processes remembered; the cache starts over beyond this.
const MAX_CACHED: usize = 4096;

/// Supplementary groups by pid, with when they were read.
#[derive(Default)]
pub(super) struct Callers {
    groups: Mutex<HashMap<u32, (Instant, Vec<u32>)>>,
}

impl Callers {
    /// Who sent a request with these ids. Root needs no groups (it passes every group check),
    /// so its requests read nothing.
    pub fn of(&self, uid: u32, gid: u32, pid: u32) -> Caller {
        if uid == 0 {
            return Caller::new(0, gid, Vec::new());
        }
        Caller::new(uid, gid, self.groups(pid))
    }

    fn groups(&self, pid: u32) -> Vec<u32> {
        let now = Instant::now();
        {
            let cache = self.groups.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, groups)) = cache.get(&pid)
                && now.duration_since(*at) < GROUPS_TTL
            {
                return groups.clone();
            }
        }
        // A process gone already (or a request from the kernel itself) has no groups to add.
        let groups = dfs_client::identity::groups_of(pid).unwrap_or_default();
        let mut cache = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(pid, (now, groups.clone()));
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_carries_its_process_groups() {
        let callers = Callers::default();
        let me = std::process::id();
        let expected = dfs_client::identity::groups_of(me).expect("own status");
        let who = callers.of(1000, 100, me);
        assert_eq!((who.uid, who.gid, who.groups), (1000, 100, expected));
        assert!(callers.of(0, 0, me).groups.is_empty());
        // A pid that does not exist has no groups.
        assert!(callers.of(5, 5, u32::MAX).groups.is_empty());
    }
}
