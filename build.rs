//! Embeds every SQL model under `sql/<zone>/<table>.sql` into the binary, so that adding
//! a table is adding a file.

// A build script reports failure by panicking.
#![allow(clippy::expect_used)]

use std::fmt::Write as _;
use std::path::Path;

// The parser of model headers, shared with the crate, so that a misspelt setting fails
// the build instead of silently changing how a table is built.
#[path = "src/models/header.rs"]
#[allow(dead_code)]
mod header;

fn main() {
    println!("cargo:rerun-if-changed=sql");
    println!("cargo:rerun-if-changed=src/models/header.rs");
    // Read at run time, not baked in with env!(): a build script compiled for one
    // checkout may be reused for another at a different path.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest).join("sql");
    let mut models = Vec::new();
    for zone in ["trusted", "curated"] {
        let dir = root.join(zone);
        println!("cargo:rerun-if-changed={}", dir.display());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "sql") {
                let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
                if let Some(name) = name {
                    println!("cargo:rerun-if-changed={}", path.display());
                    models.push((zone, name, path));
                }
            }
        }
    }
    models.sort();
    let mut bad = false;
    for (zone, name, path) in &models {
        let sql = std::fs::read_to_string(path).expect("a model file found above is readable");
        if let Err(e) = header::parse(name, &sql) {
            println!("cargo::error=sql/{zone}/{name}.sql: {e}");
            bad = true;
        }
    }
    if bad {
        return;
    }
    let mut out = String::from("&[\n");
    for (zone, name, path) in models {
        let _ = writeln!(
            out,
            "    EmbeddedModel {{ zone: {zone:?}, name: {name:?}, file: \"sql/{zone}/{name}.sql\", sql: include_str!({:?}) }},",
            path.display().to_string()
        );
    }
    out.push_str("]\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("models.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}
