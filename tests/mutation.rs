//! Mutation coverage: every kind of single change to a realistic tree is detected, at
//! random places, many times over — and nothing else is reported.
//!
//! A generated python-app-like tree (a few hundred files, nested packages, executables,
//! symlinks, empty directories, one file large enough to be memory-mapped) is locked once
//! with the library. Then, for each mutation kind, 100 times: apply one mutation at a
//! random place (seeded xorshift, so a failure can be replayed with
//! `TREESEAL_MUTATION_SEED`), verify with `--all` semantics, and require exactly the
//! expected differences at exactly the mutated paths; then undo the mutation and require
//! the tree to verify equal again (so each mutation starts from the sealed tree). A control
//! group of changes that must *not* count (mtime, group/other bits under the default mode
//! policy, rewriting identical content) must never be reported.
//!
//! The second test re-locks the same tree with 1 to 8 threads, many times, through the
//! library and through the binary (with `SOURCE_DATE_EPOCH` fixed), and requires
//! byte-identical manifests.
//!
//! Both print a summary line (`cargo test --test mutation -- --nocapture`).

mod common;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::Tree;
use treeseal::manifest::{Manifest, Origin};
use treeseal::tree::{EntryRef, Kind, NodeRef, Rules};
use treeseal::verify::{verify, Options, What};

/// xorshift64*: tiny, seeded, good enough to pick places.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// `base` plus up to `spread - 1` more random bytes.
    fn bytes_about(&mut self, base: usize, spread: usize) -> Vec<u8> {
        let n = base + self.below(spread);
        self.bytes(n)
    }
    /// `base` plus up to `spread - 1` more lines of python-looking text.
    fn text_about(&mut self, base: usize, spread: usize) -> String {
        let n = base + self.below(spread);
        self.text(n)
    }
    fn text(&mut self, lines: usize) -> String {
        const WORDS: [&str; 16] = [
            "def", "return", "self", "import", "from", "class", "None", "if", "else", "for", "in",
            "request", "user", "config", "value", "logger",
        ];
        let mut out = String::new();
        for _ in 0..lines {
            let indent = self.below(3) * 4;
            out.push_str(&" ".repeat(indent));
            for w in 0..1 + self.below(8) {
                if w > 0 {
                    out.push(' ');
                }
                let word = WORDS[self.below(WORDS.len())];
                out.push_str(word);
            }
            out.push('\n');
        }
        out
    }
}

fn seed() -> u64 {
    std::env::var("TREESEAL_MUTATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x7265_6573_6561_6c21)
}

/// A python-app-like tree: packages with modules, templates, static files, migrations,
/// tests, executables, symlinks, empty directories and one large binary.
fn python_app(rng: &mut Rng) -> Tree {
    let t = Tree::new();
    t.file("README.md", "# app\n")
        .file("requirements.txt", "flask==3.0.0\nrequests==2.31.0\n")
        .file("pyproject.toml", "[project]\nname = \"app\"\n")
        .file("app/__init__.py", "")
        .file("app/main.py", rng.text(30))
        .file("app/settings.py", rng.text(12));
    for pkg in ["api", "core", "models", "services", "utils", "workers"] {
        t.file(format!("app/{pkg}/__init__.py"), "");
        for m in 0..12 + rng.below(12) {
            t.file(format!("app/{pkg}/mod_{m:02}.py"), rng.text_about(5, 60));
        }
        for sub in ["v1", "v2"] {
            if rng.below(2) == 0 {
                t.file(format!("app/{pkg}/{sub}/__init__.py"), "");
                for m in 0..3 + rng.below(6) {
                    t.file(format!("app/{pkg}/{sub}/h{m}.py"), rng.text_about(3, 20));
                }
            }
        }
    }
    for i in 0..20 {
        t.file(format!("app/templates/page_{i:02}.html"), rng.text(10));
    }
    for i in 0..8 {
        t.file(format!("app/static/css/s{i}.css"), rng.text(4))
            .file(format!("app/static/js/s{i}.js"), rng.text(6));
        let img = rng.bytes_about(200, 3000);
        t.file(format!("app/static/img/i{i}.png"), img);
    }
    for i in 1..=30 {
        t.file(format!("migrations/{i:04}_change.py"), rng.text(8));
    }
    for i in 0..60 {
        t.file(format!("tests/test_{i:02}.py"), rng.text(6));
    }
    t.file("bin/manage", "#!/usr/bin/env python3\n")
        .chmod("bin/manage", 0o755)
        .file("bin/entrypoint.sh", "#!/bin/sh\nexec \"$@\"\n")
        .chmod("bin/entrypoint.sh", 0o755)
        .file("data/model.bin", rng.bytes(400_000))
        .dir("var/log")
        .dir("var/run")
        .symlink("current", "app")
        .symlink("app/config.py", "settings.py")
        .symlink("app/static/latest", "css")
        .symlink("bin/python", "/usr/bin/python3");
    t
}

/// The kinds of single mutation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Mutation {
    FlipBit,
    Truncate,
    Append,
    Delete,
    Add,
    Rename,
    ToggleExec,
    Retarget,
    FileToDir,
}

const KINDS: [Mutation; 9] = [
    Mutation::FlipBit,
    Mutation::Truncate,
    Mutation::Append,
    Mutation::Delete,
    Mutation::Add,
    Mutation::Rename,
    Mutation::ToggleExec,
    Mutation::Retarget,
    Mutation::FileToDir,
];

/// How to put the tree back.
enum Undo {
    Content(PathBuf, Vec<u8>, u32),
    Remove(PathBuf),
    Rename(PathBuf, PathBuf),
    Mode(PathBuf, u32),
    Link(PathBuf, Vec<u8>),
    Dir(PathBuf, u32),
    DirToFile(PathBuf, Vec<u8>, u32),
}

impl Undo {
    fn apply(self) {
        match self {
            Undo::Content(p, bytes, mode) => {
                if fs::symlink_metadata(&p).is_ok() {
                    fs::remove_file(&p).unwrap();
                }
                fs::write(&p, bytes).unwrap();
                fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            }
            Undo::Remove(p) => match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => fs::remove_dir_all(&p).unwrap(),
                _ => fs::remove_file(&p).unwrap(),
            },
            Undo::Rename(from, to) => fs::rename(from, to).unwrap(),
            Undo::Mode(p, mode) => {
                fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap()
            }
            Undo::Link(p, target) => {
                if fs::symlink_metadata(&p).is_ok() {
                    fs::remove_file(&p).unwrap();
                }
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &p).unwrap();
            }
            Undo::Dir(p, mode) => {
                fs::create_dir(&p).unwrap();
                fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            }
            Undo::DirToFile(p, bytes, mode) => {
                fs::remove_dir_all(&p).unwrap();
                Undo::Content(p, bytes, mode).apply();
            }
        }
    }
}

/// A fresh name that does not exist in `dir` (some are dot files, some not UTF-8).
fn new_name(rng: &mut Rng, dir: &Path) -> Vec<u8> {
    loop {
        let mut name = match rng.below(4) {
            0 => b".".to_vec(),
            1 => b"new_".to_vec(),
            2 => b"\xff".to_vec(),
            _ => Vec::new(),
        };
        for _ in 0..1 + rng.below(8) {
            name.push(*rng.pick(b"abcxyz019_-.~"));
        }
        if name != b"."
            && name != b".."
            && fs::symlink_metadata(dir.join(OsStr::from_bytes(&name))).is_err()
        {
            return name;
        }
    }
}

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        name.to_vec()
    } else {
        [parent, b"/", name].concat()
    }
}

fn parent_of(path: &[u8]) -> &[u8] {
    path.iter()
        .rposition(|&c| c == b'/')
        .map_or(&path[..0], |i| &path[..i])
}

/// Applies one mutation of `kind` at a random place; returns the (path, expected
/// difference kind) pairs and how to undo it.
fn mutate(
    rng: &mut Rng,
    root: &Path,
    m: &Manifest,
    kind: Mutation,
) -> (BTreeSet<(Vec<u8>, &'static str)>, Undo) {
    let abs = |rel: &[u8]| root.join(OsStr::from_bytes(rel));
    let of_kind =
        |k: Kind| -> Vec<EntryRef> { m.entries.iter().filter(|e| e.node.kind() == k).collect() };
    let files = of_kind(Kind::File);
    let nonempty: Vec<_> = files
        .iter()
        .copied()
        .filter(|e| matches!(e.node, NodeRef::File { size, .. } if size > 0))
        .collect();
    let mode_of = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    let one = |p: &[u8], what: &'static str| BTreeSet::from([(p.to_vec(), what)]);
    match kind {
        Mutation::FlipBit | Mutation::Truncate | Mutation::Append => {
            let e = rng.pick(if kind == Mutation::Append {
                &files
            } else {
                &nonempty
            });
            let p = abs(e.path);
            let before = fs::read(&p).unwrap();
            let mut after = before.clone();
            match kind {
                Mutation::FlipBit => {
                    let at = rng.below(after.len());
                    after[at] ^= 1 << rng.below(8);
                }
                Mutation::Truncate => after.truncate(rng.below(after.len())),
                _ => {
                    let extra = rng.bytes_about(1, 16);
                    after.extend_from_slice(&extra);
                }
            }
            let mode = mode_of(&p);
            fs::write(&p, &after).unwrap();
            (one(e.path, "content"), Undo::Content(p, before, mode))
        }
        Mutation::Delete => {
            // A file, a symlink, or an empty directory.
            let empty_dirs: Vec<_> = of_kind(Kind::Dir)
                .into_iter()
                .filter(|d| fs::read_dir(abs(d.path)).unwrap().next().is_none())
                .collect();
            let links = of_kind(Kind::Symlink);
            let e = match rng.below(10) {
                0 => *rng.pick(&empty_dirs),
                1 | 2 => *rng.pick(&links),
                _ => *rng.pick(&files),
            };
            let p = abs(e.path);
            let undo = match &e.node {
                NodeRef::File { .. } => {
                    Undo::Content(p.clone(), fs::read(&p).unwrap(), mode_of(&p))
                }
                NodeRef::Symlink { target } => Undo::Link(p.clone(), target.to_vec()),
                _ => Undo::Dir(p.clone(), mode_of(&p)),
            };
            match fs::symlink_metadata(&p).unwrap().is_dir() {
                true => fs::remove_dir(&p).unwrap(),
                false => fs::remove_file(&p).unwrap(),
            }
            (one(e.path, "missing"), undo)
        }
        Mutation::Add => {
            let dirs: Vec<&[u8]> = std::iter::once(&b""[..])
                .chain(of_kind(Kind::Dir).into_iter().map(|d| d.path))
                .collect();
            let dir = *rng.pick(&dirs);
            let name = new_name(rng, &abs(dir));
            let rel = join(dir, &name);
            let p = abs(&rel);
            match rng.below(4) {
                0 => fs::create_dir(&p).unwrap(),
                1 => std::os::unix::fs::symlink("anywhere", &p).unwrap(),
                _ => fs::write(&p, rng.bytes_about(0, 100)).unwrap(),
            }
            (one(&rel, "extra"), Undo::Remove(p))
        }
        Mutation::Rename => {
            let e = rng.pick(&files);
            let dirs: Vec<&[u8]> = std::iter::once(&b""[..])
                .chain(of_kind(Kind::Dir).into_iter().map(|d| d.path))
                .collect();
            let dir = if rng.below(2) == 0 {
                parent_of(e.path)
            } else {
                *rng.pick(&dirs)
            };
            let name = new_name(rng, &abs(dir));
            let to = join(dir, &name);
            fs::rename(abs(e.path), abs(&to)).unwrap();
            (
                BTreeSet::from([(e.path.to_vec(), "missing"), (to.clone(), "extra")]),
                Undo::Rename(abs(&to), abs(e.path)),
            )
        }
        Mutation::ToggleExec => {
            let e = rng.pick(&files);
            let p = abs(e.path);
            let mode = mode_of(&p);
            fs::set_permissions(&p, fs::Permissions::from_mode(mode ^ 0o100)).unwrap();
            (one(e.path, "exec"), Undo::Mode(p, mode))
        }
        Mutation::Retarget => {
            let links = of_kind(Kind::Symlink);
            let e = rng.pick(&links);
            let NodeRef::Symlink { target } = &e.node else {
                unreachable!()
            };
            let mut other = target.to_vec();
            match rng.below(3) {
                0 => other.push(*rng.pick(b"x/.")),
                1 => other = b"/etc/passwd".to_vec(),
                _ => other.insert(0, b'.'),
            }
            let p = abs(e.path);
            fs::remove_file(&p).unwrap();
            std::os::unix::fs::symlink(OsStr::from_bytes(&other), &p).unwrap();
            (one(e.path, "target"), Undo::Link(p, target.to_vec()))
        }
        Mutation::FileToDir => {
            let e = rng.pick(&files);
            let p = abs(e.path);
            let (bytes, mode) = (fs::read(&p).unwrap(), mode_of(&p));
            fs::remove_file(&p).unwrap();
            fs::create_dir(&p).unwrap();
            if rng.below(2) == 0 {
                // The same content one level down does not make it the same tree.
                fs::write(p.join("content"), &bytes).unwrap();
            }
            (one(e.path, "type"), Undo::DirToFile(p, bytes, mode))
        }
    }
}

fn what_name(w: &What) -> &'static str {
    match w {
        What::Missing { .. } => "missing",
        What::Extra { .. } => "extra",
        What::Type { .. } => "type",
        What::Content { .. } => "content",
        What::ExecBit { .. } => "exec",
        What::Mode { .. } => "mode",
        What::Target { .. } => "target",
    }
}

fn all() -> Options {
    Options {
        all: true,
        ..Options::default()
    }
}

#[test]
fn every_single_mutation_is_detected_at_its_path_and_nothing_else() {
    const PER_KIND: usize = 100;
    let seed = seed();
    let mut rng = Rng::new(seed);
    let t = python_app(&mut rng);
    let m = treeseal::lock::lock(t.path(), Rules::default(), Origin::default()).unwrap();
    let files = m
        .entries
        .iter()
        .filter(|e| e.node.kind() == Kind::File)
        .count();
    assert!(files >= 250, "{files} files");
    assert!(verify(t.path(), &m, &all()).unwrap().is_equal());

    let mut detected = std::collections::BTreeMap::new();
    for kind in KINDS {
        for round in 0..PER_KIND {
            let (want, undo) = mutate(&mut rng, t.path(), &m, kind);
            let report = verify(t.path(), &m, &all()).unwrap();
            let got: BTreeSet<(Vec<u8>, &'static str)> = report
                .differences
                .iter()
                .map(|d| (d.path.clone(), what_name(&d.what)))
                .collect();
            assert_eq!(
                got, want,
                "seed {seed}, {kind:?} #{round}: reported {:?}",
                report.differences
            );
            // The fail-fast mode (what `run` uses) finds the first one too.
            let first = verify(t.path(), &m, &Options::default()).unwrap();
            assert_eq!(
                first.differences.first().map(|d| d.path.clone()),
                report.differences.first().map(|d| d.path.clone()),
                "seed {seed}, {kind:?} #{round}"
            );
            undo.apply();
            assert!(
                verify(t.path(), &m, &all()).unwrap().is_equal(),
                "seed {seed}, {kind:?} #{round}: undo did not restore the tree"
            );
            *detected.entry(kind).or_insert(0usize) += 1;
        }
    }

    // The control group: changes that are not part of the tree must never be reported.
    let mut controls = 0;
    for _ in 0..PER_KIND {
        let e = m.entries.at(rng.below(m.entries.len()));
        let p = t.path().join(OsStr::from_bytes(e.path));
        match (&e.node, rng.below(3)) {
            (NodeRef::File { .. }, 0) => {
                let bytes = fs::read(&p).unwrap();
                fs::write(&p, bytes).unwrap(); // same content, new mtime/ctime
            }
            (NodeRef::File { .. } | NodeRef::Dir, 1) => {
                let mode = fs::metadata(&p).unwrap().permissions().mode();
                fs::set_permissions(&p, fs::Permissions::from_mode(mode ^ 0o020)).unwrap();
            }
            _ => {
                let f = fs::File::options().read(true).open(t.path()).unwrap();
                f.set_modified(std::time::SystemTime::UNIX_EPOCH).ok();
            }
        }
        let report = verify(t.path(), &m, &all()).unwrap();
        assert!(report.is_equal(), "{:?}", report.differences);
        controls += 1;
    }

    let total: usize = detected.values().sum();
    eprintln!(
        "mutation coverage (seed {seed}, {} entries, {files} files): {total}/{total} mutations detected with exactly the expected differences ({}); {controls}/{controls} non-changes (mtime, group bit, same content) not reported",
        m.entries.len(),
        detected
            .iter()
            .map(|(k, n)| format!("{k:?} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

#[test]
fn relocking_with_any_thread_count_gives_identical_bytes() {
    let mut rng = Rng::new(seed() ^ 0x5eed);
    let t = python_app(&mut rng);
    let origin = Origin {
        created_unix: 1_700_000_000,
        source: Some("0e421ef".into()),
        tool: "mutation".into(),
    };
    let mut reference: Option<Vec<u8>> = None;
    let mut library_locks = 0;
    for threads in 1..=8 {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for _ in 0..10 {
            let bytes = pool
                .install(|| treeseal::lock::lock(t.path(), Rules::default(), origin.clone()))
                .unwrap()
                .encode();
            match &reference {
                None => reference = Some(bytes),
                Some(r) => assert!(*r == bytes, "library lock with {threads} threads differs"),
            }
            library_locks += 1;
        }
    }

    // The binary, with SOURCE_DATE_EPOCH and the source commit fixed by common::cmd.
    let out = Tree::new();
    let mut first: Option<(String, Vec<u8>)> = None;
    let mut binary_locks = 0;
    for threads in 1..=8 {
        for rep in 0..3 {
            let m = out.at(format!("m{threads}-{rep}"));
            let r = common::run(
                common::cmd()
                    .args(["lock", "--threads", &threads.to_string()])
                    .arg(t.path())
                    .arg("-o")
                    .arg(&m),
            );
            r.code(0);
            let bytes = fs::read(&m).unwrap();
            match &first {
                None => first = Some((r.stdout.clone(), bytes)),
                Some((digest, b)) => {
                    assert_eq!(&r.stdout, digest, "{threads} threads");
                    assert!(*b == bytes, "binary lock with {threads} threads differs");
                }
            }
            binary_locks += 1;
        }
    }
    // Same tree, same rules: the library's manifest has the binary's digest.
    let lib = Manifest::load(&out.at("m1-0")).unwrap();
    assert_eq!(
        treeseal::tree::format_digest(&lib.digest()),
        first.unwrap().0.trim()
    );
    eprintln!(
        "relock determinism: {library_locks} library locks (1-8 threads x 10) byte-identical; {binary_locks} binary locks (1-8 threads x 3, SOURCE_DATE_EPOCH fixed) byte-identical with one digest"
    );
}
