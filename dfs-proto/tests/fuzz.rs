//! Fuzz targets (proptest) for the wire decoders in dfs-proto: names and paths, identity
//! headers, block access tokens, the cluster secret file, every REST request and response type
//! from arbitrary JSON bytes, and the gRPC messages from arbitrary bytes (prost decoding, then
//! the chunk checks a datanode and a reader run on them). None may panic; what they accept must
//! hold their invariants.
//!
//! Bounded for `make test`; run longer with `PROPTEST_CASES=100000 cargo test -p dfs-proto
//! --test fuzz` (see docs/SECURITY.md).

use dfs_proto::grpc::{
    DataChunk, ReadBlockRequest, ReadBlockResponse, WriteBlockRequest, WriteBlockResponse,
    write_block_request::Msg,
};
use dfs_proto::name::{NAME_MAX, PATH_MAX};
use dfs_proto::rest::{self, Endpoint};
use dfs_proto::token::{BlockOp, BlockTokenKey};
use dfs_proto::{BlockId, ClusterSecret, DfsPath, Generation, Identity, Name, checksum};
use proptest::prelude::*;
use prost::Message;
use std::time::{Duration, SystemTime};

const CASES: u32 = 1000;

/// Strings that look like names and paths, with the characters that matter.
fn pathish() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,300}",
        "[/a.\\x00]{0,40}",
        prop::collection::vec(
            prop_oneof![
                "[a-z]{1,300}",
                Just(".".to_string()),
                Just("..".to_string())
            ],
            0..20
        )
        .prop_map(|parts| format!("/{}", parts.join("/"))),
        Just("x".repeat(PATH_MAX + 1)),
    ]
}

macro_rules! decode_all {
    ($bytes:expr, $($e:ident),* $(,)?) => {$(
        let _ = serde_json::from_slice::<<rest::$e as Endpoint>::Request>($bytes);
        let _ = serde_json::from_slice::<<rest::$e as Endpoint>::Response>($bytes);
    )*};
}

/// The number of cases: `PROPTEST_CASES` when set (a longer run), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(CASES)))]

    #[test]
    fn names_and_paths(s in pathish()) {
        if let Ok(name) = Name::new(s.clone()) {
            prop_assert!(!name.as_str().is_empty() && name.as_str().len() <= NAME_MAX);
            prop_assert!(!name.as_str().contains(['/', '\0']));
            prop_assert!(name.as_str() != "." && name.as_str() != "..");
        }
        if let Ok(path) = DfsPath::parse(&s) {
            prop_assert!(s.len() <= PATH_MAX);
            for c in path.components() {
                prop_assert!(Name::new(c.as_str().to_string()).is_ok());
            }
        }
    }

    #[test]
    fn identity_headers(
        uid in proptest::option::of(".{0,30}"),
        gid in proptest::option::of(".{0,30}"),
        groups in proptest::option::of("[0-9, a-z-]{0,400}"),
    ) {
        let parsed =
            Identity::from_header_values(uid.as_deref(), gid.as_deref(), groups.as_deref());
        if let Ok(Some(id)) = parsed {
            // What parses round-trips through the headers it would be sent as.
            let [(_, u), (_, g), (_, gs)] = id.header_values();
            let again = Identity::from_header_values(Some(&u), Some(&g), Some(&gs));
            prop_assert_eq!(again.ok().flatten(), Some(id));
        }
    }

    #[test]
    fn block_tokens(
        token in prop_oneof![
            ".{0,200}",
            "v1\\.[0-9a-f]{8}\\.[0-9]{1,20}\\.[0-9]{1,20}\\.(r|w|rw|x)\\.[0-9]{1,20}\\.[0-9a-f]{0,70}",
        ],
        flip in any::<prop::sample::Index>(),
        block in any::<u64>(),
        generation in any::<u64>(),
    ) {
        let key = BlockTokenKey::new(7, [9u8; 32]);
        let now = SystemTime::now();
        let (b, g) = (BlockId(block), Generation(generation));
        // Arbitrary strings are never accepted.
        prop_assert!(key.verify(&token, b, g, BlockOp::Read, now).is_err());
        // A real token is accepted; with one character changed it is refused.
        let good = key.sign(b, g, &[BlockOp::Write], now + Duration::from_secs(60));
        prop_assert!(key.verify(&good, b, g, BlockOp::Write, now).is_ok());
        let mut bytes = good.into_bytes();
        let i = flip.index(bytes.len());
        bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
        let bad = String::from_utf8_lossy(&bytes).into_owned();
        prop_assert!(key.verify(&bad, b, g, BlockOp::Write, now).is_err());
    }

    #[test]
    fn secret_files(raw in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Some(secret) = ClusterSecret::from_file_bytes(&raw) {
            prop_assert!(secret.check_authorization(secret.authorization().as_bytes()));
        }
    }

    #[test]
    fn rest_bodies_from_bytes(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        ".{0,512}".prop_map(String::into_bytes),
        "\\{(\"[a-z_]{1,8}\":(-?[0-9]{1,25}|null|true|\"[a-z]{0,8}\"|\\[\\]|\\{\\}),?){0,6}\\}"
            .prop_map(String::into_bytes),
    ]) {
        decode_all!(&bytes,
            ClusterInfo, GetAttr, Access, Lookup, Resolve, ReadDir, Create, Mkdir, Symlink,
            ReadLink, Link, Unlink, Rmdir, Rename, SetAttr, StatFs, OpenWrite, RenewLease,
            ReleaseLease, AllocateBlock, Commit, GetBlocks, RegisterDatanode, Heartbeat,
            BlockReport, IncrementalBlockReport, AdminReport, GetXattr, ListXattr, SetXattr,
            RemoveXattr, ReportBadReplicas, RecoverBlock, Fsck, Decommission, HaStatus,
            HaAddNode, HaRemoveNode,
        );
        let _ = serde_json::from_slice::<dfs_proto::ApiError>(&bytes);
    }

    #[test]
    fn grpc_messages_from_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = ReadBlockRequest::decode(bytes.as_slice());
        let _ = WriteBlockResponse::decode(bytes.as_slice());
        if let Ok(WriteBlockRequest { msg: Some(Msg::Chunk(chunk)) }) =
            WriteBlockRequest::decode(bytes.as_slice())
        {
            // A chunk that passes verification sits on the grid with one good CRC per piece.
            if checksum::verify(&chunk).is_ok() {
                prop_assert_eq!(chunk.offset % checksum::CHECKSUM_CHUNK as u64, 0);
                prop_assert_eq!(checksum::checksums(&chunk.data), chunk.crc32c);
            }
        }
        if let Ok(ReadBlockResponse { chunk: Some(chunk), .. }) =
            ReadBlockResponse::decode(bytes.as_slice())
        {
            let _ = checksum::verify(&chunk);
        }
    }

    #[test]
    fn grpc_chunks_well_typed(
        offset in prop_oneof![
            any::<u64>(),
            (0..64u64).prop_map(|i| i * checksum::CHECKSUM_CHUNK as u64),
        ],
        // Any length across several 64 KiB pieces; the bytes themselves do not matter here.
        data in (0..200_000usize, any::<u8>())
            .prop_map(|(len, seed)| (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect::<Vec<u8>>()),
        crcs in prop::collection::vec(any::<u32>(), 0..6),
        good in any::<bool>(),
    ) {
        let crc32c = if good { checksum::checksums(&data) } else { crcs };
        let chunk = DataChunk { offset, data: data.into(), crc32c };
        let msg = WriteBlockRequest { msg: Some(Msg::Chunk(chunk.clone())) };
        let decoded = WriteBlockRequest::decode(msg.encode_to_vec().as_slice());
        prop_assert_eq!(decoded.ok().and_then(|m| m.msg), Some(Msg::Chunk(chunk.clone())));
        if checksum::verify(&chunk).is_ok() {
            prop_assert_eq!(chunk.offset % checksum::CHECKSUM_CHUNK as u64, 0);
            prop_assert_eq!(checksum::checksums(&chunk.data), chunk.crc32c);
        }
    }
}
