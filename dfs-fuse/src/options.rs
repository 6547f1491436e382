//! `-o` mount options, as `mount(8)` and `/etc/fstab` spell them.

use fuser::{MountOption, SessionACL};
use std::net::SocketAddr;

/// What the `-o` options ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// `allow_other`: users other than the one who mounted may use the mount.
    pub allow_other: bool,
    /// `allow_root`: root may use the mount as well as its owner.
    pub allow_root: bool,
    pub read_only: bool,
    /// `default_permissions`: the kernel checks mode bits (recommended with `allow_other`).
    pub default_permissions: bool,
    /// `auto_unmount`: unmount even if the daemon is killed (needs `fusermount3`).
    pub auto_unmount: bool,
    /// `fsname=`: the source column of `mount` and `df`.
    pub fsname: Option<String>,
    /// Kernel flags passed through (`noexec`, `nosuid`, `noatime`, ...).
    pub flags: Vec<MountOption>,
    /// `metrics_listen=ADDR`: serve Prometheus metrics at `http://ADDR/metrics`.
    pub metrics_listen: Option<SocketAddr>,
}

/// fstab options that only `mount(8)` itself reads.
const IGNORED: &[&str] = &[
    "defaults", "auto", "noauto", "user", "users", "nouser", "nofail", "_netdev", "rw",
];

impl MountOptions {
    /// Parses every `-o` value (each a comma-separated list).
    pub fn parse<S: AsRef<str>>(lists: &[S]) -> Result<MountOptions, String> {
        let mut o = MountOptions::default();
        for opt in lists
            .iter()
            .flat_map(|l| l.as_ref().split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match opt {
                "allow_other" => o.allow_other = true,
                "allow_root" => o.allow_root = true,
                "ro" => o.read_only = true,
                "default_permissions" => o.default_permissions = true,
                "auto_unmount" => o.auto_unmount = true,
                "exec" => o.flags.push(MountOption::Exec),
                "noexec" => o.flags.push(MountOption::NoExec),
                "suid" => o.flags.push(MountOption::Suid),
                "nosuid" => o.flags.push(MountOption::NoSuid),
                "dev" => o.flags.push(MountOption::Dev),
                "nodev" => o.flags.push(MountOption::NoDev),
                "atime" => o.flags.push(MountOption::Atime),
                "noatime" => o.flags.push(MountOption::NoAtime),
                "sync" => o.flags.push(MountOption::Sync),
                "async" => o.flags.push(MountOption::Async),
                "dirsync" => o.flags.push(MountOption::DirSync),
                s if IGNORED.contains(&s) || s.starts_with("x-") => {}
                s => match s.split_once('=') {
                    Some(("fsname", v)) if !v.is_empty() => o.fsname = Some(v.to_string()),
                    Some(("metrics_listen", v)) => {
                        let addr = v.parse().map_err(|_| {
                            format!("metrics_listen wants an IP address and port, not '{v}'")
                        })?;
                        o.metrics_listen = Some(addr);
                    }
                    _ => return Err(format!("unknown mount option '{s}'")),
                },
            }
        }
        if o.allow_other && o.allow_root {
            return Err("allow_other and allow_root exclude each other".into());
        }
        Ok(o)
    }

    /// Who besides the owner may use the mount.
    pub fn acl(&self) -> SessionACL {
        if self.allow_other {
            SessionACL::All
        } else if self.allow_root {
            SessionACL::RootAndOwner
        } else {
            SessionACL::Owner
        }
    }

    /// The options handed to the kernel.
    pub fn fuser_options(&self, default_fsname: &str) -> Vec<MountOption> {
        let mut out = vec![
            MountOption::FSName(self.fsname.clone().unwrap_or_else(|| default_fsname.into())),
            MountOption::Subtype("dfs".into()),
        ];
        out.push(if self.read_only {
            MountOption::RO
        } else {
            MountOption::RW
        });
        if self.default_permissions {
            out.push(MountOption::DefaultPermissions);
        }
        if self.auto_unmount {
            out.push(MountOption::AutoUnmount);
        }
        out.extend(self.flags.iter().cloned());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_options() {
        let o = MountOptions::parse(&["allow_other,ro", "default_permissions,noatime,_netdev"])
            .expect("valid options");
        assert!(o.allow_other && o.read_only && o.default_permissions);
        assert_eq!(o.flags, vec![MountOption::NoAtime]);
        assert_eq!(o.acl(), SessionACL::All);
        let kernel = o.fuser_options("dfs");
        assert!(kernel.contains(&MountOption::RO));
        assert!(kernel.contains(&MountOption::DefaultPermissions));
    }

    #[test]
    fn fsname_and_errors() {
        let o = MountOptions::parse(&["fsname=dfs@nn1"]).expect("valid");
        assert_eq!(o.fsname.as_deref(), Some("dfs@nn1"));
        assert!(MountOptions::parse(&["bogus"]).is_err());
        let o = MountOptions::parse(&["metrics_listen=127.0.0.1:9101"]).expect("valid");
        assert_eq!(o.metrics_listen, "127.0.0.1:9101".parse().ok());
        assert!(MountOptions::parse(&["metrics_listen=localhost"]).is_err());
        assert!(MountOptions::parse(&["allow_other,allow_root"]).is_err());
        assert_eq!(
            MountOptions::parse::<&str>(&[]).map(|o| o.acl()),
            Ok(SessionACL::Owner)
        );
    }
}
