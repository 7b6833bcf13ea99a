//! `treeseal image` on images built by the real engine: built `FROM scratch` with a static
//! busybox, saved with `docker save` (this engine writes the legacy format), converted to
//! OCI layouts with `skopeo` (uncompressed and zstd), and checked without running them.
//!
//! Needs a Docker engine, `/bin/busybox` (static) and `skopeo`; without them every test
//! prints `SKIPPED: ...` and returns, or fails under `TREESEAL_REQUIRE_DOCKER=1` (CI).
//! Every image is named `treeseal-image-test-<pid>-...` and removed when its test ends.
#![cfg(feature = "image")]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const BIN: &str = env!("CARGO_BIN_EXE_treeseal");
const STALE: &str = "blake3:0000000000000000000000000000000000000000000000000000000000000001";

fn ready(test: &str) -> bool {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    let check = CHECK.get_or_init(|| {
        let ok = |cmd: &str, args: &[&str]| {
            Command::new(cmd)
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !ok("docker", &["info"]) {
            return Err("no Docker engine".into());
        }
        if !Path::new("/bin/busybox").is_file() {
            return Err("no /bin/busybox (apt-get install busybox-static)".into());
        }
        if !ok("skopeo", &["--version"]) {
            return Err("no skopeo (apt-get install skopeo)".into());
        }
        Ok(())
    });
    common::engine_ready(check, "image", test)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{cmd:?} failed:\n{stdout}\n{stderr}");
    stdout
}

/// `treeseal ARGS`: (exit code, stdout, stderr).
fn treeseal(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("TREESEAL_DIGEST")
        .output()
        .expect("run treeseal");
    let (o, e) = text(&out);
    (out.status.code().unwrap_or(-1), o, e)
}

/// One test's images and files; the images are removed when it is dropped.
struct Scope {
    dir: tempfile::TempDir,
    name: String,
    images: Vec<String>,
}

impl Scope {
    fn new(test: &str) -> Scope {
        Scope {
            dir: tempfile::tempdir().unwrap(),
            name: format!("treeseal-image-test-{}-{test}", std::process::id()),
            images: Vec::new(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A checkout with an app tree: `a.txt`, `lib/x.sh` (executable), locked.
    fn checkout(&self, name: &str, a_txt: &str) -> (PathBuf, String) {
        let app = self.path(name);
        fs::create_dir_all(app.join("lib")).unwrap();
        fs::write(app.join("a.txt"), a_txt).unwrap();
        fs::write(app.join("lib/x.sh"), "echo x\n").unwrap();
        run_ok(Command::new("chmod").arg("+x").arg(app.join("lib/x.sh")));
        let digest = run_ok(Command::new(BIN).arg("lock").arg(&app))
            .trim()
            .to_string();
        (app, digest)
    }

    /// Builds `Dockerfile` (with the build context holding busybox, `app/` = `app` and
    /// `extra`), saves it, returns the archive's path.
    fn build(&mut self, tag: &str, app: &Path, dockerfile: &str, digest: Option<&str>) -> PathBuf {
        let ctx = self.path(&format!("ctx-{tag}"));
        fs::create_dir_all(&ctx).unwrap();
        fs::copy("/bin/busybox", ctx.join("busybox")).unwrap();
        run_ok(Command::new("cp").arg("-a").arg(app).arg(ctx.join("app")));
        fs::write(ctx.join("extra"), "planted\n").unwrap();
        fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        let image = format!("{}-{tag}", self.name);
        let mut cmd = Command::new("docker");
        // No cache: a cached step is an image other tests' builds share, and removing
        // their images (with their untagged parents) would pull it from under this build.
        cmd.env("DOCKER_BUILDKIT", "0")
            .args(["build", "--no-cache", "-q", "-t", &image]);
        if let Some(d) = digest {
            cmd.args(["--build-arg", &format!("TREESEAL_DIGEST={d}")]);
        }
        run_ok(cmd.arg(&ctx));
        self.images.push(image.clone());
        let archive = self.path(&format!("{tag}.tar"));
        run_ok(
            Command::new("docker")
                .args(["save", "-o"])
                .arg(&archive)
                .arg(&image),
        );
        archive
    }

    /// The image as an OCI layout, uncompressed and with zstd layers.
    fn oci(&self, archive: &Path) -> [PathBuf; 2] {
        let plain = archive.with_extension("oci");
        let zstd = archive.with_extension("zstd");
        let src = format!("docker-archive:{}", archive.display());
        run_ok(Command::new("skopeo").args([
            "copy",
            "-q",
            &src,
            &format!("oci:{}:t", plain.display()),
        ]));
        run_ok(Command::new("skopeo").args([
            "copy",
            "-q",
            "--dest-compress",
            "--dest-compress-format",
            "zstd",
            &src,
            &format!("oci:{}:t", zstd.display()),
        ]));
        [plain, zstd]
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if !self.images.is_empty() {
            let _ = Command::new("docker")
                .args(["rmi", "-f"])
                .args(&self.images)
                .output();
        }
    }
}

const BASE: &str = "FROM scratch\nCOPY busybox /bin/busybox\nCOPY app /app\n\
                    ARG TREESEAL_DIGEST\nENV TREESEAL_DIGEST=${TREESEAL_DIGEST}\n";

fn verify(image: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["image", "verify", image.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (code, _, err) = treeseal(&args);
    (code, err)
}

/// The same verdict on the docker-save archive and its two OCI conversions.
fn same_on_every_format(scope: &Scope, archive: &Path, code: i32, needle: &str) {
    let [plain, zstd] = scope.oci(archive);
    for image in [archive, &plain, &zstd] {
        let (got, err) = verify(image, &[]);
        assert_eq!(got, code, "{}: {err}", image.display());
        assert!(err.contains(needle), "{}: {err}", image.display());
    }
    let blobs = fs::read_dir(zstd.join("blobs/sha256")).unwrap();
    let zstd_layers = blobs
        .map(|b| fs::read(b.unwrap().path()).unwrap())
        .filter(|b| b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]))
        .count();
    assert!(zstd_layers > 0, "skopeo wrote no zstd layer");
}

#[test]
fn a_good_image_verifies_in_every_format_and_from_stdin() {
    if !ready("good") {
        return;
    }
    let mut s = Scope::new("good");
    let (app, digest) = s.checkout("app", "hello\n");
    let archive = s.build("good", &app, BASE, Some(&digest));
    same_on_every_format(&s, &archive, 0, &format!(": /app {digest} ("));
    let out = Command::new(BIN)
        .args(["image", "verify", "-", "--checkout"])
        .arg(&app)
        .stdin(fs::File::open(&archive).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    // `image show` lists the tree as `show` lists the manifest.
    let (code, from_image, _) = treeseal(&["image", "show", archive.to_str().unwrap()]);
    assert_eq!(code, 0);
    let (_, from_manifest, _) = treeseal(&["show", app.join(".treeseal").to_str().unwrap()]);
    assert_eq!(from_image, from_manifest);
}

#[test]
fn a_later_layer_deleting_a_sealed_file_is_named() {
    if !ready("whiteout") {
        return;
    }
    let mut s = Scope::new("whiteout");
    let (app, digest) = s.checkout("app", "hello\n");
    let dockerfile = format!("{BASE}RUN [\"/bin/busybox\", \"rm\", \"/app/a.txt\"]\n");
    let archive = s.build("whiteout", &app, &dockerfile, Some(&digest));
    same_on_every_format(
        &s,
        &archive,
        1,
        "differs from its manifest: missing file: a.txt",
    );
}

#[test]
fn a_layer_replacing_a_sealed_directory_is_found() {
    if !ready("opaque") {
        return;
    }
    let mut s = Scope::new("opaque");
    let (app, digest) = s.checkout("app", "hello\n");
    // The engine's own way: this engine's storage driver writes the replacement as
    // whiteouts of the old entries.
    let dockerfile = format!(
        "{BASE}RUN [\"/bin/busybox\", \"sh\", \"-c\", \
         \"/bin/busybox rm -r /app/lib && /bin/busybox mkdir /app/lib && echo y > /app/lib/y.sh\"]\n"
    );
    let replaced = s.build("replaced", &app, &dockerfile, Some(&digest));
    same_on_every_format(&s, &replaced, 1, "missing file: lib/x.sh");

    // As an opaque directory (what overlay2 writes): a layer with `app/lib/.wh..wh..opq`
    // added to the good image, loaded into the engine and saved again by it.
    let good = s.build("good", &app, BASE, Some(&digest));
    let loaded = format!("{}-loaded:latest", s.name);
    let archive = with_opaque_layer(&s, &good, &loaded);
    run_ok(Command::new("docker").arg("load").arg("-i").arg(&archive));
    s.images.push(loaded.clone());
    // The engine applies the marker: only the new file is left in /app/lib.
    let ls = run_ok(Command::new("docker").args([
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/bin/busybox",
        &loaded,
        "ls",
        "/app/lib",
    ]));
    assert_eq!(ls.trim(), "y.sh");
    let saved = s.path("opaque-saved.tar");
    run_ok(
        Command::new("docker")
            .args(["save", "-o"])
            .arg(&saved)
            .arg(&loaded),
    );
    let listing = layer_listing(&s, &saved);
    assert!(listing.contains("app/lib/.wh..wh..opq"), "{listing}");
    same_on_every_format(&s, &saved, 1, "missing file: lib/x.sh");
}

/// Every layer's entry names in a legacy `docker save` archive.
fn layer_listing(s: &Scope, archive: &Path) -> String {
    let x = s.path("listing");
    let _ = fs::remove_dir_all(&x);
    fs::create_dir_all(&x).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(archive)
            .arg("-C")
            .arg(&x),
    );
    let mut out = String::new();
    for entry in fs::read_dir(&x).unwrap() {
        let layer = entry.unwrap().path().join("layer.tar");
        if layer.is_file() {
            out += &run_ok(Command::new("tar").arg("-tf").arg(&layer));
        }
    }
    out
}

/// `archive` (a legacy `docker save`) with one more layer: `app/lib` made opaque, holding
/// only `y.sh`; tagged `tag`.
fn with_opaque_layer(s: &Scope, archive: &Path, tag: &str) -> PathBuf {
    use sha2::{Digest, Sha256};
    let hex = |b: &[u8]| -> String {
        Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    let dir = s.path("with-opaque");
    fs::create_dir_all(&dir).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(archive)
            .arg("-C")
            .arg(&dir),
    );
    let mut layer = tar::Builder::new(Vec::new());
    for (name, data) in [("app/lib/.wh..wh..opq", &b""[..]), ("app/lib/y.sh", b"y\n")] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        layer.append_data(&mut h, name, data).unwrap();
    }
    let layer = layer.into_inner().unwrap();
    let layer_id = hex(&layer);
    fs::create_dir_all(dir.join(&layer_id)).unwrap();
    fs::write(dir.join(&layer_id).join("layer.tar"), &layer).unwrap();
    let manifest_path = dir.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(&manifest_path).unwrap()).unwrap();
    let config_name = manifest[0]["Config"].as_str().unwrap().to_string();
    let mut config: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join(&config_name)).unwrap()).unwrap();
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(format!("sha256:{layer_id}").into());
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_id = hex(&config_bytes);
    fs::remove_file(dir.join(&config_name)).unwrap();
    fs::write(dir.join(format!("{config_id}.json")), &config_bytes).unwrap();
    manifest[0]["Config"] = format!("{config_id}.json").into();
    manifest[0]["Layers"]
        .as_array_mut()
        .unwrap()
        .push(format!("{layer_id}/layer.tar").into());
    manifest[0]["RepoTags"] = serde_json::json!([tag]);
    fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let _ = fs::remove_file(dir.join("repositories"));
    let out = s.path("with-opaque.tar");
    run_ok(
        Command::new("tar")
            .arg("-cf")
            .arg(&out)
            .arg("-C")
            .arg(&dir)
            .arg("."),
    );
    out
}

#[test]
fn a_layer_adding_a_file_is_named() {
    if !ready("added") {
        return;
    }
    let mut s = Scope::new("added");
    let (app, digest) = s.checkout("app", "hello\n");
    let archive = s.build(
        "added",
        &app,
        &format!("{BASE}COPY extra /app/extra\n"),
        Some(&digest),
    );
    same_on_every_format(&s, &archive, 1, "extra file: extra");
}

#[test]
fn a_stale_or_missing_baked_digest_and_a_truncated_archive_are_refused() {
    if !ready("stale") {
        return;
    }
    let mut s = Scope::new("stale");
    let (app, digest) = s.checkout("app", "hello\n");
    let stale = s.build("stale", &app, BASE, Some(STALE));
    let (code, err) = verify(&stale, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("expected {STALE}")), "{err}");
    // --digest overrides the image's.
    assert_eq!(verify(&stale, &["--digest", &digest]).0, 0);
    // The build arg was not passed: set but empty, which the gate refuses.
    let empty = s.build("empty", &app, BASE, None);
    let (code, err) = verify(&empty, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("TREESEAL_DIGEST") && err.contains("build arg"),
        "{err}"
    );
    // A checkout that is not the image's.
    let (other, _) = s.checkout("other", "changed\n");
    let good = s.build("good", &app, BASE, Some(&digest));
    let (code, err) = verify(&good, &["--checkout", other.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not built from this checkout"), "{err}");
    // Truncated: in the middle of a layer, and at a member boundary.
    let bytes = fs::read(&good).unwrap();
    for cut in [bytes.len() / 2, 1024] {
        let t = s.path("truncated.tar");
        fs::write(&t, &bytes[..cut]).unwrap();
        let (code, err) = verify(&t, &[]);
        assert_eq!(code, 2, "cut at {cut}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn image_diff_names_what_changed_between_two_commits() {
    if !ready("diff") {
        return;
    }
    let mut s = Scope::new("diff");
    let (one, d1) = s.checkout("one", "hello\n");
    let (two, d2) = s.checkout("two", "hello, world\n");
    let a = s.build("one", &one, BASE, Some(&d1));
    let b = s.build("two", &two, BASE, Some(&d2));
    let (code, out, err) = treeseal(&["image", "diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        out.contains("content   file    a.txt (6 -> 13 bytes)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("digests differ: A {d1}, B {d2}")),
        "{out}"
    );
    // The image against its own checkout: the same tree.
    let (code, out, _) = treeseal(&["image", "diff", a.to_str().unwrap(), one.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn check_image_fails_on_a_stale_baked_digest() {
    if !ready("check-image") {
        return;
    }
    let mut s = Scope::new("check");
    let (app, digest) = s.checkout("app", "hello\n");
    s.build("good", &app, BASE, Some(&digest));
    s.build("stale", &app, BASE, Some(STALE));
    let check = |tag: &str| {
        let out = Command::new(Path::new(REPO).join("docker/check-image"))
            .arg(format!("{}-{tag}", s.name))
            .arg("/app")
            .arg(&app)
            .env("TREESEAL", BIN)
            .output()
            .unwrap();
        let (o, e) = text(&out);
        (out.status.code(), format!("{o}{e}"))
    };
    let (code, out) = check("good");
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = check("stale");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAILED"), "{out}");
}

/// No engine needed: what is not an image is exit 2 with one line, never a pass.
#[test]
fn what_is_not_an_image_cannot_be_checked() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.tar");
    fs::write(&empty, b"").unwrap();
    let junk = dir.path().join("junk.tar");
    fs::write(&junk, [0x5a; 3000]).unwrap();
    let plain = dir.path().join("plain");
    fs::create_dir(&plain).unwrap();
    let missing = dir.path().join("missing.tar");
    for (path, needle) in [
        (&empty, "no members"),
        (&junk, "truncated or corrupt"),
        (&plain, "no index.json or manifest.json"),
        (&missing, "cannot read image"),
    ] {
        let (code, _, err) = treeseal(&["image", "verify", path.to_str().unwrap()]);
        assert_eq!(code, 2, "{}: {err}", path.display());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{}: {err}", path.display());
    }
    let (code, _, err) = treeseal(&["image", "verify", "x.tar", "--platform", "linux"]);
    assert_eq!(code, 2, "{err}");
}

/// No engine needed: `docker/check-image` without a treeseal to run says so in one line
/// (exit 2) before it asks the engine anything, and its usage line says what it needs.
#[test]
fn check_image_without_treeseal_says_so() {
    let script = Path::new(REPO).join("docker/check-image");
    let empty = tempfile::tempdir().unwrap();
    let run = |path: &Path, treeseal: Option<&str>, args: &[&str]| {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg(&script).args(args).env("PATH", path);
        match treeseal {
            Some(t) => cmd.env("TREESEAL", t),
            None => cmd.env_remove("TREESEAL"),
        };
        let out = cmd.output().unwrap();
        let (o, e) = text(&out);
        assert_eq!(o, "", "{args:?}");
        (out.status.code(), e)
    };
    let (code, err) = run(empty.path(), None, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with("usage: check-image IMAGE")
            && err.contains("treeseal on PATH, or TREESEAL=/path/to/treeseal"),
        "{err}"
    );
    let not_exec = empty.path().join("treeseal.txt");
    fs::write(&not_exec, "").unwrap();
    for (treeseal, needle) in [
        (
            None,
            "check-image: no treeseal on PATH: install it, or set TREESEAL=",
        ),
        (Some(""), "check-image: TREESEAL is set but empty"),
        (Some("  "), "check-image: TREESEAL is set but empty"),
        (Some("/nonexistent/treeseal"), "is not an executable file"),
        (
            Some(not_exec.to_str().unwrap()),
            "is not an executable file",
        ),
        (
            Some(empty.path().to_str().unwrap()),
            "is not an executable file",
        ),
    ] {
        let (code, err) = run(empty.path(), treeseal, &["some-image"]);
        assert_eq!(code, Some(2), "{treeseal:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{treeseal:?}: {err}");
        assert!(
            err.starts_with("check-image: ") && err.contains(needle),
            "{treeseal:?}: {err}"
        );
    }
}
