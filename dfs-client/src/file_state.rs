//! The write engine behind [`OpenFile`](crate::OpenFile): one file's block list as the next
//! commit will have it, its unflushed writes, and the block being streamed.
//!
//! - Writes at the end of the file stream straight into the last block's pipeline (an
//!   `Append`): a few MiB of memory whatever the file size. A full block's pipeline syncs it in
//!   the background while the next block streams (one block at most finishes behind). A block
//!   that already held bytes before the append point is first copied from a replica into the
//!   new generation.
//! - Any other write becomes dirty extents of the blocks it touches. A flush rewrites each
//!   touched block as a new generation: its stored bytes overlaid with the extents, streamed
//!   1 MiB at a time. Untouched blocks keep their generation.
//! - A commit makes the whole block list and size visible at once.

use crate::block_writer::{BlockStream, Finishing};
use crate::client::Client;
use crate::dirty::Extents;
use crate::error::{Error, Result};
use crate::lease::LeaseGuard;
use crate::reader::BlockRange;
use bytes::{Bytes, BytesMut};
use dfs_proto::rest::{
    Attr, BlockInfo, Commit, CommitRequest, DatanodeAddr, FileBlocks, GetBlocks, GetBlocksRequest,
    LocatedBlock,
};
use dfs_proto::{ErrorCode, InodeId, TRANSFER_CHUNK};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use tracing::{debug, warn};

/// Attempts at rewriting one dirty block (each with a freshly allocated pipeline).
const REWRITE_ATTEMPTS: usize = 2;

/// Replica locations and read token by (block id, generation).
type Locations = HashMap<(u64, u64), (Vec<DatanodeAddr>, Option<String>)>;

pub(crate) struct FileState {
    client: Client,
    ino: InodeId,
    block_size: u64,
    /// The block list the next commit will make visible: committed blocks, and new generations
    /// written but not committed yet. Invariant: no block holds bytes at or past `size`.
    base: Vec<BlockInfo>,
    /// Where the replicas of `base` blocks are (cached; refreshed from the namenode on a miss).
    locations: Mutex<Locations>,
    /// The size this process sees.
    pub(crate) size: u64,
    /// Unflushed writes by block index.
    dirty: BTreeMap<u64, Extents>,
    pub(crate) dirty_bytes: usize,
    /// The block being streamed by sequential writes at the end of the file.
    append: Option<Append>,
    /// The block streamed before it (its index), finishing (its pipeline syncing it) in the
    /// background while the next one streams; it joins `base` when settled.
    finishing: Option<Finishing>,
    /// `base` or `size` differ from what was last committed.
    changed: bool,
    /// A streamed block failed: the bytes it held are lost, so the file must be reopened.
    poisoned: bool,
    /// Keeps the lease renewed while the file is open for writing.
    pub(crate) lease: Option<LeaseGuard>,
}

/// Sequential writes streaming into block `index`.
struct Append {
    index: u64,
    stream: BlockStream,
    /// Bytes not sent yet: under a chunk, never past the block's end.
    pending: BytesMut,
}

impl Append {
    /// Bytes of the block taken so far (sent or pending).
    fn fill(&self) -> u64 {
        self.stream.sent() + self.pending.len() as u64
    }
}

impl FileState {
    /// State for `attr` whose committed block list is `blocks`.
    pub(crate) fn new(
        client: &Client,
        attr: &Attr,
        blocks: Vec<BlockInfo>,
        block_size: u64,
    ) -> Self {
        FileState {
            client: client.clone(),
            ino: attr.ino,
            block_size,
            base: blocks,
            locations: Mutex::new(HashMap::new()),
            size: attr.size,
            dirty: BTreeMap::new(),
            dirty_bytes: 0,
            append: None,
            finishing: None,
            changed: false,
            poisoned: false,
            lease: None,
        }
    }

    /// Takes a fresh block list and locations from the namenode (after a `SetAttr` or on
    /// reopening for write); only valid with nothing unflushed.
    pub(crate) fn reload(&mut self, layout: &FileBlocks) {
        let mut base = Vec::new();
        for lb in &layout.blocks {
            let i = lb.index as usize;
            if base.len() <= i {
                base.resize(i + 1, BlockInfo::HOLE);
            }
            base[i] = lb.block;
        }
        self.base = base;
        self.size = layout.size;
        self.changed = false;
        self.remember(&layout.blocks);
    }

    fn remember(&self, blocks: &[LocatedBlock]) {
        let mut locs = self.locations.lock().unwrap_or_else(|p| p.into_inner());
        for lb in blocks {
            locs.insert(key(&lb.block), (lb.locations.clone(), lb.token.clone()));
        }
    }

    /// The file as stored, with the replica locations known so far (a block without them is
    /// looked up by whoever reads it), for streaming; `None` while anything is unflushed, since
    /// reads must then see the unflushed bytes.
    pub(crate) fn stored_layout(&self) -> Option<FileBlocks> {
        if !self.is_clean() {
            return None;
        }
        let locs = self.locations.lock().unwrap_or_else(|p| p.into_inner());
        let blocks = self
            .base
            .iter()
            .enumerate()
            .filter(|(_, b)| !b.is_hole())
            .map(|(i, b)| {
                let (locations, token) = locs.get(&key(b)).cloned().unwrap_or_default();
                LocatedBlock {
                    index: i as u64,
                    block: *b,
                    locations,
                    token,
                }
            })
            .collect();
        Some(FileBlocks {
            size: self.size,
            block_size: self.block_size,
            data_version: 0,
            blocks,
            attr: None,
        })
    }

    /// Nothing to flush or commit.
    pub(crate) fn is_clean(&self) -> bool {
        self.dirty.is_empty() && self.append.is_none() && self.finishing.is_none() && !self.changed
    }

    fn check(&self) -> Result<()> {
        if self.poisoned {
            return Err(Error::WriterPoisoned);
        }
        Ok(())
    }

    // ---- writes ----

    /// Writes `data` at `off`.
    pub(crate) async fn write(&mut self, off: u64, data: &[u8]) -> Result<()> {
        self.check()?;
        if data.is_empty() {
            return Ok(());
        }
        off.checked_add(data.len() as u64)
            .ok_or_else(|| Error::api(ErrorCode::FileTooBig, "write past the largest offset"))?;
        if off == self.size {
            let index = off / self.block_size;
            let start_stream = match &self.append {
                Some(a) => a.index == index,
                None => self.dirty.get(&index).is_none_or(Extents::is_empty),
            };
            if start_stream {
                let result = self.append_data(data).await;
                if result.is_err() {
                    self.poisoned = true;
                    self.append = None;
                }
                return result;
            }
        }
        self.finish_append().await?;
        self.write_dirty(off, data);
        Ok(())
    }

    fn write_dirty(&mut self, off: u64, data: &[u8]) {
        let bs = self.block_size;
        let mut pos = off;
        let mut rest = Bytes::copy_from_slice(data);
        while !rest.is_empty() {
            let index = pos / bs;
            let in_block = pos - index * bs;
            let n = ((bs - in_block) as usize).min(rest.len());
            let piece = rest.split_to(n);
            let ext = self.dirty.entry(index).or_default();
            let before = ext.bytes();
            ext.insert(in_block, piece);
            self.dirty_bytes = self.dirty_bytes + ext.bytes() - before;
            pos += n as u64;
        }
        self.size = self.size.max(pos);
        self.changed = true;
    }

    /// Appends at the end of the file through the streamed block, opening it if needed.
    async fn append_data(&mut self, mut data: &[u8]) -> Result<()> {
        let bs = self.block_size;
        while !data.is_empty() {
            if self.append.is_none() {
                self.start_append().await?;
            }
            let Some(a) = self.append.as_mut() else {
                return Err(Error::WriterPoisoned);
            };
            let room_in_block = bs - a.fill();
            let room_in_chunk = (TRANSFER_CHUNK - a.pending.len()) as u64;
            let n = (data.len() as u64).min(room_in_block).min(room_in_chunk) as usize;
            a.pending.extend_from_slice(&data[..n]);
            self.size += n as u64;
            data = &data[n..];
            let full = a.fill() == bs;
            if full || a.pending.len() == TRANSFER_CHUNK {
                let chunk = a.pending.split().freeze();
                a.stream.send(chunk).await?;
            }
            if full {
                self.finish_append_behind().await?;
            }
        }
        self.changed = true;
        Ok(())
    }

    /// Opens the stream of the block holding the end of the file, copying the bytes it already
    /// holds before the end (an append to a partial block).
    async fn start_append(&mut self) -> Result<()> {
        let bs = self.block_size;
        let index = self.size / bs;
        let keep = self.size - index * bs;
        let mut stream = BlockStream::open(&self.client, self.ino, index).await?;
        let old = self.block(index);
        let mut pos = 0;
        let mut pending = BytesMut::new();
        while pos < keep {
            let n = (keep - pos).min(TRANSFER_CHUNK as u64);
            let piece = self.compose(index, old, pos, pos + n).await?;
            if n == TRANSFER_CHUNK as u64 {
                stream.send(piece).await?;
            } else {
                pending.extend_from_slice(&piece);
            }
            pos += n;
        }
        self.dirty.remove(&index);
        self.append = Some(Append {
            index,
            stream,
            pending,
        });
        Ok(())
    }

    /// Ends the streamed block (if any) and lets its pipeline sync it in the background while
    /// the next block streams (once the block before it has settled).
    async fn finish_append_behind(&mut self) -> Result<()> {
        self.settle().await?;
        let Some(mut a) = self.append.take() else {
            return Ok(());
        };
        if !a.pending.is_empty() {
            let chunk = a.pending.split().freeze();
            if let Err(e) = a.stream.send(chunk).await {
                self.poisoned = true;
                return Err(e);
            }
        }
        self.finishing = Some(a.stream.finish_behind());
        Ok(())
    }

    /// Waits for the block finishing in the background; it joins the block list.
    async fn settle(&mut self) -> Result<()> {
        let Some(finishing) = self.finishing.take() else {
            return Ok(());
        };
        let index = finishing.index();
        match finishing.wait().await {
            Ok(located) => {
                self.set_block(index, &located);
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }

    /// Ends the streamed block (if any) and settles the one before it: both join the block
    /// list as pending new generations.
    pub(crate) async fn finish_append(&mut self) -> Result<()> {
        self.finish_append_behind().await?;
        self.settle().await
    }

    fn set_block(&mut self, index: u64, located: &LocatedBlock) {
        let i = index as usize;
        if self.base.len() <= i {
            self.base.resize(i + 1, BlockInfo::HOLE);
        }
        self.base[i] = located.block;
        self.remember(std::slice::from_ref(located));
        self.changed = true;
    }

    /// Truncates (down or up) to `size`; committed at the next flush.
    pub(crate) async fn set_len(&mut self, size: u64) -> Result<()> {
        self.check()?;
        self.finish_append().await?;
        if size < self.size {
            let bs = self.block_size;
            let keep_blocks = size.div_ceil(bs);
            let dropped: Vec<u64> = self.dirty.range(keep_blocks..).map(|(k, _)| *k).collect();
            for k in dropped {
                if let Some(ext) = self.dirty.remove(&k) {
                    self.dirty_bytes -= ext.bytes();
                }
            }
            if !size.is_multiple_of(bs)
                && let Some(ext) = self.dirty.get_mut(&(size / bs))
            {
                let before = ext.bytes();
                ext.truncate(size % bs);
                self.dirty_bytes -= before - ext.bytes();
            }
            self.base.truncate(keep_blocks as usize);
            if let Some(last) = self.base.last_mut()
                && !last.is_hole()
            {
                let start = (keep_blocks - 1) * bs;
                last.len = last.len.min(size - start);
            }
        }
        self.size = size;
        self.changed = true;
        Ok(())
    }

    // ---- flush ----

    /// Writes every unflushed byte and commits the block list and size (if anything changed).
    /// Answers the committed attributes, or `None` when there was nothing to commit.
    pub(crate) async fn flush(&mut self, release: bool) -> Result<Option<Attr>> {
        self.check()?;
        self.finish_append().await?;
        let indexes: Vec<u64> = self.dirty.keys().copied().collect();
        for index in indexes {
            let mut attempt = 0;
            loop {
                attempt += 1;
                match self.rewrite_block(index).await {
                    Ok(()) => break,
                    Err(e) if attempt < REWRITE_ATTEMPTS => {
                        warn!(ino = %self.ino, index, error = %e, "block rewrite failed; retrying");
                    }
                    Err(e) => return Err(e),
                }
            }
            if let Some(ext) = self.dirty.remove(&index) {
                self.dirty_bytes -= ext.bytes();
            }
        }
        if !self.changed && !release {
            return Ok(None);
        }
        let mut blocks = self.base.clone();
        while blocks.last().is_some_and(BlockInfo::is_hole) {
            blocks.pop();
        }
        let req = CommitRequest {
            ino: self.ino,
            client: self.client.client_id().clone(),
            blocks,
            size: self.size,
            release,
        };
        let attr = self.client.call::<Commit>(&req).await?;
        debug!(ino = %self.ino, size = self.size, blocks = req.blocks.len(), release, "committed");
        self.changed = false;
        Ok(Some(attr))
    }

    /// Writes block `index` as a new generation: its stored bytes overlaid with its dirty
    /// extents, a chunk at a time.
    async fn rewrite_block(&mut self, index: u64) -> Result<()> {
        let old = self.block(index);
        let ext_end = self.dirty.get(&index).map_or(0, Extents::end);
        let new_len = old.len.max(ext_end).min(self.block_size);
        let mut stream = BlockStream::open(&self.client, self.ino, index).await?;
        let mut pos = 0;
        while pos < new_len {
            let n = (new_len - pos).min(TRANSFER_CHUNK as u64);
            let piece = self.compose(index, old, pos, pos + n).await?;
            stream.send(piece).await?;
            pos += n;
        }
        let located = stream.finish().await?;
        self.set_block(index, &located);
        Ok(())
    }

    // ---- reads ----

    /// The block at `index` in the block list (a hole if none).
    fn block(&self, index: u64) -> BlockInfo {
        self.base
            .get(index as usize)
            .copied()
            .unwrap_or(BlockInfo::HOLE)
    }

    /// Whether a small read at `off` is likely served by the 4 KiB pages of a replica on this
    /// machine (`crate::local`), where reading a whole 64 KiB piece would cost more disk reads.
    pub(crate) fn reads_local_pages(&self, off: u64) -> bool {
        let block = self.block(off.checked_div(self.block_size).unwrap_or(0));
        if block.is_hole() {
            return false;
        }
        let locations = self.locations.lock().unwrap_or_else(|p| p.into_inner());
        locations
            .get(&key(&block))
            .is_some_and(|(locs, _)| self.client.inner.local.may_read_pages(locs, block))
    }

    /// Whether a read of `[off, off + len)` touches the block being streamed or the one
    /// finishing behind it (which must be finished and settled before they can be read back).
    pub(crate) fn read_needs_finish(&self, off: u64, len: u64) -> bool {
        let end = off.saturating_add(len);
        self.append
            .as_ref()
            .is_some_and(|a| end > a.index * self.block_size)
            || self
                .finishing
                .as_ref()
                .is_some_and(|f| end > f.index() * self.block_size)
    }

    /// Up to `len` bytes at `off` as this process sees them: stored bytes, zeros past a block's
    /// data, this process's dirty extents on top. The caller finishes the append first when
    /// [`read_needs_finish`](Self::read_needs_finish) says so.
    pub(crate) async fn read(&self, off: u64, len: u64) -> Result<Bytes> {
        let end = off.saturating_add(len).min(self.size);
        if off >= end {
            return Ok(Bytes::new());
        }
        let bs = self.block_size;
        let mut out = BytesMut::with_capacity((end - off) as usize);
        let mut pos = off;
        while pos < end {
            let index = pos / bs;
            let start = index * bs;
            let stop = (start + bs).min(end);
            let piece = self
                .compose(index, self.block(index), pos - start, stop - start)
                .await?;
            out.extend_from_slice(&piece);
            pos = stop;
        }
        Ok(out.freeze())
    }

    /// Bytes `[from, to)` of block `index`: `old`'s stored bytes (zeros past its length) with
    /// the dirty extents on top. Skips the datanode when extents cover the range.
    async fn compose(&self, index: u64, old: BlockInfo, from: u64, to: u64) -> Result<Bytes> {
        let ext = self.dirty.get(&index);
        let data_to = if old.is_hole() {
            from
        } else {
            old.len.clamp(from, to)
        };
        if ext.is_none() && data_to == to {
            return self.read_stored(index, old, from, to).await;
        }
        let mut buf = vec![0u8; (to - from) as usize];
        if data_to > from && !ext.is_some_and(|x| x.covers(from, data_to)) {
            let stored = self.read_stored(index, old, from, data_to).await?;
            buf[..stored.len()].copy_from_slice(&stored);
        }
        if let Some(ext) = ext {
            ext.overlay(from, &mut buf);
        }
        Ok(Bytes::from(buf))
    }

    /// Bytes `[from, to)` of the stored block, from a replica (refreshing locations once).
    async fn read_stored(&self, index: u64, block: BlockInfo, from: u64, to: u64) -> Result<Bytes> {
        let cached = self
            .locations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key(&block))
            .cloned();
        let mut refreshed = false;
        let (mut locations, mut token) = match cached {
            Some(l) => l,
            None => {
                refreshed = true;
                self.refresh_locations(&block).await?
            }
        };
        loop {
            let located = LocatedBlock {
                index,
                block,
                locations,
                token,
            };
            match read_range(&self.client, &located, from, to).await {
                Ok(bytes) => return Ok(bytes),
                Err(e) if !refreshed => {
                    warn!(ino = %self.ino, block = %block.id, error = %e, "every replica failed; refreshing locations");
                    refreshed = true;
                    (locations, token) = self.refresh_locations(&block).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn refresh_locations(
        &self,
        block: &BlockInfo,
    ) -> Result<(Vec<DatanodeAddr>, Option<String>)> {
        let layout = self
            .client
            .call::<GetBlocks>(&GetBlocksRequest {
                ino: self.ino,
                offset: 0,
                len: 0,
            })
            .await?;
        self.remember(&layout.blocks);
        Ok(self
            .locations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key(block))
            .cloned()
            .unwrap_or_default())
    }
}

fn key(block: &BlockInfo) -> (u64, u64) {
    (block.id.0, block.generation.0)
}

/// Bytes `[from, to)` of a located block, whole, with replica failover.
async fn read_range(client: &Client, located: &LocatedBlock, from: u64, to: u64) -> Result<Bytes> {
    let mut range = BlockRange::new(client, located, from, to);
    let mut out = BytesMut::with_capacity((to - from) as usize);
    while let Some(bytes) = range.next().await? {
        out.extend_from_slice(&bytes);
    }
    if out.len() as u64 != to - from {
        return Err(Error::Protocol {
            addr: String::new(),
            block: located.block.id,
            what: "a replica is shorter than its recorded length",
        });
    }
    Ok(out.freeze())
}
