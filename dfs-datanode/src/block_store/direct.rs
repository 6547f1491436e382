//! Writing a replica around the page cache (`O_DIRECT`), for copies nobody is about to read
//! (re-replication). The bytes go from one reused, page-aligned buffer straight to the disk:
//! no page cache to fill, write back and drop again, and nothing pushed out of the cache that
//! clients read. Direct writes need whole pages, so the buffer fills to [`STAGE`] bytes between
//! writes and the last partial page goes through the ordinary (cached) descriptor at the end.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// The unit of a direct write's alignment (memory, offset and length).
const PAGE: usize = 4096;
/// Bytes gathered before each direct write.
pub(super) const STAGE: usize = 1024 * 1024;

/// One page of the staging buffer; the alignment makes the whole buffer page-aligned.
#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Page([u8; PAGE]);

pub(super) struct DirectWriter {
    file: File,
    stage: Vec<Page>,
    /// Bytes in `stage`.
    staged: usize,
    /// Bytes already written to the file (whole stages).
    written: u64,
}

/// The pages as one byte slice.
fn bytes(pages: &mut [Page]) -> &mut [u8] {
    // SAFETY: `Page` is `repr(C)` around a byte array with no padding, so the pages are
    // `len * PAGE` contiguous, initialised bytes, borrowed mutably for as long as `pages` is.
    unsafe { std::slice::from_raw_parts_mut(pages.as_mut_ptr().cast::<u8>(), pages.len() * PAGE) }
}

impl DirectWriter {
    /// Opens `path` (already created) for direct writes from its start. Fails where the file
    /// system has no `O_DIRECT` (tmpfs, for one); the caller then writes through the cache.
    pub(super) fn open(path: &Path) -> io::Result<DirectWriter> {
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)?;
        Ok(DirectWriter {
            file,
            stage: vec![Page([0; PAGE]); STAGE / PAGE],
            staged: 0,
            written: 0,
        })
    }

    /// Appends `data`, writing every full stage.
    pub(super) fn append(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let at = self.staged;
            let n = (STAGE - at).min(data.len());
            bytes(&mut self.stage)[at..at + n].copy_from_slice(&data[..n]);
            self.staged += n;
            data = &data[n..];
            if self.staged == STAGE {
                self.write_pages(STAGE)?;
            }
        }
        Ok(())
    }

    /// Writes the first `len` staged bytes (whole pages) at the end of what is written, and
    /// moves what follows them to the front of the stage.
    fn write_pages(&mut self, len: usize) -> io::Result<()> {
        debug_assert!(len.is_multiple_of(PAGE) && len <= self.staged);
        let at = self.written;
        let staged = self.staged;
        let buf = bytes(&mut self.stage);
        self.file.write_all_at(&buf[..len], at)?;
        buf.copy_within(len..staged, 0);
        self.written += len as u64;
        self.staged -= len;
        Ok(())
    }

    /// Writes what is still staged: the whole pages directly, the last partial page through
    /// `cached` (the same file opened without `O_DIRECT`). The caller syncs the file after.
    pub(super) fn finish(&mut self, cached: &File) -> io::Result<()> {
        let pages = self.staged / PAGE * PAGE;
        if pages > 0 {
            self.write_pages(pages)?;
        }
        if self.staged > 0 {
            let (at, staged) = (self.written, self.staged);
            cached.write_all_at(&bytes(&mut self.stage)[..staged], at)?;
            self.written += staged as u64;
            self.staged = 0;
        }
        Ok(())
    }
}
