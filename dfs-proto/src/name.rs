//! Validated directory entry names and absolute paths.

use std::fmt;

/// Longest name in bytes (as on ext4).
pub const NAME_MAX: usize = 255;
/// Longest path in bytes (as Linux's `PATH_MAX`).
pub const PATH_MAX: usize = 4096;

/// Why a name or path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty name")]
    Empty,
    #[error("'.' and '..' cannot be created or removed by name")]
    Dot,
    #[error("name contains '/'")]
    Slash,
    #[error("name contains a NUL byte")]
    Nul,
    #[error("name is {0} bytes, over the limit of {NAME_MAX}")]
    NameTooLong(usize),
    #[error("path is {0} bytes, over the limit of {PATH_MAX}")]
    PathTooLong(usize),
    #[error("path must be absolute (start with '/')")]
    NotAbsolute,
}

/// One directory entry name: non-empty, not `.` or `..`, no `/` or NUL, at most 255 bytes.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    pub fn new(name: impl Into<String>) -> Result<Name, NameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name == "." || name == ".." {
            return Err(NameError::Dot);
        }
        if name.contains('/') {
            return Err(NameError::Slash);
        }
        if name.contains('\0') {
            return Err(NameError::Nul);
        }
        if name.len() > NAME_MAX {
            return Err(NameError::NameTooLong(name.len()));
        }
        Ok(Name(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Name::new(s)
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An absolute path in the dfs namespace, split into validated names. `/` has no components.
/// Repeated slashes and a trailing slash are accepted; `.` components are skipped and `..`
/// removes the previous component (as a shell would resolve a path it was given).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DfsPath {
    components: Vec<Name>,
}

impl DfsPath {
    pub fn root() -> DfsPath {
        DfsPath {
            components: Vec::new(),
        }
    }

    pub fn parse(path: &str) -> Result<DfsPath, NameError> {
        if path.len() > PATH_MAX {
            return Err(NameError::PathTooLong(path.len()));
        }
        if !path.starts_with('/') {
            return Err(NameError::NotAbsolute);
        }
        let mut components: Vec<Name> = Vec::new();
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    components.pop();
                }
                other => components.push(Name::new(other)?),
            }
        }
        Ok(DfsPath { components })
    }

    pub fn components(&self) -> &[Name] {
        &self.components
    }

    /// The parent path and the last name, or `None` for `/`.
    pub fn split_last(&self) -> Option<(DfsPath, &Name)> {
        let (last, rest) = self.components.split_last()?;
        Some((
            DfsPath {
                components: rest.to_vec(),
            },
            last,
        ))
    }

    pub fn join(&self, name: Name) -> DfsPath {
        let mut components = self.components.clone();
        components.push(name);
        DfsPath { components }
    }

    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }
}

impl fmt::Display for DfsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.components.is_empty() {
            return f.write_str("/");
        }
        for c in &self.components {
            write!(f, "/{c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert_eq!(Name::new(""), Err(NameError::Empty));
        assert_eq!(Name::new("."), Err(NameError::Dot));
        assert_eq!(Name::new(".."), Err(NameError::Dot));
        assert_eq!(Name::new("a/b"), Err(NameError::Slash));
        assert_eq!(Name::new("a\0b"), Err(NameError::Nul));
        assert_eq!(Name::new("x".repeat(256)), Err(NameError::NameTooLong(256)));
        assert!(Name::new("x".repeat(255)).is_ok());
        assert!(Name::new("...").is_ok());
    }

    #[test]
    fn names_are_validated_when_deserialized() {
        assert!(serde_json::from_str::<Name>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<Name>("\"a/b\"").is_err());
    }

    #[test]
    fn paths_parse() {
        let p = DfsPath::parse("//a/./b/../c/").expect("valid");
        assert_eq!(p.to_string(), "/a/c");
        assert!(DfsPath::parse("/").expect("root").is_root());
        assert_eq!(DfsPath::parse("a"), Err(NameError::NotAbsolute));
        let long = format!("/{}", "a/".repeat(2100));
        assert!(matches!(
            DfsPath::parse(&long),
            Err(NameError::PathTooLong(_))
        ));
        let (parent, last) = p.split_last().expect("has parent");
        assert_eq!(parent.to_string(), "/a");
        assert_eq!(last.as_str(), "c");
    }
}
