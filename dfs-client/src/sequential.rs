//! Read-ahead for a sequential reader of an [`OpenFile`](crate::OpenFile): the file streamed
//! from its replicas, one gRPC stream per block as `dfs get` reads it, running a bounded number
//! of chunks ahead of the reader.
//!
//! The kernel sends a sequential reader's reads a few at a time and they may be served out of
//! order, so a [`Sequential`] keeps what it received from a little behind the furthest read
//! (`BEHIND`) and serves any read between that and a little past what arrived (`REACH`). It is
//! only ever a shortcut: a read it cannot serve, or a stream that fails, goes the direct way
//! (with its replica failover and errors), and the stream is dropped.

use crate::client::Client;
use crate::error::Result;
use crate::reader::stream_file;
use bytes::{Bytes, BytesMut};
use dfs_proto::InodeId;
use dfs_proto::rest::FileBlocks;
use std::collections::VecDeque;
use tokio::sync::mpsc;

/// Chunks (up to 1 MiB each) the stream fetches ahead of the furthest read.
const AHEAD_CHUNKS: usize = 4;
/// Bytes kept behind the furthest read, for reads the kernel sent earlier and that arrive late.
const BEHIND: u64 = 2 * 1024 * 1024;
/// How far past the received bytes a read may start and still be served by the stream.
const REACH: u64 = 2 * 1024 * 1024;

/// A file streamed from `start` on, for one content version of an open file.
pub(crate) struct Sequential {
    version: u64,
    /// File offset of `chunks.front()`.
    start: u64,
    /// File offset just past `chunks.back()`.
    end: u64,
    chunks: VecDeque<Bytes>,
    /// The file's size when the stream started; nothing past it is streamed.
    size: u64,
    rx: mpsc::Receiver<Result<Bytes>>,
    producer: tokio::task::AbortHandle,
}

impl Drop for Sequential {
    fn drop(&mut self) {
        self.producer.abort();
    }
}

impl Sequential {
    /// Starts streaming `layout` (the file as stored, version `version`) from `from`.
    pub(crate) fn start(
        client: &Client,
        ino: InodeId,
        layout: FileBlocks,
        from: u64,
        version: u64,
    ) -> Sequential {
        let size = layout.size;
        let (tx, rx) = mpsc::channel(AHEAD_CHUNKS);
        let task = tokio::spawn(stream_file(client.clone(), ino, layout, from, tx));
        Sequential {
            version,
            start: from,
            end: from,
            chunks: VecDeque::new(),
            size,
            rx,
            producer: task.abort_handle(),
        }
    }

    /// Whether this stream can serve a read at `offset` of content version `version`.
    pub(crate) fn covers(&self, version: u64, offset: u64) -> bool {
        self.version == version && offset >= self.start && offset <= self.end.saturating_add(REACH)
    }

    /// Up to `len` bytes at `offset` (short only at the end of the file), waiting for the
    /// stream to bring them; `None` when the stream failed or ended early.
    pub(crate) async fn read(&mut self, offset: u64, len: u64) -> Option<Bytes> {
        let want = offset.saturating_add(len).min(self.size);
        if offset >= want {
            return Some(Bytes::new());
        }
        while self.end < want {
            match self.rx.recv().await {
                Some(Ok(bytes)) => {
                    self.end += bytes.len() as u64;
                    self.chunks.push_back(bytes);
                }
                // The producer failed (the error goes the direct way) or ended early.
                Some(Err(_)) | None => return None,
            }
        }
        let out = self.slice(offset, want);
        self.trim(offset.saturating_sub(BEHIND));
        Some(out)
    }

    /// Bytes `[from, to)`, all received: a slice of one chunk when it holds them, else a copy.
    fn slice(&self, from: u64, to: u64) -> Bytes {
        let mut at = self.start;
        let mut out: Option<BytesMut> = None;
        for chunk in &self.chunks {
            let chunk_end = at + chunk.len() as u64;
            if chunk_end > from && at < to {
                let a = (from.max(at) - at) as usize;
                let b = (to.min(chunk_end) - at) as usize;
                if out.is_none() && from >= at && to <= chunk_end {
                    return chunk.slice(a..b);
                }
                out.get_or_insert_with(|| BytesMut::with_capacity((to - from) as usize))
                    .extend_from_slice(&chunk[a..b]);
            }
            at = chunk_end;
            if at >= to {
                break;
            }
        }
        out.map(BytesMut::freeze).unwrap_or_default()
    }

    /// Drops the chunks that end at or before `offset`.
    fn trim(&mut self, offset: u64) {
        while let Some(front) = self.chunks.front() {
            let front_end = self.start + front.len() as u64;
            if front_end > offset {
                break;
            }
            self.start = front_end;
            self.chunks.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_of(chunks: &[&[u8]], start: u64) -> Sequential {
        let (_tx, rx) = mpsc::channel(1);
        let producer = tokio::spawn(async {}).abort_handle();
        let chunks: VecDeque<Bytes> = chunks.iter().map(|c| Bytes::copy_from_slice(c)).collect();
        let end = start + chunks.iter().map(|c| c.len() as u64).sum::<u64>();
        Sequential {
            version: 0,
            start,
            end,
            chunks,
            size: end,
            rx,
            producer,
        }
    }

    #[tokio::test]
    async fn slices_within_and_across_chunks() {
        let s = stream_of(&[b"abcd", b"efgh", b"ij"], 100);
        assert_eq!(&s.slice(101, 103)[..], b"bc");
        assert_eq!(&s.slice(103, 109)[..], b"defghi");
        assert_eq!(&s.slice(100, 110)[..], b"abcdefghij");
        assert_eq!(&s.slice(108, 110)[..], b"ij");
    }

    #[tokio::test]
    async fn trims_only_whole_chunks_behind() {
        let mut s = stream_of(&[b"abcd", b"efgh", b"ij"], 0);
        s.trim(5);
        assert_eq!(s.start, 4);
        assert_eq!(&s.slice(4, 10)[..], b"efghij");
        assert!(s.covers(0, 4));
        assert!(!s.covers(0, 3));
        assert!(!s.covers(1, 4), "another version");
    }

    #[tokio::test]
    async fn reads_what_is_there_and_stops_at_the_size() {
        let mut s = stream_of(&[b"abcd", b"efgh"], 0);
        assert_eq!(&s.read(2, 4).await.unwrap_or_default()[..], b"cdef");
        assert_eq!(&s.read(6, 100).await.unwrap_or_default()[..], b"gh");
        assert_eq!(s.read(8, 4).await.map(|b| b.len()), Some(0));
    }

    #[tokio::test]
    async fn a_stream_that_ends_early_serves_nothing() {
        let mut s = stream_of(&[b"abcd"], 0);
        s.size = 100;
        assert!(s.read(2, 10).await.is_none());
    }
}
