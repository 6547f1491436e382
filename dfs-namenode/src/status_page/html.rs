//! Renders a [`View`] as one HTML document. Every value that comes from outside this file (ids,
//! addresses, messages) goes through [`escape`]; the stylesheet is `style.css` beside this file.
//!
//! Datanode rows carry `data-id` and `data-state` attributes so that tests (and scripts) can read
//! the table without parsing the text.

use super::{DatanodeRow, View};
use crate::events::Event;
use crate::metrics::{role_name, state_name};
use dfs_proto::rest::{DatanodeState, HaMember, NamenodeRole, Timestamp};
use std::fmt::Write;
use std::time::Duration;

const STYLE: &str = include_str!("style.css");
/// Seconds between automatic reloads.
const REFRESH_SECS: u32 = 5;

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Bytes in binary units, one decimal: `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn ago(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1} s ago")
    } else if s < 3600.0 {
        format!("{:.0} min ago", s / 60.0)
    } else {
        format!("{:.1} h ago", s / 3600.0)
    }
}

/// A wall-clock time as `YYYY-MM-DD HH:MM:SS` UTC (days to civil date after H. Hinnant).
pub fn utc(t: Timestamp) -> String {
    let days = t.sec.div_euclid(86_400);
    let secs = t.sec.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0%".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

/// The whole page.
pub fn render(v: &View) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let role = role_name(&v.role);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
         <title>dfs namenode {id} ({role})</title><style>{STYLE}</style></head><body>\n\
         <header><h1>dfs</h1><span class=\"sub\">namenode {id} \
         <span class=\"badge role-{role}\" id=\"role\">{role}</span></span></header>\n<main>\n",
        id = v.node_id,
    );
    if v.role != NamenodeRole::Leader {
        let note = match &v.leader_addr {
            Some(addr) => format!(
                "This is a {role}'s own view. The leader is at \
                 <a href=\"//{a}/\">{a}</a>.",
                a = escape(addr)
            ),
            None => "No leader is known: the namenodes are electing one. This is this \
                     namenode's own view."
                .to_string(),
        };
        let _ = writeln!(out, "<p class=\"notice\" id=\"notice\">{note}</p>");
    }
    summary(&mut out, v);
    block_health(&mut out, v);
    datanodes(&mut out, &v.datanodes);
    events(&mut out, &v.events);
    namenodes(&mut out, v);
    let _ = writeln!(
        out,
        "</main><footer>Reloads every {REFRESH_SECS} s · <a href=\"/metrics\">metrics</a>\
         </footer></body></html>"
    );
    out
}

fn summary(out: &mut String, v: &View) {
    let live: Vec<&DatanodeRow> = v
        .datanodes
        .iter()
        .filter(|d| d.state != DatanodeState::Dead)
        .collect();
    let dead = v.datanodes.len() - live.len();
    let capacity = live.iter().fold(0u64, |a, d| a.saturating_add(d.capacity));
    let used = live.iter().fold(0u64, |a, d| a.saturating_add(d.used));
    let remaining = live.iter().fold(0u64, |a, d| a.saturating_add(d.remaining));
    let term = v.ha.as_ref().map_or(0, |h| h.term);
    let dead_class = if dead > 0 { " class=\"bad\"" } else { "" };
    let _ = writeln!(
        out,
        "<section id=\"summary\"><h2>Cluster</h2><dl class=\"cards\">\
         <div><dt>Capacity</dt><dd>{}</dd></div>\
         <div><dt>Used</dt><dd>{} ({})</dd></div>\
         <div><dt>Remaining</dt><dd>{}</dd></div>\
         <div><dt>Datanodes</dt><dd><span id=\"live-count\">{}</span> live, \
         <span id=\"dead-count\"{dead_class}>{dead}</span> dead</dd></div>\
         <div><dt>Files</dt><dd>{}</dd></div>\
         <div><dt>Directories</dt><dd>{}</dd></div>\
         <div><dt>Raft term</dt><dd>{term}</dd></div>\
         <div><dt>Settings</dt><dd>replication {}, block {}</dd></div>\
         </dl></section>",
        bytes(capacity),
        bytes(used),
        percent(used, capacity),
        bytes(remaining),
        live.len(),
        v.files,
        v.directories,
        v.replication,
        bytes(v.block_size),
    );
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "–".to_string(), |n| n.to_string())
}

fn namenodes(out: &mut String, v: &View) {
    out.push_str("<section id=\"namenodes\"><h2>Namenodes</h2>");
    let Some(ha) = &v.ha else {
        out.push_str("<p class=\"notice\">Raft status is not available.</p></section>\n");
        return;
    };
    let _ = write!(
        out,
        "<p>Log: last index {}, committed {}, applied {}, snapshot {}.</p>\
         <table><thead><tr><th>Id</th><th>Address</th><th>Role</th><th>Voter</th>\
         <th>Matched index</th><th>Lag (entries)</th></tr></thead><tbody>",
        opt(ha.last_log_index),
        opt(ha.commit_index),
        opt(ha.applied_index),
        opt(ha.snapshot_index),
    );
    for m in &ha.members {
        namenode_row(out, m, v.node_id);
    }
    out.push_str("</tbody></table></section>\n");
}

fn namenode_row(out: &mut String, m: &HaMember, this: u64) {
    let role = m.role.as_ref().map_or("unknown", role_name);
    let here = if m.id.0 == this { " (this one)" } else { "" };
    let addr = escape(&m.addr);
    let _ = write!(
        out,
        "<tr class=\"nn\" data-id=\"{id}\" data-role=\"{role}\"><td>{id}{here}</td>\
         <td><a href=\"//{addr}/?local=1\">{addr}</a></td>\
         <td><span class=\"badge role-{role}\">{role}</span></td><td>{}</td><td>{}</td>\
         <td>{}</td></tr>",
        if m.voter { "yes" } else { "no" },
        opt(m.matched),
        opt(m.lag),
        id = m.id.0,
    );
}

fn datanodes(out: &mut String, rows: &[DatanodeRow]) {
    out.push_str(
        "<section id=\"datanodes\"><h2>Datanodes</h2><table><thead><tr><th>Id</th>\
         <th>Address (gRPC)</th><th>State</th><th>Capacity</th><th>Used</th><th>Remaining</th>\
         <th>Replicas</th><th>Transfers</th><th>Last heartbeat</th></tr></thead><tbody>",
    );
    if rows.is_empty() {
        out.push_str("<tr><td colspan=\"9\">No datanode has registered.</td></tr>");
    }
    for d in rows {
        let state = state_name(d.state);
        let id = escape(&d.id);
        let _ = write!(
            out,
            "<tr class=\"dn state-{state}\" data-id=\"{id}\" data-state=\"{state}\">\
             <td>{id}</td><td><a href=\"//{http}/health\">{grpc}</a></td>\
             <td><span class=\"badge state-{state}\">{state}</span></td>\
             <td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            bytes(d.capacity),
            bytes(d.used),
            percent(d.used, d.capacity),
            bytes(d.remaining),
            d.blocks,
            d.active_transfers,
            ago(d.since_heartbeat),
            http = escape(&d.http_addr),
            grpc = escape(&d.grpc_addr),
        );
    }
    out.push_str("</tbody></table></section>\n");
}

fn block_health(out: &mut String, v: &View) {
    let h = &v.health;
    let cls = |n: u64| if n > 0 { " class=\"bad\"" } else { "" };
    let _ = writeln!(
        out,
        "<section id=\"blocks\"><h2>Block health</h2><dl class=\"cards\">\
         <div><dt>Blocks</dt><dd id=\"blocks-total\">{}</dd></div>\
         <div><dt>Under-replicated</dt><dd id=\"blocks-under\"{}>{}</dd></div>\
         <div><dt>Missing</dt><dd id=\"blocks-missing\"{}>{}</dd></div>\
         <div><dt>Corrupt</dt><dd id=\"blocks-corrupt\"{}>{}</dd></div>\
         <div><dt>Copies in flight</dt><dd>{}</dd></div>\
         </dl></section>",
        h.blocks,
        cls(h.under_replicated),
        h.under_replicated,
        cls(h.missing),
        h.missing,
        cls(h.corrupt),
        h.corrupt,
        h.pending_copies,
    );
}

fn events(out: &mut String, events: &[Event]) {
    out.push_str(
        "<section id=\"events\"><h2>Recent events</h2><table><thead><tr><th>Time (UTC)</th>\
         <th>Event</th><th>Details</th></tr></thead><tbody>",
    );
    if events.is_empty() {
        out.push_str("<tr><td colspan=\"3\">Nothing has happened yet.</td></tr>");
    }
    for e in events {
        let cls = if e.kind.is_warning() { "warn" } else { "info" };
        let _ = write!(
            out,
            "<tr class=\"event {cls}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
            utc(e.at),
            escape(e.kind.name()),
            escape(&e.message),
        );
    }
    out.push_str("</tbody></table></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;
    use crate::metrics::BlockHealth;

    fn view() -> View {
        View {
            node_id: 2,
            role: NamenodeRole::Follower,
            leader_addr: Some("127.0.0.1:9870".into()),
            ha: None,
            datanodes: vec![DatanodeRow {
                id: "<dn>&\"1\"".into(),
                grpc_addr: "127.0.0.1:9866".into(),
                http_addr: "127.0.0.1:9864".into(),
                state: DatanodeState::Dead,
                capacity: 3 << 30,
                used: 1 << 30,
                remaining: 2 << 30,
                blocks: 7,
                active_transfers: 0,
                since_heartbeat: Duration::from_secs(42),
            }],
            files: 1,
            directories: 2,
            health: BlockHealth::default(),
            replication: 3,
            block_size: 64 << 20,
            events: vec![Event {
                at: Timestamp { sec: 0, nsec: 0 },
                kind: EventKind::DatanodeLost,
                message: "<script>alert(1)</script>".into(),
            }],
        }
    }

    #[test]
    fn everything_from_outside_is_escaped() {
        let page = render(&view());
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("data-id=\"&lt;dn&gt;&amp;&quot;1&quot;\" data-state=\"dead\""));
        assert!(page.contains("1970-01-01 00:00:00"));
        assert!(page.contains("1.0 GiB (33.3%)"));
        assert!(page.contains("The leader is at"));
    }

    #[test]
    fn dates_and_sizes() {
        assert_eq!(
            utc(Timestamp {
                sec: 1_800_000_000,
                nsec: 0
            }),
            "2027-01-15 08:00:00"
        );
        assert_eq!(
            utc(Timestamp {
                sec: 951_782_400,
                nsec: 0
            }),
            "2000-02-29 00:00:00"
        );
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
