//! `dfs-fuse`: mounts a dfs cluster. Foreground unless `--daemon`; SIGINT/SIGTERM flush open
//! files, unmount and exit 0. `--print-config` prints the effective configuration instead.

mod daemon;

use clap::Parser;
use dfs_fuse::config::{Args, Settings};
use std::process::ExitCode;

fn main() -> ExitCode {
    dfs_proto::allocator::reuse_data_buffers(dfs_proto::allocator::Keep::Little);
    let args = Args::parse();
    if args.print_config {
        return match Settings::load(args).and_then(|s| s.to_toml()) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("dfs-fuse: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if args.daemon {
        return daemon::detach();
    }
    let mut readiness = daemon::Readiness::from_env();
    let result = Settings::load(args).and_then(|settings| {
        dfs_proto::logging::init(settings.log_format, settings.log.as_deref())?;
        let config = settings.into_mount()?;
        dfs_fuse::run(config, |r| readiness.report(r))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            readiness.report(Err(format!("{e:#}")));
            eprintln!("dfs-fuse: {e:#}");
            ExitCode::FAILURE
        }
    }
}
