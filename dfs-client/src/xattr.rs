//! User extended attributes of inodes (`getfattr`/`setfattr`, the mount's xattr calls).

use crate::client::Client;
use crate::error::Result;
use dfs_proto::InodeId;
use dfs_proto::rest::{
    GetXattr, InodeRequest, ListXattr, RemoveXattr, SetXattr, SetXattrRequest, XattrMode,
    XattrRequest,
};

impl Client {
    /// The value of attribute `name` of `ino` (`ENODATA` if it is not set).
    pub async fn get_xattr(&self, ino: InodeId, name: &str) -> Result<Vec<u8>> {
        let req = XattrRequest {
            ino,
            name: name.to_string(),
        };
        Ok(self.call::<GetXattr>(&req).await?.value)
    }

    /// The names of every attribute of `ino`, in name order.
    pub async fn list_xattr(&self, ino: InodeId) -> Result<Vec<String>> {
        Ok(self.call::<ListXattr>(&InodeRequest { ino }).await?.names)
    }

    /// Sets attribute `name` of `ino` (`EEXIST` with `Create` if it exists, `ENODATA` with
    /// `Replace` if it does not; `ENOTSUP` outside the `user.` namespace).
    pub async fn set_xattr(
        &self,
        ino: InodeId,
        name: &str,
        value: &[u8],
        mode: XattrMode,
    ) -> Result<()> {
        let req = SetXattrRequest {
            ino,
            name: name.to_string(),
            value: value.to_vec(),
            mode,
        };
        self.call::<SetXattr>(&req).await?;
        Ok(())
    }

    /// Removes attribute `name` of `ino` (`ENODATA` if it is not set).
    pub async fn remove_xattr(&self, ino: InodeId, name: &str) -> Result<()> {
        let req = XattrRequest {
            ino,
            name: name.to_string(),
        };
        self.call::<RemoveXattr>(&req).await?;
        Ok(())
    }
}
