//! What a block's pipeline has been sent, kept for a replay to a rebuilt pipeline (see
//! [`crate::block_writer`]): the first [`IN_MEMORY`] bytes in memory, the rest in an unlinked
//! temporary file (under `TMPDIR`), so a file being written costs a few MiB of memory whatever
//! the block size. The file is only written, never synced, and read back only when a datanode
//! fails mid-block; when it cannot be written, chunks stay in memory instead.

use crate::error::{Error, Result};
use bytes::Bytes;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use tracing::warn;

/// Bytes of a block kept in memory before the rest goes to the temporary file.
const IN_MEMORY: usize = 4 * 1024 * 1024;

/// One kept chunk.
enum Kept {
    Memory(Bytes),
    /// `len` bytes at `offset` of the temporary file.
    Spilled {
        offset: u64,
        len: usize,
    },
}

#[derive(Default)]
pub(crate) struct ReplayLog {
    chunks: Vec<Kept>,
    memory_bytes: usize,
    file: Option<Arc<File>>,
    file_bytes: u64,
}

impl ReplayLog {
    /// Keeps `data`, the next chunk sent.
    pub(crate) async fn push(&mut self, data: Bytes) {
        if self.memory_bytes + data.len() > IN_MEMORY {
            match self.spill(data.clone()).await {
                Ok(kept) => {
                    self.chunks.push(kept);
                    return;
                }
                Err(e) => {
                    warn!(error = %e, "cannot spill a written block to a temporary file; keeping it in memory")
                }
            }
        }
        self.memory_bytes += data.len();
        self.chunks.push(Kept::Memory(data));
    }

    async fn spill(&mut self, data: Bytes) -> std::io::Result<Kept> {
        let file = match &self.file {
            Some(f) => f.clone(),
            None => {
                let f = Arc::new(tokio::task::spawn_blocking(tempfile::tempfile).await??);
                self.file = Some(f.clone());
                f
            }
        };
        let (offset, len) = (self.file_bytes, data.len());
        tokio::task::spawn_blocking(move || file.write_all_at(&data, offset)).await??;
        self.file_bytes += len as u64;
        Ok(Kept::Spilled { offset, len })
    }

    /// How many chunks are kept.
    pub(crate) fn len(&self) -> usize {
        self.chunks.len()
    }

    /// Chunk `i` (in the order sent).
    pub(crate) async fn get(&self, i: usize) -> Result<Bytes> {
        match self.chunks.get(i) {
            Some(Kept::Memory(b)) => Ok(b.clone()),
            Some(&Kept::Spilled { offset, len }) => {
                let file = self.file.clone().ok_or_else(|| {
                    Error::local("<block spill file>", std::io::Error::other("no spill file"))
                })?;
                let read = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; len];
                    file.read_exact_at(&mut buf, offset)
                        .map(|()| Bytes::from(buf))
                })
                .await
                .map_err(|e| Error::local("<block spill file>", std::io::Error::other(e)))?;
                read.map_err(|e| Error::local("<block spill file>", e))
            }
            None => Err(Error::local(
                "<block spill file>",
                std::io::Error::other(format!("no kept chunk {i}")),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_chunks_in_order_in_memory_then_in_a_file() {
        let mut log = ReplayLog::default();
        let chunks: Vec<Bytes> = (0..7u8)
            .map(|i| Bytes::from(vec![i; 1024 * 1024 - usize::from(i)]))
            .collect();
        for c in &chunks {
            log.push(c.clone()).await;
        }
        assert_eq!(log.len(), chunks.len());
        assert!(
            log.memory_bytes <= IN_MEMORY,
            "{} in memory",
            log.memory_bytes
        );
        assert!(log.file.is_some(), "nothing spilled");
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(&log.get(i).await.expect("kept chunk"), c, "chunk {i}");
        }
        assert!(log.get(chunks.len()).await.is_err());
    }
}
