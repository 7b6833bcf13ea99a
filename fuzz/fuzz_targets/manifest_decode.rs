//! Fuzz target: `treeseal::manifest::decode` on hostile bytes.
//!
//! Errors are fine, panics are bugs. Every input is decoded twice: as given, and
//! "resealed" — with a valid header (magic, version, zero flags, the real body length and
//! body checksum) put in front of its body — because random bytes almost never carry a
//! valid blake3 checksum, and without resealing the fuzzer would never get past it into
//! the postcard body and the entry validation.
//!
//! For every input that decodes:
//! - the error-free round trip holds: `decode(encode(m)) == m`, with the same digest, and
//!   `encode` is a fixpoint (`encode(decode(encode(m))) == encode(m)`);
//! - the patterns compile or fail with an error (they are untrusted input too: `verify`
//!   compiles them), and a manifest diffed against itself has no changes.
//!
//! Every error is one line (the CLI prints it as is).
#![no_main]

use libfuzzer_sys::fuzz_target;
use treeseal::manifest::{decode, reseal, FORMAT_VERSION, HEADER_LEN, MAGIC};

/// The smallest encoded entry (see `MIN_ENTRY_LEN` in src/manifest.rs).
const MIN_ENTRY_LEN: u64 = 5;

fn with_valid_header(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < HEADER_LEN {
        return None;
    }
    let mut b = data.to_vec();
    let body_len = (b.len() - HEADER_LEN) as u64;
    b[..8].copy_from_slice(&MAGIC);
    b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[10..16].fill(0);
    // Keep the fuzzer's entry count, folded into the range the count check lets through
    // (plus one above it, so the check itself stays exercised). A real manifest's count
    // is unchanged by this.
    let count = u64::from_le_bytes(b[16..24].try_into().unwrap());
    let count = count % (body_len / MIN_ENTRY_LEN + 2);
    b[16..24].copy_from_slice(&count.to_le_bytes());
    reseal(&mut b);
    Some(b)
}

fn check(bytes: &[u8]) {
    let m = match decode(bytes) {
        Ok(m) => m,
        Err(err) => {
            let reason = err.to_string();
            assert!(
                !reason.contains('\n') && !reason.contains('\r'),
                "multi-line error: {reason:?}"
            );
            return;
        }
    };
    let digest = m.digest();
    let encoded = m.encode();
    let again = decode(&encoded).expect("a re-encoded manifest must decode");
    assert_eq!(again, m, "round trip changed the manifest");
    assert_eq!(again.digest(), digest, "round trip changed the digest");
    assert_eq!(m.digest(), digest, "digest is not stable");
    assert_eq!(again.encode(), encoded, "encode is not a fixpoint");
    assert!(treeseal::diff::diff(&m, &again).is_empty());
    let _ = treeseal::ignore::Matcher::new(&m.rules.patterns);
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(resealed) = with_valid_header(data) {
        check(&resealed);
    }
});
