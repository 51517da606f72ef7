//! Block checksum sidecars (`dfs::checksum`): a header, then a CRC32 per 512-byte chunk. The
//! input is a sidecar and the block's data, as two parts.
#![no_main]

use dfs::checksum::{first_bad_chunk, verify_sidecar, SidecarHeader, HEADER_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = SidecarHeader::decode(data) {
        assert_eq!(&header.encode()[..], &data[..HEADER_BYTES]);
    }
    let parts = fuzz::parts(data);
    let (sidecar, block) = match parts.as_slice() {
        [s, b, ..] => (*s, *b),
        [s] => (*s, &[][..]),
        [] => return,
    };
    let header = SidecarHeader::decode(sidecar).ok();
    let (id, stamp) = header.map_or((0, 0), |h| (h.block_id, h.gen_stamp));
    let _ = verify_sidecar(sidecar, block, id, stamp, "fuzz");
    if sidecar.len() >= HEADER_BYTES {
        let _ = first_bad_chunk(block, &sidecar[HEADER_BYTES..]);
    }
});
