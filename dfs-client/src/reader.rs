//! File reads: block locations from the namenode once (refreshed when every replica of a block
//! fails), each range streamed from a replica with every chunk verified against its CRC32C, and
//! failover to the next replica (resuming where the last one stopped) on any error. A replica
//! whose data fails its checksum is reported to the namenode, which replaces it.
//! Bytes of the file beyond a block's length, or in holes, read as zeros.

use crate::client::Client;
use crate::error::{Error, Result};
use crate::local::LocalReplica;
use bytes::{Bytes, BytesMut};
use dfs_proto::checksum::{CHECKSUM_CHUNK, CHECKSUM_PAGE, verify, verify_pages};
use dfs_proto::grpc::{BlockRef, DataChunk, ReadBlockRequest, ReadBlockResponse};
use dfs_proto::rest::{
    BadReplica, BlockInfo, DatanodeAddr, FileBlocks, GetBlocks, GetBlocksRequest, LocatedBlock,
    ReplicaRef, ReportBadReplicas, ReportBadReplicasRequest,
};
use dfs_proto::{InodeId, TRANSFER_CHUNK};
use std::sync::Arc;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tonic::Streaming;
use tracing::warn;

/// Chunks (up to 1 MiB each) a sequential copy reads ahead of its consumer.
const READ_AHEAD_CHUNKS: usize = 4;

/// Reads one file by inode.
pub struct FileReader {
    client: Client,
    ino: InodeId,
    /// Block locations, fetched on first read and refreshed when every replica of a block fails.
    layout: Option<FileBlocks>,
}

impl FileReader {
    pub(crate) fn new(client: &Client, ino: InodeId) -> FileReader {
        FileReader {
            client: client.clone(),
            ino,
            layout: None,
        }
    }

    pub fn ino(&self) -> InodeId {
        self.ino
    }

    /// The file's size as of the last block lookup.
    pub async fn size(&mut self) -> Result<u64> {
        Ok(self.layout().await?.size)
    }

    /// Forgets the cached block locations; the next read asks the namenode again.
    pub fn invalidate(&mut self) {
        self.layout = None;
    }

    async fn layout(&mut self) -> Result<&FileBlocks> {
        let layout = match self.layout.take() {
            Some(layout) => layout,
            None => fetch_layout(&self.client, self.ino).await?,
        };
        Ok(self.layout.insert(layout))
    }

    /// Up to `len` bytes at `offset` (fewer at the end of the file, none past it).
    pub async fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes> {
        let layout = self.layout().await?.clone();
        let end = offset.saturating_add(len as u64).min(layout.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        let mut pos = offset;
        while pos < end {
            let span = block_span(&layout, pos, end);
            if let Some(located) = span.located {
                let mut range = BlockRange::new(
                    &self.client,
                    located,
                    pos - span.start,
                    span.data_end - span.start,
                );
                loop {
                    match range.next().await {
                        Ok(Some(bytes)) => out.extend_from_slice(&bytes),
                        Ok(None) => break,
                        Err(err) if !range.refreshed => {
                            warn!(ino = %self.ino, error = %err, "every replica failed; refreshing block locations");
                            let fresh = fetch_layout(&self.client, self.ino).await?;
                            range.retarget(&fresh, span.index)?;
                            self.layout = Some(fresh);
                        }
                        Err(err) => return Err(err),
                    }
                }
                pos = span.data_end;
            }
            out.resize(out.len() + (span.end - pos) as usize, 0);
            pos = span.end;
        }
        Ok(out.freeze())
    }

    /// Copies the whole file to `out`, reading ahead while `out` is written; calls `progress`
    /// with the bytes copied so far. Returns the bytes copied.
    pub async fn copy_to<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut W,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        let layout = self.layout().await?.clone();
        let (tx, mut rx) = mpsc::channel(READ_AHEAD_CHUNKS);
        let producer = tokio::spawn(stream_file(self.client.clone(), self.ino, layout, 0, tx));
        let mut copied = 0u64;
        while let Some(item) = rx.recv().await {
            let bytes = item?;
            out.write_all(&bytes)
                .await
                .map_err(|e| Error::local("<output>", e))?;
            copied += bytes.len() as u64;
            progress(copied);
        }
        out.flush().await.map_err(|e| Error::local("<output>", e))?;
        // The producer ends by closing the channel; a panic there would be a bug, not data.
        if let Err(join) = producer.await {
            warn!(ino = %self.ino, error = %join, "read-ahead task failed");
        }
        Ok(copied)
    }
}

async fn fetch_layout(client: &Client, ino: InodeId) -> Result<FileBlocks> {
    client
        .call::<GetBlocks>(&GetBlocksRequest {
            ino,
            offset: 0,
            len: 0,
        })
        .await
}

/// The part of one block that a read from `pos` (before `end`) touches.
struct BlockSpan<'a> {
    index: u64,
    /// File offset of the block's first byte.
    start: u64,
    /// Where the read within this block stops (file offset).
    end: u64,
    /// Where the block's stored data stops (file offset, at most `end`); zeros follow.
    data_end: u64,
    located: Option<&'a LocatedBlock>,
}

fn block_span(layout: &FileBlocks, pos: u64, end: u64) -> BlockSpan<'_> {
    if layout.block_size == 0 {
        return BlockSpan {
            index: 0,
            start: pos,
            end,
            data_end: pos,
            located: None,
        };
    }
    let index = pos / layout.block_size;
    let start = index * layout.block_size;
    let block_end = (start + layout.block_size).min(end);
    let located = layout
        .blocks
        .iter()
        .find(|b| b.index == index && !b.block.is_hole());
    let data_end = match located {
        Some(b) => (start + b.block.len).clamp(pos, block_end),
        None => pos,
    };
    BlockSpan {
        index,
        start,
        end: block_end,
        data_end,
        located: located.filter(|_| data_end > pos),
    }
}

/// Feeds a file from offset `from` to its end, block by block, into `tx` (zeros for holes and
/// short blocks).
pub(crate) async fn stream_file(
    client: Client,
    ino: InodeId,
    mut layout: FileBlocks,
    from: u64,
    tx: mpsc::Sender<Result<Bytes>>,
) {
    let size = layout.size;
    let mut pos = from;
    while pos < size {
        let span = block_span(&layout, pos, size);
        let (index, start, end, data_end) = (span.index, span.start, span.end, span.data_end);
        if let Some(located) = span.located {
            let mut range = BlockRange::new(&client, located, pos - start, data_end - start);
            loop {
                let item = match range.next().await {
                    Ok(Some(bytes)) => Ok(bytes),
                    Ok(None) => break,
                    Err(err) if !range.refreshed => {
                        warn!(%ino, error = %err, "every replica failed; refreshing block locations");
                        match fetch_layout(&client, ino).await {
                            Ok(fresh) => match range.retarget(&fresh, index) {
                                Ok(()) => {
                                    layout = fresh;
                                    continue;
                                }
                                Err(e) => Err(e),
                            },
                            Err(e) => Err(e),
                        }
                    }
                    Err(err) => Err(err),
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
            pos = data_end;
        }
        while pos < end {
            let n = (end - pos).min(TRANSFER_CHUNK as u64);
            if tx
                .send(Ok(Bytes::from(vec![0u8; n as usize])))
                .await
                .is_err()
            {
                return;
            }
            pos += n;
        }
    }
}

/// The checksums a chunk carries: one per 64 KiB piece (as every datanode sends), or one per
/// 4 KiB page (a small local read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grid {
    Pieces,
    Pages,
}

/// Where a block range's chunks come from.
enum Source {
    /// A ReadBlock stream from the datanode.
    Stream(Box<Streaming<ReadBlockResponse>>),
    /// The replica's file, handed over by a datanode of this machine.
    Local(Arc<LocalReplica>),
}

/// Streams the bytes `[pos, end)` of one block from its replicas in turn, verifying every chunk
/// and resuming at the next replica where a failed one stopped. Replicas on datanodes of this
/// machine are tried first, and read from their files (`crate::local`).
pub(crate) struct BlockRange {
    client: Client,
    block: BlockInfo,
    locations: Vec<DatanodeAddr>,
    /// The read token from the namenode (empty for a cluster without a secret).
    token: String,
    next_replica: usize,
    /// Next block offset to hand out.
    pos: u64,
    end: u64,
    /// The replica being read, and the gRPC address that names it.
    source: Option<(DatanodeAddr, Source)>,
    tried: Vec<String>,
    last_error: Option<String>,
    /// The locations were refreshed from the namenode once already.
    refreshed: bool,
}

impl BlockRange {
    pub(crate) fn new(client: &Client, located: &LocatedBlock, pos: u64, end: u64) -> BlockRange {
        BlockRange {
            client: client.clone(),
            block: located.block,
            locations: local_first(client, &located.locations),
            token: located.token.clone().unwrap_or_default(),
            next_replica: 0,
            pos,
            end,
            source: None,
            tried: Vec::new(),
            last_error: None,
            refreshed: false,
        }
    }

    /// Takes fresh locations for block `index` from `layout`, keeping the position.
    fn retarget(&mut self, layout: &FileBlocks, index: u64) -> Result<()> {
        self.refreshed = true;
        match layout.blocks.iter().find(|b| b.index == index) {
            Some(located) if located.block == self.block => {
                self.locations = local_first(&self.client, &located.locations);
                // A fresh token too: the old one may be what expired.
                self.token = located.token.clone().unwrap_or_default();
                self.next_replica = 0;
                Ok(())
            }
            _ => Err(Error::api(
                dfs_proto::ErrorCode::Stale,
                format!("block {} changed while being read", self.block.id),
            )),
        }
    }

    /// The next verified piece of the range, or `None` at its end.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>> {
        loop {
            if self.pos >= self.end {
                return Ok(None);
            }
            let Some((loc, source)) = self.source.as_mut() else {
                let Some(loc) = self.locations.get(self.next_replica).cloned() else {
                    return Err(Error::NoReplica {
                        block: self.block.id,
                        tried: std::mem::take(&mut self.tried),
                        last: self
                            .last_error
                            .take()
                            .unwrap_or_else(|| "no datanode holds it".to_string()),
                    });
                };
                self.next_replica += 1;
                self.tried.push(loc.grpc.clone());
                let local = self.client.inner.local.open(&loc, self.block, &self.token);
                let opened = match local.await {
                    Some(replica) => replica.map(Source::Local),
                    None => self
                        .open(&loc.grpc)
                        .await
                        .map(|s| Source::Stream(Box::new(s))),
                };
                match opened {
                    Ok(source) => self.source = Some((loc, source)),
                    Err(err) => self.fail(&loc, err),
                }
                continue;
            };
            let loc = loc.clone();
            let outcome = match source {
                Source::Stream(stream) => match stream.message().await {
                    Ok(Some(msg)) => {
                        msg.chunk.map(|chunk| (chunk, Grid::Pieces)).ok_or_else(|| {
                            Error::Protocol {
                                addr: loc.grpc.clone(),
                                block: self.block.id,
                                what: "a message without a chunk",
                            }
                        })
                    }
                    Ok(None) => Err(Error::Protocol {
                        addr: loc.grpc.clone(),
                        block: self.block.id,
                        what: "the stream ended before the requested range",
                    }),
                    Err(status) => Err(Error::datanode(&loc.grpc, status)),
                },
                Source::Local(replica) => {
                    read_local(Arc::clone(replica), &loc, self.block.id, self.pos, self.end).await
                }
            }
            .and_then(|(chunk, grid)| self.take(&loc.grpc, chunk, grid));
            match outcome {
                Ok(Some(bytes)) => return Ok(Some(bytes)),
                Ok(None) => {}
                Err(err) => {
                    if matches!(self.source, Some((_, Source::Local(_)))) {
                        self.client.inner.local.forget(&loc, self.block);
                    }
                    self.fail(&loc, err);
                }
            }
        }
    }

    fn fail(&mut self, loc: &DatanodeAddr, err: Error) {
        warn!(block = %self.block.id, datanode = loc.grpc, error = %err, "replica failed; trying the next");
        if matches!(err, Error::Checksum { .. }) {
            self.report_bad(loc);
        }
        self.source = None;
        self.last_error = Some(err.to_string());
    }

    /// Tells the namenode (in the background) that the replica at `addr` fails its checksums, so
    /// it is replaced by a copy of a good one and deleted.
    fn report_bad(&self, loc: &DatanodeAddr) {
        let req = ReportBadReplicasRequest {
            replicas: vec![BadReplica {
                block: ReplicaRef {
                    id: self.block.id,
                    generation: self.block.generation,
                },
                datanode: loc.id.clone(),
            }],
        };
        let client = self.client.clone();
        let block = self.block.id;
        tokio::spawn(async move {
            if let Err(error) = client.call::<ReportBadReplicas>(&req).await {
                warn!(%block, %error, "could not report a corrupt replica");
            }
        });
    }

    async fn open(&self, addr: &str) -> Result<Streaming<ReadBlockResponse>> {
        let mut datanode = self.client.datanode(addr)?;
        let req = ReadBlockRequest {
            block: Some(BlockRef {
                block_id: self.block.id.0,
                generation: self.block.generation.0,
            }),
            offset: self.pos,
            length: self.end - self.pos,
            access_token: self.token.clone(),
        };
        let resp = datanode
            .read_block(req)
            .await
            .map_err(|status| Error::datanode(addr, status))?;
        Ok(resp.into_inner())
    }

    /// Verifies a chunk and cuts it to the part not yet handed out.
    fn take(&mut self, addr: &str, chunk: DataChunk, grid: Grid) -> Result<Option<Bytes>> {
        let protocol = |what| Error::Protocol {
            addr: addr.to_string(),
            block: self.block.id,
            what,
        };
        match grid {
            Grid::Pieces => verify(&chunk),
            Grid::Pages => verify_pages(chunk.offset, &chunk.data, &chunk.crc32c),
        }
        .map_err(|source| Error::Checksum {
            addr: addr.to_string(),
            block: self.block.id,
            source,
        })?;
        let chunk_end = chunk.offset + chunk.data.len() as u64;
        if chunk.offset > self.pos {
            return Err(protocol("a gap in the stream"));
        }
        if chunk_end <= self.pos {
            return Ok(None);
        }
        let from = (self.pos - chunk.offset) as usize;
        let to = (chunk_end.min(self.end) - chunk.offset) as usize;
        self.pos = chunk.offset + to as u64;
        Ok(Some(chunk.data.slice(from..to)))
    }
}

/// `locations` with the datanodes that may be on this machine first (their replicas are read
/// from their files), the rest in the namenode's order.
fn local_first(client: &Client, locations: &[DatanodeAddr]) -> Vec<DatanodeAddr> {
    let mut ordered = locations.to_vec();
    ordered.sort_by_key(|loc| !client.inner.local.may_be_local(loc));
    ordered
}

/// The next chunk of `[pos, end)` from a replica of this machine, read on a blocking thread:
/// the 4 KiB pages around a range shorter than a piece, when the replica has page checksums;
/// otherwise whole 64 KiB pieces from the one holding `pos`, up to [`TRANSFER_CHUNK`] bytes.
async fn read_local(
    replica: Arc<LocalReplica>,
    loc: &DatanodeAddr,
    block: dfs_proto::BlockId,
    pos: u64,
    end: u64,
) -> Result<(DataChunk, Grid)> {
    let (grid, unit) = if replica.has_pages() && end - pos < CHECKSUM_CHUNK as u64 {
        (Grid::Pages, CHECKSUM_PAGE as u64)
    } else {
        (Grid::Pieces, CHECKSUM_CHUNK as u64)
    };
    let start = pos - pos % unit;
    let range_end = end
        .div_ceil(unit)
        .saturating_mul(unit)
        .min(replica.length());
    if range_end < end {
        return Err(Error::Protocol {
            addr: loc.grpc.clone(),
            block,
            what: "the replica is shorter than the block",
        });
    }
    let len = (range_end - start).min(TRANSFER_CHUNK as u64) as usize;
    let read = tokio::task::spawn_blocking(move || match grid {
        Grid::Pages => replica.read_pages(start, len),
        Grid::Pieces => replica.read_chunk(start, len, range_end),
    })
    .await;
    match read {
        Ok(Ok(chunk)) => Ok((chunk, grid)),
        Ok(Err(e)) => Err(Error::LocalRead {
            addr: loc.grpc.clone(),
            block,
            reason: format!("read the replica's file: {e}"),
        }),
        Err(e) => Err(Error::LocalRead {
            addr: loc.grpc.clone(),
            block,
            reason: e.to_string(),
        }),
    }
}
