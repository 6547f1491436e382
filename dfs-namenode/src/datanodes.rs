//! The datanode registry: soft state, never persisted, rebuilt from registrations and
//! heartbeats. Every namenode (leader or follower) keeps one, so a new leader already knows
//! which datanodes are alive.

use dfs_proto::DatanodeId;
use dfs_proto::rest::{DatanodeAddr, HeartbeatRequest, RegisterDatanodeRequest};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the namenode knows of one datanode.
#[derive(Debug, Clone)]
pub struct DatanodeInfo {
    pub id: DatanodeId,
    pub grpc_addr: String,
    pub http_addr: String,
    /// Its local read socket, handed to clients with its address.
    pub local_socket: Option<String>,
    pub capacity: u64,
    pub used: u64,
    pub remaining: u64,
    /// Block reads and writes in progress (placement prefers idle nodes).
    pub active_transfers: u32,
    pub last_heartbeat: Instant,
    /// Whether the operator is draining it (kept across re-registrations).
    pub admin: AdminState,
}

/// What the operator asked of a datanode (`dfs admin decommission`). Soft state like the rest
/// of the registry: it lives on the leader that was asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AdminState {
    /// Takes new blocks; its replicas count.
    #[default]
    Normal,
    /// Takes no new blocks; its replicas are read and copied but do not count.
    Decommissioning,
    /// Every block it held has enough replicas elsewhere: safe to remove.
    Decommissioned,
}

impl DatanodeInfo {
    pub fn addr(&self) -> DatanodeAddr {
        DatanodeAddr {
            id: self.id.clone(),
            grpc: self.grpc_addr.clone(),
            local_socket: self.local_socket.clone(),
        }
    }
}

/// Every datanode this namenode has heard from.
#[derive(Debug)]
pub struct Datanodes {
    nodes: Mutex<HashMap<DatanodeId, DatanodeInfo>>,
    /// A datanode whose last heartbeat is older than this is dead.
    dead_after: Duration,
    /// When this registry started listening: every live datanode has registered and reported
    /// its blocks by `dead_after` later.
    since: Instant,
}

impl Datanodes {
    pub fn new(dead_after: Duration) -> Datanodes {
        Datanodes {
            nodes: Mutex::new(HashMap::new()),
            dead_after,
            since: Instant::now(),
        }
    }

    /// Whether live datanodes may still be unheard of: this namenode (or its Raft node, after
    /// a promotion) started less than `dead_after` ago, so a block without known replicas may
    /// yet be reported rather than missing. (HDFS's safe mode plays this part.)
    pub fn still_learning(&self) -> Option<Duration> {
        self.dead_after.checked_sub(self.since.elapsed())
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, HashMap<DatanodeId, DatanodeInfo>> {
        // The map stays consistent even if a holder panicked: every update is one insert.
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds or refreshes a datanode (a registration counts as a heartbeat).
    pub fn register(&self, req: &RegisterDatanodeRequest) {
        let mut nodes = self.nodes();
        let admin = nodes.get(&req.id).map(|i| i.admin).unwrap_or_default();
        let info = DatanodeInfo {
            id: req.id.clone(),
            grpc_addr: req.grpc_addr.clone(),
            http_addr: req.http_addr.clone(),
            local_socket: req.local_socket.clone(),
            capacity: req.capacity,
            used: req.used,
            remaining: req.remaining,
            active_transfers: 0,
            last_heartbeat: Instant::now(),
            admin,
        };
        nodes.insert(req.id.clone(), info);
    }

    /// Sets a datanode's admin state; `false` if the datanode is unknown.
    pub fn set_admin(&self, id: &DatanodeId, admin: AdminState) -> bool {
        match self.nodes().get_mut(id) {
            Some(info) => {
                info.admin = admin;
                true
            }
            None => false,
        }
    }

    /// Records a heartbeat; `false` when the datanode is unknown (it must register again).
    pub fn heartbeat(&self, req: &HeartbeatRequest) -> bool {
        let mut nodes = self.nodes();
        let Some(info) = nodes.get_mut(&req.id) else {
            return false;
        };
        info.capacity = req.capacity;
        info.used = req.used;
        info.remaining = req.remaining;
        info.active_transfers = req.active_transfers;
        info.last_heartbeat = Instant::now();
        true
    }

    pub fn is_live(&self, info: &DatanodeInfo, now: Instant) -> bool {
        now.saturating_duration_since(info.last_heartbeat) <= self.dead_after
    }

    /// When the next live datanode will count as dead if it stays silent.
    pub fn next_death(&self) -> Option<Instant> {
        let now = Instant::now();
        self.nodes()
            .values()
            .filter(|i| self.is_live(i, now))
            .map(|i| i.last_heartbeat + self.dead_after)
            .min()
    }

    /// Every known datanode with whether it is live, sorted by id.
    pub fn all(&self) -> Vec<(DatanodeInfo, bool)> {
        let now = Instant::now();
        let mut all: Vec<_> = self
            .nodes()
            .values()
            .map(|i| (i.clone(), self.is_live(i, now)))
            .collect();
        all.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        all
    }

    /// Live datanodes only.
    pub fn live(&self) -> Vec<DatanodeInfo> {
        self.all()
            .into_iter()
            .filter_map(|(i, live)| live.then_some(i))
            .collect()
    }

    /// Addresses of the live datanodes, by id.
    pub fn live_addrs(&self) -> HashMap<DatanodeId, DatanodeAddr> {
        self.live()
            .into_iter()
            .map(|i| (i.id.clone(), i.addr()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(id: &str) -> RegisterDatanodeRequest {
        RegisterDatanodeRequest {
            id: DatanodeId(id.into()),
            grpc_addr: format!("{id}:9866"),
            http_addr: format!("{id}:9864"),
            local_socket: None,
            capacity: 100,
            used: 0,
            remaining: 100,
        }
    }

    #[test]
    fn unknown_heartbeats_ask_for_registration_and_silence_is_death() {
        let dns = Datanodes::new(Duration::from_secs(30));
        let hb = HeartbeatRequest {
            id: DatanodeId("a".into()),
            capacity: 100,
            used: 10,
            remaining: 90,
            active_transfers: 2,
            block_count: 1,
        };
        assert!(!dns.heartbeat(&hb));
        dns.register(&register("a"));
        assert!(dns.heartbeat(&hb));
        let live = dns.live();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].remaining, 90);
        let later = Instant::now() + Duration::from_secs(31);
        assert!(!dns.is_live(&live[0], later));
    }
}
