//! The namenode's REST API: one [`Endpoint`] per operation, with its method, path, request and
//! response. `GET` requests travel as a query string (so their requests are flat structs);
//! `POST` requests as a JSON body. Every error answer is an [`ApiError`](crate::ApiError).
//!
//! Names travel as plain strings and are validated by the namenode (so that a bad name is
//! answered with `EINVAL` or `ENAMETOOLONG`, not a generic parse error).

use crate::ids::{BlockId, ClientId, DatanodeId, Generation, InodeId, NamenodeId};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// How an endpoint's request travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Request as a query string; the call changes nothing.
    Get,
    /// Request as a JSON body.
    Post,
}

/// One REST operation.
pub trait Endpoint {
    const METHOD: Method;
    const PATH: &'static str;
    type Request: Serialize + DeserializeOwned + Send + Sync + 'static;
    type Response: Serialize + DeserializeOwned + Send + Sync + 'static;
}

macro_rules! endpoints {
    ($($(#[$doc:meta])* $name:ident: $method:ident $path:literal, $req:ty => $resp:ty;)*) => {
        $(
            $(#[$doc])*
            pub struct $name;
            impl Endpoint for $name {
                const METHOD: Method = Method::$method;
                const PATH: &'static str = $path;
                type Request = $req;
                type Response = $resp;
            }
        )*
    };
}

endpoints! {
    /// Cluster-wide settings and who leads.
    ClusterInfo: Get "/v1/cluster", Empty => ClusterInfoResponse;
    /// Attributes of an inode.
    GetAttr: Get "/v1/getattr", InodeRequest => Attr;
    /// `access(2)`: answers the inode's attributes if the caller may access it as `mask` asks
    /// (`R_OK` 4, `W_OK` 2, `X_OK` 1; 0 only checks existence), `EACCES` otherwise.
    Access: Get "/v1/access", AccessRequest => Attr;
    /// Looks a name up in a directory.
    Lookup: Get "/v1/lookup", LookupRequest => Attr;
    /// Resolves an absolute path (symlinks are not followed).
    Resolve: Get "/v1/resolve", ResolveRequest => Attr;
    /// One page of a directory, in name order, with each entry's attributes.
    ReadDir: Get "/v1/readdir", ReadDirRequest => ReadDirResponse;
    /// Creates a regular file or FIFO; with `lease`, the caller also holds its write lease.
    Create: Post "/v1/create", CreateRequest => Attr;
    Mkdir: Post "/v1/mkdir", MkdirRequest => Attr;
    Symlink: Post "/v1/symlink", SymlinkRequest => Attr;
    ReadLink: Get "/v1/readlink", InodeRequest => ReadLinkResponse;
    /// Adds a hard link to an existing non-directory inode.
    Link: Post "/v1/link", LinkRequest => Attr;
    /// Removes a non-directory entry; answers the inode's attributes after (nlink may be 0).
    Unlink: Post "/v1/unlink", EntryRequest => Attr;
    Rmdir: Post "/v1/rmdir", EntryRequest => Empty;
    Rename: Post "/v1/rename", RenameRequest => Empty;
    /// chmod, chown, utimens and truncate (`size`).
    SetAttr: Post "/v1/setattr", SetAttrRequest => Attr;
    StatFs: Get "/v1/statfs", Empty => StatFsResponse;
    /// Takes the write lease on a file (re-entrant for the same client).
    OpenWrite: Post "/v1/lease/open", LeaseRequest => OpenWriteResponse;
    /// Renews every lease the client holds.
    RenewLease: Post "/v1/lease/renew", RenewLeaseRequest => Empty;
    ReleaseLease: Post "/v1/lease/release", LeaseRequest => Empty;
    /// Allocates block `index` of a file (a new block, or a new generation of the block already
    /// there) and the pipeline of datanodes to write it to.
    AllocateBlock: Post "/v1/block/allocate", AllocateBlockRequest => LocatedBlock;
    /// Makes a file's new block list and size visible, atomically.
    Commit: Post "/v1/file/commit", CommitRequest => Attr;
    /// The blocks of a file that overlap a byte range, with the datanodes holding each.
    GetBlocks: Get "/v1/blocks", GetBlocksRequest => FileBlocks;

    /// A datanode announces itself (at start, and when a namenode asks it to again).
    RegisterDatanode: Post "/v1/datanode/register", RegisterDatanodeRequest => RegisterDatanodeResponse;
    /// Periodic liveness and load; the answer carries commands from the leader.
    Heartbeat: Post "/v1/datanode/heartbeat", HeartbeatRequest => HeartbeatResponse;
    /// Waits (a long poll) until the leader has commands for the datanode, or the asked time
    /// passes: work planned between heartbeats starts at once.
    CommandPoll: Post "/v1/datanode/commands", CommandPollRequest => CommandPollResponse;
    /// Every replica the datanode holds.
    BlockReport: Post "/v1/datanode/block_report", BlockReportRequest => Empty;
    /// Replicas received or deleted since the last report.
    IncrementalBlockReport: Post "/v1/datanode/block_received", IncrementalBlockReportRequest => Empty;

    /// Datanodes, capacity and block health, for `dfs admin report`.
    AdminReport: Get "/v1/admin/report", Empty => ClusterReport;

    /// The value of one extended attribute (`ENODATA` if it is not set).
    GetXattr: Get "/v1/xattr/get", XattrRequest => XattrValue;
    /// The names of an inode's extended attributes, in name order.
    ListXattr: Get "/v1/xattr/list", InodeRequest => XattrNames;
    /// Sets an extended attribute (only the `user.` namespace is stored).
    SetXattr: Post "/v1/xattr/set", SetXattrRequest => Empty;
    /// Removes an extended attribute (`ENODATA` if it is not set).
    RemoveXattr: Post "/v1/xattr/remove", XattrRequest => Empty;
}

/// A request or response with no fields (`{}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// A point in time, as `struct timespec`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Timestamp {
    pub sec: i64,
    pub nsec: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
}

/// An inode's attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attr {
    pub ino: InodeId,
    pub kind: FileKind,
    /// Permission bits, including setuid, setgid and sticky (`mode & 0o7777`).
    pub perm: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    /// Bytes for files, the target's length for symlinks, entry count for directories.
    pub size: u64,
    /// The file's block size (fixed when the file is created); 0 for other kinds.
    pub block_size: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    /// Bumped on every change to a file's contents: a client may keep cached pages of a file
    /// while this is unchanged.
    pub data_version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InodeRequest {
    pub ino: InodeId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    pub ino: InodeId,
    /// `R_OK | W_OK | X_OK` bits (4, 2, 1).
    pub mask: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupRequest {
    pub parent: InodeId,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveRequest {
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadDirRequest {
    pub ino: InodeId,
    /// Start after this name (the last name of the previous page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Most entries to return; the namenode caps it (at 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    pub attr: Attr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadDirResponse {
    pub entries: Vec<DirEntry>,
    /// More entries follow the last one.
    pub more: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRequest {
    pub parent: InodeId,
    pub name: String,
    /// `File` or `Fifo`.
    pub kind: FileKind,
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    /// Take the write lease on the new file for this client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<ClientId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MkdirRequest {
    pub parent: InodeId,
    pub name: String,
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymlinkRequest {
    pub parent: InodeId,
    pub name: String,
    pub target: String,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadLinkResponse {
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRequest {
    pub ino: InodeId,
    pub new_parent: InodeId,
    pub new_name: String,
}

/// Names one entry of a directory (unlink, rmdir).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRequest {
    pub parent: InodeId,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameRequest {
    pub parent: InodeId,
    pub name: String,
    pub new_parent: InodeId,
    pub new_name: String,
    /// Fail with `EEXIST` if the target exists (`RENAME_NOREPLACE`).
    #[serde(default)]
    pub noreplace: bool,
    /// Swap the two entries atomically; both must exist (`RENAME_EXCHANGE`).
    #[serde(default)]
    pub exchange: bool,
}

/// A time to set: the namenode's clock at the change, or a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetTime {
    Now,
    At(Timestamp),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAttrRequest {
    pub ino: InodeId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perm: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Truncate (down or up) to this size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atime: Option<SetTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<SetTime>,
    /// The caller, if it holds the file's write lease (a truncate by anyone else while another
    /// client holds the lease is `EBUSY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatFsResponse {
    /// Raw bytes of all live datanodes (each replica counts).
    pub capacity: u64,
    pub used: u64,
    pub remaining: u64,
    pub inodes: u64,
    pub default_block_size: u64,
    pub replication: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRequest {
    pub ino: InodeId,
    pub client: ClientId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewLeaseRequest {
    pub client: ClientId,
}

/// One block of a file as the namenode records it. A block `i` covers file bytes
/// `[i * block_size, i * block_size + len)`; bytes of the file's size not covered by any block
/// read as zeros. [`BlockInfo::HOLE`] stands for a block that was never written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlockInfo {
    pub id: BlockId,
    #[serde(rename = "gen")]
    pub generation: Generation,
    pub len: u64,
}

impl BlockInfo {
    pub const HOLE: BlockInfo = BlockInfo {
        id: BlockId(0),
        generation: Generation(0),
        len: 0,
    };

    pub fn is_hole(&self) -> bool {
        self.id.0 == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenWriteResponse {
    pub attr: Attr,
    /// The file's committed blocks, in order.
    pub blocks: Vec<BlockInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateBlockRequest {
    pub ino: InodeId,
    pub client: ClientId,
    /// Position of the block in the file.
    pub index: u64,
    /// Datanodes not to use (they failed for this client).
    #[serde(default)]
    pub exclude: Vec<DatanodeId>,
}

/// Where a datanode can be reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DatanodeAddr {
    pub id: DatanodeId,
    /// gRPC address (host:port) for block transfers.
    pub grpc: String,
    /// Its local read socket (see [`RegisterDatanodeRequest::local_socket`]): a client on the
    /// datanode's machine may read replicas there without gRPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_socket: Option<String>,
}

/// A block and the datanodes that hold it (for a read) or are to hold it (for a write, in
/// pipeline order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocatedBlock {
    pub index: u64,
    pub block: BlockInfo,
    pub locations: Vec<DatanodeAddr>,
    /// Block access token for this replica: a read grant in block locations, a write grant in
    /// an allocation. `None` from a namenode without a cluster secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRequest {
    pub ino: InodeId,
    pub client: ClientId,
    /// The file's whole new block list, in order: committed blocks kept as they were, and
    /// blocks this client allocated and wrote.
    pub blocks: Vec<BlockInfo>,
    pub size: u64,
    /// Release the lease too (close).
    #[serde(default)]
    pub release: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetBlocksRequest {
    pub ino: InodeId,
    pub offset: u64,
    /// Bytes from `offset`; 0 means to the end of the file.
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileBlocks {
    pub size: u64,
    pub block_size: u64,
    pub data_version: u64,
    /// Blocks overlapping the range, holes left out.
    pub blocks: Vec<LocatedBlock>,
    /// The file's attributes as of the same read (so opening a file to read it is one call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attr: Option<Attr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamenodeRole {
    Leader,
    Follower,
    Candidate,
    Learner,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfoResponse {
    pub namenode: NamenodeId,
    pub role: NamenodeRole,
    /// REST address of the leader, when known.
    pub leader: Option<String>,
    pub default_block_size: u64,
    pub replication: u32,
    /// How long a write lease lasts without renewal, in milliseconds.
    pub lease_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterDatanodeRequest {
    pub id: DatanodeId,
    /// gRPC address (host:port) that clients and other datanodes reach it at.
    pub grpc_addr: String,
    /// HTTP address (host:port) of its health and metrics endpoint.
    pub http_addr: String,
    /// Path of its Unix socket for short-circuit local reads (`dfs_proto::local_read`), on its
    /// own machine; `None` when it serves none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_socket: Option<String>,
    pub capacity: u64,
    pub used: u64,
    pub remaining: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterDatanodeResponse {
    pub namenode: NamenodeId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    pub id: DatanodeId,
    pub capacity: u64,
    pub used: u64,
    pub remaining: u64,
    /// Block reads and writes in progress.
    pub active_transfers: u32,
    pub block_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The namenode does not know this datanode (it restarted): register and send a full block
    /// report again.
    pub reregister: bool,
    pub commands: Vec<DatanodeCommand>,
    /// The answering namenode's Raft term. A datanode takes commands only from the newest term
    /// it has seen, so a deposed leader cannot order deletes (fencing). 0 from old namenodes.
    #[serde(default)]
    pub term: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandPollRequest {
    pub id: DatanodeId,
    /// Longest the namenode should hold the request when there is nothing to hand out (it
    /// holds it for at most half its request timeout).
    pub wait_ms: u64,
}

/// Commands for the datanode (empty when the wait ran out first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandPollResponse {
    pub commands: Vec<DatanodeCommand>,
    /// The answering namenode's Raft term, for fencing as in [`HeartbeatResponse::term`].
    pub term: u64,
}

/// Names one replica on the wire: block id and generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaRef {
    pub id: BlockId,
    #[serde(rename = "gen")]
    pub generation: Generation,
}

/// Work the leader hands a datanode in a heartbeat answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DatanodeCommand {
    /// Delete these replicas.
    Delete { blocks: Vec<ReplicaRef> },
    /// Copy this replica to the targets (as a pipeline, in order).
    Replicate {
        block: BlockInfo,
        targets: Vec<DatanodeAddr>,
        /// Write token for the copy (the targets check it). `None` without a cluster secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockReportRequest {
    pub id: DatanodeId,
    pub blocks: Vec<BlockInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncrementalBlockReportRequest {
    pub id: DatanodeId,
    #[serde(default)]
    pub received: Vec<BlockInfo>,
    #[serde(default)]
    pub deleted: Vec<ReplicaRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatanodeState {
    Live,
    Dead,
    /// Live, and its replicas are being copied elsewhere; it takes no new blocks.
    Decommissioning,
    /// Every replica it held has enough copies elsewhere: safe to remove.
    Decommissioned,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatanodeReport {
    pub id: DatanodeId,
    pub grpc_addr: String,
    pub http_addr: String,
    pub state: DatanodeState,
    pub capacity: u64,
    pub used: u64,
    pub remaining: u64,
    /// Replicas the namenode knows this datanode holds.
    pub blocks: u64,
    pub active_transfers: u32,
    /// Milliseconds since its last heartbeat reached this namenode.
    pub last_heartbeat_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterReport {
    pub datanodes: Vec<DatanodeReport>,
    /// Sums over live datanodes.
    pub capacity: u64,
    pub used: u64,
    pub remaining: u64,
    /// Blocks of files (committed), and how many have fewer live replicas than wanted, or none.
    pub blocks: u64,
    pub under_replicated: u64,
    pub missing: u64,
    pub files: u64,
    pub directories: u64,
}

/// Names one extended attribute of an inode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XattrRequest {
    pub ino: InodeId,
    /// Full name with its namespace, e.g. `user.mime_type`.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XattrValue {
    pub value: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XattrNames {
    pub names: Vec<String>,
}

/// What `setxattr` may do to an existing attribute (`XATTR_CREATE`, `XATTR_REPLACE`, or
/// neither flag).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XattrMode {
    /// Fail with `EEXIST` if the attribute exists.
    Create,
    /// Fail with `ENODATA` if the attribute does not exist.
    Replace,
    /// Create or replace.
    #[default]
    Either,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetXattrRequest {
    pub ino: InodeId,
    pub name: String,
    pub value: Vec<u8>,
    #[serde(default)]
    pub mode: XattrMode,
}

/// Longest extended attribute name the namenode stores, in bytes (as Linux `XATTR_NAME_MAX`).
pub const XATTR_NAME_MAX: usize = 255;
/// Largest extended attribute value the namenode stores, in bytes (as Linux `XATTR_SIZE_MAX`).
pub const XATTR_SIZE_MAX: usize = 64 * 1024;

endpoints! {
    /// Namenode high availability: members, roles, term, commit and applied index, lag.
    HaStatus: Get "/v1/ha/status", Empty => HaStatusResponse;
    /// Adds a namenode as a voter (it catches up as a learner first). Leader only.
    HaAddNode: Post "/v1/ha/add", HaAddNodeRequest => HaStatusResponse;
    /// Removes a namenode from the voters. Leader only.
    HaRemoveNode: Post "/v1/ha/remove", HaRemoveNodeRequest => HaStatusResponse;
    /// Makes the answering namenode the only voter (two-namenode deployments whose other
    /// namenode is gone). Refused while another voter still answers.
    HaPromote: Post "/v1/ha/promote", Empty => HaStatusResponse;
}

/// One namenode as the answering namenode sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaMember {
    pub id: NamenodeId,
    pub addr: String,
    /// Leader, follower, or learner (a non-voter catching up); `None` when not known here.
    pub role: Option<NamenodeRole>,
    pub voter: bool,
    /// Highest log index known replicated to it (the leader knows this for every member).
    pub matched: Option<u64>,
    /// Entries it is behind the leader's last log index (leader only).
    pub lag: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaStatusResponse {
    /// The namenode that answered.
    pub namenode: NamenodeId,
    pub role: NamenodeRole,
    pub term: u64,
    pub leader: Option<NamenodeId>,
    pub last_log_index: Option<u64>,
    pub commit_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// Last log index included in the newest snapshot.
    pub snapshot_index: Option<u64>,
    pub members: Vec<HaMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaAddNodeRequest {
    pub id: NamenodeId,
    /// REST address (host:port) of the new namenode.
    pub addr: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaRemoveNodeRequest {
    pub id: NamenodeId,
}

endpoints! {
    /// A reader or a datanode's scrubber found replicas that fail their checksums: the leader
    /// stops handing them out, copies the block from a good replica, then deletes the bad one.
    ReportBadReplicas: Post "/v1/block/bad", ReportBadReplicasRequest => Empty;
    /// Pipeline recovery: a datanode of the pipeline writing block `index` failed. The leader
    /// allocates a fresh generation of the block on a pipeline without the failed datanodes
    /// (so the partial replicas of the old generation can never be read), or answers `ENOSPC`
    /// / `UNAVAILABLE` when fewer than the cluster's minimum of replicas can be written.
    RecoverBlock: Post "/v1/block/recover", RecoverBlockRequest => LocatedBlock;
    /// Health of the files under a path: blocks, replicas, missing, corrupt, under-replicated.
    Fsck: Get "/v1/admin/fsck", FsckRequest => FsckReport;
    /// Starts draining a datanode: its replicas are copied elsewhere, then it is decommissioned.
    Decommission: Post "/v1/admin/decommission", DecommissionRequest => DatanodeReport;
}

/// One replica found bad.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadReplica {
    pub block: ReplicaRef,
    pub datanode: DatanodeId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportBadReplicasRequest {
    pub replicas: Vec<BadReplica>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverBlockRequest {
    pub ino: InodeId,
    pub client: ClientId,
    pub index: u64,
    /// The generation whose pipeline failed.
    pub block: BlockInfo,
    /// Datanodes that failed while writing this block (never chosen again for it).
    pub failed: Vec<DatanodeId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsckRequest {
    /// Absolute path of a file or directory (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Most problem blocks listed (the counts always cover everything); the namenode caps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockHealth {
    /// No live replica: the data is not readable.
    Missing,
    /// Every live replica is corrupt.
    Corrupt,
    /// Fewer good live replicas than the replication factor.
    UnderReplicated,
}

/// A block that is not healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsckProblem {
    pub path: String,
    pub index: u64,
    pub block: BlockInfo,
    pub health: BlockHealth,
    /// Good replicas on live datanodes (decommissioning ones included).
    pub live: u32,
    pub corrupt: u32,
    pub wanted: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsckReport {
    pub path: String,
    pub files: u64,
    pub directories: u64,
    pub blocks: u64,
    pub bytes: u64,
    /// Good replicas on live datanodes, summed over blocks.
    pub replicas: u64,
    pub replication: u32,
    pub missing: u64,
    pub corrupt: u64,
    pub under_replicated: u64,
    /// Blocks with more replicas than wanted (trimmed shortly).
    pub over_replicated: u64,
    /// Replication copies handed out and not yet confirmed.
    pub pending_replications: u64,
    pub problems: Vec<FsckProblem>,
    /// Problems left out of the list by the limit.
    pub problems_omitted: u64,
}

impl FsckReport {
    /// No block is missing or wholly corrupt (under-replicated blocks are still readable).
    pub fn data_intact(&self) -> bool {
        self.missing == 0 && self.corrupt == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecommissionRequest {
    /// A datanode id, or its gRPC address (host:port).
    pub datanode: String,
}
