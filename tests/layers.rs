//! The layer order `ARCHITECTURE.md` states, held against the code: every
//! path into the crate (`crate::…`, or `super::…` that climbs out of a top
//! module) in every file under `src/` must stay in its own module or lead to
//! a layer below its own (never another module of the same layer), and the crates `ARCHITECTURE.md` keeps in one room are
//! named nowhere else. Test modules (`#[cfg(test)] mod …`) are left out:
//! they may use the simulator to build books.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The source with comments, string and character literals blanked out
/// (replaced by spaces, newlines kept), so that neither a doc comment nor a
/// message that names `crate::…` counts as an import.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_'))
        {
            // A raw string: r"…", r#"…"#, …
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (1..=hashes).all(|h| chars.get(j + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &k in &chars[i..j.min(chars.len())] {
                blank(&mut out, k);
            }
            i = j;
        } else if c == '"' {
            blank(&mut out, c);
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
                if i < chars.len() {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
            if i < chars.len() {
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}'), not a lifetime ('a).
            let end = if next == Some('\\') {
                (i + 2..chars.len().min(i + 12)).find(|&j| chars[j] == '\'')
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    for &k in &chars[i..=end] {
                        blank(&mut out, k);
                    }
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `code` less the bodies of `#[cfg(test)] mod name { … }`, and the names of
/// test modules that live in files of their own (`#[cfg(test)] mod name;`).
fn without_test_modules(code: &str) -> (String, Vec<String>) {
    let mut kept = String::with_capacity(code.len());
    let mut files = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        kept.push_str(&rest[..at]);
        let after = rest[at + "#[cfg(test)]".len()..].trim_start();
        let Some(module) = after.strip_prefix("mod ") else {
            kept.push_str("#[cfg(test)]");
            rest = &rest[at + "#[cfg(test)]".len()..];
            continue;
        };
        let name: String = module
            .trim_start()
            .chars()
            .take_while(|&c| is_ident(c))
            .collect();
        let tail = module.trim_start()[name.len()..].trim_start();
        if let Some(tail) = tail.strip_prefix(';') {
            files.push(name);
            rest = tail;
            continue;
        }
        assert!(
            tail.starts_with('{'),
            "#[cfg(test)] mod {name}: expected a block"
        );
        let mut depth = 0usize;
        let mut end = tail.len();
        for (k, c) in tail.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        // Keep the line count, so that reported lines stay right.
        kept.extend(tail[..end].chars().filter(|&c| c == '\n'));
        rest = &tail[end..];
    }
    kept.push_str(rest);
    (kept, files)
}

/// The module path of a file under `src/`: `serve/store/sql.rs` is
/// `[serve, store, sql]`, `serve/mod.rs` is `[serve]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().expect("a file name");
    let stem = file.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem.to_string());
    }
    parts
}

/// The top modules each path into the crate in `code` leads to, with the
/// line it is on. `module` is the path of the file's module.
fn imports(code: &str, module: &[String]) -> Vec<(String, usize)> {
    let chars: Vec<char> = code.chars().collect();
    let line_of = |at: usize| chars[..at].iter().filter(|&&c| c == '\n').count() + 1;
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == ':');
        let word_at = |j: usize, w: &str| {
            w.chars()
                .enumerate()
                .all(|(k, c)| chars.get(j + k) == Some(&c))
                && chars.get(j + w.len()).is_some_and(|&c| c == ':')
                && chars.get(j + w.len() + 1) == Some(&':')
        };
        if !starts_word || !(word_at(i, "crate") || word_at(i, "super")) {
            i += 1;
            continue;
        }
        let line = line_of(i);
        // Resolve the path's start: crate:: is the root, each super:: one up.
        let mut base: Vec<String> = if word_at(i, "crate") {
            i += "crate::".len();
            Vec::new()
        } else {
            let mut base = module.to_vec();
            while word_at(i, "super") {
                base.pop();
                i += "super::".len();
            }
            base
        };
        if !base.is_empty() {
            // Still inside a top module: not a crossing.
            continue;
        }
        // The next segment, or each item of a `{…}` group, names the top module.
        let skip_space = |mut j: usize| {
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            j
        };
        let ident_at =
            |j: usize| -> String { chars[j..].iter().take_while(|&&c| is_ident(c)).collect() };
        if chars.get(i) == Some(&'{') {
            let mut depth = 0;
            let mut j = i;
            let mut expect_item = true;
            while j < chars.len() {
                match chars[j] {
                    '{' => {
                        depth += 1;
                        if depth == 1 {
                            expect_item = true;
                        }
                    }
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => expect_item = true,
                    c if depth == 1 && expect_item && is_ident(c) => {
                        let name = ident_at(j);
                        j += name.len();
                        expect_item = false;
                        base.clear();
                        found.push((name, line_of(j)));
                        continue;
                    }
                    _ => {}
                }
                j += 1;
            }
            i = j;
        } else {
            let j = skip_space(i);
            let name = ident_at(j);
            if !name.is_empty() {
                found.push((name, line));
            }
            i = j + 1;
        }
    }
    found
}

struct Source {
    relative: PathBuf,
    module: Vec<String>,
    code: String,
}

/// Every file of the library under `src/`, its test modules left out.
fn sources() -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = root().join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files.sort();
    let mut test_files: Vec<PathBuf> = Vec::new();
    let mut sources = Vec::new();
    for path in &files {
        let relative = path.strip_prefix(&src).expect("under src").to_path_buf();
        // main.rs is another crate: it reaches the library as `prioritize::`.
        if relative == Path::new("main.rs") {
            continue;
        }
        let text = std::fs::read_to_string(path).expect("read a source file");
        let (code, tests) = without_test_modules(&code_only(&text));
        let dir = if matches!(
            relative.file_name().and_then(|n| n.to_str()),
            Some("mod.rs" | "lib.rs")
        ) {
            path.parent().expect("a folder").to_path_buf()
        } else {
            path.with_extension("")
        };
        for name in tests {
            test_files.push(dir.join(format!("{name}.rs")));
            test_files.push(dir.join(name).join("mod.rs"));
        }
        sources.push(Source {
            module: module_path(&relative),
            relative,
            code,
        });
    }
    sources.retain(|s| !test_files.contains(&src.join(&s.relative)));
    sources
}

/// The line of `ARCHITECTURE.md` that follows `marker` and holds `→`.
fn stated(marker: &str) -> String {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let from = text
        .find(marker)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md no longer says {marker:?}"));
    text[from..]
        .lines()
        .find(|l| l.trim_start().starts_with('`') && l.contains('→'))
        .unwrap_or_else(|| panic!("ARCHITECTURE.md: no `a` → `b` line after {marker:?}"))
        .to_string()
}

fn names(part: &str) -> Vec<String> {
    part.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The layers, from the top: each module's rank (0 is the top).
fn layers() -> BTreeMap<String, usize> {
    let line = stated("Data flows one way");
    let mut rank = BTreeMap::new();
    for (n, layer) in line.split('→').enumerate() {
        for name in names(layer) {
            assert!(
                rank.insert(name.clone(), n).is_none(),
                "ARCHITECTURE.md names `{name}` in two layers"
            );
        }
    }
    rank
}

#[test]
fn every_import_goes_down_the_layers_architecture_states() {
    let rank = layers();
    let sources = sources();
    let mut broken = Vec::new();
    for source in &sources {
        let Some(top) = source.module.first() else {
            continue; // lib.rs declares the modules
        };
        let Some(&own) = rank.get(top) else {
            broken.push(format!(
                "src/{}: the module `{top}` has no layer in ARCHITECTURE.md",
                source.relative.display()
            ));
            continue;
        };
        for (target, line) in imports(&source.code, &source.module) {
            if &target == top {
                continue;
            }
            match rank.get(&target) {
                Some(&theirs) if theirs > own => {}
                Some(_) => broken.push(format!(
                    "src/{}:{line}: `{top}` imports `{target}`, which is not in a layer below it",
                    source.relative.display()
                )),
                None => broken.push(format!(
                    "src/{}:{line}: `{top}` imports `{target}`, which has no layer in ARCHITECTURE.md",
                    source.relative.display()
                )),
            }
        }
    }
    assert!(
        sources.len() > 40,
        "only {} source files found",
        sources.len()
    );
    assert!(
        broken.is_empty(),
        "against the layer order:\n{}",
        broken.join("\n")
    );
}

#[test]
fn every_module_of_the_library_has_a_layer() {
    let rank = layers();
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).expect("lib.rs");
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert!(declared.len() >= 10, "lib.rs declares {declared:?}");
    for module in declared {
        assert!(
            rank.contains_key(module),
            "ARCHITECTURE.md gives `{module}` no layer"
        );
    }
}

#[test]
fn crates_kept_in_one_room_are_named_nowhere_else() {
    // "`sqlx` → `serve::store`; `axum`, `utoipa` → `serve`"
    let line = stated("kept in one room");
    let mut rooms: Vec<(String, Vec<String>)> = Vec::new();
    for entry in line.split(';') {
        let (crates, room) = entry
            .split_once('→')
            .unwrap_or_else(|| panic!("ARCHITECTURE.md: {entry:?} is not `crate` → `room`"));
        let room = names(room);
        assert_eq!(room.len(), 1, "ARCHITECTURE.md: {entry:?} names one room");
        for name in names(crates) {
            rooms.push((name, room[0].split("::").map(str::to_string).collect()));
        }
    }
    assert!(rooms.len() >= 3, "ARCHITECTURE.md keeps {rooms:?}");
    let mut broken = Vec::new();
    for source in sources() {
        for (name, room) in &rooms {
            if source.module.starts_with(room) {
                continue;
            }
            let pattern = format!("{name}::");
            for (n, line) in source.code.lines().enumerate() {
                let named = line.match_indices(&pattern).any(|(at, _)| {
                    !line[..at]
                        .chars()
                        .next_back()
                        .is_some_and(|c| is_ident(c) || c == ':')
                });
                if named {
                    broken.push(format!(
                        "src/{}:{}: names `{name}`, which ARCHITECTURE.md keeps in `{}`",
                        source.relative.display(),
                        n + 1,
                        room.join("::")
                    ));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "outside their room:\n{}",
        broken.join("\n")
    );
}

/// The checker itself: what it must see and what it must not.
#[test]
fn the_checker_reads_paths_not_comments_or_strings() {
    let text = r##"
//! crate::serve is named in a doc comment
use crate::{contract::Strategy, model::{Model, folder}};
use super::super::strategy::rules;
fn f() { let s = "crate::backtest"; let c = '{'; crate::output::write(); }
/* crate::cmd */
#[cfg(test)]
mod tests { use crate::simulate::simulate; fn g() { if true { } } }
fn h<'a>(x: &'a str) { crate::features::catalog(); }
"##;
    let (code, files) = without_test_modules(&code_only(text));
    assert!(files.is_empty());
    let module = vec!["serve".to_string(), "store".to_string()];
    let found: Vec<String> = imports(&code, &module)
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert_eq!(
        found,
        ["contract", "model", "strategy", "output", "features"],
        "{code}"
    );
    let (_, files) = without_test_modules("#[cfg(test)]\nmod tests;\n");
    assert_eq!(files, ["tests"]);
}
