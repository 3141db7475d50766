//! The layering ARCHITECTURE.md promises, checked on the source: every `src/**/*.rs` is read,
//! the `crate::…`, `super::…` and `use self::…` paths of each module are resolved to the module
//! (file or folder) they name, and the test fails, naming what it found, when
//!
//! - at any folder (the crate root included), its direct children (files and subfolders, each
//!   taken with everything inside it) import each other in a cycle, or
//! - a module imports one of its ancestors (a child importing its parent's `mod.rs`: shared
//!   types belong in a sibling).
//!
//! Paths that end at the crate root (`crate::Result`, the re-exports of `lib.rs`) are not edges:
//! the root is the public face, not a stage. `#[cfg(test)]` modules are left out (tests may reach
//! anywhere), and so are comments. `src/main.rs` is the binary and reaches the library as
//! `clp_gpu::`, so it has no edges here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module path from the crate root: `["backend", "gpu", "engine"]`; the root is `[]`.
type ModPath = Vec<String>;

/// Every module of `src/` (lib.rs and its descendants) with its source text.
fn read_src(root: &Path) -> BTreeMap<ModPath, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src/") {
            let path = entry.expect("read src/").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap();
            let mut parts: ModPath = (rel.iter())
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            let file = parts.pop().unwrap();
            let stem = file.trim_end_matches(".rs");
            match (parts.is_empty(), stem) {
                (true, "main") => continue,
                (true, "lib") | (false, "mod") => {}
                _ => parts.push(stem.to_string()),
            }
            out.insert(parts, std::fs::read_to_string(&path).unwrap());
        }
    }
    out
}

/// The source without comments and without its `#[cfg(test)]` module.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|n| n.trim_start().starts_with("mod "))
        {
            break;
        }
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// `a::{b, c::{d, self}, e as f}` → `a::b`, `a::c::d`, `a::c`, `a::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap().trim();
        return vec![path.trim_end_matches("::*").to_string()];
    };
    let prefix = tree[..open].trim().trim_end_matches("::");
    let inner = &tree[open + 1..tree.rfind('}').expect("unbalanced braces in a use")];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    let mut out = Vec::new();
    for p in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        for sub in expand(p) {
            out.push(match sub.as_str() {
                "self" | "*" => prefix.to_string(),
                _ if prefix.is_empty() => sub,
                _ => format!("{prefix}::{sub}"),
            });
        }
    }
    out
}

/// Every path the code refers to: the trees of its `use` items, expanded, and the `crate::…`
/// and `super::…` paths written inline.
fn paths_of(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in code.split_inclusive('\n') {
        if let Some(tree) = use_tree(line) {
            let start = offset + (line.len() - tree.len());
            let end = code[start..].find(';').map_or(code.len(), |e| start + e);
            out.extend(expand(&code[start..end]));
        }
        offset += line.len();
    }
    for word in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(i) = find_word(rest, word) {
            let len = rest[i..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len() - i);
            out.push(rest[i..i + len].trim_end_matches(':').to_string());
            rest = &rest[i + len..];
        }
    }
    out
}

/// The tree of a line that starts a `use` item (`use`, `pub use`, `pub(crate) use`).
fn use_tree(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if let Some(rest) = t.strip_prefix("use ") {
        return Some(rest);
    }
    if let Some(rest) = t.strip_prefix("pub ") {
        return use_tree(rest);
    }
    let rest = t.strip_prefix("pub(")?;
    use_tree(&rest[rest.find(')')? + 1..])
}

/// The first `word` in `s` not preceded by an identifier character.
fn find_word(s: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = s[from..].find(word) {
        let at = from + i;
        let before = s[..at].chars().next_back();
        if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// The module `path` (written in module `from`) names: the longest known module prefix of its
/// absolute form; `None` for paths outside the crate and for the crate root itself.
fn resolve(path: &str, from: &ModPath, modules: &BTreeSet<ModPath>) -> Option<ModPath> {
    let mut segs = path.split("::").filter(|s| !s.is_empty());
    let mut abs: ModPath = match segs.next()? {
        "crate" => Vec::new(),
        "self" => from.clone(),
        "super" => from[..from.len().checked_sub(1)?].to_vec(),
        _ => return None,
    };
    let segs: Vec<&str> = segs.collect();
    let mut i = 0;
    while i < segs.len() && segs[i] == "super" {
        abs.pop();
        i += 1;
    }
    let mut best = abs.clone();
    for s in &segs[i..] {
        abs.push(s.to_string());
        if modules.contains(&abs) {
            best = abs.clone();
        } else {
            break;
        }
    }
    (!best.is_empty()).then_some(best)
}

/// The module-to-module references of every module (self references left out).
fn edges(src: &BTreeMap<ModPath, String>) -> BTreeSet<(ModPath, ModPath)> {
    let modules: BTreeSet<ModPath> = src.keys().cloned().collect();
    let mut out = BTreeSet::new();
    for (from, text) in src {
        for path in paths_of(&code_of(text)) {
            if let Some(to) = resolve(&path, from, &modules) {
                if &to != from {
                    out.insert((from.clone(), to));
                }
            }
        }
    }
    out
}

fn show(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// What breaks the layering: modules importing an ancestor, and cycles among the children of a
/// folder, one line each.
fn problems(src: &BTreeMap<ModPath, String>) -> Vec<String> {
    let edges = edges(src);
    let mut out = Vec::new();
    for (from, to) in &edges {
        if from.len() > to.len() && from.starts_with(to) {
            out.push(format!(
                "{} imports its parent {} (move what it needs into a sibling)",
                show(from),
                show(to)
            ));
        }
    }
    let folders: BTreeSet<ModPath> = src
        .keys()
        .map(|m| m[..m.len().saturating_sub(1)].to_vec())
        .collect();
    for folder in folders {
        let n = folder.len();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in &edges {
            let inside = |m: &ModPath| m.len() > n && m.starts_with(&folder);
            if inside(from) && inside(to) && from[n] != to[n] {
                graph
                    .entry(from[n].clone())
                    .or_default()
                    .insert(to[n].clone());
            }
        }
        for cycle in cycles(&graph) {
            let names: Vec<String> = (cycle.iter())
                .map(|c| show(&[folder.clone(), vec![c.clone()]].concat()))
                .collect();
            out.push(format!("cycle: {} → {}", names.join(" → "), names[0]));
        }
    }
    out
}

/// One cycle per strongly connected component of more than one node, each the shortest one
/// through its smallest node.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = graph.keys().chain(graph.values().flatten()).collect();
    let reach = |a: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![a.clone()];
        while let Some(x) = stack.pop() {
            for y in graph.get(&x).into_iter().flatten() {
                if seen.insert(y.clone()) {
                    stack.push(y.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for &n in &nodes {
        if done.contains(n) || !reached[n].contains(n) {
            continue;
        }
        let component: BTreeSet<String> = (reached[n].iter())
            .filter(|m| reached[m].contains(n))
            .cloned()
            .collect();
        done.extend(component.iter().cloned());
        out.push(shortest_cycle(graph, n, &component));
    }
    out
}

/// The shortest cycle through `n` inside `component` (breadth first; ties: smaller names).
fn shortest_cycle(
    graph: &BTreeMap<String, BTreeSet<String>>,
    n: &String,
    component: &BTreeSet<String>,
) -> Vec<String> {
    let mut came_from: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([n.clone()]);
    while let Some(x) = queue.pop_front() {
        for y in &graph[&x] {
            if y == n {
                let mut path = vec![x.clone()];
                while let Some(p) = came_from.get(path.last().unwrap()) {
                    path.push(p.clone());
                }
                path.reverse();
                return path;
            }
            if component.contains(y) && !came_from.contains_key(y) && y != n {
                came_from.insert(y.clone(), x.clone());
                queue.push_back(y.clone());
            }
        }
    }
    unreachable!("{n} is on a cycle of its component")
}

#[test]
fn the_module_graph_of_src_has_no_cycle_and_no_child_imports_its_parent() {
    let src = read_src(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(src.len() > 50, "read only {} modules from src/", src.len());
    // The checker sees the real graph: the stages import each other along the arrows.
    let edges = edges(&src);
    let has = |a: &str, b: &str| {
        let (a, b) = (vec![a.to_string()], vec![b.to_string()]);
        edges
            .iter()
            .any(|(f, t)| f.starts_with(&a) && t.starts_with(&b))
    };
    assert!(has("backend", "kernels") && has("commands", "backend"));
    let found = problems(&src);
    assert!(
        found.is_empty(),
        "{} layering problems:\n{}",
        found.len(),
        found.join("\n")
    );
}

fn synthetic(files: &[(&str, &str)]) -> BTreeMap<ModPath, String> {
    (files.iter())
        .map(|(m, text)| {
            let path = m
                .split("::")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            (path, text.to_string())
        })
        .collect()
}

#[test]
fn a_synthetic_cycle_and_a_child_importing_its_parent_are_reported() {
    let src = synthetic(&[
        ("", "pub mod a;\npub mod b;\npub mod c;\npub use a::X;"),
        (
            "a",
            "mod inner;\nuse crate::b::{Y, deep::{Z}};\npub struct X;",
        ),
        ("a::inner", "use super::X; // the parent\n"),
        ("b", "pub mod deep;\npub fn f() -> crate::c::W { todo!() }"),
        ("b::deep", "pub struct Z;"),
        (
            "c",
            "use crate::a::X;\n/// crate::b::never — a comment is no edge\npub struct W;",
        ),
    ]);
    let found = problems(&src);
    assert_eq!(
        found,
        [
            "a::inner imports its parent a (move what it needs into a sibling)",
            "cycle: a → b → c → a",
        ],
        "{found:#?}"
    );
    // Without the back edge there is nothing to report; a comment and a test module add none.
    let mut fixed = src.clone();
    fixed.insert(
        vec!["c".into()],
        "pub struct W;\n#[cfg(test)]\nmod tests { use crate::a::X; }".into(),
    );
    fixed.insert(
        vec!["a".into(), "inner".into()],
        "use super::sibling::X;".into(),
    );
    fixed.insert(vec!["a".into(), "sibling".into()], "pub struct X;".into());
    assert_eq!(problems(&fixed), Vec::<String>::new());
}

#[test]
fn use_trees_expand_to_every_path() {
    assert_eq!(
        expand("crate::{a::{b, c as d}, e::{self, *}}"),
        ["crate::a::b", "crate::a::c", "crate::e", "crate::e"]
    );
    assert_eq!(expand("super::x::Y"), ["super::x::Y"]);
}
