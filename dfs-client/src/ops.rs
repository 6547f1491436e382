//! Path-level operations on [`Client`], as the CLI and tests use them: resolve, list, mkdir,
//! put/get/cat, remove, rename, stat with block locations, and the admin report.

use crate::client::Client;
use crate::error::{Error, Result};
use crate::reader::FileReader;
use crate::writer::FileWriter;
use dfs_proto::rest::{
    AdminReport, Attr, ClusterReport, Create, CreateRequest, DirEntry, Empty, EntryRequest,
    FileBlocks, FileKind, GetBlocks, GetBlocksRequest, InodeRequest, LeaseRequest, Lookup,
    LookupRequest, Mkdir, MkdirRequest, OpenWrite, ReadDir, ReadDirRequest, ReadLink, Rename,
    RenameRequest, Resolve, ResolveRequest, Rmdir, StatFs, StatFsResponse, Unlink,
};
use dfs_proto::{DfsPath, ErrorCode, InodeId, Name, TRANSFER_CHUNK};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

/// Permission bits of new directories.
pub const DIR_PERM: u32 = 0o755;
/// Permission bits of new files when the source has none (stdin).
pub const FILE_PERM: u32 = 0o644;
/// Entries asked for per `ReadDir` page.
const PAGE: u32 = 1000;

/// The uid and gid of this process, as the owner of what it creates.
pub fn current_owner() -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self") {
        Ok(m) => (m.uid(), m.gid()),
        Err(_) => (0, 0),
    }
}

/// Parses an absolute dfs path.
pub fn parse_path(path: &str) -> Result<DfsPath> {
    Ok(DfsPath::parse(path)?)
}

/// `path` split into its parent and last name; `/` has neither.
fn split(path: &DfsPath, what: &str) -> Result<(DfsPath, Name)> {
    match path.split_last() {
        Some((parent, name)) => Ok((parent, name.clone())),
        None => Err(Error::api(
            ErrorCode::Busy,
            format!("cannot {what} the root directory"),
        )),
    }
}

fn not_found(e: &Error) -> bool {
    e.code() == Some(ErrorCode::NotFound)
}

impl Client {
    /// Attributes of the inode at `path` (a symlink itself, not its target).
    pub async fn resolve(&self, path: &str) -> Result<Attr> {
        let path = parse_path(path)?;
        self.resolve_path(&path).await
    }

    pub(crate) async fn resolve_path(&self, path: &DfsPath) -> Result<Attr> {
        self.call::<Resolve>(&ResolveRequest {
            path: path.to_string(),
        })
        .await
    }

    /// Same as [`Client::resolve`]: the attributes at `path`.
    pub async fn stat(&self, path: &str) -> Result<Attr> {
        self.resolve(path).await
    }

    /// A file's size, block size and every block with the datanodes holding it.
    pub async fn blocks(&self, ino: InodeId) -> Result<FileBlocks> {
        self.call::<GetBlocks>(&GetBlocksRequest {
            ino,
            offset: 0,
            len: 0,
        })
        .await
    }

    /// A symlink's target.
    pub async fn readlink(&self, ino: InodeId) -> Result<String> {
        Ok(self.call::<ReadLink>(&InodeRequest { ino }).await?.target)
    }

    /// Every entry of the directory at `path`, in name order (`ENOTDIR` for anything else).
    pub async fn list(&self, path: &str) -> Result<Vec<DirEntry>> {
        let attr = self.resolve(path).await?;
        if attr.kind != FileKind::Dir {
            return Err(Error::api(
                ErrorCode::NotDir,
                format!("{path} is not a directory"),
            ));
        }
        self.list_ino(attr.ino).await
    }

    /// Every entry of directory `ino`, paging through `ReadDir`.
    pub async fn list_ino(&self, ino: InodeId) -> Result<Vec<DirEntry>> {
        let mut entries: Vec<DirEntry> = Vec::new();
        loop {
            let page = self
                .call::<ReadDir>(&ReadDirRequest {
                    ino,
                    after: entries.last().map(|e| e.name.clone()),
                    limit: Some(PAGE),
                })
                .await?;
            let done = !page.more || page.entries.is_empty();
            entries.extend(page.entries);
            if done {
                return Ok(entries);
            }
        }
    }

    /// Creates the directory at `path`; with `parents`, also its missing ancestors, and an
    /// existing directory is not an error (`mkdir -p`).
    pub async fn mkdir(&self, path: &str, parents: bool) -> Result<Attr> {
        let path = parse_path(path)?;
        let (uid, gid) = current_owner();
        if !parents {
            let (parent, name) =
                split(&path, "create").map_err(|_| Error::api(ErrorCode::Exists, "/ exists"))?;
            let parent = self.resolve_path(&parent).await?;
            return self
                .call::<Mkdir>(&MkdirRequest {
                    parent: parent.ino,
                    name: name.to_string(),
                    perm: DIR_PERM,
                    uid,
                    gid,
                })
                .await;
        }
        let mut dir = self.resolve_path(&DfsPath::root()).await?;
        for name in path.components() {
            let lookup = LookupRequest {
                parent: dir.ino,
                name: name.to_string(),
            };
            let next = match self.call::<Lookup>(&lookup).await {
                Ok(attr) => attr,
                Err(e) if not_found(&e) => {
                    let mkdir = MkdirRequest {
                        parent: dir.ino,
                        name: name.to_string(),
                        perm: DIR_PERM,
                        uid,
                        gid,
                    };
                    match self.call::<Mkdir>(&mkdir).await {
                        Ok(attr) => attr,
                        // Someone else made it meanwhile.
                        Err(e) if e.code() == Some(ErrorCode::Exists) => {
                            self.call::<Lookup>(&lookup).await?
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            };
            if next.kind != FileKind::Dir {
                return Err(Error::api(
                    ErrorCode::NotDir,
                    format!("{name} is not a directory"),
                ));
            }
            dir = next;
        }
        Ok(dir)
    }

    /// Creates a regular file `name` in directory `parent` and returns a writer holding its
    /// lease.
    pub async fn create_file(&self, parent: InodeId, name: &Name, perm: u32) -> Result<FileWriter> {
        let (uid, gid) = current_owner();
        let attr = self
            .call::<Create>(&CreateRequest {
                parent,
                name: name.to_string(),
                kind: FileKind::File,
                perm,
                uid,
                gid,
                lease: Some(self.client_id().clone()),
            })
            .await?;
        FileWriter::new(self, &attr).await
    }

    /// Takes the lease on an existing file and returns a writer that replaces its contents
    /// (the old blocks are freed by the namenode at commit).
    pub async fn overwrite_file(&self, ino: InodeId) -> Result<FileWriter> {
        let open = self
            .call::<OpenWrite>(&LeaseRequest {
                ino,
                client: self.client_id().clone(),
            })
            .await?;
        if open.attr.kind != FileKind::File {
            return Err(Error::api(
                ErrorCode::IsDir,
                format!("inode {ino} is not a regular file"),
            ));
        }
        FileWriter::new(self, &open.attr).await
    }

    /// A reader of file `ino`.
    pub fn open_reader(&self, ino: InodeId) -> FileReader {
        FileReader::new(self, ino)
    }

    /// A writer for a new file at `path`, or (with `overwrite`) replacing an existing file.
    /// Also answers whether the file was created by this call.
    async fn writer_for(
        &self,
        path: &DfsPath,
        perm: u32,
        overwrite: bool,
    ) -> Result<(FileWriter, bool)> {
        let (parent, name) = split(path, "write")?;
        let parent = self.resolve_path(&parent).await?;
        if parent.kind != FileKind::Dir {
            return Err(Error::api(
                ErrorCode::NotDir,
                format!("{path} has no directory parent"),
            ));
        }
        match self.create_file(parent.ino, &name, perm).await {
            Ok(writer) => Ok((writer, true)),
            Err(e) if overwrite && e.code() == Some(ErrorCode::Exists) => {
                let attr = self.resolve_path(path).await?;
                if attr.kind == FileKind::Dir {
                    return Err(Error::api(
                        ErrorCode::IsDir,
                        format!("{path} is a directory"),
                    ));
                }
                Ok((self.overwrite_file(attr.ino).await?, false))
            }
            Err(e) => Err(e),
        }
    }

    /// Copies the local file at `local` to `remote` (keeping its permission bits).
    pub async fn put(
        &self,
        local: &Path,
        remote: &str,
        overwrite: bool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Attr> {
        use std::os::unix::fs::PermissionsExt;
        let file = tokio::fs::File::open(local)
            .await
            .map_err(|e| Error::local(local, e))?;
        let meta = file.metadata().await.map_err(|e| Error::local(local, e))?;
        if meta.is_dir() {
            return Err(Error::local(
                local,
                std::io::Error::from_raw_os_error(libc::EISDIR),
            ));
        }
        let perm = meta.permissions().mode() & 0o7777;
        self.put_reader(file, remote, perm, overwrite, progress)
            .await
    }

    /// Copies everything `input` yields to `remote` (created with `perm`, or replaced when it
    /// exists and `overwrite`). A failed copy leaves no new file behind.
    pub async fn put_reader<R: AsyncRead + Unpin>(
        &self,
        mut input: R,
        remote: &str,
        perm: u32,
        overwrite: bool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Attr> {
        let path = parse_path(remote)?;
        let (mut writer, created) = self.writer_for(&path, perm, overwrite).await?;
        let mut buf = vec![0u8; TRANSFER_CHUNK];
        let copied: Result<()> = async {
            loop {
                let n = input
                    .read(&mut buf)
                    .await
                    .map_err(|e| Error::local("<input>", e))?;
                if n == 0 {
                    return Ok(());
                }
                writer.write(&buf[..n]).await?;
                progress(writer.size());
            }
        }
        .await;
        let result = match copied {
            Ok(()) => writer.close().await,
            Err(e) => {
                writer.abort().await;
                Err(e)
            }
        };
        if result.is_err() && created {
            // Best effort: the error that matters is the one being returned.
            let _ = self.remove_path(&path, false).await;
        }
        result
    }

    /// Copies `remote` to the local file `local` (created or truncated). Returns the bytes.
    pub async fn get(
        &self,
        remote: &str,
        local: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        let attr = self.file_attr(remote).await?;
        let mut file = tokio::fs::File::create(local)
            .await
            .map_err(|e| Error::local(local, e))?;
        let copied = self
            .open_reader(attr.ino)
            .copy_to(&mut file, progress)
            .await?;
        file.sync_all().await.map_err(|e| Error::local(local, e))?;
        Ok(copied)
    }

    /// Writes the contents of `remote` to `out`. Returns the bytes.
    pub async fn cat<W: AsyncWrite + Unpin>(&self, remote: &str, out: &mut W) -> Result<u64> {
        let attr = self.file_attr(remote).await?;
        self.open_reader(attr.ino).copy_to(out, &mut |_| {}).await
    }

    /// The attributes at `path`, which must be a regular file.
    async fn file_attr(&self, path: &str) -> Result<Attr> {
        let attr = self.resolve(path).await?;
        match attr.kind {
            FileKind::File => Ok(attr),
            FileKind::Dir => Err(Error::api(
                ErrorCode::IsDir,
                format!("{path} is a directory"),
            )),
            _ => Err(Error::api(
                ErrorCode::Invalid,
                format!("{path} is not a regular file"),
            )),
        }
    }

    /// Removes the entry at `path`; a directory only with `recursive` (`rm -r`), with all it
    /// holds.
    pub async fn remove(&self, path: &str, recursive: bool) -> Result<()> {
        let path = parse_path(path)?;
        self.remove_path(&path, recursive).await
    }

    async fn remove_path(&self, path: &DfsPath, recursive: bool) -> Result<()> {
        let (parent, name) = split(path, "remove")?;
        let attr = self.resolve_path(path).await?;
        let parent = self.resolve_path(&parent).await?;
        if attr.kind == FileKind::Dir {
            if !recursive {
                return Err(Error::api(
                    ErrorCode::IsDir,
                    format!("{path} is a directory"),
                ));
            }
            self.remove_children(attr.ino).await?;
        }
        self.remove_entry(parent.ino, &name, attr.kind).await
    }

    async fn remove_entry(&self, parent: InodeId, name: &Name, kind: FileKind) -> Result<()> {
        let req = EntryRequest {
            parent,
            name: name.to_string(),
        };
        if kind == FileKind::Dir {
            self.call::<Rmdir>(&req).await?;
        } else {
            self.call::<Unlink>(&req).await?;
        }
        Ok(())
    }

    /// Empties directory `dir`, depth first.
    fn remove_children(
        &self,
        dir: InodeId,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + '_>> {
        Box::pin(async move {
            loop {
                let page = self
                    .call::<ReadDir>(&ReadDirRequest {
                        ino: dir,
                        after: None,
                        limit: Some(PAGE),
                    })
                    .await?;
                if page.entries.is_empty() {
                    return Ok(());
                }
                for entry in page.entries {
                    let name = Name::new(entry.name)?;
                    if entry.attr.kind == FileKind::Dir {
                        self.remove_children(entry.attr.ino).await?;
                    }
                    self.remove_entry(dir, &name, entry.attr.kind).await?;
                }
            }
        })
    }

    /// Renames `src` to `dst` atomically; if `dst` is an existing directory, `src` moves into
    /// it under its own name (as `mv` does). Returns the path it ended up at.
    pub async fn rename(&self, src: &str, dst: &str) -> Result<DfsPath> {
        let src = parse_path(src)?;
        let (src_parent, src_name) = split(&src, "rename")?;
        let mut dst = parse_path(dst)?;
        match self.resolve_path(&dst).await {
            Ok(attr) if attr.kind == FileKind::Dir && dst != src => {
                dst = dst.join(src_name.clone())
            }
            Ok(_) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(e),
        }
        let (dst_parent, dst_name) = split(&dst, "replace")?;
        let src_parent = self.resolve_path(&src_parent).await?;
        let dst_parent = self.resolve_path(&dst_parent).await?;
        self.call::<Rename>(&RenameRequest {
            parent: src_parent.ino,
            name: src_name.to_string(),
            new_parent: dst_parent.ino,
            new_name: dst_name.to_string(),
            noreplace: false,
            exchange: false,
        })
        .await?;
        Ok(dst)
    }

    /// Datanodes, capacity and block health.
    pub async fn admin_report(&self) -> Result<ClusterReport> {
        self.call::<AdminReport>(&Empty {}).await
    }

    /// Capacity and usage of the whole cluster.
    pub async fn statfs(&self) -> Result<StatFsResponse> {
        self.call::<StatFs>(&Empty {}).await
    }
}
