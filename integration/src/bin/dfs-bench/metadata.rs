//! Namenode metadata throughput: create, lookup and readdir with 1 and 16 concurrent clients.

use crate::util::{concurrent, post};
use anyhow::Result;
use dfs_proto::InodeId;
use dfs_proto::rest::{self, FileKind};
use integration::Cluster;
use std::sync::Arc;

pub async fn metadata(cluster: &Cluster, ops: usize) -> Result<()> {
    let addr: Arc<str> = cluster.namenodes[cluster.leader().await?]
        .addr
        .clone()
        .into();
    let http = cluster.http().clone();
    println!("\nnamenode metadata (durable, one namenode), ops/s:");
    println!("  {:<10} {:>12} {:>12}", "op", "1 client", "16 clients");
    let mut dirs = Vec::new();
    for clients in [1usize, 16] {
        // Each client creates files in a directory of its own.
        let mut mine = Vec::new();
        for c in 0..clients {
            let dir: rest::Attr = post::<rest::Mkdir>(
                &http,
                &addr,
                &rest::MkdirRequest {
                    parent: InodeId::ROOT,
                    name: format!("bench-{clients}-{c}"),
                    perm: 0o755,
                    uid: 0,
                    gid: 0,
                },
            )
            .await?;
            mine.push(dir.ino);
        }
        dirs.push(mine);
    }
    let mut results = Vec::new();
    for (k, clients) in [1usize, 16].into_iter().enumerate() {
        let mine = Arc::new(dirs[k].clone());
        let (h, a) = (http.clone(), addr.clone());
        let create = concurrent(clients, ops, move |c, i| {
            let (h, a, parent) = (h.clone(), a.clone(), mine[c]);
            async move {
                post::<rest::Create>(
                    &h,
                    &a,
                    &rest::CreateRequest {
                        parent,
                        name: format!("f{i}"),
                        kind: FileKind::File,
                        perm: 0o644,
                        uid: 0,
                        gid: 0,
                        lease: None,
                    },
                )
                .await?;
                Ok(())
            }
        })
        .await?;
        let mine = Arc::new(dirs[k].clone());
        let (h, a) = (http.clone(), addr.clone());
        let getattr = concurrent(clients, ops, move |c, i| {
            let (h, a, parent) = (h.clone(), a.clone(), mine[c]);
            async move {
                post::<rest::Lookup>(
                    &h,
                    &a,
                    &rest::LookupRequest {
                        parent,
                        name: format!("f{}", i % 100),
                    },
                )
                .await?;
                Ok(())
            }
        })
        .await?;
        let mine = Arc::new(dirs[k].clone());
        let (h, a) = (http.clone(), addr.clone());
        let readdir = concurrent(clients, ops / 4, move |c, _| {
            let (h, a, ino) = (h.clone(), a.clone(), mine[c]);
            async move {
                post::<rest::ReadDir>(
                    &h,
                    &a,
                    &rest::ReadDirRequest {
                        ino,
                        after: None,
                        limit: Some(100),
                    },
                )
                .await?;
                Ok(())
            }
        })
        .await?;
        results.push((create, getattr, readdir));
    }
    let row = |name: &str, f: fn(&(f64, f64, f64)) -> f64, target: &str| {
        println!(
            "  {:<10} {:>12.0} {:>12.0}   {target}",
            name,
            f(&results[0]),
            f(&results[1])
        );
    };
    row("create", |r| r.0, "(target >= 15000 with 16 clients)");
    row("lookup", |r| r.1, "");
    row("readdir", |r| r.2, "(100 entries a call)");
    Ok(())
}
