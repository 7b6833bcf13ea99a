//! Fuzz target: reading an image layer (`treeseal::image::layer::read_layer`) and applying
//! it to an in-memory file system, on hostile bytes.
//!
//! Errors are fine, panics are bugs. Every input is read as stored (plain tar, gzip or
//! zstd, detected from its first bytes) under a small budget, so that a bomb or a flood of
//! entries ends in an error quickly. For every layer that reads:
//! - no entry path is empty, absolute, or has an empty, `.` or `..` component;
//! - applying it (twice: a layer over itself exercises whiteouts of lower entries) either
//!   fails with an error or gives a tree whose every path is inside the image.
//!
//! Every error is one line (the CLI prints it as is).
#![no_main]

use libfuzzer_sys::fuzz_target;
use treeseal::ignore::Matcher;
use treeseal::image::fs::Fs;
use treeseal::image::layer::{read_layer, Budget};

fn one_line(text: String) {
    assert!(
        !text.contains('\n') && !text.contains('\r'),
        "multi-line error: {text:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let mut budget = Budget {
        entries: 10_000,
        kept: 1 << 20,
        ratio: 64,
        slack: 1 << 20,
    };
    let layer = match read_layer(data, &mut budget) {
        Ok(l) => l,
        Err(e) => return one_line(e.to_string()),
    };
    for e in &layer.entries {
        assert!(!e.path.is_empty() || e.item == treeseal::image::layer::Item::Opaque);
        assert!(!e.path.starts_with(b"/"), "{:?}", e.path);
        for part in e.path.split(|&c| c == b'/') {
            assert!(!matches!(part, b"" | b"." | b"..") || e.path.is_empty(), "{:?}", e.path);
        }
    }
    let mut fs = Fs::default();
    for _ in 0..2 {
        if let Err(e) = fs.apply(&layer) {
            return one_line(e.to_string());
        }
    }
    let matcher = Matcher::new(&[]).expect("no patterns");
    if let Ok(Some(entries)) = fs.tree(b"/", &matcher) {
        for e in &entries {
            assert!(!e.path.is_empty() && !e.path.starts_with(b"/"));
        }
    }
});
