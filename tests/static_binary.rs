//! The release binary is what goes into `FROM scratch` images: fully static and small.
//! That is the gate's build, without the `image` feature (`treeseal image` reads saved
//! images on CI machines, never inside one): `cargo build --release --no-default-features`,
//! as `docker/build-image` builds it.

use std::path::PathBuf;
use std::process::Command;

/// Stripped size budget.
const MAX_BYTES: u64 = 2 * 1024 * 1024;

fn release_binary() -> PathBuf {
    let repo = env!("CARGO_MANIFEST_DIR");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--locked",
            "--quiet",
            "--no-default-features",
            "--bin",
            "treeseal",
        ])
        .current_dir(repo)
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo build --release failed");
    // Where cargo put it: CARGO_TARGET_DIR when set (relative to the repository, where
    // cargo ran), else target/.
    let target = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
    PathBuf::from(repo)
        .join(target)
        .join("x86_64-unknown-linux-gnu/release/treeseal")
}

fn readelf(flag: &str, bin: &PathBuf) -> String {
    let out = Command::new("readelf")
        .args([flag, "-W"])
        .arg(bin)
        .output()
        .expect("readelf (binutils) is needed for this test");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn release_binary_is_static_and_small() {
    let bin = release_binary();
    // `ldd` and `file` misread static-pie; the ELF headers do not.
    let dynamic = readelf("-d", &bin);
    assert!(
        !dynamic.contains("(NEEDED)"),
        "shared libraries needed:\n{dynamic}"
    );
    let headers = readelf("-l", &bin);
    assert!(
        !headers.contains("INTERP"),
        "has a program interpreter:\n{headers}"
    );
    let size = std::fs::metadata(&bin).unwrap().len();
    assert!(size <= MAX_BYTES, "{size} bytes, budget {MAX_BYTES}");
    assert!(
        readelf("-S", &bin).lines().all(|l| !l.contains(".debug_")),
        "not stripped"
    );

    // It runs with nothing from the environment (no PATH, no locale, no HOME).
    let out = Command::new(&bin)
        .arg("--version")
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("treeseal "));
}
