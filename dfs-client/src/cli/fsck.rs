//! `dfs fsck [PATH]`: how healthy the data under a path is. Prints the totals (files, blocks,
//! replicas, and missing, corrupt, under- and over-replicated blocks) and each problem block;
//! the exit status is 1 when any block is missing or has only corrupt replicas (its data cannot
//! be read), 0 otherwise (under-replicated blocks are readable and are being repaired).

use super::{describe, format::human_size};
use crate::Client;
use dfs_proto::rest::{BlockHealth, Fsck, FsckReport, FsckRequest};
use std::fmt::Write;

/// Runs the check; answers whether the data is intact.
pub async fn run(client: &Client, path: Option<String>, json: bool) -> bool {
    let path = path.unwrap_or_else(|| "/".to_string());
    let req = FsckRequest {
        path: Some(path.clone()),
        limit: None,
    };
    let report = match client.call::<Fsck>(&req).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("dfs: cannot check '{path}': {}", describe(&e));
            return false;
        }
    };
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("dfs: cannot format the report: {e}");
                return false;
            }
        }
    } else {
        print!("{}", text(&report));
    }
    report.data_intact()
}

/// The report as people read it.
pub fn text(r: &FsckReport) -> String {
    let mut out = String::new();
    for p in &r.problems {
        let what = match p.health {
            BlockHealth::Missing => "MISSING",
            BlockHealth::Corrupt => "CORRUPT",
            BlockHealth::UnderReplicated => "under-replicated",
        };
        let _ = writeln!(
            out,
            "{}: block {} (index {}, generation {}, {}): {what}: {} of {} live replicas, {} corrupt",
            p.path,
            p.block.id,
            p.index,
            p.block.generation.0,
            human_size(p.block.len),
            p.live,
            p.wanted,
            p.corrupt
        );
    }
    if r.problems_omitted > 0 {
        let _ = writeln!(out, "... and {} more problem blocks", r.problems_omitted);
    }
    let status = if r.data_intact() {
        "HEALTHY"
    } else {
        "CORRUPT"
    };
    let avg = if r.blocks == 0 {
        0.0
    } else {
        r.replicas as f64 / r.blocks as f64
    };
    let _ = writeln!(out, "Status: {status}");
    let _ = writeln!(out, " Path:                   {}", r.path);
    let _ = writeln!(out, " Total size:             {}", human_size(r.bytes));
    let _ = writeln!(out, " Files:                  {}", r.files);
    let _ = writeln!(out, " Directories:            {}", r.directories);
    let _ = writeln!(out, " Blocks:                 {}", r.blocks);
    let _ = writeln!(
        out,
        " Live replicas:          {} (average {avg:.2} per block, {} wanted)",
        r.replicas, r.replication
    );
    let _ = writeln!(out, " Missing blocks:         {}", r.missing);
    let _ = writeln!(out, " Corrupt blocks:         {}", r.corrupt);
    let _ = writeln!(out, " Under-replicated:       {}", r.under_replicated);
    let _ = writeln!(out, " Over-replicated:        {}", r.over_replicated);
    let _ = writeln!(out, " Copies in progress:     {}", r.pending_replications);
    out
}
