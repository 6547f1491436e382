//! The FUSE adapter: the only code that touches `fuser::Reply*`.
//!
//! Each callback turns its arguments into owned values, spawns a task on the tokio runtime that
//! calls the matching [`DfsFs`] operation, and replies from that task, so a slow namenode or
//! datanode never holds up the kernel's request loop. A semaphore bounds the tasks in flight;
//! when it is exhausted the request loop waits, which pushes back on the kernel.

mod convert;
mod identity;

use crate::error::FsError;
use crate::fs::{Caller, DfsFs, OpenFlags, PageFill, RenameMode, SetAttr, XattrReply};
use crate::metrics::FuseMetrics;
use convert::{errno, file_attr, file_type, set_time};
use dfs_proto::InodeId;
use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
    Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

/// How long the kernel may trust attributes and names without asking again.
const TTL: Duration = Duration::from_secs(1);
/// Largest write the kernel sends (and the unit the client streams in).
const MAX_WRITE: u32 = 1024 * 1024;
/// Requests served at once; beyond this the kernel's request loop waits.
const MAX_IN_FLIGHT: usize = 256;
/// Asynchronous requests (read-ahead, ...) the kernel keeps in flight.
const MAX_BACKGROUND: u16 = 64;

/// The `fuser::Filesystem` of a dfs mount.
pub struct FuseAdapter {
    fs: Arc<DfsFs>,
    runtime: Handle,
    in_flight: Arc<Semaphore>,
    /// Per-operation counts and latencies, when the mount serves metrics.
    metrics: Option<Arc<FuseMetrics>>,
    /// Supplementary groups of requesting processes.
    callers: identity::Callers,
    /// The session's channel for notifications to the kernel, once the session exists.
    notifier: Arc<OnceLock<fuser::Notifier>>,
}

fn ino(n: INodeNo) -> InodeId {
    InodeId(n.0)
}

/// Logs a failed operation where it is handled: expected errnos at debug, the rest as warnings.
fn fail(op: &'static str, e: &FsError) -> Errno {
    crate::metrics::note_failure();
    if e.is_expected() {
        tracing::debug!(op, error = %e, "operation failed");
    } else {
        tracing::warn!(op, error = %e, "operation failed");
    }
    errno(e)
}

impl FuseAdapter {
    /// An adapter for `fs`; `notifier` is set once the session is made (until then nothing
    /// is pushed to the kernel).
    pub fn new(
        fs: Arc<DfsFs>,
        runtime: Handle,
        metrics: Option<Arc<FuseMetrics>>,
        notifier: Arc<OnceLock<fuser::Notifier>>,
    ) -> FuseAdapter {
        FuseAdapter {
            fs,
            runtime,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            metrics,
            callers: identity::Callers::default(),
            notifier,
        }
    }

    /// Who sent `req`: its uid and gid and its process's supplementary groups.
    fn caller(&self, req: &Request) -> Caller {
        self.callers.of(req.uid(), req.gid(), req.pid())
    }

    /// [`FuseAdapter::spawn`] for a namespace operation: every namenode call it makes carries
    /// the identity of `req`'s sender, whose permissions the namenode checks.
    fn spawn_as<F>(&self, name: &'static str, req: &Request, op: impl FnOnce(Arc<DfsFs>) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let who = self.caller(req);
        self.spawn(name, |fs| dfs_client::as_caller(who, op(fs)));
    }

    /// Runs operation `name` (`op`) on the runtime with a permit; waits for one here (in the
    /// request loop) when all are taken. Its latency and result are recorded when metrics are on.
    fn spawn<F>(&self, name: &'static str, op: impl FnOnce(Arc<DfsFs>) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let permit = match self.in_flight.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => self
                .runtime
                .block_on(self.in_flight.clone().acquire_owned())
                .ok(),
        };
        let fut = op(self.fs.clone());
        match self.metrics.clone() {
            Some(metrics) => self.runtime.spawn(async move {
                metrics.track(name, fut).await;
                drop(permit);
            }),
            None => self.runtime.spawn(async move {
                fut.await;
                drop(permit);
            }),
        };
    }
}

/// Hands `fill` to the kernel's page cache. Should the mount have started anything meanwhile
/// that changes or drops cached pages (an open, a write, a truncate: the kernel may now hold
/// newer pages than these), the range is dropped again, attributes with it. Advice only: errors (the inode left the kernel's cache) are
/// ignored.
///
/// Runs on a blocking thread of its own, never on a runtime worker and never holding a request
/// permit: the kernel makes the store wait for every page of the piece that a read still in
/// flight has locked, and the reply that unlocks them may be a task queued behind this one on
/// the same worker (a worker's next-task slot cannot be stolen by the other workers).
fn fill_page_cache(fs: &DfsFs, notifier: &fuser::Notifier, fill: PageFill) {
    let ino = INodeNo(fill.ino.0);
    if let Err(e) = notifier.store(ino, fill.offset, &fill.data) {
        tracing::debug!(ino = %fill.ino, error = %e, "page cache fill refused");
        return;
    }
    if fs.cache_changes() != fill.changes {
        let _ = notifier.inval_inode(ino, fill.offset as i64, fill.data.len() as i64);
    }
}

fn reply_entry(
    reply: ReplyEntry,
    op: &'static str,
    result: Result<dfs_proto::rest::Attr, FsError>,
) {
    match result {
        Ok(attr) => reply.entry_with_ttls(&TTL, &TTL, &file_attr(&attr), Generation(0)),
        Err(e) => reply.error(fail(op, &e)),
    }
}

fn reply_empty(reply: ReplyEmpty, op: &'static str, result: Result<(), FsError>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(fail(op, &e)),
    }
}

fn reply_xattr(reply: ReplyXattr, op: &'static str, result: Result<XattrReply, FsError>) {
    match result {
        Ok(XattrReply::Size(n)) => reply.size(n),
        Ok(XattrReply::Data(d)) => reply.data(&d),
        Err(e) => reply.error(fail(op, &e)),
    }
}

fn open_flags(keep_cache: bool) -> FopenFlags {
    if keep_cache {
        FopenFlags::FOPEN_KEEP_CACHE
    } else {
        FopenFlags::empty()
    }
}

impl Filesystem for FuseAdapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if let Err(max) = config.set_max_write(MAX_WRITE) {
            tracing::info!(max, "kernel limits writes");
        }
        let _ = config.set_max_background(MAX_BACKGROUND);
        let _ = config.set_congestion_threshold(MAX_BACKGROUND * 3 / 4);
        // Each optional capability separately: an old kernel lacking one still mounts.
        for cap in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_ATOMIC_O_TRUNC,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_BIG_WRITES,
            InitFlags::FUSE_MAX_PAGES,
        ] {
            if config.add_capabilities(cap).is_err() {
                tracing::info!(?cap, "kernel lacks FUSE capability");
            }
        }
        Ok(())
    }

    fn destroy(&mut self) {
        tracing::info!("file system unmounted");
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name.to_owned();
        self.spawn_as("lookup", req, |fs| async move {
            reply_entry(reply, "lookup", fs.lookup(ino(parent), &name).await);
        });
    }

    fn getattr(&self, req: &Request, n: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.spawn_as("getattr", req, |fs| async move {
            match fs.getattr(ino(n)).await {
                Ok(attr) => reply.attr(&TTL, &file_attr(&attr)),
                Err(e) => reply.error(fail("getattr", &e)),
            }
        });
    }

    fn setattr(
        &self,
        req: &Request,
        n: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let change = SetAttr {
            perm: mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            atime: atime.map(set_time),
            mtime: mtime.map(set_time),
        };
        let who = self.caller(req);
        self.spawn_as("setattr", req, |fs| async move {
            match fs.setattr(ino(n), change, who).await {
                Ok(attr) => reply.attr(&TTL, &file_attr(&attr)),
                Err(e) => reply.error(fail("setattr", &e)),
            }
        });
    }

    fn readlink(&self, req: &Request, n: INodeNo, reply: ReplyData) {
        self.spawn_as("readlink", req, |fs| async move {
            match fs.readlink(ino(n)).await {
                Ok(target) => reply.data(target.as_bytes()),
                Err(e) => reply.error(fail("readlink", &e)),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let (name, who) = (name.to_owned(), self.caller(req));
        // Keep the type bits; apply the umask to the permission bits only.
        let mode = mode & !(umask & 0o7777);
        self.spawn_as("mknod", req, |fs| async move {
            reply_entry(
                reply,
                "mknod",
                fs.mknod(ino(parent), &name, mode, who).await,
            );
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let (name, who) = (name.to_owned(), self.caller(req));
        let mode = mode & !umask;
        self.spawn_as("mkdir", req, |fs| async move {
            reply_entry(
                reply,
                "mkdir",
                fs.mkdir(ino(parent), &name, mode, who).await,
            );
        });
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        self.spawn_as("unlink", req, |fs| async move {
            reply_empty(reply, "unlink", fs.unlink(ino(parent), &name).await);
        });
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        self.spawn_as("rmdir", req, |fs| async move {
            reply_empty(reply, "rmdir", fs.rmdir(ino(parent), &name).await);
        });
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let (name, target, who) = (link_name.to_owned(), target.to_owned(), self.caller(req));
        self.spawn_as("symlink", req, |fs| async move {
            let result = fs.symlink(ino(parent), &name, &target, who).await;
            reply_entry(reply, "symlink", result);
        });
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (name, newname) = (name.to_owned(), newname.to_owned());
        let mode = RenameMode::from_bits(flags.bits());
        self.spawn_as("rename", req, |fs| async move {
            let result = match mode {
                Ok(mode) => {
                    fs.rename(ino(parent), &name, ino(newparent), &newname, mode)
                        .await
                }
                Err(e) => Err(e),
            };
            reply_empty(reply, "rename", result);
        });
    }

    fn link(
        &self,
        req: &Request,
        n: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let newname = newname.to_owned();
        self.spawn_as("link", req, |fs| async move {
            reply_entry(
                reply,
                "link",
                fs.link(ino(n), ino(newparent), &newname).await,
            );
        });
    }

    fn open(&self, req: &Request, n: INodeNo, flags: fuser::OpenFlags, reply: ReplyOpen) {
        let flags = OpenFlags::from_raw(flags.0);
        // Not `spawn_as`: open checks the caller's access itself, then the open file works as
        // the mount (it is shared by every handle of this mount).
        let who = self.caller(req);
        self.spawn("open", |fs| async move {
            match fs.open(ino(n), flags, who).await {
                Ok(o) => reply.opened(FileHandle(o.fh), open_flags(o.keep_cache)),
                Err(e) => reply.error(fail("open", &e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: fuser::OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let notifier = self.notifier.clone();
        self.spawn("read", |fs| async move {
            match fs.read(fh.0, offset, size).await {
                Ok(read) => {
                    reply.data(&read.data);
                    if let (Some(fill), Some(notifier)) = (read.fill, notifier.get().cloned()) {
                        tokio::task::spawn_blocking(move || fill_page_cache(&fs, &notifier, fill));
                    }
                }
                Err(e) => reply.error(fail("read", &e)),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: fuser::OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let data = data.to_vec();
        self.spawn("write", |fs| async move {
            match fs.write(fh.0, offset, &data).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(fail("write", &e)),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.spawn("flush", |fs| async move {
            reply_empty(reply, "flush", fs.flush(fh.0).await);
        });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: fuser::OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.spawn("release", |fs| async move {
            reply_empty(reply, "release", fs.release(fh.0).await);
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.spawn("fsync", |fs| async move {
            reply_empty(reply, "fsync", fs.fsync(fh.0).await);
        });
    }

    fn opendir(&self, req: &Request, n: INodeNo, _flags: fuser::OpenFlags, reply: ReplyOpen) {
        self.spawn_as("opendir", req, |fs| async move {
            match fs.opendir(ino(n)).await {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(fail("opendir", &e)),
            }
        });
    }

    fn readdir(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.spawn_as("readdir", req, |fs| async move {
            match fs.readdir(fh.0, offset).await {
                Ok(entries) => {
                    for e in entries {
                        let kind = file_type(e.attr.kind);
                        if reply.add(INodeNo(e.attr.ino.0), e.offset, kind, &e.name) {
                            break;
                        }
                    }
                    reply.ok();
                }
                Err(e) => reply.error(fail("readdir", &e)),
            }
        });
    }

    fn readdirplus(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        self.spawn_as("readdirplus", req, |fs| async move {
            match fs.readdir(fh.0, offset).await {
                Ok(entries) => {
                    for e in entries {
                        let attr = file_attr(&e.attr);
                        if reply.add(attr.ino, e.offset, &e.name, &TTL, &attr, Generation(0)) {
                            break;
                        }
                    }
                    reply.ok();
                }
                Err(e) => reply.error(fail("readdirplus", &e)),
            }
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: fuser::OpenFlags,
        reply: ReplyEmpty,
    ) {
        // No I/O: answer inline.
        reply_empty(reply, "releasedir", self.fs.releasedir(fh.0));
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Every namespace change is durable on a namenode majority before it is answered.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.spawn("statfs", |fs| async move {
            match fs.statfs().await {
                Ok(s) => reply.statfs(
                    s.blocks,
                    s.blocks_free,
                    s.blocks_free,
                    s.files,
                    s.files_free,
                    s.block_size,
                    s.name_max,
                    s.fragment_size,
                ),
                Err(e) => reply.error(fail("statfs", &e)),
            }
        });
    }

    /// No ioctl is served: `ENOTTY`, as ext4 answers one it does not know (every `isatty()`
    /// check of a program opening a file asks `TCGETS`, so this is common and not worth a log).
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        tracing::trace!(cmd, "ioctl refused");
        reply.error(Errno::ENOTTY);
    }

    fn setxattr(
        &self,
        req: &Request,
        n: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let (name, value) = (name.to_owned(), value.to_vec());
        self.spawn_as("setxattr", req, |fs| async move {
            reply_empty(
                reply,
                "setxattr",
                fs.setxattr(ino(n), &name, &value, flags).await,
            );
        });
    }

    fn getxattr(&self, req: &Request, n: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let name = name.to_owned();
        self.spawn_as("getxattr", req, |fs| async move {
            reply_xattr(reply, "getxattr", fs.getxattr(ino(n), &name, size).await);
        });
    }

    fn listxattr(&self, req: &Request, n: INodeNo, size: u32, reply: ReplyXattr) {
        self.spawn_as("listxattr", req, |fs| async move {
            reply_xattr(reply, "listxattr", fs.listxattr(ino(n), size).await);
        });
    }

    fn removexattr(&self, req: &Request, n: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        self.spawn_as("removexattr", req, |fs| async move {
            reply_empty(reply, "removexattr", fs.removexattr(ino(n), &name).await);
        });
    }

    fn access(&self, req: &Request, n: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let who = self.caller(req);
        let mask = mask.bits();
        self.spawn_as("access", req, |fs| async move {
            reply_empty(reply, "access", fs.access(ino(n), mask, who).await);
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (name, who) = (name.to_owned(), self.caller(req));
        let mode = mode & !umask;
        let flags = OpenFlags::from_raw(flags);
        self.spawn("create", |fs| async move {
            match fs.create(ino(parent), &name, mode, flags, who).await {
                Ok(o) => reply.created(
                    &TTL,
                    &file_attr(&o.attr),
                    Generation(0),
                    FileHandle(o.fh),
                    open_flags(o.keep_cache),
                ),
                Err(e) => reply.error(fail("create", &e)),
            }
        });
    }
}
