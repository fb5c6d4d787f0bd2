//! The crate's layers, lowest first. A module imports only from layers
//! below its own (never sideways or up), so the core knows nothing of the
//! faces above it and a newcomer can read the crate from the bottom up.
//! The test below reads every file's `crate::` paths against this table
//! and fails naming the file and the rule it breaks.
//!
//! docs/architecture.md explains each layer and where new pieces go.

/// Each layer's top-level modules, lowest first.
pub const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves: no crate imports",
        &["rng", "coalesce", "telemetry", "slot"],
    ),
    (
        "domain: validated values, records, roles, the error",
        &["domain"],
    ),
    ("storage and change notification", &["store", "watch"]),
    ("the access log", &["audit"]),
    ("the catalogue's word index", &["text_index"]),
    ("sizes", &["fit"]),
    ("one customer's reads, folded", &["reads"]),
    ("suggestions and the replica's model", &["suggest"]),
    (
        "core services",
        &[
            "context",
            "curate",
            "ingest",
            "privacy",
            "retention",
            "search",
        ],
    ),
    (
        "the desk: reads as the caller may see them, on record",
        &["desk"],
    ),
    ("connectors: senders' webhooks onto ingest", &["connect"]),
    ("the contract's generated code", &["proto"]),
    ("what every face shares on the wire", &["wire"]),
    ("metrics", &["metrics"]),
    ("the gate: keys, admission, rate limits", &["auth"]),
    ("gRPC adapters", &["api"]),
    ("HTTP and MCP faces", &["http", "mcp"]),
    ("wiring and serving", &["startup"]),
    ("tools: demo data, the context client", &["demo", "client"]),
    (
        "tools: generated shops, the benchmark",
        &["generate", "bench"],
    ),
    ("the command line", &["cli"]),
];

/// The layer of a top-level module, `None` for one missing from the table.
pub fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first segment of every path a `crate::` reference names in
    /// `source` (comments skipped; `use crate::{a::x, b}` names a and b).
    fn imports(source: &str) -> Vec<String> {
        let code: String = source
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut out = Vec::new();
        let mut rest = code.as_str();
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                group_heads(group, &mut out);
            } else {
                out.push(ident(rest).to_owned());
            }
        }
        out
    }

    /// The heads of a `{...}` use group's items (`group` starts after its
    /// `{`); a nested group without a head is entered. Returns the length
    /// of `group` read, up to and including its closing `}`.
    fn group_heads(group: &str, out: &mut Vec<String>) -> usize {
        let (mut depth, mut expect, mut i) = (0usize, true, 0);
        while let Some(c) = group[i..].chars().next() {
            match c {
                '{' if expect && depth == 0 => {
                    i += 1 + group_heads(&group[i + 1..], out);
                    expect = false;
                    continue;
                }
                '{' => depth += 1,
                '}' if depth == 0 => return i + 1,
                '}' => depth -= 1,
                ',' if depth == 0 => expect = true,
                c if expect && depth == 0 && (c.is_alphanumeric() || c == '_') => {
                    let name = ident(&group[i..]);
                    out.push(name.to_owned());
                    expect = false;
                    i += name.len();
                    continue;
                }
                _ => {}
            }
            i += c.len_utf8();
        }
        i
    }

    fn ident(s: &str) -> &str {
        let end = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        &s[..end]
    }

    fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The rule broken by `module` importing `target`, if any.
    fn broken(module: &str, target: &str) -> Option<String> {
        if target == module || target == "self" || target == "super" {
            return None;
        }
        let Some(from) = layer_of(module) else {
            return Some(format!("module `{module}` is in no layer of src/layers.rs"));
        };
        let Some(to) = layer_of(target) else {
            return Some(format!("module `{target}` is in no layer of src/layers.rs"));
        };
        (to >= from).then(|| {
            format!(
                "`{module}` ({}) may not import `{target}` ({}): imports point down",
                LAYERS[from].0, LAYERS[to].0
            )
        })
    }

    /// Every source file under `src/`: its path there and its text.
    fn each_source() -> Vec<(String, String)> {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        files
            .iter()
            .map(|file| {
                let rel = file.strip_prefix(&src).expect("under src");
                let text = std::fs::read_to_string(file).expect("a readable source file");
                (rel.display().to_string(), text)
            })
            .collect()
    }

    #[test]
    fn imports_point_down() {
        let mut failures = Vec::new();
        for (rel, source) in each_source() {
            let module = rel.split('/').next().expect("a file name");
            let module = module.trim_end_matches(".rs");
            if ["lib", "main", "layers"].contains(&module) {
                continue;
            }
            for target in imports(&source) {
                if let Some(rule) = broken(module, &target) {
                    failures.push(format!("src/{rel}: {rule}"));
                }
            }
        }
        failures.sort();
        failures.dedup();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn an_upward_import_is_named_with_its_file_and_rule() {
        let found = imports(
            "use crate::{domain::X, {api::Y, wire::Z}};\n// crate::cli in a comment\nlet a = crate::suggest::f();",
        );
        assert_eq!(found, ["domain", "api", "wire", "suggest"]);
        assert!(broken("store", "domain").is_none());
        let rule = broken("store", "api").expect("store may not import api");
        assert!(rule.contains("`store`") && rule.contains("`api`"), "{rule}");
        assert!(broken("context", "curate").is_some(), "no sideways imports");
        assert!(
            broken("nowhere", "domain").is_some(),
            "every module has a layer"
        );
    }

    /// Where the access log may be written from: the desk (every read of a
    /// customer by any face), the privacy officers' export, and the wiring
    /// that starts it. A face that wrote it itself could also skip it.
    const ACCESS_LOG_WRITERS: [&str; 4] =
        ["audit.rs", "desk/mod.rs", "api/privacy.rs", "startup.rs"];

    #[test]
    fn reads_are_put_on_record_only_through_the_desk() {
        let mut failures = Vec::new();
        for (name, source) in each_source() {
            if ACCESS_LOG_WRITERS.contains(&name.as_str()) || name == "layers.rs" {
                continue;
            }
            if imports(&source).iter().any(|m| m == "audit") {
                failures.push(format!(
                    "src/{name} uses the access log: read customers through `desk::Desk`"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
