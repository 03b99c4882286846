//! Checks the module layering `lib.rs` declares: its `mod` lines come in groups, each under a
//! comment naming the layer, top layer first. A module may use (`crate::name`) modules of lower
//! layers and of its own layer, never of a higher one, and the uses form no circle.

use std::collections::BTreeMap;
use std::path::Path;

/// The crate's modules in declaration order, each with its layer (0 = top).
fn layers(lib: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut layer = 0;
    let mut in_comment = false;
    let mut previous_cfg_test = false;
    for line in lib.lines().map(str::trim) {
        if line.starts_with("//") && !line.starts_with("//!") {
            if !in_comment && !out.is_empty() {
                layer += 1;
            }
            in_comment = true;
            continue;
        }
        in_comment = false;
        let name = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("mod "))
            .and_then(|rest| rest.strip_suffix(';'));
        if let Some(name) = name
            && !previous_cfg_test
        {
            out.push((name.to_owned(), layer));
        }
        previous_cfg_test = line == "#[cfg(test)]";
    }
    out
}

/// The modules `source` names as `crate::module` (also inside `use crate::{a, b::c}`), leaving
/// out its `#[cfg(test)]` tail and comments.
fn uses(source: &str, modules: &BTreeMap<String, usize>) -> Vec<String> {
    let code: String = source
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or("")
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim_start()
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap_or("")
            .to_owned()
    };
    let mut found: Vec<String> = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let mut names = Vec::new();
        if let Some(group) = rest.strip_prefix('{') {
            // The first path segment of each top-level item of the group.
            let mut depth = 0;
            let mut item_start = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        names.push(ident(&group[k..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            names.push(ident(rest));
        }
        for name in names {
            if modules.contains_key(&name) && !found.contains(&name) {
                found.push(name);
            }
        }
    }
    found
}

#[test]
fn modules_only_use_their_own_layer_or_lower_ones_and_form_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let declared = layers(&lib);
    assert!(declared.len() > 10, "lib.rs's mod lines not found");
    assert!(
        declared.iter().map(|(_, l)| *l).max() >= Some(3),
        "lib.rs's layer comments not found"
    );
    let modules: BTreeMap<String, usize> = declared.iter().cloned().collect();
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut upward = Vec::new();
    for (name, layer) in &declared {
        let source = std::fs::read_to_string(src.join(format!("{name}.rs"))).unwrap();
        let used: Vec<String> = uses(&source, &modules)
            .into_iter()
            .filter(|u| u != name)
            .collect();
        for u in &used {
            if modules[u] < *layer {
                upward.push(format!(
                    "{name} (layer {layer}) uses {u} (layer {})",
                    modules[u]
                ));
            }
        }
        graph.insert(name.clone(), used);
    }
    assert!(upward.is_empty(), "imports upwards: {upward:#?}");

    if let Some(circle) = circle(&graph) {
        panic!("import circle: {}", circle.join(" -> "));
    }
}

/// A circle in `graph` (module -> the modules it uses), if there is one.
fn circle(graph: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    // Depth-first search for a back edge: 0 unvisited, 1 on the path, 2 done.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, Vec<String>>,
        mark: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        mark.insert(node.to_owned(), 1);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match mark.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|p| p == next).unwrap_or(0);
                    let mut circle = path[start..].to_vec();
                    circle.push(next.clone());
                    return Some(circle);
                }
                0 => {
                    if let Some(circle) = visit(next, graph, mark, path) {
                        return Some(circle);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        mark.insert(node.to_owned(), 2);
        None
    }
    let mut mark = BTreeMap::new();
    for name in graph.keys() {
        if mark.get(name.as_str()).copied().unwrap_or(0) == 0
            && let Some(circle) = visit(name, graph, &mut mark, &mut Vec::new())
        {
            return Some(circle);
        }
    }
    None
}

#[test]
fn the_checker_sees_uses_and_circles() {
    let lib = "//! docs\n// Top:\nmod a;\n// Bottom:\nmod b;\nmod c;\n#[cfg(test)]\nmod layers;\n";
    assert_eq!(
        layers(lib),
        [("a".into(), 0), ("b".into(), 1), ("c".into(), 1)]
    );
    let modules: BTreeMap<String, usize> = layers(lib).into_iter().collect();
    let source = "use crate::b::X;\nuse crate::{\n    c::{Y, Z},\n    d,\n};\n// crate::a\nfn f() { crate::a::g() }\n#[cfg(test)]\nmod tests { use crate::b; }\n";
    assert_eq!(uses(source, &modules), ["b", "c", "a"]);
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (from, to) in edges {
            g.entry((*from).into()).or_default().push((*to).into());
            g.entry((*to).into()).or_default();
        }
        g
    };
    assert_eq!(circle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
    assert_eq!(
        circle(&graph(&[("a", "b"), ("b", "c"), ("c", "b")])),
        Some(vec!["b".into(), "c".into(), "b".into()])
    );
}
