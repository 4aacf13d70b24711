//! Imports point one way: no two files inside `src/api/`, `src/dev_broker/`, `src/directory_sync/` or
//! `src/workspaces/` reach each other, directly or round a loop; no two top-level modules (`src/<module>`)
//! do; and the command line does not import the HTTP layer.
//!
//! Every `src/**/*.rs` is read for the paths it names: `use` trees and paths in code that start at
//! `crate`, `$crate`, `super`, `self` or a child module (`error::ApiError` in a `mod.rs` that declares
//! `mod error`). Each path is resolved to the file holding the deepest module it names, which gives a
//! graph of files; comments and string literals are skipped, and an inline module (`mod tests { … }`)
//! belongs to its file. So a `mod.rs` that calls or re-exports its children while they import from it
//! is a loop: such a file names its parts and serves them, and what they share lives in a file of its
//! own. A loop is reported with the files it goes through.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The graph of the crate's files, read once per test.
fn crate_graph() -> FileGraph {
    FileGraph::of(&read_sources(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
    ))
}

/// Fails naming every loop among the files under `src/<folder>/`.
fn assert_no_cycle_within(folder: &str) {
    let graph = crate_graph();
    let found: Vec<String> = graph
        .cycles_within(folder)
        .iter()
        .zip(graph.tangles_within(folder))
        .map(|(cycle, tangled)| {
            format!(
                "{} (all files of the loop: {})",
                cycle.join(" → "),
                tangled.join(", ")
            )
        })
        .collect();
    assert!(
        found.is_empty(),
        "import cycles inside src/{folder}/:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_import_cycle_inside_the_http_layer() {
    assert_no_cycle_within("api");
}

#[test]
fn no_import_cycle_inside_the_dev_broker() {
    assert_no_cycle_within("dev_broker");
}

#[test]
fn no_import_cycle_inside_directory_sync() {
    assert_no_cycle_within("directory_sync");
}

#[test]
fn no_import_cycle_inside_the_workspace_services() {
    assert_no_cycle_within("workspaces");
}

#[test]
fn no_two_top_level_modules_import_each_other() {
    let cycles = crate_graph().cycles_between_top_level_modules();
    assert!(
        cycles.is_empty(),
        "import cycles between top-level modules:\n{}",
        cycles
            .iter()
            .map(|cycle| cycle.join(" → "))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_command_line_does_not_import_the_http_layer() {
    let graph = crate_graph();
    let reached: Vec<String> = graph
        .edges
        .iter()
        .filter(|(file, _)| file.starts_with("cli/"))
        .flat_map(|(file, to)| {
            to.iter()
                .filter(|t| t.starts_with("api/"))
                .map(move |t| format!("{file} → {t}"))
        })
        .collect();
    assert!(
        reached.is_empty(),
        "the command line imports the HTTP layer:\n{}",
        reached.join("\n")
    );
}

// The checker's own tests: each names a loop the scan must see, or a reference it must not count.

fn sources(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(path, text)| (path.to_string(), text.to_string()))
        .collect()
}

#[test]
fn a_handler_importing_from_the_mod_rs_that_lists_it_is_a_cycle() {
    let graph = FileGraph::of(&sources(&[
        ("lib.rs", "pub mod api;"),
        (
            "api/mod.rs",
            "pub mod health;\npub struct AppState;\npub fn routes() { health::routes() }",
        ),
        ("api/health.rs", "use super::AppState;\npub fn routes() {}"),
    ]));
    assert_eq!(
        graph.cycles_within("api"),
        vec![vec!["api/health.rs", "api/mod.rs", "api/health.rs"]]
    );
}

#[test]
fn a_loop_through_three_files_is_named_file_by_file() {
    let graph = FileGraph::of(&sources(&[
        ("lib.rs", "pub mod api;"),
        ("api/mod.rs", "pub mod a;\npub mod b;\npub mod c;"),
        ("api/a.rs", "use super::{b::{self, B}, params::*};"),
        ("api/b.rs", "pub fn f() { crate::api::c::g() }"),
        ("api/c.rs", "pub fn g() -> super::a::A { todo!() }"),
    ]));
    assert_eq!(
        graph.cycles_within("api"),
        vec![vec!["api/a.rs", "api/b.rs", "api/c.rs", "api/a.rs"]]
    );
}

#[test]
fn a_loop_between_top_level_modules_is_found_through_any_of_their_files() {
    let graph = FileGraph::of(&sources(&[
        ("lib.rs", "pub mod cli;\npub mod api;\npub mod state;"),
        ("cli/mod.rs", "pub mod token;"),
        ("cli/token.rs", "use crate::state::AppState;"),
        (
            "state.rs",
            "pub struct AppState(crate::api::auth::TokenUse);",
        ),
        ("api/mod.rs", "pub mod auth;"),
        (
            "api/auth.rs",
            "pub struct TokenUse; fn f() { $crate::cli::run() }",
        ),
    ]));
    assert_eq!(
        graph.cycles_between_top_level_modules(),
        vec![vec!["api", "cli", "state", "api"]]
    );
}

#[test]
fn tests_comments_strings_and_foreign_paths_are_not_imports() {
    let graph = FileGraph::of(&sources(&[
        ("lib.rs", "pub mod api;"),
        ("api/mod.rs", "pub mod a;\npub mod b;\npub struct S;"),
        (
            "api/a.rs",
            concat!(
                "//! See [`crate::api::b`] and [`super::S`].\n",
                "use actix_web::{web, HttpResponse};\n",
                "/* use super::b::X; /* nested */ crate::api::S */\n",
                "const A: &str = \"crate::api::b::X\";\n",
                "const B: &str = r#\"super::S \" crate::api::b\"#;\n",
                "const C: char = '\"';\n",
                "fn f<'a>(x: &'a str) -> &'a str { b'b'; x }\n",
                "fn g(x: X) { other::super_thing::b::f(); x.b::<u8>(); }\n",
                "#[cfg(test)]\nmod tests {\n    use super::*;\n    mod b { pub fn f() {} }\n    fn h() { b::f() }\n}\n",
            ),
        ),
        ("api/b.rs", "use super::a;"),
    ]));
    assert_eq!(graph.cycles_within("api"), Vec::<Vec<String>>::new());
    assert_eq!(graph.edges_from("api/a.rs"), Vec::<String>::new());
    assert_eq!(graph.edges_from("api/b.rs"), vec!["api/a.rs"]);
}

#[test]
fn an_inline_module_resolves_super_to_its_own_file() {
    let graph = FileGraph::of(&sources(&[
        ("lib.rs", "pub mod api;\npub mod db;"),
        ("api/mod.rs", "pub mod a;"),
        (
            "api/a.rs",
            "mod inner { use super::super::S; use crate::db::models::Row; }",
        ),
        ("db/mod.rs", "pub mod models;"),
        ("db/models.rs", "pub struct Row;"),
    ]));
    assert_eq!(
        graph.edges_from("api/a.rs"),
        vec!["api/mod.rs", "db/models.rs"]
    );
}

// The checker.

/// Every `.rs` file under `root`, as its path relative to `root` (with `/`) and its text.
fn read_sources(root: impl AsRef<Path>) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|entry| entry.expect("a directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let relative = path.strip_prefix(root).expect("under the root");
                let relative = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                out.push((relative, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(root.as_ref(), root.as_ref(), &mut out);
    assert!(
        !out.is_empty(),
        "no sources under {}",
        root.as_ref().display()
    );
    out
}

/// Which file imports which, for the files of the library crate (`main.rs` is another crate).
struct FileGraph {
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl FileGraph {
    fn of(sources: &[(String, String)]) -> Self {
        let sources: Vec<(&str, Vec<Token>)> = sources
            .iter()
            .filter(|(path, _)| path != "main.rs")
            .map(|(path, text)| (path.as_str(), tokens(text)))
            .collect();
        let mut modules = ModuleTable::default();
        for (path, _) in &sources {
            modules.insert(file_module(path), path);
        }
        for (path, tokens) in &sources {
            for inline in scopes(&file_module(path), tokens).1 {
                modules.insert(inline, path);
            }
        }
        let mut edges = BTreeMap::new();
        for (path, tokens) in &sources {
            let mut reached = BTreeSet::new();
            for named in named_paths(&file_module(path), tokens, &modules) {
                if let Some(file) = modules.file_of(&named) {
                    if file != *path {
                        reached.insert(file.to_string());
                    }
                }
            }
            edges.insert(path.to_string(), reached);
        }
        FileGraph { edges }
    }

    fn edges_from(&self, file: &str) -> Vec<String> {
        self.edges[file].iter().cloned().collect()
    }

    /// The sets of files under `folder` that reach each other, each sorted.
    fn tangles_within(&self, folder: &str) -> Vec<Vec<String>> {
        let inside = |file: &str| file.starts_with(&format!("{folder}/"));
        let graph: BTreeMap<String, BTreeSet<String>> = self
            .edges
            .iter()
            .filter(|(file, _)| inside(file))
            .map(|(file, to)| {
                let to = to.iter().filter(|t| inside(t)).cloned().collect();
                (file.clone(), to)
            })
            .collect();
        strongly_connected(&graph)
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| c.into_iter().collect())
            .collect()
    }

    /// The loops among the files under `folder` (its subfolders included).
    fn cycles_within(&self, folder: &str) -> Vec<Vec<String>> {
        let inside = |file: &str| file.starts_with(&format!("{folder}/"));
        let graph: BTreeMap<String, BTreeSet<String>> = self
            .edges
            .iter()
            .filter(|(file, _)| inside(file))
            .map(|(file, to)| {
                let to = to.iter().filter(|t| inside(t)).cloned().collect();
                (file.clone(), to)
            })
            .collect();
        cycles(&graph)
    }

    /// The loops among top-level modules (`src/<module>.rs` or `src/<module>/`); the crate root is none.
    fn cycles_between_top_level_modules(&self) -> Vec<Vec<String>> {
        let top = |file: &str| {
            let first = file.split('/').next().unwrap_or(file);
            first.strip_suffix(".rs").unwrap_or(first).to_string()
        };
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (file, to) in self.edges.iter().filter(|(file, _)| *file != "lib.rs") {
            let from = top(file);
            let reached = graph.entry(from.clone()).or_default();
            for target in to.iter().filter(|t| *t != "lib.rs") {
                if top(target) != from {
                    reached.insert(top(target));
                }
            }
        }
        cycles(&graph)
    }
}

/// The module a file holds: `api/mod.rs` and `api.rs` are `[api]`, `lib.rs` is the crate root.
fn file_module(path: &str) -> Vec<String> {
    let mut parts: Vec<String> = path.split('/').map(str::to_string).collect();
    let last = parts.pop().expect("a file name");
    let stem = last.strip_suffix(".rs").unwrap_or(&last);
    if !(stem == "mod" || (parts.is_empty() && stem == "lib")) {
        parts.push(stem.to_string());
    }
    parts
}

/// Module paths and the files that hold them.
#[derive(Default)]
struct ModuleTable {
    files: BTreeMap<Vec<String>, String>,
}

impl ModuleTable {
    fn insert(&mut self, module: Vec<String>, file: &str) {
        self.files.entry(module).or_insert_with(|| file.to_string());
    }

    fn contains(&self, module: &[String]) -> bool {
        self.files.contains_key(module)
    }

    /// The file of the deepest module on `path` (`crate::api::auth::Caller` is in `api/auth.rs`).
    fn file_of(&self, path: &[String]) -> Option<&str> {
        (0..=path.len())
            .rev()
            .find_map(|len| self.files.get(&path[..len]))
            .map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
}

/// The identifiers and punctuation of Rust source; comments, literals and lifetimes are dropped.
fn tokens(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if let Some(end) = raw_string_end(&chars, i) {
            i = end;
        } else if c == '"' || (c == 'b' && at(i + 1) == '"') {
            i += if c == 'b' { 2 } else { 1 };
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '\'' || (c == 'b' && at(i + 1) == '\'') {
            // A character literal, or a lifetime (`'a` with no closing quote).
            let start = if c == 'b' { i + 1 } else { i };
            if at(start + 1) == '\\' {
                i = start + 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(start + 2) == '\'' {
                i = start + 3;
            } else {
                i = start + 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // `r#type` is the identifier `type`.
            if word == "r" && at(i) == '#' && (at(i + 1).is_alphabetic() || at(i + 1) == '_') {
                i += 1;
                continue;
            }
            out.push(Token::Ident(word));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c == ':' && at(i + 1) == ':' {
            out.push(Token::PathSep);
            i += 2;
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    out
}

/// Where a raw string (`r"…"`, `r#"…"#`, `br"…"`) that starts at `i` ends, if one does.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while chars.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    if chars.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < chars.len() {
        if chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(chars.len())
}

/// The module each token is in, and the modules declared inline (`mod name { … }`), for a file
/// whose module is `file`.
fn scopes(file: &[String], tokens: &[Token]) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    // Each open module: its path and the brace depth its body is at.
    let mut open: Vec<(Vec<String>, usize)> = vec![(file.to_vec(), 0)];
    let mut inline = Vec::new();
    let mut depth = 0;
    let mut scope_of = Vec::with_capacity(tokens.len());
    for (i, token) in tokens.iter().enumerate() {
        let current = &open.last().expect("the file's module").0;
        scope_of.push(current.clone());
        match token {
            Token::Punct('{') => {
                depth += 1;
                // `mod name {` opens an inline module.
                let declared = match i.checked_sub(2).map(|j| (&tokens[j], &tokens[j + 1])) {
                    Some((Token::Ident(keyword), Token::Ident(name))) if keyword == "mod" => {
                        Some(name.clone())
                    }
                    _ => None,
                };
                if let Some(name) = declared {
                    let mut module = current.clone();
                    module.push(name);
                    inline.push(module.clone());
                    open.push((module, depth));
                }
            }
            Token::Punct('}') => {
                if open.len() > 1 && open.last().expect("an inline module").1 == depth {
                    open.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
    }
    (scope_of, inline)
}

/// Every path a file names that starts at `crate`, `$crate`, `super`, `self` or a child module,
/// made absolute (from the crate root); `use` trees give one path per leaf.
fn named_paths(file: &[String], tokens: &[Token], modules: &ModuleTable) -> Vec<Vec<String>> {
    let (scope_of, _) = scopes(file, tokens);
    let mut found = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let here = i;
        i += 1;
        let Token::Ident(word) = &tokens[here] else {
            continue;
        };
        // Only where a path starts: not the `b` of `a::b` nor the method of `x.b::<T>()`.
        if tokens.get(here + 1) != Some(&Token::PathSep)
            || (here > 0 && matches!(tokens[here - 1], Token::PathSep | Token::Punct('.')))
        {
            continue;
        }
        let scope = &scope_of[here];
        let start: Vec<String> = match word.as_str() {
            "crate" => Vec::new(),
            "self" => scope.clone(),
            "super" => scope[..scope.len().saturating_sub(1)].to_vec(),
            child => {
                let mut module = scope.clone();
                module.push(child.to_string());
                if !modules.contains(&module) {
                    continue;
                }
                module
            }
        };
        // Past the path, so the names of a `use` group are not read again as paths of their own.
        i = use_tree(&start, tokens, here + 2, &mut found);
    }
    found
}

/// Reads the rest of a path or `use` tree from `i` (just after a `::`) below `prefix`.
fn use_tree(
    prefix: &[String],
    tokens: &[Token],
    mut i: usize,
    found: &mut Vec<Vec<String>>,
) -> usize {
    let mut path = prefix.to_vec();
    loop {
        match tokens.get(i) {
            Some(Token::Ident(word)) if word == "super" => {
                path.pop();
            }
            Some(Token::Ident(word)) if word == "self" => {}
            Some(Token::Ident(word)) => path.push(word.clone()),
            Some(Token::Punct('{')) => {
                i += 1;
                loop {
                    match tokens.get(i) {
                        Some(Token::Punct('}')) | None => return i + 1,
                        Some(Token::Punct(',')) => i += 1,
                        _ => i = use_tree(&path, tokens, i, found).max(i + 1),
                    }
                }
            }
            Some(Token::Punct('*')) => {
                found.push(path);
                return i + 1;
            }
            // Anything else ends the path (`<`, `(`, `;`, …).
            _ => {
                found.push(path);
                return i;
            }
        }
        if tokens.get(i + 1) == Some(&Token::PathSep) {
            i += 2;
        } else {
            found.push(path);
            // Skip a rename (`as name`) so the group goes on from the comma.
            let mut next = i + 1;
            if matches!(tokens.get(next), Some(Token::Ident(w)) if w == "as") {
                next += 2;
            }
            return next;
        }
    }
}

/// One loop per strongly connected set of nodes, each from its first node round to it again.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for component in strongly_connected(graph) {
        if component.len() < 2 {
            continue;
        }
        let first = component.iter().next().expect("a node").clone();
        out.push(shortest_loop(graph, &component, &first));
    }
    out
}

/// The strongly connected sets of `graph` (Tarjan), each sorted, in order of their first node.
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct Walk<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<BTreeSet<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, node: &'g str) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in self.graph.get(node).into_iter().flatten() {
                let next = next.as_str();
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = BTreeSet::new();
                loop {
                    let member = self.stack.pop().expect("the node is on the stack");
                    self.on_stack.remove(member);
                    component.insert(member.to_string());
                    if member == node {
                        break;
                    }
                }
                self.found.push(component);
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.found.sort();
    walk.found
}

/// The shortest way from `start` back to itself inside `component` (breadth first).
fn shortest_loop(
    graph: &BTreeMap<String, BTreeSet<String>>,
    component: &BTreeSet<String>,
    start: &str,
) -> Vec<String> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for next in graph.get(node).into_iter().flatten() {
            if !component.contains(next) {
                continue;
            }
            if next == start {
                let mut path = vec![start.to_string()];
                let mut at = node;
                while at != start {
                    path.push(at.to_string());
                    at = came_from[at];
                }
                path.push(start.to_string());
                path.reverse();
                return path;
            }
            if !came_from.contains_key(next.as_str()) {
                came_from.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    unreachable!("a strongly connected set of two or more nodes has a loop through each")
}
