//! Conversions between dfs types and fuser's: attributes, times and errnos. The only place that
//! knows both.

use crate::error::FsError;
use dfs_proto::rest::{Attr, FileKind, SetTime, Timestamp};
use fuser::{Errno, FileAttr, FileType, INodeNo, TimeOrNow};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `st_blksize`: FUSE requests go up to 1 MiB, and `cp` writes in units of this.
const BLKSIZE: u32 = crate::fs::IO_SIZE;

pub fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino.0),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: system_time(a.atime),
        mtime: system_time(a.mtime),
        ctime: system_time(a.ctime),
        crtime: system_time(a.ctime),
        kind: file_type(a.kind),
        perm: (a.perm & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: BLKSIZE,
        flags: 0,
    }
}

pub fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
    }
}

pub fn system_time(t: Timestamp) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.nsec));
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::from_secs(t.sec as u64) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(t.sec.unsigned_abs()) + nanos
    }
}

pub fn timestamp(t: SystemTime) -> Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        },
        Err(before) => {
            // Before 1970: floor to whole seconds below, nanoseconds above.
            let d = before.duration();
            let (mut sec, mut nsec) = (-(d.as_secs() as i64), d.subsec_nanos());
            if nsec > 0 {
                sec -= 1;
                nsec = 1_000_000_000 - nsec;
            }
            Timestamp { sec, nsec }
        }
    }
}

/// `UTIME_NOW` becomes the namenode's clock; `UTIME_OMIT` never reaches here (`None`).
pub fn set_time(t: TimeOrNow) -> SetTime {
    match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(t) => SetTime::At(timestamp(t)),
    }
}

/// The one mapping from a file system error to what the kernel is told.
pub fn errno(e: &FsError) -> Errno {
    Errno::from_i32(e.errno())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_both_sides_of_the_epoch() {
        for ts in [
            Timestamp { sec: 0, nsec: 0 },
            Timestamp {
                sec: 1_700_000_000,
                nsec: 123_456_789,
            },
            Timestamp {
                sec: -5,
                nsec: 250_000_000,
            },
        ] {
            assert_eq!(timestamp(system_time(ts)), ts);
        }
    }

    #[test]
    fn attributes_carry_the_io_size() {
        let a = Attr {
            ino: dfs_proto::InodeId(9),
            kind: FileKind::File,
            perm: 0o100644 & 0o7777,
            nlink: 2,
            uid: 1,
            gid: 2,
            size: 1025,
            block_size: 1 << 20,
            atime: Timestamp::default(),
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            data_version: 3,
        };
        let f = file_attr(&a);
        assert_eq!(f.ino, INodeNo(9));
        assert_eq!(f.blocks, 3);
        assert_eq!(f.blksize, 1 << 20);
        assert_eq!(f.perm, 0o644);
        assert_eq!(f.kind, FileType::RegularFile);
    }
}
