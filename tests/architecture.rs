//! The shape of the code: modules follow the data (land → ingest → transform → serve),
//! and a module never reaches up into one that comes after it.
//!
//! Each top-level module of `src/` has a layer below. A module may use modules of lower
//! layers; a use of a higher one (or of another module of its own layer) fails this test,
//! naming the file and the module it reaches. Within a module, no two files may import
//! each other, however indirectly: a file's children and parent aside, imports between
//! the files of a folder form no cycle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may use the modules of the layers before its own.
const LAYERS: &[&[&str]] = &[
    // Shared by every layer: errors, then progress display, worker pools, Ctrl-C and stalls.
    &["error"],
    &["progress", "workers", "interrupt"],
    // What the feeds are and who a customer is.
    &["feed"],
    // Synthetic feeds shaped like the real ones.
    &["generate"],
    // Where everything lives: a URL, its object store, the one layout of paths.
    &["lakehouse"],
    // Parquet data files and Delta tables.
    &["data_file"],
    &["delta"],
    // The SQL models (their files, headers and order), and the tables of the contract.
    &["models"],
    &["catalog"],
    // How every query runs: engine settings, memory, SQL functions, tables registered.
    &["session"],
    // What an erasure leaves behind: tombstones, receipts, refused lines removed.
    &["forgotten"],
    // The data path.
    &["land"],
    &["ingest"],
    &["transform"],
    &["history"],
    &["serve"],
    &["erase"],
    &["pipeline"],
    // The command line: what was typed, then what runs it.
    &["cli"],
    &["commands"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's text without comments (doc links may point anywhere) and string literals.
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_string = false;
        let mut prev = ' ';
        let mut kept = String::new();
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if !in_string && c == '/' && chars.get(i + 1) == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' {
                in_string = !in_string;
            } else if !in_string {
                kept.push(c);
            }
            prev = if prev == '\\' && c == '\\' { ' ' } else { c };
            i += 1;
        }
        out.push_str(&kept);
        out.push('\n');
    }
    out
}

/// Every `crate::a::b…` path the code names, as its segments, including each path of a
/// group (`use crate::{a, b::{c, d}}`).
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    fn group(text: &str, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
        // `text` starts just after a `{`; returns the bytes consumed through its `}`.
        let mut i = 0;
        let bytes = text.as_bytes();
        let mut current = String::new();
        while i < bytes.len() {
            let c = bytes[i] as char;
            match c {
                '{' => {
                    let mut p = prefix.to_vec();
                    p.extend(segments(&current));
                    i += 1 + group(&text[i + 1..], &p, out);
                    current.clear();
                    continue;
                }
                '}' | ',' => {
                    let segs = segments(&current);
                    if !segs.is_empty() {
                        let mut p = prefix.to_vec();
                        p.extend(segs);
                        out.push(p);
                    }
                    current.clear();
                    if c == '}' {
                        return i + 1;
                    }
                }
                _ => current.push(c),
            }
            i += 1;
        }
        i
    }
    fn segments(text: &str) -> Vec<String> {
        let text = text.split(" as ").next().unwrap_or_default();
        text.split("::")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s != "self" && s != "*")
            .collect()
    }
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `stedi_crate::…` or similar: not this crate.
        }
        if let Some(inner) = rest.strip_prefix('{') {
            group(inner, &[], &mut out);
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let path = &rest[..end];
        let mut segs = segments(path);
        if rest[end..].starts_with('{') {
            let mut prefix = segs.clone();
            prefix.retain(|s| !s.is_empty());
            group(&rest[end + 1..], &prefix, &mut out);
            continue;
        }
        segs.retain(|s| !s.is_empty());
        if !segs.is_empty() {
            out.push(segs);
        }
    }
    out
}

/// `src/ingest/decode.rs` → ["ingest", "decode"]; `src/ingest/mod.rs` → ["ingest"].
fn module_path(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

#[test]
fn no_module_uses_one_that_comes_after_it_in_the_data_path() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut violations = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    for file in &files {
        let module = module_path(file);
        let Some(top) = module.first() else { continue };
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(own) = layer_of(top) else {
            unknown.insert(top.clone());
            continue;
        };
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        for path in crate_paths(&code) {
            let used = &path[0];
            if used == top {
                continue;
            }
            match layer_of(used) {
                Some(layer) if layer < own => {}
                Some(_) => {
                    violations.insert(format!(
                        "{} uses crate::{used}",
                        file.strip_prefix(src()).unwrap().display()
                    ));
                }
                // Items of the crate root (`crate::Result`) are fine.
                None => {}
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "modules without a layer (add them to LAYERS): {unknown:?}"
    );
    assert!(
        violations.is_empty(),
        "imports that point up the data path:\n{}",
        violations.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_files_of_a_module_do_not_import_each_other_in_a_cycle() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> =
        files.iter().map(|f| (module_path(f), f.clone())).collect();
    // Edges between sibling files (same parent module), parent and children left out.
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, file) in &modules {
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let mut targets: Vec<Vec<String>> = crate_paths(&code);
        // `super::x` from a file of folder `a/` means `a::x`.
        if module.len() > 1 {
            let parent = &module[..module.len() - 1];
            let mut rest = code.as_str();
            while let Some(at) = rest.find("super::") {
                rest = &rest[at + "super::".len()..];
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                let mut path = parent.to_vec();
                path.push(rest[..end].to_string());
                targets.push(path);
            }
        }
        for target in targets {
            // The longest known module the path names.
            let Some(to) = (1..=target.len())
                .rev()
                .map(|n| target[..n].to_vec())
                .find(|p| modules.contains_key(p))
            else {
                continue;
            };
            let siblings = to.len() == module.len()
                && to.len() > 1
                && to[..to.len() - 1] == module[..module.len() - 1]
                && &to != module;
            if siblings {
                edges.entry(module.clone()).or_default().insert(to);
            }
        }
    }
    // Any cycle among siblings: depth-first search from each file.
    fn reaches(
        from: &Vec<String>,
        target: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        seen: &mut BTreeSet<Vec<String>>,
    ) -> bool {
        for next in edges.get(from).into_iter().flatten() {
            if next == target {
                return true;
            }
            if seen.insert(next.clone()) && reaches(next, target, edges, seen) {
                return true;
            }
        }
        false
    }
    let mut cycles = Vec::new();
    for module in edges.keys() {
        if reaches(module, module, &edges, &mut BTreeSet::new()) {
            cycles.push(module.join("::"));
        }
    }
    assert!(
        cycles.is_empty(),
        "files that import each other (directly or through siblings): {cycles:?}"
    );
}

#[test]
fn the_import_parser_reads_groups_and_skips_comments() {
    let code = code_of(
        "use crate::{a, b::{c, d as e}};\n// crate::z::y\nlet s = \"crate::q\"; crate::f::g(1);",
    );
    let paths = crate_paths(&code);
    let firsts: BTreeSet<&str> = paths.iter().map(|p| p[0].as_str()).collect();
    assert_eq!(firsts, BTreeSet::from(["a", "b", "f"]));
    assert!(paths.contains(&vec!["b".to_string(), "d".to_string()]));
}
