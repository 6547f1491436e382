//! How the CLI prints things: `ls -l` lines, mode strings, times, human sizes, `stat` and the
//! admin report. Pure functions of their inputs, so they are unit-tested without a cluster.

use dfs_proto::rest::{Attr, ClusterReport, DatanodeState, FileBlocks, FileKind, Timestamp};
use std::fmt::Write as _;

/// `drwxr-xr-x` style, including setuid, setgid and sticky.
pub fn mode_string(kind: FileKind, perm: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(match kind {
        FileKind::File => '-',
        FileKind::Dir => 'd',
        FileKind::Symlink => 'l',
        FileKind::Fifo => 'p',
    });
    let special = [(0o4000, 's', 'S'), (0o2000, 's', 'S'), (0o1000, 't', 'T')];
    for (who, (bit, on_x, no_x)) in special.into_iter().enumerate() {
        let shift = 6 - 3 * who as u32;
        let bits = (perm >> shift) & 0o7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let exec = bits & 1 != 0;
        s.push(match (perm & bit != 0, exec) {
            (true, true) => on_x,
            (true, false) => no_x,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// `YYYY-MM-DD HH:MM` in UTC (as `ls -l --time-style=long-iso`, without a time zone database).
pub fn short_time(t: Timestamp) -> String {
    let (date, h, m, _) = civil(t.sec);
    format!("{date} {h:02}:{m:02}")
}

/// `YYYY-MM-DD HH:MM:SS.nnnnnnnnn UTC`, for `stat`.
pub fn long_time(t: Timestamp) -> String {
    let (date, h, m, s) = civil(t.sec);
    format!("{date} {h:02}:{m:02}:{s:02}.{:09} UTC", t.nsec)
}

/// Date string, hour, minute, second of a Unix time (Howard Hinnant's days-to-civil).
fn civil(sec: i64) -> (String, i64, i64, i64) {
    let days = sec.div_euclid(86_400);
    let secs = sec.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
    )
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `12.3 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `2.1s ago`, `3m 4s ago`, from milliseconds.
pub fn ago(ms: u64) -> String {
    if ms < 60_000 {
        format!("{:.1}s ago", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m {}s ago", ms / 60_000, ms % 60_000 / 1000)
    } else {
        format!("{}h {}m ago", ms / 3_600_000, ms % 3_600_000 / 60_000)
    }
}

/// One entry to print with `ls -l`.
pub struct LongEntry<'a> {
    pub name: &'a str,
    pub attr: &'a Attr,
    /// The target, for a symlink.
    pub target: Option<&'a str>,
}

/// `ls -l` lines with columns aligned across `entries`.
pub fn long_listing(entries: &[LongEntry<'_>]) -> String {
    let width =
        |f: &dyn Fn(&Attr) -> String| entries.iter().map(|e| f(e.attr).len()).max().unwrap_or(0);
    let wl = width(&|a| a.nlink.to_string());
    let wu = width(&|a| a.uid.to_string());
    let wg = width(&|a| a.gid.to_string());
    let ws = width(&|a| a.size.to_string());
    let mut out = String::new();
    for e in entries {
        let a = e.attr;
        let _ = write!(
            out,
            "{} {:>wl$} {:>wu$} {:>wg$} {:>ws$} {} {}",
            mode_string(a.kind, a.perm),
            a.nlink,
            a.uid,
            a.gid,
            a.size,
            short_time(a.mtime),
            e.name
        );
        if let Some(target) = e.target {
            let _ = write!(out, " -> {target}");
        }
        out.push('\n');
    }
    out
}

/// What `dfs stat` prints.
pub fn stat_text(path: &str, attr: &Attr, blocks: Option<&FileBlocks>) -> String {
    let kind = match attr.kind {
        FileKind::File => "regular file",
        FileKind::Dir => "directory",
        FileKind::Symlink => "symbolic link",
        FileKind::Fifo => "fifo",
    };
    let mut out = String::new();
    let _ = writeln!(out, "  File: {path}");
    let _ = writeln!(
        out,
        "  Size: {:<12} Block size: {:<10} {kind}",
        attr.size, attr.block_size
    );
    let _ = writeln!(
        out,
        " Inode: {:<12} Links: {:<10} Data version: {}",
        attr.ino, attr.nlink, attr.data_version
    );
    let _ = writeln!(
        out,
        "Access: ({:04o}/{})  Uid: {}  Gid: {}",
        attr.perm & 0o7777,
        mode_string(attr.kind, attr.perm),
        attr.uid,
        attr.gid
    );
    let _ = writeln!(out, "Access: {}", long_time(attr.atime));
    let _ = writeln!(out, "Modify: {}", long_time(attr.mtime));
    let _ = writeln!(out, "Change: {}", long_time(attr.ctime));
    if let Some(blocks) = blocks {
        let _ = writeln!(out, "Blocks: {}", blocks.blocks.len());
        for b in &blocks.blocks {
            let nodes: Vec<String> = b
                .locations
                .iter()
                .map(|d| format!("{} ({})", d.id, d.grpc))
                .collect();
            let _ = writeln!(
                out,
                "  #{} id={} gen={} len={} on: {}",
                b.index,
                b.block.id,
                b.block.generation,
                b.block.len,
                if nodes.is_empty() {
                    "no live replica".to_string()
                } else {
                    nodes.join(", ")
                }
            );
        }
    }
    out
}

/// What `dfs admin report` prints.
pub fn report_text(r: &ClusterReport) -> String {
    let mut out = String::new();
    let count = |s: DatanodeState| r.datanodes.iter().filter(|d| d.state == s).count();
    let _ = writeln!(
        out,
        "Datanodes: {} ({} live, {} dead, {} decommissioning, {} decommissioned)",
        r.datanodes.len(),
        count(DatanodeState::Live),
        count(DatanodeState::Dead),
        count(DatanodeState::Decommissioning),
        count(DatanodeState::Decommissioned)
    );
    let _ = writeln!(
        out,
        "Capacity: {}  Used: {}  Remaining: {}",
        human_size(r.capacity),
        human_size(r.used),
        human_size(r.remaining)
    );
    let _ = writeln!(
        out,
        "Files: {}  Directories: {}  Blocks: {}  Under-replicated: {}  Missing: {}",
        r.files, r.directories, r.blocks, r.under_replicated, r.missing
    );
    for d in &r.datanodes {
        let state = match d.state {
            DatanodeState::Live => "live",
            DatanodeState::Dead => "dead",
            DatanodeState::Decommissioning => "decommissioning",
            DatanodeState::Decommissioned => "decommissioned",
        };
        let _ = writeln!(out);
        let _ = writeln!(out, "Datanode {} ({state})", d.id);
        let _ = writeln!(
            out,
            "  Address:        {} (http {})",
            d.grpc_addr, d.http_addr
        );
        let _ = writeln!(out, "  Capacity:       {}", human_size(d.capacity));
        let _ = writeln!(out, "  Used:           {}", human_size(d.used));
        let _ = writeln!(out, "  Remaining:      {}", human_size(d.remaining));
        let _ = writeln!(out, "  Blocks:         {}", d.blocks);
        let _ = writeln!(out, "  Transfers:      {}", d.active_transfers);
        let _ = writeln!(out, "  Last heartbeat: {}", ago(d.last_heartbeat_ms));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::InodeId;

    fn attr(kind: FileKind, perm: u32, size: u64) -> Attr {
        let t = Timestamp {
            sec: 1_764_158_400,
            nsec: 5,
        };
        Attr {
            ino: InodeId(7),
            kind,
            perm,
            nlink: 1,
            uid: 1000,
            gid: 100,
            size,
            block_size: 0,
            atime: t,
            mtime: t,
            ctime: t,
            data_version: 0,
        }
    }

    #[test]
    fn mode_strings_match_ls() {
        assert_eq!(mode_string(FileKind::Dir, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(FileKind::File, 0o644), "-rw-r--r--");
        assert_eq!(mode_string(FileKind::Dir, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(FileKind::File, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(FileKind::File, 0o2644), "-rw-r-Sr--");
        assert_eq!(mode_string(FileKind::Symlink, 0o777), "lrwxrwxrwx");
    }

    #[test]
    fn times_are_utc_civil_dates() {
        assert_eq!(
            short_time(Timestamp { sec: 0, nsec: 0 }),
            "1970-01-01 00:00"
        );
        // 2025-11-26 12:00:00 UTC
        let t = Timestamp {
            sec: 1_764_158_400,
            nsec: 5,
        };
        assert_eq!(short_time(t), "2025-11-26 12:00");
        assert_eq!(long_time(t), "2025-11-26 12:00:00.000000005 UTC");
        assert_eq!(
            short_time(Timestamp {
                sec: 951_782_400,
                nsec: 0
            }),
            "2000-02-29 00:00"
        );
    }

    #[test]
    fn sizes_and_ages_read_like_people_write_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(13_207_024_435), "12.3 GiB");
        assert_eq!(ago(2100), "2.1s ago");
        assert_eq!(ago(184_000), "3m 4s ago");
    }

    #[test]
    fn long_listing_aligns_and_shows_link_targets() {
        let big = attr(FileKind::File, 0o644, 123_456);
        let link = attr(FileKind::Symlink, 0o777, 3);
        let text = long_listing(&[
            LongEntry {
                name: "big",
                attr: &big,
                target: None,
            },
            LongEntry {
                name: "ln",
                attr: &link,
                target: Some("big"),
            },
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "-rw-r--r-- 1 1000 100 123456 2025-11-26 12:00 big"
        );
        assert_eq!(
            lines[1],
            "lrwxrwxrwx 1 1000 100      3 2025-11-26 12:00 ln -> big"
        );
    }
}
