//! The import rules of docs/ARCHITECTURE.md, checked over the source (test only): every
//! `crate::MODULE` path outside comments is an arrow from the file's top-level module to
//! MODULE. `cli` imports nothing from the crate; no library module (everything but `cli`
//! and `commands`) imports `cli` or `commands`; and the library's arrows form no cycle.
//! Grep-level on purpose: a path spelled out in code counts, whether in a `use` line, a
//! `use crate::{...}` group or inline, and test modules count too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The command layer: it may import anything; nothing in the library may import it.
const COMMAND_LAYER: [&str; 2] = ["cli", "commands"];

/// Arrows between top-level modules, from every `.rs` file under `dir`.
fn arrows(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![dir.to_path_buf()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                files.push(entry.unwrap().path());
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(dir).unwrap();
        let first = rel.components().next().unwrap().as_os_str();
        let from = first.to_str().unwrap().trim_end_matches(".rs").to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let targets = out.entry(from.clone()).or_default();
        for line in text.lines() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for (at, _) in code.match_indices("crate::") {
                for name in modules_named(&code[at + "crate::".len()..], &path) {
                    if name != from {
                        targets.insert(name);
                    }
                }
            }
        }
    }
    out
}

/// The modules `rest` (what follows a `crate::`) names: `a::...` names `a`, and
/// `{a, b::c}` names `a` and `b` (a group must close on its line, so that none is missed).
fn modules_named(rest: &str, file: &Path) -> Vec<String> {
    let ident = |t: &str| -> String {
        t.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = rest.strip_prefix('{') else {
        return vec![ident(rest)]
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect();
    };
    let (mut depth, mut names, mut start) = (0, Vec::new(), 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            ',' | '}' if depth == 0 => {
                names.push(ident(&group[start..i]));
                start = i + 1;
                if c == '}' {
                    return names.into_iter().filter(|n| !n.is_empty()).collect();
                }
            }
            _ => {}
        }
    }
    panic!(
        "{}: a `crate::{{...}}` group that does not close on its line",
        file.display()
    );
}

/// A cycle in `graph`, as the modules along it, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

/// Files that are not library modules: the binary, the crate root, and this check (whose
/// test data names modules).
const NOT_LIBRARY: [&str; 3] = ["main", "lib", "architecture"];

/// The library's part of `graph`: everything but the command layer and [`NOT_LIBRARY`].
fn library(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, BTreeSet<String>> {
    graph
        .iter()
        .filter(|(m, _)| !COMMAND_LAYER.contains(&m.as_str()) && !NOT_LIBRARY.contains(&m.as_str()))
        .map(|(m, t)| (m.clone(), t.clone()))
        .collect()
}

#[test]
fn the_library_imports_no_command_layer_and_has_no_cycle() {
    let graph = arrows(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(graph.contains_key("gate") && graph.contains_key("commands"));
    assert_eq!(graph["cli"], BTreeSet::new(), "cli imports only clap");
    let lib = library(&graph);
    for (module, targets) in &lib {
        for layer in COMMAND_LAYER {
            assert!(!targets.contains(layer), "{module} imports {layer}");
        }
    }
    assert_eq!(cycle(&lib), None);
}

#[test]
fn the_check_finds_a_cycle_and_an_upward_arrow() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("b")).unwrap();
    std::fs::write(dir.path().join("a.rs"), "use crate::b::x;\n// crate::c\n").unwrap();
    std::fs::write(dir.path().join("b/mod.rs"), "fn f() { crate::c::g() }\n").unwrap();
    std::fs::write(
        dir.path().join("c.rs"),
        "use crate::{a, commands::{y, z}};\n",
    )
    .unwrap();
    let graph = library(&arrows(dir.path()));
    assert_eq!(graph["a"], BTreeSet::from(["b".to_string()]));
    assert_eq!(
        graph["c"],
        BTreeSet::from(["a".to_string(), "commands".to_string()])
    );
    assert_eq!(
        cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
