//! The image's file system, rebuilt in memory from its layers, bottom to top.
//!
//! Layers are applied as a container engine applies them to its snapshot: whiteouts
//! (`.wh.NAME`) and opaque markers (`.wh..wh..opq`) of a layer remove entries of the
//! layers below it (a whiteout that follows an entry of its own layer at or below its
//! path, or that a symlink made earlier in its own layer would move elsewhere, is refused:
//! engines disagree on it), then its entries are added in archive order — an entry replaces what
//! was at its path (a directory that is replaced by anything but a directory goes with
//! everything below it; a directory over a directory only takes the new mode), missing
//! parent directories are created (mode 0755), and a hard link becomes a copy of its
//! target (refused when its header has another mode than the target: engines disagree on
//! which mode their one inode keeps). Parent components that are symlinks are followed
//! inside the image, as the engine follows them when it writes through them; a chain that
//! leaves the image root (`..` above `/`), loops, or is longer than [`MAX_SYMLINKS`] is an
//! error.
//!
//! [`Fs::tree`] then gives the tree at a root as sealed entries, under a manifest's rules
//! exactly as the walker of `lock` and `verify` would see it on disk.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::escape::escape;
use crate::ignore::{Decision, DirState, Matcher};
use crate::manifest::DEFAULT_NAME;
use crate::tree::{path_order, Entries, EntryRef, Hash, Kind, NodeRef};

use super::layer::{Item, Layer};

/// Symlinks followed while resolving one path: Linux's `MAXSYMLINKS`.
pub const MAX_SYMLINKS: usize = 40;

/// The mode of a directory the engine creates because an entry below it has no parent
/// entry.
const IMPLIED_DIR_MODE: u32 = 0o755;

/// One object of the image file system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    /// A regular file; `manifest` holds its content when it is a candidate manifest.
    File {
        /// Length.
        size: u64,
        /// blake3 of the content.
        hash: Hash,
        /// The content, when it starts with the manifest magic.
        manifest: Option<Arc<Vec<u8>>>,
    },
    /// A directory.
    Dir,
    /// A symlink and its target.
    Symlink(Vec<u8>),
    /// A FIFO or device.
    Special(Kind),
}

/// Why the layers cannot be applied, or a path cannot be looked up.
#[derive(Debug, PartialEq, Eq)]
pub enum FsError {
    /// Resolving this path followed a symlink chain out of the image root.
    Escapes(Vec<u8>),
    /// Resolving this path followed more than [`MAX_SYMLINKS`] symlinks (or a loop).
    Loop(Vec<u8>),
    /// A component of this path is neither a directory nor a symlink.
    NotDir(Vec<u8>),
    /// A hard link whose target is missing or is a directory.
    BadHardLink {
        /// The link.
        path: Vec<u8>,
        /// What it names.
        target: Vec<u8>,
    },
    /// A whiteout comes after an entry of its own layer at or below the path it removes:
    /// engines disagree on whether that entry survives.
    WhiteoutAfterEntry(Vec<u8>),
    /// This whiteout's parent resolves, through a symlink its own layer made before it,
    /// to another place than below the layer: engines disagree on which one it removes.
    WhiteoutRetargeted(Vec<u8>),
    /// A hard link whose header has other permission bits than its target: engines
    /// disagree on which mode the one inode ends up with.
    HardLinkMode {
        /// The link.
        path: Vec<u8>,
        /// What it names.
        target: Vec<u8>,
        /// The link header's mode.
        link: u32,
        /// The target's mode.
        target_mode: u32,
    },
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsError::Escapes(p) => write!(
                f,
                "/{}: a symlink chain leads out of the image root",
                escape(p)
            ),
            FsError::Loop(p) => write!(
                f,
                "/{}: more than {MAX_SYMLINKS} symlinks (a loop?)",
                escape(p)
            ),
            FsError::NotDir(p) => write!(f, "/{}: a parent is not a directory", escape(p)),
            FsError::BadHardLink { path, target } => write!(
                f,
                "hard link /{} names /{}, which is missing or a directory",
                escape(path),
                escape(target)
            ),
            FsError::WhiteoutAfterEntry(p) => write!(
                f,
                "/{}: a later whiteout in the same layer removes it, which engines apply \
                 differently",
                escape(p)
            ),
            FsError::HardLinkMode {
                path,
                target,
                link,
                target_mode,
            } => write!(
                f,
                "hard link /{} has mode {link:04o}, its target /{} {target_mode:04o}: one \
                 inode, which engines give either mode",
                escape(path),
                escape(target)
            ),
            FsError::WhiteoutRetargeted(p) => write!(
                f,
                "/{}: its whiteout goes through a symlink made earlier in its own layer, \
                 which engines apply differently",
                escape(p)
            ),
        }
    }
}

impl std::error::Error for FsError {}

/// The file system: objects by path (relative to `/`, `/`-separated). The root itself is
/// the empty path and is not stored.
#[derive(Clone, Debug, Default)]
pub struct Fs {
    objects: BTreeMap<Vec<u8>, (u32, Object)>,
}

fn child(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn split_parent(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&c| c == b'/') {
        Some(at) => (&path[..at], &path[at + 1..]),
        None => (&path[..0], path),
    }
}

impl Fs {
    /// The object at a resolved path.
    pub fn get(&self, path: &[u8]) -> Option<&(u32, Object)> {
        self.objects.get(path)
    }

    /// Removes `path` and everything below it.
    fn remove_tree(&mut self, path: &[u8]) {
        self.objects.remove(path);
        self.remove_below(path);
    }

    /// Removes everything below `dir` (not `dir` itself).
    fn remove_below(&mut self, dir: &[u8]) {
        // Everything below `dir` sorts, as bytes, between `dir/` and `dir0` ('0' follows
        // '/'); below the root, that is everything.
        let below: Vec<Vec<u8>> = if dir.is_empty() {
            self.objects.keys().cloned().collect()
        } else {
            let lo = child(dir, b"");
            let mut hi = dir.to_vec();
            hi.push(b'0');
            self.objects.range(lo..hi).map(|(k, _)| k.clone()).collect()
        };
        for k in below {
            self.objects.remove(&k);
        }
    }

    /// Resolves `path` inside the image: every component but the last is followed when it
    /// is a symlink; the last one too when `follow_last`. Missing components are taken
    /// literally (the path may be about to be created).
    pub fn resolve(&self, path: &[u8], follow_last: bool) -> Result<Vec<u8>, FsError> {
        let mut todo: Vec<Vec<u8>> = path
            .split(|&c| c == b'/')
            .filter(|p| !p.is_empty() && *p != b".")
            .rev()
            .map(<[u8]>::to_vec)
            .collect();
        let mut done: Vec<u8> = Vec::new();
        let mut links = 0;
        while let Some(part) = todo.pop() {
            if part == b".." {
                if done.is_empty() {
                    return Err(FsError::Escapes(path.to_vec()));
                }
                let (parent, _) = split_parent(&done);
                done.truncate(parent.len());
                continue;
            }
            let next = child(&done, &part);
            let last = todo.is_empty();
            match self.objects.get(&next) {
                Some((_, Object::Symlink(target))) if !last || follow_last => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(FsError::Loop(path.to_vec()));
                    }
                    if target.first() == Some(&b'/') {
                        done.clear();
                    }
                    todo.extend(
                        target
                            .split(|&c| c == b'/')
                            .filter(|p| !p.is_empty() && *p != b".")
                            .rev()
                            .map(<[u8]>::to_vec),
                    );
                }
                Some((_, Object::Dir)) | None => done = next,
                Some(_) if last => done = next,
                Some(_) => return Err(FsError::NotDir(path.to_vec())),
            }
        }
        Ok(done)
    }

    /// Creates the missing directories on the way to `dir` (already resolved).
    fn make_parents(&mut self, dir: &[u8]) -> Result<(), FsError> {
        let mut at = 0;
        while at < dir.len() {
            let end = dir[at..]
                .iter()
                .position(|&c| c == b'/')
                .map_or(dir.len(), |p| at + p);
            match self.objects.get(&dir[..end]) {
                None => {
                    self.objects
                        .insert(dir[..end].to_vec(), (IMPLIED_DIR_MODE, Object::Dir));
                }
                Some((_, Object::Dir)) => {}
                Some(_) => return Err(FsError::NotDir(dir.to_vec())),
            }
            at = end + 1;
        }
        Ok(())
    }

    /// Applies one layer on top.
    pub fn apply(&mut self, layer: &Layer) -> Result<(), FsError> {
        // Whiteouts hide only what the layers below put there (the OCI rule): they are
        // applied first, each at the path it resolves to below this layer.
        let mut removed = Vec::new();
        for e in &layer.entries {
            match e.item {
                Item::Whiteout => {
                    let (dir, name) = split_parent(&e.path);
                    let at = child(&self.resolve(dir, true)?, name);
                    self.remove_tree(&at);
                    removed.push(at);
                }
                Item::Opaque => {
                    let at = self.resolve(&e.path, true)?;
                    if matches!(self.objects.get(&at), Some((_, Object::Dir))) || at.is_empty() {
                        self.remove_below(&at);
                    }
                    removed.push(at);
                }
                _ => {}
            }
        }
        // Engines apply a whiteout where it stands in the archive instead: Docker's naive
        // applier removes what its own layer wrote before it, its overlay applier fails
        // on that, and both resolve its parent through symlinks the layer made before it.
        // Where that gives another result than the OCI rule, the engines disagree with
        // each other too; real layers never hold such a whiteout, so the archive is
        // refused rather than guessed at.
        let mut removed = removed.into_iter();
        let mut written = std::collections::BTreeSet::<Vec<u8>>::new();
        for e in &layer.entries {
            let object = match &e.item {
                Item::Whiteout => {
                    let (dir, name) = split_parent(&e.path);
                    let at = child(&self.resolve(dir, true)?, name);
                    if removed.next().is_none_or(|before| before != at) {
                        return Err(FsError::WhiteoutRetargeted(e.path.clone()));
                    }
                    let mut below = at.clone();
                    below.push(b'/');
                    let hit = written.get(&at).or_else(|| {
                        written
                            .range(below.clone()..)
                            .next()
                            .filter(|p| p.starts_with(&below))
                    });
                    if let Some(p) = hit {
                        return Err(FsError::WhiteoutAfterEntry(p.clone()));
                    }
                    continue;
                }
                Item::Opaque => {
                    let at = self.resolve(&e.path, true)?;
                    if removed.next().is_none_or(|before| before != at) {
                        return Err(FsError::WhiteoutRetargeted(e.path.clone()));
                    }
                    continue;
                }
                Item::File {
                    size,
                    hash,
                    manifest,
                } => Object::File {
                    size: *size,
                    hash: *hash,
                    manifest: manifest.clone(),
                },
                Item::Dir => Object::Dir,
                Item::Symlink(t) => Object::Symlink(t.clone()),
                Item::Special(k) => Object::Special(*k),
                Item::HardLink(target) => {
                    let (tdir, tname) = split_parent(target);
                    let resolved = child(&self.resolve(tdir, true)?, tname);
                    match self.objects.get(&resolved) {
                        Some((_, o)) if *o != Object::Dir => o.clone(),
                        _ => {
                            return Err(FsError::BadHardLink {
                                path: e.path.clone(),
                                target: target.clone(),
                            })
                        }
                    }
                }
            };
            let (dir, name) = split_parent(&e.path);
            let dir = self.resolve(dir, true)?;
            self.make_parents(&dir)?;
            let at = child(&dir, name);
            // A hard link shares its target's mode (one inode).
            let mode = match (&e.item, self.objects.get(&at)) {
                (Item::Dir, Some((_, Object::Dir))) => {
                    self.objects.insert(at.clone(), (e.mode, Object::Dir));
                    written.insert(at);
                    continue;
                }
                (Item::HardLink(_), _) => {
                    let (tdir, tname) = split_parent(match &e.item {
                        Item::HardLink(t) => t,
                        _ => unreachable!(),
                    });
                    let resolved = child(&self.resolve(tdir, true)?, tname);
                    let target_mode = self.objects.get(&resolved).map_or(e.mode, |(m, _)| *m);
                    if target_mode != e.mode {
                        return Err(FsError::HardLinkMode {
                            path: e.path.clone(),
                            target: resolved,
                            link: e.mode,
                            target_mode,
                        });
                    }
                    target_mode
                }
                _ => e.mode,
            };
            self.remove_tree(&at);
            self.objects.insert(at.clone(), (mode, object));
            written.insert(at);
        }
        Ok(())
    }

    /// The tree at `root` (an absolute or root-relative path, symlinks followed) as sealed
    /// entries in path order, as the walker sees it under `matcher`: the manifest at
    /// `root/.treeseal` is never part of it. `None` when `root` is not a directory.
    pub fn tree(&self, root: &[u8], matcher: &Matcher) -> Result<Option<Entries>, FsError> {
        let root = self.resolve(root, true)?;
        if !root.is_empty() && !matches!(self.objects.get(&root), Some((_, Object::Dir))) {
            return Ok(None);
        }
        let mut below: Vec<_> = if root.is_empty() {
            self.objects.iter().collect()
        } else {
            let mut hi = root.clone();
            hi.push(b'0');
            self.objects.range(child(&root, b"")..hi).collect()
        };
        let skip = if root.is_empty() { 0 } else { root.len() + 1 };
        below.sort_by(|(a, _), (b, _)| path_order(&a[skip..], &b[skip..]));
        let entries = below.into_iter().map(|(path, (mode, object))| EntryRef {
            path: &path[skip..],
            mode: *mode,
            node: match object {
                Object::File { size, hash, .. } => NodeRef::File { size: *size, hash },
                Object::Dir => NodeRef::Dir,
                Object::Symlink(t) => NodeRef::Symlink { target: t },
                Object::Special(k) => NodeRef::Special(*k),
            },
        });
        Ok(Some(select(entries, matcher)))
    }
}

/// Keeps the entries the walker would return under `matcher`: an excluded entry goes with
/// everything below it; a directory excluded only "for exceptions" (`Descend`) stays when
/// something below it stays; the manifest at the root never counts.
pub fn select<'a>(entries: impl IntoIterator<Item = EntryRef<'a>>, matcher: &Matcher) -> Entries {
    struct Frame {
        state: DirState,
        /// Index in `out` of a tentatively kept `Descend` directory.
        tentative: Option<usize>,
        kept_below: bool,
    }
    let mut out = Entries::new();
    let mut stack: Vec<(&[u8], Frame)> = Vec::new();
    let mut skip: Option<&[u8]> = None;
    let below = |p: &[u8], d: &[u8]| p.len() > d.len() && p[d.len()] == b'/' && p.starts_with(d);
    let close = |stack: &mut Vec<(&[u8], Frame)>, out: &mut Entries| {
        let (_, frame) = stack.pop().expect("a frame");
        if let Some(at) = frame.tentative {
            if !frame.kept_below {
                debug_assert_eq!(at + 1, out.len());
                out.truncate(at);
                return;
            }
        }
        if let Some((_, parent)) = stack.last_mut() {
            parent.kept_below = true;
        }
    };
    for e in entries {
        if let Some(s) = skip {
            if below(e.path, s) {
                continue;
            }
            skip = None;
        }
        while stack.last().is_some_and(|(d, _)| !below(e.path, d)) {
            close(&mut stack, &mut out);
        }
        if stack.is_empty() && e.path == DEFAULT_NAME.as_bytes() {
            continue;
        }
        let root_state = matcher.root_state();
        let state = stack.last().map_or(&root_state, |(_, f)| &f.state);
        let is_dir = e.node.kind() == Kind::Dir;
        match matcher.decide(e.path, is_dir, state) {
            Decision::Exclude => skip = Some(e.path),
            Decision::Include(s) => {
                if let Some((_, parent)) = stack.last_mut() {
                    parent.kept_below = true;
                }
                if is_dir {
                    stack.push((
                        e.path,
                        Frame {
                            state: s,
                            tentative: None,
                            kept_below: true,
                        },
                    ));
                }
                out.push(e.path, e.mode, e.node);
            }
            Decision::Descend(s) => {
                stack.push((
                    e.path,
                    Frame {
                        state: s,
                        tentative: Some(out.len()),
                        kept_below: false,
                    },
                ));
                out.push(e.path, e.mode, e.node);
            }
        }
    }
    while !stack.is_empty() {
        close(&mut stack, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::layer::{read_layer, tests::tar_of, Budget};
    use super::*;
    use tar::EntryType as T;

    fn layer(entries: &[(&str, T, &[u8])]) -> Layer {
        read_layer(&tar_of(entries)[..], &mut Budget::default()).unwrap()
    }

    fn fs(layers: &[Layer]) -> Result<Fs, FsError> {
        let mut fs = Fs::default();
        for l in layers {
            fs.apply(l)?;
        }
        Ok(fs)
    }

    fn paths(fs: &Fs, root: &str) -> Vec<String> {
        let m = Matcher::new(&[]).unwrap();
        fs.tree(root.as_bytes(), &m)
            .unwrap()
            .unwrap()
            .iter()
            .map(|e| String::from_utf8_lossy(e.path).into_owned())
            .collect()
    }

    fn base() -> Layer {
        layer(&[
            ("app/", T::Directory, b""),
            ("app/a", T::Regular, b"a"),
            ("app/lib/", T::Directory, b""),
            ("app/lib/x", T::Regular, b"x"),
            ("app/.treeseal", T::Regular, b"m"),
        ])
    }

    #[test]
    fn a_whiteout_removes_a_lower_file_and_an_opaque_dir_its_lower_children() {
        let top = layer(&[
            ("app/.wh.a", T::Regular, b""),
            ("app/lib/.wh..wh..opq", T::Regular, b""),
            ("app/lib/y", T::Regular, b"y"),
        ]);
        let fs = fs(&[base(), top]).unwrap();
        assert_eq!(paths(&fs, "/app"), ["lib", "lib/y"]);
    }

    #[test]
    fn an_opaque_marker_does_not_hide_its_own_layer() {
        let top = layer(&[
            ("app/b", T::Regular, b"b"),
            ("app/lib/z", T::Regular, b"z"),
            ("app/lib/.wh..wh..opq", T::Regular, b""),
        ]);
        let fs = fs(&[base(), top]).unwrap();
        assert_eq!(paths(&fs, "/app"), ["a", "b", "lib", "lib/z"]);
    }

    #[test]
    fn a_whiteout_after_an_entry_of_its_own_layer_is_refused() {
        // The OCI spec says a whiteout hides only lower layers; Docker's naive applier
        // removes what its own layer wrote before it, and its overlay applier fails on
        // it. Engines disagree, so the image cannot be checked.
        for (entry, whiteout) in [
            ("app/b", "app/.wh.b"),
            ("app/b/c", "app/.wh.b"),
            ("app/a", "app/.wh.a"),
        ] {
            let top = layer(&[(entry, T::Regular, b"b"), (whiteout, T::Regular, b"")]);
            assert_eq!(
                fs(&[base(), top]).unwrap_err(),
                FsError::WhiteoutAfterEntry(entry.as_bytes().to_vec()),
                "{entry} then {whiteout}"
            );
        }
        // Paths are compared where they resolve: written through a symlinked parent.
        let alias = layer(&[("app/alias", T::Symlink, b"lib")]);
        let top = layer(&[
            ("app/alias/x", T::Regular, b"x"),
            ("app/lib/.wh.x", T::Regular, b""),
        ]);
        assert_eq!(
            fs(&[base(), alias, top]).unwrap_err(),
            FsError::WhiteoutAfterEntry(b"app/lib/x".to_vec())
        );
        // Before its own layer's entry, or next to an unrelated one, it is the usual case.
        let top = layer(&[
            ("app/.wh.a", T::Regular, b""),
            ("app/a", T::Regular, b"new"),
            ("app/a-b", T::Regular, b"x"),
            ("app/ab", T::Regular, b"x"),
            ("app/.wh.lib", T::Regular, b""),
        ]);
        let fs = fs(&[base(), top]).unwrap();
        assert_eq!(paths(&fs, "/app"), ["a", "a-b", "ab"]);
    }

    #[test]
    fn a_whiteout_through_a_symlink_its_own_layer_made_is_refused() {
        // Below the layer, app/alias/x names nothing; in archive order, app/lib/x.
        let top = layer(&[
            ("app/alias", T::Symlink, b"lib"),
            ("app/alias/.wh.x", T::Regular, b""),
        ]);
        assert_eq!(
            fs(&[base(), top]).unwrap_err(),
            FsError::WhiteoutRetargeted(b"app/alias/x".to_vec())
        );
        let top = layer(&[
            ("app/alias", T::Symlink, b"lib"),
            ("app/alias/.wh..wh..opq", T::Regular, b""),
        ]);
        assert_eq!(
            fs(&[base(), top]).unwrap_err(),
            FsError::WhiteoutRetargeted(b"app/alias".to_vec())
        );
        // A symlink from a lower layer resolves the same both ways.
        let alias = layer(&[("app/alias", T::Symlink, b"lib")]);
        let top = layer(&[("app/alias/.wh.x", T::Regular, b"")]);
        let fs = fs(&[base(), alias, top]).unwrap();
        assert_eq!(paths(&fs, "/app"), ["a", "alias", "lib"]);
    }

    #[test]
    fn a_file_replacing_a_directory_takes_everything_below_it() {
        let top = layer(&[("app/lib", T::Regular, b"now a file")]);
        let fs = fs(&[base(), top]).unwrap();
        assert_eq!(paths(&fs, "/app"), ["a", "lib"]);
    }

    #[test]
    fn hard_links_copy_their_target_and_a_missing_target_is_an_error() {
        let top = layer(&[("app/h", T::Link, b"app/a")]);
        let fs1 = fs(&[base(), top]).unwrap();
        assert_eq!(fs1.get(b"app/h"), fs1.get(b"app/a"));
        let bad = layer(&[("app/h", T::Link, b"app/nope")]);
        assert!(matches!(
            fs(&[base(), bad]),
            Err(FsError::BadHardLink { .. })
        ));
    }

    #[test]
    fn a_hard_link_with_another_mode_than_its_target_is_refused() {
        // One inode: Docker's applier gives both names the link's mode when it can find
        // the target from its working directory, and leaves them alone when it cannot.
        let mut top = layer(&[("app/h", T::Link, b"app/a")]);
        top.entries[0].mode = 0o755;
        assert_eq!(
            fs(&[base(), top]).unwrap_err(),
            FsError::HardLinkMode {
                path: b"app/h".to_vec(),
                target: b"app/a".to_vec(),
                link: 0o755,
                target_mode: 0o644,
            }
        );
    }

    #[test]
    fn writes_through_a_symlinked_parent_land_inside_the_image() {
        let links = layer(&[
            ("srv/", T::Directory, b""),
            ("app2", T::Symlink, b"/srv"),
            ("app2/f", T::Regular, b"f"),
        ]);
        let fs = fs(&[links]).unwrap();
        assert_eq!(paths(&fs, "/srv"), ["f"]);
        assert_eq!(paths(&fs, "/app2"), ["f"]);
    }

    #[test]
    fn a_symlink_chain_leaving_the_root_or_looping_is_an_error() {
        let out = layer(&[
            ("app/up", T::Symlink, b"../../.."),
            ("app/up/etc/passwd", T::Regular, b"x"),
        ]);
        assert!(matches!(fs(&[out]), Err(FsError::Escapes(_))));
        let spin = layer(&[
            ("a", T::Symlink, b"b"),
            ("b", T::Symlink, b"a"),
            ("a/f", T::Regular, b"x"),
        ]);
        assert!(matches!(fs(&[spin]), Err(FsError::Loop(_))));
    }

    #[test]
    fn missing_parents_are_created_as_directories() {
        let l = layer(&[("deep/er/f", T::Regular, b"f")]);
        let fs = fs(&[l]).unwrap();
        assert_eq!(paths(&fs, "/"), ["deep", "deep/er", "deep/er/f"]);
        assert_eq!(fs.get(b"deep").unwrap().0, IMPLIED_DIR_MODE);
    }

    #[test]
    fn select_follows_the_walker_rules_and_drops_the_root_manifest() {
        let fs = fs(&[base()]).unwrap();
        let m = Matcher::new(&["lib".into(), "!lib/x".into()]).unwrap();
        let got: Vec<_> = fs
            .tree(b"/app", &m)
            .unwrap()
            .unwrap()
            .iter()
            .map(|e| String::from_utf8(e.path.to_vec()).unwrap())
            .collect();
        assert_eq!(got, ["a", "lib", "lib/x"]);
        let m = Matcher::new(&["lib".into(), "!lib/nothing".into()]).unwrap();
        let got = fs.tree(b"/app", &m).unwrap().unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(fs.tree(b"/app/a", &m).unwrap().is_none());
    }
}
