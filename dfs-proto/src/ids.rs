//! Identifier newtypes. Each is a plain number or string on the wire (`serde(transparent)`).

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_u64 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_u64!(
    /// An inode number. The mount hands these to the kernel unchanged, so they are stable across
    /// remounts and clients. Never reused within a cluster.
    InodeId
);
id_u64!(
    /// A block's identity. A block keeps its id when rewritten; the generation changes.
    BlockId
);
id_u64!(
    /// A block's generation stamp. A replica whose generation is older than the namenode's is
    /// stale and is deleted.
    Generation
);
id_u64!(
    /// A namenode's Raft node id (from its configuration).
    NamenodeId
);

impl InodeId {
    /// The root directory.
    pub const ROOT: InodeId = InodeId(1);
}

macro_rules! id_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_string!(
    /// A datanode's identity: generated once when its data directory is formatted, kept in the
    /// directory, so it survives restarts and address changes.
    DatanodeId
);
id_string!(
    /// A client process (a CLI run or a mount): the holder of write leases.
    ClientId
);
