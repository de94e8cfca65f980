//! A YAML document as a tree whose every key and value remembers its line and column, so that any error found
//! later (schema, semantics, environment merge, substitution) can point at the exact place in the file. Building
//! it is bounded on any input: text size, nesting depth and alias expansion are capped (the `MAX_*` constants),
//! and each cap ends parsing with an error located where it was crossed.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diagnostics::{Diagnostic, Location};

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Map(Vec<(Key, Node)>),
    Seq(Vec<Node>),
    Scalar { value: String, quoted: bool },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub at: Location,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub at: Location,
    /// The scalar as written in the file, when `${…}` substitution changed it. Errors about the value show this,
    /// never the substituted text (which may be a secret).
    pub written: Option<String>,
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn key_location(&self, key: &str) -> Option<Location> {
        match &self.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.name == key)
                .map(|(k, _)| k.at),
            _ => None,
        }
    }

    /// Removes and returns a key's value from a map node.
    pub fn take(&mut self, key: &str) -> Option<(Key, Node)> {
        match &mut self.kind {
            Kind::Map(entries) => {
                let i = entries.iter().position(|(k, _)| k.name == key)?;
                Some(entries.remove(i))
            }
            _ => None,
        }
    }

    /// The location of the value (or, failing that, the key) at a dotted path of map keys / list indexes.
    /// Falls back to the deepest existing ancestor, so an error about a missing field points at its parent.
    pub fn locate(&self, path: &[String]) -> Location {
        match self.descend(path) {
            Ok(node) | Err(node) => node.at,
        }
    }

    /// The node at a dotted path of map keys / list indexes, or `Err` with the deepest one that exists.
    fn descend(&self, path: &[String]) -> Result<&Node, &Node> {
        let mut node = self;
        for segment in path {
            let next = match &node.kind {
                Kind::Map(_) => node.get(segment),
                Kind::Seq(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                Kind::Scalar { .. } => None,
            };
            match next {
                Some(n) => node = n,
                None => return Err(node),
            }
        }
        Ok(node)
    }

    /// Like [`Node::locate`], but a path ending in a map entry gives that entry's key: errors about a secret are
    /// shown at the key, since the value may span lines (`DB_PASSWORD: >-` then the value) that no key masks.
    pub fn locate_key(&self, path: &[String]) -> Location {
        let Some((last, parent)) = path.split_last() else {
            return self.at;
        };
        let node = match self.descend(parent) {
            Ok(node) => node,
            Err(ancestor) => return ancestor.at,
        };
        match &node.kind {
            Kind::Map(_) => node.key_location(last).unwrap_or(node.at),
            _ => self.locate(path),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { value, quoted: false } if is_null_literal(value))
    }

    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Map(_) => "a map".into(),
            Kind::Seq(_) => "a list".into(),
            Kind::Scalar { value, quoted } => {
                if let Some(written) = &self.written {
                    let shown: String = written.chars().take(80).collect();
                    format!("`{shown}`")
                } else if !quoted && is_null_literal(value) {
                    "nothing (null)".into()
                } else {
                    let shown: String = value.chars().take(40).collect();
                    format!("`{shown}`")
                }
            }
        }
    }
}

pub fn is_null_literal(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

/// Largest stack file read, in bytes. The shipped stack is about 6 KB; 4 MiB leaves room for any real stack (even
/// 100,000 tags) while keeping the tree, and everything derived from it, within a few hundred MB.
pub const MAX_FILE_BYTES: usize = 4 << 20;

/// Deepest nesting of lists and maps. The shipped stack nests 6 levels; the cap keeps every recursive walk of the
/// tree (merge, substitution, schema check, serde, drop) far from the stack limit on any input.
pub const MAX_DEPTH: usize = 64;

/// Most alias uses (`*name`) in one file. Real stacks use a handful; the cap stops alias bombs early.
pub const MAX_ALIASES: usize = 100;

/// Most nodes that aliases may copy in total (and, separately, that anchors may keep copies of). Each alias copies
/// its anchor's whole subtree, so aliases of aliases multiply ("billion laughs": 400 bytes that expand to
/// gigabytes); this bounds the expansion. Real stacks copy a few dozen nodes.
pub const MAX_COPIED_NODES: usize = 10_000;

/// Most text (scalars and keys, in bytes) that aliases may copy in total (and, separately, anchors): an alias of one
/// huge scalar copies few nodes but many bytes.
pub const MAX_COPIED_BYTES: usize = 1 << 20;

/// What parsing built, for callers (and tests) that want to see that the work stayed bounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseStats {
    /// Nodes built from the text itself.
    pub nodes: usize,
    /// Alias uses seen.
    pub aliases: usize,
    /// Nodes copied by aliases.
    pub copied_nodes: usize,
    /// Bytes of scalars and keys copied by aliases.
    pub copied_bytes: usize,
    /// Nodes kept as copies of anchored values (for aliases to copy from).
    pub anchored_nodes: usize,
    /// Bytes of scalars and keys kept as copies of anchored values.
    pub anchored_bytes: usize,
    /// Deepest nesting of lists and maps built.
    pub max_depth: usize,
}

/// Parses one YAML document. Syntax errors, duplicate keys, non-scalar keys, tags and multiple documents are
/// reported with their locations; everything that can be reported in one pass is.
pub fn parse(text: &str) -> Result<Node, Vec<Diagnostic>> {
    parse_with_stats(text).0
}

/// [`parse`], also returning what was built. Size, depth and alias caps stop parsing at the first violation with
/// an error located where the cap was crossed.
pub fn parse_with_stats(text: &str) -> (Result<Node, Vec<Diagnostic>>, ParseStats) {
    let mut builder = Builder::default();
    if text.len() > MAX_FILE_BYTES {
        let d = Diagnostic::at(
            Location { line: 1, col: 1 },
            format!(
                "the stack file is {} bytes, more than the {} byte cap (MAX_FILE_BYTES)",
                text.len(),
                MAX_FILE_BYTES
            ),
        )
        .with_hint("a stack file is a few KB; check that `--stack` names the stack file");
        return (Err(vec![d]), builder.stats);
    }
    // yaml-rust2's `Parser::load` walks nested collections by recursion, so deep input overflows the stack before
    // any receiver could object. Its event stream (`next_token`) is an explicit state machine: pulling events
    // here, with a depth counter, rejects deep nesting at the first level past the cap.
    let mut parser = Parser::new_from_str(text);
    loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => break,
            Ok((ev, mark)) => {
                builder.on_event(ev, mark);
                if builder.fatal {
                    return (Err(builder.errors), builder.stats);
                }
            }
            Err(e) if e.info().contains("recursion limit") => {
                // The scanner reads ahead of the events while a `[`/`{` may still turn out to be a key, and stops
                // by itself at 255 open flow collections; that is this cap too, found a little later.
                builder.errors.clear();
                builder.cap_error(location(e.marker()), depth_message(), DEPTH_HINT);
                return (Err(builder.errors), builder.stats);
            }
            Err(e) => {
                let at = location(e.marker());
                let mut d = Diagnostic::at(at, format!("invalid YAML: {}", e.info()));
                d.hint = Some(syntax_hint(e.info()));
                builder.errors.insert(0, d);
                return (Err(builder.errors), builder.stats);
            }
        }
    }
    if builder.documents > 1 {
        builder.errors.push(Diagnostic::at(
            builder.second_doc.unwrap_or_default(),
            "a stack file holds one YAML document; found more than one `---`",
        ));
    }
    if !builder.errors.is_empty() {
        return (Err(builder.errors), builder.stats);
    }
    let result = match builder.root.take() {
        Some(root) => Ok(root),
        None => Err(vec![Diagnostic::at(
            Location { line: 1, col: 1 },
            "the stack file is empty",
        )
        .with_hint(
            "start from stacks/live-stats.yaml, or run `statsctl schema` for the file's structure",
        )]),
    };
    (result, builder.stats)
}

fn depth_message() -> String {
    format!("lists and maps nest deeper than {MAX_DEPTH} levels here (the nesting cap, MAX_DEPTH)")
}

const DEPTH_HINT: &str =
    "a stack file nests a handful of levels; check the indentation, or for unclosed `[`/`{`";

fn syntax_hint(info: &str) -> String {
    if info.contains("tab") {
        "YAML indents with spaces, never tabs".into()
    } else if info.contains("mapping values are not allowed") {
        "a value that contains `: ` must be quoted, or the line is indented wrongly".into()
    } else if info.contains("did not find expected key") || info.contains("block") {
        "check the indentation of this line against its siblings".into()
    } else if info.contains("flow sequence") || info.contains("flow mapping") {
        "a `[` or `{` opened at or before this line is not closed".into()
    } else if info.contains("quoted") {
        "a quoted string is not closed".into()
    } else {
        "fix the YAML syntax at this position".into()
    }
}

fn location(m: &Marker) -> Location {
    // yaml-rust2 markers: 1-based lines, 0-based columns.
    Location {
        line: m.line(),
        col: m.col() + 1,
    }
}

/// Size of a finished subtree: (nodes, bytes of scalars and keys, nesting of lists and maps). Recursion is safe:
/// every tree the builder finishes is within `MAX_DEPTH`.
fn measure(node: &Node) -> (usize, usize, usize) {
    match &node.kind {
        Kind::Scalar { value, .. } => (1, value.len(), 0),
        Kind::Seq(items) => items.iter().fold((1, 0, 1), |(n, b, h), item| {
            let (n2, b2, h2) = measure(item);
            (n + n2, b + b2, h.max(h2 + 1))
        }),
        Kind::Map(entries) => entries.iter().fold((1, 0, 1), |(n, b, h), (k, v)| {
            let (n2, b2, h2) = measure(v);
            (n + n2, b + b2 + k.name.len(), h.max(h2 + 1))
        }),
    }
}

enum Frame {
    Map {
        at: Location,
        entries: Vec<(Key, Node)>,
        /// Where each key was first defined: duplicate checks in constant time (a linear scan per key made a
        /// 100,000-key map take minutes).
        seen: HashMap<String, Location>,
        pending_key: Option<Key>,
        anchor: usize,
    },
    Seq {
        at: Location,
        items: Vec<Node>,
        anchor: usize,
    },
}

/// An anchored subtree, kept for its aliases, with its measured size.
struct Anchored {
    node: Node,
    nodes: usize,
    bytes: usize,
    height: usize,
}

/// The placeholder key used after a non-scalar key, so that the rest of the map still parses.
const INVALID_KEY: &str = "\u{0}invalid";

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    anchors: HashMap<usize, Anchored>,
    errors: Vec<Diagnostic>,
    documents: usize,
    second_doc: Option<Location>,
    stats: ParseStats,
    /// A cap was crossed: stop parsing (the input may be hostile; nothing more is worth building).
    fatal: bool,
}

impl Builder {
    fn cap_error(&mut self, at: Location, message: String, hint: &str) {
        self.errors
            .push(Diagnostic::at(at, message).with_hint(hint));
        self.fatal = true;
    }

    /// Counts an alias's copy of `nodes`/`bytes` against the expansion caps; false (and a fatal error at the alias)
    /// past them.
    fn charge_alias(&mut self, at: Location, nodes: usize, bytes: usize) -> bool {
        self.stats.copied_nodes += nodes;
        self.stats.copied_bytes += bytes;
        let what = if self.stats.copied_nodes > MAX_COPIED_NODES {
            format!("{MAX_COPIED_NODES} nodes (the alias expansion cap, MAX_COPIED_NODES)")
        } else if self.stats.copied_bytes > MAX_COPIED_BYTES {
            format!("{MAX_COPIED_BYTES} bytes of text (the alias expansion cap, MAX_COPIED_BYTES)")
        } else {
            return true;
        };
        self.cap_error(
            at,
            format!("with this alias, aliases copy more than {what}"),
            "an alias copies its anchor's whole value, so aliases of aliases multiply; write the values out, or \
             put per-environment differences under `environments:`",
        );
        false
    }

    /// Counts the copy an anchor keeps of its value. Without a cap, anchors nested 64 deep around one large value
    /// would each keep a copy of it.
    fn charge_anchor(&mut self, at: Location, nodes: usize, bytes: usize) -> bool {
        self.stats.anchored_nodes += nodes;
        self.stats.anchored_bytes += bytes;
        let what = if self.stats.anchored_nodes > MAX_COPIED_NODES {
            format!("{MAX_COPIED_NODES} nodes (MAX_COPIED_NODES)")
        } else if self.stats.anchored_bytes > MAX_COPIED_BYTES {
            format!("{MAX_COPIED_BYTES} bytes of text (MAX_COPIED_BYTES)")
        } else {
            return true;
        };
        self.cap_error(
            at,
            format!("with this anchor, anchored values hold more than {what}"),
            "anchor (`&name`) only small values you repeat; write large values out",
        );
        false
    }

    /// Opens a list or map, unless that would nest deeper than `MAX_DEPTH`.
    fn open(&mut self, frame: Frame, at: Location) {
        let depth = self.stack.len() + 1;
        if depth > MAX_DEPTH {
            self.cap_error(at, depth_message(), DEPTH_HINT);
            return;
        }
        self.stats.max_depth = self.stats.max_depth.max(depth);
        self.stats.nodes += 1;
        self.stack.push(frame);
    }

    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            let (nodes, bytes, height) = measure(&node);
            if !self.charge_anchor(node.at, nodes, bytes) {
                return;
            }
            self.anchors.insert(
                anchor,
                Anchored {
                    node: node.clone(),
                    nodes,
                    bytes,
                    height,
                },
            );
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                seen,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => match &node.kind {
                    Kind::Scalar { value, .. } => {
                        *pending_key = Some(Key {
                            name: value.clone(),
                            at: node.at,
                        })
                    }
                    _ => {
                        self.errors.push(
                            Diagnostic::at(
                                node.at,
                                "a map key must be a plain name, not a list or map",
                            )
                            .with_hint("write `name: value`"),
                        );
                        // Keep the structure parseable: use a placeholder key.
                        *pending_key = Some(Key {
                            name: String::from(INVALID_KEY),
                            at: node.at,
                        });
                    }
                },
                Some(key) if key.name == INVALID_KEY => entries.push((key, node)),
                Some(key) => match seen.get(&key.name) {
                    Some(first) => {
                        let first_line = first.line;
                        self.errors.push(
                            Diagnostic::at(key.at, format!("duplicate key `{}`", key.name)).with_hint(format!(
                                "`{}` is already defined at line {first_line}; names must be unique — remove or rename one",
                                key.name
                            )),
                        );
                    }
                    None => {
                        seen.insert(key.name.clone(), key.at);
                        entries.push((key, node));
                    }
                },
            },
        }
    }

    fn alias(&mut self, id: usize, at: Location) {
        self.stats.aliases += 1;
        if self.stats.aliases > MAX_ALIASES {
            self.cap_error(
                at,
                format!("more than {MAX_ALIASES} aliases (`*name`) in one file (the alias cap, MAX_ALIASES)"),
                "a stack file needs only a few aliases; write the values out, or put per-environment differences \
                 under `environments:`",
            );
            return;
        }
        let Some(anchored) = self.anchors.get(&id) else {
            self.errors
                .push(Diagnostic::at(at, "alias to an unknown anchor").with_hint(
                    "an alias (`*name`) must come after its anchor's value (`&name`) is complete",
                ));
            return;
        };
        let (nodes, bytes, height) = (anchored.nodes, anchored.bytes, anchored.height);
        if self.stack.len() + height > MAX_DEPTH {
            self.cap_error(
                at,
                format!(
                    "this alias nests lists and maps deeper than {MAX_DEPTH} levels (the nesting cap, MAX_DEPTH)"
                ),
                "a stack file nests a handful of levels; write the values out instead of aliasing nested aliases",
            );
            return;
        }
        if !self.charge_alias(at, nodes, bytes) {
            return;
        }
        self.stats.max_depth = self.stats.max_depth.max(self.stack.len() + height);
        let node = self.anchors[&id].node.clone();
        self.push_value(node, 0);
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at = location(&mark);
        match ev {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents == 2 {
                    self.second_doc = Some(at);
                }
            }
            Event::Scalar(value, style, anchor, tag) => {
                if let Some(tag) = tag {
                    self.reject_tag(&tag, at);
                }
                self.stats.nodes += 1;
                let quoted = !matches!(style, TScalarStyle::Plain);
                self.push_value(
                    Node {
                        kind: Kind::Scalar { value, quoted },
                        at,
                        written: None,
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, tag) => {
                if let Some(tag) = tag {
                    self.reject_tag(&tag, at);
                }
                self.open(
                    Frame::Seq {
                        at,
                        items: Vec::new(),
                        anchor,
                    },
                    at,
                );
            }
            Event::MappingStart(anchor, tag) => {
                if let Some(tag) = tag {
                    self.reject_tag(&tag, at);
                }
                self.open(
                    Frame::Map {
                        at,
                        entries: Vec::new(),
                        seen: HashMap::new(),
                        pending_key: None,
                        anchor,
                    },
                    at,
                );
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq { at, items, anchor }) = self.stack.pop() {
                    self.push_value(
                        Node {
                            kind: Kind::Seq(items),
                            at,
                            written: None,
                        },
                        anchor,
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    at,
                    entries,
                    anchor,
                    ..
                }) = self.stack.pop()
                {
                    self.push_value(
                        Node {
                            kind: Kind::Map(entries),
                            at,
                            written: None,
                        },
                        anchor,
                    );
                }
            }
            Event::Alias(id) => self.alias(id, at),
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

impl Builder {
    fn reject_tag(&mut self, tag: &Tag, at: Location) {
        self.errors.push(
            Diagnostic::at(
                at,
                format!(
                    "YAML tags like `{}{}` are not supported",
                    tag.handle, tag.suffix
                ),
            )
            .with_hint("remove the tag; use `${VAR}` to take values from the environment"),
        );
    }
}

/// Deep-merges `overlay` into `base`: maps merge key by key (overlay wins), anything else replaces. Replaced
/// and added nodes keep the overlay's locations, so errors point at the line that set the effective value.
pub fn merge(base: &mut Node, overlay: Node) {
    match (&mut base.kind, overlay.kind) {
        (Kind::Map(base_entries), Kind::Map(over_entries)) => {
            // Index the base's keys once: a scan per overlay key would be quadratic in the map's size.
            let mut index: HashMap<String, usize> = base_entries
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.name.clone(), i))
                .collect();
            for (key, value) in over_entries {
                match index.get(&key.name) {
                    Some(&i) => merge(&mut base_entries[i].1, value),
                    None => {
                        index.insert(key.name.clone(), base_entries.len());
                        base_entries.push((key, value));
                    }
                }
            }
        }
        (_, kind) => {
            base.kind = kind;
            base.at = overlay.at;
            base.written = overlay.written;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_one_based() {
        let root = parse("a: 1\nb:\n  c: x\n").unwrap();
        assert_eq!(
            root.locate(&["b".into(), "c".into()]),
            Location { line: 3, col: 6 }
        );
        assert_eq!(root.key_location("b"), Some(Location { line: 2, col: 1 }));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let errs = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.contains("duplicate key `a`"));
        assert_eq!(errs[0].at.unwrap().line, 3);
    }

    #[test]
    fn syntax_errors_have_locations() {
        let errs = parse("a:\n  b: 1\n c: [\n").unwrap_err();
        assert!(errs[0].message.starts_with("invalid YAML"));
        assert!(errs[0].at.unwrap().line >= 3);
    }

    #[test]
    fn merge_overrides_and_keeps_locations() {
        let mut base = parse("a:\n  x: 1\n  y: 2\nb: [1]\n").unwrap();
        let over = parse("a:\n  y: 3\nb: [4, 5]\n").unwrap();
        merge(&mut base, over);
        let y = base.get("a").unwrap().get("y").unwrap();
        assert_eq!(
            y.kind,
            Kind::Scalar {
                value: "3".into(),
                quoted: false
            }
        );
        assert_eq!(y.at.line, 2);
        assert!(matches!(&base.get("b").unwrap().kind, Kind::Seq(v) if v.len() == 2));
        assert!(base.get("a").unwrap().get("x").is_some());
    }

    #[test]
    fn anchors_and_aliases_expand() {
        let root = parse("base: &b {x: 1}\nother: *b\n").unwrap();
        assert!(root.get("other").unwrap().get("x").is_some());
    }

    #[test]
    fn nesting_past_the_cap_is_a_located_error() {
        let deep = MAX_DEPTH + 1;
        let block_map: String = (0..deep)
            .map(|i| format!("{}a:\n", "  ".repeat(i)))
            .collect();
        let cases: Vec<(&str, String, usize)> = vec![
            // (name, text, line of the error)
            ("block lists, 10k levels", "- ".repeat(10_000) + "x\n", 1),
            ("flow lists, 10k levels", "[".repeat(10_000), 1),
            ("flow maps", "{a: ".repeat(10_000), 1),
            (
                "block maps",
                block_map + &"  ".repeat(deep) + "b: 1\n",
                deep,
            ),
            (
                "after a valid line",
                format!("ok: 1\nx: {}\n", "[".repeat(deep)),
                2,
            ),
        ];
        for (name, text, line) in cases {
            let (result, stats) = parse_with_stats(&text);
            let errs = result.expect_err(name);
            assert!(errs[0].message.contains("MAX_DEPTH"), "{name}: {errs:?}");
            assert_eq!(errs[0].at.map(|a| a.line), Some(line), "{name}: {errs:?}");
            assert!(errs[0].hint.is_some(), "{name}");
            assert!(stats.max_depth <= MAX_DEPTH, "{name}: {stats:?}");
        }
        // Exactly at the cap is fine.
        let ok = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }

    /// The classic "billion laughs": each level is ten aliases of the previous one.
    fn laughs(levels: usize) -> String {
        let mut text = String::from("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..levels {
            let refs = vec![format!("*l{}", i - 1); 10].join(", ");
            text.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
        }
        text
    }

    #[test]
    fn alias_bombs_stop_at_the_expansion_cap() {
        let text = laughs(9);
        let (result, stats) = parse_with_stats(&text);
        let errs = result.unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].message.contains("MAX_COPIED_NODES"), "{errs:?}");
        // Located at the alias that crossed the cap: lines 2 and 3 copy 110 and 1,110 nodes, then each `*l2` on
        // line 4 copies 1,111, so the 8th (column 45) passes 10,000.
        assert_eq!(errs[0].at, Some(Location { line: 4, col: 45 }), "{errs:?}");
        assert!(errs[0].message.contains("with this alias"), "{errs:?}");
        assert!(stats.copied_nodes <= 2 * MAX_COPIED_NODES, "{stats:?}");
        // A few small aliases are fine.
        assert!(parse(&laughs(2)).is_ok());
    }

    #[test]
    fn alias_count_bytes_and_depth_are_capped() {
        let many = format!("a: &a x\nb: [{}]\n", vec!["*a"; MAX_ALIASES + 1].join(", "));
        let errs = parse(&many).unwrap_err();
        assert!(errs[0].message.contains("MAX_ALIASES"), "{errs:?}");
        assert_eq!(errs[0].at.unwrap().line, 2);

        let big = format!(
            "a: &a {}\nb: [*a, *a, *a]\n",
            "x".repeat(MAX_COPIED_BYTES / 2)
        );
        let errs = parse(&big).unwrap_err();
        assert!(errs[0].message.contains("MAX_COPIED_BYTES"), "{errs:?}");
        assert_eq!(errs[0].at.unwrap().line, 2);

        // Anchors nested around one large value would each keep a copy of it: capped too, at the anchor.
        let nested = format!(
            "a: {}{}{}\n",
            (0..20).map(|i| format!("&n{i} [")).collect::<String>(),
            "x".repeat(MAX_COPIED_BYTES / 8),
            "]".repeat(20)
        );
        let (result, stats) = parse_with_stats(&nested);
        assert!(result.unwrap_err()[0].message.contains("with this anchor"));
        assert!(stats.anchored_bytes <= 2 * MAX_COPIED_BYTES, "{stats:?}");

        // Each level nests the previous anchor one level deeper: depth grows past the cap through aliases alone.
        let half = MAX_DEPTH / 2 + 1;
        let text = format!(
            "a: &a {}1{}\nb: {}*a{}\n",
            "[".repeat(half),
            "]".repeat(half),
            "[".repeat(half),
            "]".repeat(half)
        );
        let errs = parse(&text).unwrap_err();
        assert!(errs[0].message.contains("MAX_DEPTH"), "{errs:?}");
        assert_eq!(errs[0].at.unwrap().line, 2);
    }

    #[test]
    fn alias_inside_its_own_anchor_is_an_error() {
        let errs = parse("a: &a [1, *a]\n").unwrap_err();
        assert!(errs[0].message.contains("unknown anchor"), "{errs:?}");
    }

    #[test]
    fn duplicate_keys_in_a_large_map() {
        let mut text: String = (0..50_000).map(|i| format!("k{i}: {i}\n")).collect();
        text.push_str("k123: again\n");
        let errs = parse(&text).unwrap_err();
        assert_eq!(errs.len(), 1, "{:?}", &errs[..errs.len().min(3)]);
        assert_eq!(errs[0].at.unwrap().line, 50_001);
        assert!(errs[0].hint.as_deref().unwrap().contains("line 124"));
    }

    #[test]
    fn oversized_text_is_refused_before_parsing() {
        let text = "#".repeat(MAX_FILE_BYTES + 1);
        let (result, stats) = parse_with_stats(&text);
        assert!(result.unwrap_err()[0].message.contains("MAX_FILE_BYTES"));
        assert_eq!(stats.nodes, 0);
    }

    #[test]
    fn empty_and_tags() {
        assert!(parse("").is_err());
        assert!(parse("a: !Ref x\n").unwrap_err()[0]
            .message
            .contains("tags"));
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
    }
}
