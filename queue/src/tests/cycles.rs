//! The crate's files import in layers: no cycle of imports between two
//! files (before the store trait, `store → body → db → index → store`
//! was one). The
//! test reads every source file (up to its inline `mod tests`: unit
//! tests may look anywhere), takes its `crate::…`, `super::…` and
//! child-module paths outside comments, and looks for a cycle among the
//! files they name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`["sled", "db"]`) → the file's production code.
fn sources(root: &Path) -> BTreeMap<Vec<String>, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("the source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                // The test suite is not production code.
                if path != root.join("tests") {
                    dirs.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel: PathBuf = path.strip_prefix(root).expect("under src").into();
            let mut module: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            if module.last().is_some_and(|m| m == "tests") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            // Production code: up to an inline test module (`mod tests;`
            // alone is a declaration, and stays).
            let code = text
                .find("#[cfg(test)]\nmod tests {")
                .map_or(text.as_str(), |end| &text[..end]);
            let code: String = code
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            out.insert(module, code);
        }
    }
    out
}

/// The paths a piece of code names: `crate::a::b`, `super::a`, and in a
/// `use`, a child module (`use db::{…}`), each resolved against `module`.
fn named(module: &[String], code: &str, children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let words: Vec<&str> = code
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.contains("::"))
        .collect();
    for word in words {
        let parts: Vec<&str> = word.split("::").filter(|p| !p.is_empty()).collect();
        let Some((first, rest)) = parts.split_first() else {
            continue;
        };
        let mut base: Vec<String> = match *first {
            "crate" => Vec::new(),
            "super" => module[..module.len().saturating_sub(1)].to_vec(),
            "self" => module.to_vec(),
            child if children.contains(child) => {
                let mut m = module.to_vec();
                m.push(child.to_string());
                m
            }
            _ => continue,
        };
        base.extend(rest.iter().map(|p| p.to_string()));
        out.push(base);
    }
    out
}

type Edges<'a> = BTreeMap<&'a Vec<String>, BTreeSet<&'a Vec<String>>>;

/// A cycle in `edges`, written `a → b → a`, if there is one.
fn find_cycle(edges: &Edges<'_>) -> Option<String> {
    fn visit<'a>(
        node: &'a Vec<String>,
        edges: &Edges<'a>,
        path: &mut Vec<&'a Vec<String>>,
        done: &mut BTreeSet<&'a Vec<String>>,
    ) -> Option<String> {
        if done.contains(node) {
            return None;
        }
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = path[at..].iter().map(|m| m.join("::")).collect();
            cycle.push(node.join("::"));
            return Some(cycle.join(" → "));
        }
        path.push(node);
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node);
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_file_of_the_crate_imports_in_a_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = sources(&root);
    assert!(files.contains_key(&vec!["sled".to_string(), "db".to_string()]));
    // Edges: file → the longest module path (a file) each name starts with.
    let mut edges: Edges = BTreeMap::new();
    for (module, code) in &files {
        let children: BTreeSet<String> = files
            .keys()
            .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
            .filter_map(|m| m.last().cloned())
            .collect();
        let targets = edges.entry(module).or_default();
        for path in named(module, code, &children) {
            let target = (0..=path.len())
                .rev()
                .map(|n| &path[..n])
                .find_map(|prefix| files.get_key_value(prefix).map(|(k, _)| k));
            if let Some(target) = target {
                if target != module && !target.is_empty() {
                    targets.insert(target);
                }
            }
        }
    }
    if let Some(cycle) = find_cycle(&edges) {
        panic!("import cycle: {cycle}");
    }
    // The check sees edges: the sync thread's file imports the handles'.
    let db = vec!["sled".to_string(), "db".to_string()];
    let commit = vec!["sled".to_string(), "commit".to_string()];
    assert!(edges[&commit].contains(&db), "{edges:?}");
}

#[test]
fn the_reader_resolves_paths_and_finds_a_cycle() {
    // `super::` and child modules resolve.
    let children: BTreeSet<String> = ["db".to_string()].into();
    let module = vec!["sled".to_string()];
    let got = named(
        &module,
        "use db::{load, Db};\nuse super::store::X;",
        &children,
    );
    assert_eq!(
        got,
        vec![
            vec!["sled".to_string(), "db".to_string()],
            vec!["store".to_string(), "X".to_string()]
        ]
    );
    // And a cycle is found.
    let (a, b, c) = (
        vec!["a".to_string()],
        vec!["b".to_string()],
        vec!["c".to_string()],
    );
    let mut edges: Edges = BTreeMap::new();
    edges.entry(&a).or_default().insert(&b);
    edges.entry(&b).or_default().insert(&c);
    assert_eq!(find_cycle(&edges), None);
    edges.entry(&c).or_default().insert(&a);
    assert_eq!(find_cycle(&edges).as_deref(), Some("a → b → c → a"));
}
