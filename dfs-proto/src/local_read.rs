//! Short-circuit local reads: a client on the same machine as a datanode reads a replica's file
//! itself instead of streaming it over gRPC (HDFS's short-circuit reads).
//!
//! The datanode listens on a Unix socket (its path travels with its registration and every
//! block location). A client connects, sends a [`LocalReadRequest`] naming one replica and
//! carrying the namenode's read token, and gets a [`LocalReadReply`]: the replica's length and
//! piece checksums, with the open data file passed along (`SCM_RIGHTS`), and its open sidecar
//! when that holds page checksums. The client then `pread`s the file and verifies every 64 KiB
//! piece as it would a gRPC chunk, or, for a small read, only the 4 KiB pages it reads against
//! the page checksums it `pread`s from the sidecar. The datanode's
//! directory permissions stay closed: a client reads only descriptors it was handed, for
//! replicas its token grants.
//!
//! Frames on the socket are a 4-byte little-endian length and that many bytes of JSON. The
//! descriptors ride on the reply's first bytes.

use crate::{BlockId, DatanodeId, ErrorCode, Generation};
use serde::{Deserialize, Serialize};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Largest request frame (a token is well under 1 KiB).
pub const MAX_REQUEST: usize = 4096;
/// Largest reply frame: the checksums of a 1 GiB block as JSON, with room to spare.
pub const MAX_REPLY: usize = 1 << 20;
/// Descriptors a reply carries at most: the data file and the sidecar.
pub const MAX_FDS: usize = 2;

/// One replica, asked for by a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalReadRequest {
    pub block: BlockId,
    pub generation: Generation,
    /// The read token from the block's location (empty without a cluster secret).
    pub token: String,
}

/// The datanode's answer; with a replica, its data file comes with it (and its sidecar, when
/// `pages_at` says it has page checksums).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalReadReply {
    /// Who answers: a client checks that it reached the datanode it meant.
    pub datanode: DatanodeId,
    pub outcome: LocalReadOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalReadOutcome {
    /// The replica: its length and the CRC32C of each 64 KiB piece; and where in the sidecar
    /// (the second descriptor) the CRC32C of each 4 KiB page starts, as little-endian u32s.
    Replica {
        length: u64,
        crcs: Vec<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pages_at: Option<u64>,
    },
    /// Why not (no such replica, a refused token, a damaged replica, a malformed request).
    Refused { code: ErrorCode, message: String },
}

/// `value` as one frame.
pub fn frame<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The length a frame's 4-byte prefix announces, refused past `max`.
pub fn frame_len(prefix: [u8; 4], max: usize) -> io::Result<usize> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a local read frame of {len} bytes (at most {max})"),
        ));
    }
    Ok(len)
}

/// Decodes a frame's body.
pub fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> io::Result<T> {
    serde_json::from_slice(body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// One `sendmsg` of `bytes` on `socket`, with `fd` attached if given; answers the bytes sent
/// (perhaps fewer than all: the caller writes the rest without the descriptor).
pub fn send_with_fds(socket: RawFd, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let cmsgs: Vec<ControlMessage<'_>> = if raw.is_empty() {
        Vec::new()
    } else {
        vec![ControlMessage::ScmRights(&raw)]
    };
    sendmsg::<()>(
        socket,
        &[IoSlice::new(bytes)],
        &cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(io::Error::from)
}

/// One `recvmsg` into `buf` on `socket`: the bytes received (0 at the end of the stream) and
/// the descriptors that came with them (close-on-exec, owned by the caller; at most
/// [`MAX_FDS`], any further one is closed).
pub fn recv_with_fds(socket: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            // SAFETY: the kernel just installed these descriptors in this process for us;
            // nothing else owns them.
            fds.extend(
                received
                    .into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let bytes = msg.bytes;
    fds.truncate(MAX_FDS);
    Ok((bytes, fds))
}

/// One request frame (`request`, as [`frame`] makes it) on a new connection to the socket at
/// `path`: the reply, and the descriptors that came with it. Blocking, each step bounded by
/// `timeout`.
pub fn exchange(
    path: &Path,
    request: &[u8],
    timeout: Duration,
) -> io::Result<(LocalReadReply, Vec<OwnedFd>)> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(request)?;
    // The descriptors ride on the reply's first bytes.
    let mut prefix = [0u8; 4];
    let (mut got, mut fds) = (0, Vec::new());
    while got < prefix.len() {
        let (n, received) = recv_with_fds(stream.as_raw_fd(), &mut prefix[got..])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
        if fds.is_empty() {
            fds = received;
        }
    }
    let mut body = vec![0u8; frame_len(prefix, MAX_REPLY)?];
    stream.read_exact(&mut body)?;
    Ok((decode(&body)?, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Seek;

    #[test]
    fn descriptors_and_a_frame_cross_a_socket() {
        use std::os::fd::AsFd;
        let (a, b) = UnixStream::pair().expect("socket pair");
        let data = tempfile_with(b"replica bytes");
        let meta = tempfile_with(b"sidecar bytes");
        let reply = LocalReadReply {
            datanode: DatanodeId("dn-1".into()),
            outcome: LocalReadOutcome::Replica {
                length: 13,
                crcs: vec![7],
                pages_at: Some(20),
            },
        };
        let bytes = frame(&reply);
        let sent =
            send_with_fds(a.as_raw_fd(), &bytes, &[data.as_fd(), meta.as_fd()]).expect("send");
        assert_eq!(sent, bytes.len());
        let mut buf = vec![0u8; 256];
        let (n, fds) = recv_with_fds(b.as_raw_fd(), &mut buf).expect("receive");
        assert_eq!(n, bytes.len());
        let len = frame_len(buf[..4].try_into().expect("prefix"), MAX_REPLY).expect("length");
        let got: LocalReadReply = decode(&buf[4..4 + len]).expect("decode");
        assert_eq!(got, reply);
        let texts: Vec<String> = fds
            .into_iter()
            .map(|fd| {
                let mut received = std::fs::File::from(fd);
                let mut text = String::new();
                received.rewind().expect("seek");
                received.read_to_string(&mut text).expect("read");
                text
            })
            .collect();
        assert_eq!(texts, ["replica bytes", "sidecar bytes"]);
    }

    #[test]
    fn a_reply_without_page_checksums_still_decodes() {
        let old = br#"{"datanode":"dn-1","outcome":{"replica":{"length":1,"crcs":[5]}}}"#;
        let got: LocalReadReply = decode(old).expect("decode");
        assert_eq!(
            got.outcome,
            LocalReadOutcome::Replica {
                length: 1,
                crcs: vec![5],
                pages_at: None
            }
        );
    }

    #[test]
    fn oversized_and_malformed_frames_are_errors() {
        assert!(frame_len((MAX_REQUEST as u32 + 1).to_le_bytes(), MAX_REQUEST).is_err());
        assert!(decode::<LocalReadRequest>(b"{\"block\":").is_err());
        assert!(decode::<LocalReadRequest>(b"[1,2,3]").is_err());
    }

    fn tempfile_with(bytes: &[u8]) -> std::fs::File {
        let path = std::env::temp_dir().join(format!(
            "dfs-local-read-test-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("create");
        let _ = std::fs::remove_file(&path);
        f.write_all(bytes).expect("write");
        f
    }
}
