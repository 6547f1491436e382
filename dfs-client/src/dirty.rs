//! Unflushed writes of one block: non-overlapping byte extents keyed by their offset in the
//! block, newest data winning where writes overlap. Readers overlay them on the block's stored
//! bytes; a flush streams stored bytes and extents together as the block's next generation.

use bytes::Bytes;
use std::collections::BTreeMap;

/// The dirty extents of one block.
#[derive(Debug, Default, Clone)]
pub(crate) struct Extents {
    /// Offset in the block -> data; extents never overlap.
    map: BTreeMap<u64, Bytes>,
    /// Sum of the extents' lengths.
    bytes: usize,
}

impl Extents {
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// One past the last dirty byte (0 when empty).
    pub(crate) fn end(&self) -> u64 {
        self.map
            .iter()
            .next_back()
            .map_or(0, |(off, data)| off + data.len() as u64)
    }

    /// Records `data` at `off`, replacing whatever older extents it overlaps.
    pub(crate) fn insert(&mut self, off: u64, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let end = off + data.len() as u64;
        self.cut(off, end);
        self.bytes += data.len();
        self.map.insert(off, data);
    }

    /// Drops every dirty byte at or after `len` (a truncate).
    pub(crate) fn truncate(&mut self, len: u64) {
        self.cut(len, u64::MAX);
    }

    /// Removes the bytes `[from, to)`, keeping the parts of extents outside it.
    fn cut(&mut self, from: u64, to: u64) {
        let hit: Vec<u64> = self
            .map
            .range(..to)
            .rev()
            .take_while(|(o, d)| *o + d.len() as u64 > from)
            .map(|(o, _)| *o)
            .collect();
        for o in hit {
            let Some(d) = self.map.remove(&o) else {
                continue;
            };
            self.bytes -= d.len();
            let e = o + d.len() as u64;
            if o < from {
                let left = d.slice(..(from - o) as usize);
                self.bytes += left.len();
                self.map.insert(o, left);
            }
            if e > to {
                let right = d.slice((to - o) as usize..);
                self.bytes += right.len();
                self.map.insert(to, right);
            }
        }
    }

    /// Whether the extents cover every byte of `[from, to)`.
    pub(crate) fn covers(&self, from: u64, to: u64) -> bool {
        let mut pos = from;
        for (o, d) in self.map.range(..to) {
            let e = o + d.len() as u64;
            if e <= pos {
                continue;
            }
            if *o > pos {
                return false;
            }
            pos = e;
            if pos >= to {
                return true;
            }
        }
        pos >= to
    }

    /// Copies the dirty bytes within `[from, from + buf.len())` over `buf`.
    pub(crate) fn overlay(&self, from: u64, buf: &mut [u8]) {
        let to = from + buf.len() as u64;
        for (o, d) in self.map.range(..to) {
            let e = o + d.len() as u64;
            if e <= from {
                continue;
            }
            let lo = (*o).max(from);
            let hi = e.min(to);
            buf[(lo - from) as usize..(hi - from) as usize]
                .copy_from_slice(&d[(lo - o) as usize..(hi - o) as usize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(x: &Extents, len: usize) -> Vec<u8> {
        let mut buf = vec![b'.'; len];
        x.overlay(0, &mut buf);
        buf
    }

    #[test]
    fn newer_writes_win_and_split_older_ones() {
        let mut x = Extents::default();
        x.insert(2, Bytes::from_static(b"aaaaaa"));
        x.insert(4, Bytes::from_static(b"bb"));
        assert_eq!(view(&x, 10), b"..aabbaa..");
        assert_eq!(x.bytes(), 6);
        x.insert(0, Bytes::from_static(b"ccc"));
        assert_eq!(view(&x, 10), b"cccabbaa..");
        x.insert(7, Bytes::from_static(b"ddd"));
        assert_eq!(view(&x, 10), b"cccabbaddd");
        assert_eq!(x.bytes(), 10);
        assert_eq!(x.end(), 10);
        assert!(x.covers(0, 10));
    }

    #[test]
    fn covers_and_truncate() {
        let mut x = Extents::default();
        x.insert(0, Bytes::from_static(b"xx"));
        x.insert(3, Bytes::from_static(b"yy"));
        assert!(x.covers(0, 2));
        assert!(!x.covers(0, 4));
        assert!(x.covers(3, 5));
        x.truncate(4);
        assert_eq!(view(&x, 6), b"xx.y..");
        assert_eq!(x.bytes(), 3);
        x.truncate(0);
        assert!(x.is_empty());
        assert_eq!(x.bytes(), 0);
    }

    #[test]
    fn overlay_of_a_window() {
        let mut x = Extents::default();
        x.insert(5, Bytes::from_static(b"hello"));
        let mut buf = vec![0u8; 4];
        x.overlay(7, &mut buf);
        assert_eq!(&buf, b"llo\0");
    }
}
