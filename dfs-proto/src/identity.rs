//! Who makes a namespace call: the caller's uid, gid and supplementary groups, carried in three
//! headers on every REST request ([`UID_HEADER`], [`GID_HEADER`], [`GROUPS_HEADER`]).
//!
//! The identity is asserted by the client, not proven (as NFS's `AUTH_SYS` and HDFS's simple
//! authentication): the cluster credential decides who may talk to the namenodes at all, and
//! the identity says on whose behalf. A request without the identity headers comes from a trusted
//! tool holding the cluster credential and is treated as the superuser (uid 0).

use crate::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};

/// The caller's uid (decimal).
pub const UID_HEADER: &str = "x-dfs-uid";
/// The caller's primary gid (decimal).
pub const GID_HEADER: &str = "x-dfs-gid";
/// The caller's supplementary groups: decimal gids separated by commas (may be empty).
pub const GROUPS_HEADER: &str = "x-dfs-groups";
/// Most supplementary groups accepted (Linux's `NGROUPS_MAX`).
pub const MAX_GROUPS: usize = 65_536;

/// The uid and gid of the unprivileged "nobody" user.
pub const NOBODY: u32 = 65_534;

/// A caller: uid, primary gid and supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the primary gid need not be repeated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<u32>,
}

impl Identity {
    /// The superuser: every permission check passes (except executing a file with no x bit).
    pub fn root() -> Identity {
        Identity {
            uid: 0,
            gid: 0,
            groups: Vec::new(),
        }
    }

    pub fn new(uid: u32, gid: u32, groups: Vec<u32>) -> Identity {
        Identity { uid, gid, groups }
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Whether `gid` is the primary group or one of the supplementary groups.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }

    /// The three header values, in the order `[uid, gid, groups]`.
    pub fn header_values(&self) -> [(&'static str, String); 3] {
        let groups = self
            .groups
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        [
            (UID_HEADER, self.uid.to_string()),
            (GID_HEADER, self.gid.to_string()),
            (GROUPS_HEADER, groups),
        ]
    }

    /// The identity the headers name: `None` when there are none, `EINVAL` when they are
    /// malformed or incomplete (a uid without a gid, more than [`MAX_GROUPS`] groups, ...).
    pub fn from_header_values(
        uid: Option<&str>,
        gid: Option<&str>,
        groups: Option<&str>,
    ) -> Result<Option<Identity>, ApiError> {
        let (uid, gid) = match (uid, gid) {
            (None, None) if groups.is_none() => return Ok(None),
            (Some(uid), Some(gid)) => (id(UID_HEADER, uid)?, id(GID_HEADER, gid)?),
            _ => {
                return Err(ApiError::new(
                    ErrorCode::Invalid,
                    format!("{UID_HEADER} and {GID_HEADER} must be sent together"),
                ));
            }
        };
        let mut list = Vec::new();
        for g in groups.unwrap_or("").split(',').map(str::trim) {
            if g.is_empty() {
                continue;
            }
            if list.len() == MAX_GROUPS {
                return Err(ApiError::new(
                    ErrorCode::Invalid,
                    format!("{GROUPS_HEADER} names more than {MAX_GROUPS} groups"),
                ));
            }
            list.push(id(GROUPS_HEADER, g)?);
        }
        Ok(Some(Identity::new(uid, gid, list)))
    }
}

fn id(header: &str, value: &str) -> Result<u32, ApiError> {
    value.trim().parse().map_err(|_| {
        let shown: String = value.chars().take(40).collect();
        ApiError::new(
            ErrorCode::Invalid,
            format!("{header} must be a decimal id from 0 to 4294967295, not '{shown}'"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(uid: Option<&str>, gid: Option<&str>, groups: Option<&str>) -> Option<Identity> {
        Identity::from_header_values(uid, gid, groups).expect("valid headers")
    }

    #[test]
    fn headers_round_trip() {
        let who = Identity::new(1000, 100, vec![4, 27, 1000]);
        let [(_, u), (_, g), (_, gs)] = who.header_values();
        assert_eq!(parse(Some(&u), Some(&g), Some(&gs)), Some(who));
        let alone = Identity::new(7, 8, vec![]);
        let [(_, u), (_, g), (_, gs)] = alone.header_values();
        assert_eq!(gs, "");
        assert_eq!(parse(Some(&u), Some(&g), Some(&gs)), Some(alone));
    }

    #[test]
    fn no_headers_is_no_identity() {
        assert_eq!(parse(None, None, None), None);
    }

    #[test]
    fn malformed_headers_are_refused() {
        for (u, g, gs) in [
            (Some("x"), Some("0"), None),
            (Some("0"), Some("-1"), None),
            (Some("0"), None, None),
            (None, None, Some("1")),
            (Some("0"), Some("0"), Some("1,two")),
            (Some("4294967296"), Some("0"), None),
        ] {
            let e = Identity::from_header_values(u, g, gs).expect_err("malformed");
            assert_eq!(e.code, ErrorCode::Invalid, "{u:?} {g:?} {gs:?}");
        }
        let many = vec!["1"; MAX_GROUPS + 1].join(",");
        assert!(Identity::from_header_values(Some("1"), Some("1"), Some(&many)).is_err());
    }

    #[test]
    fn group_membership_counts_the_primary_group() {
        let who = Identity::new(5, 50, vec![60]);
        assert!(who.in_group(50) && who.in_group(60) && !who.in_group(70));
        assert!(Identity::root().is_root() && !who.is_root());
    }
}
