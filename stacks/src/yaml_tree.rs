//! A YAML document as a tree whose every key and value remembers its line and column, so that any error found
//! later (schema, semantics, environment merge, substitution) can point at the exact place in the file.

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
        let mut node = self;
        for segment in path {
            let next = match &node.kind {
                Kind::Map(entries) => entries
                    .iter()
                    .find(|(k, _)| &k.name == segment)
                    .map(|(_, v)| v),
                Kind::Seq(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                Kind::Scalar { .. } => None,
            };
            match next {
                Some(n) => node = n,
                None => return node.at,
            }
        }
        node.at
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { value, quoted: false } if is_null_literal(value))
    }

    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Map(_) => "a map".into(),
            Kind::Seq(_) => "a list".into(),
            Kind::Scalar { value, quoted } => {
                if !quoted && is_null_literal(value) {
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

/// Parses one YAML document. Syntax errors, duplicate keys, non-scalar keys, tags and multiple documents are
/// reported with their locations; everything that can be reported in one pass is.
pub fn parse(text: &str) -> Result<Node, Vec<Diagnostic>> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        let at = location(e.marker());
        let mut d = Diagnostic::at(at, format!("invalid YAML: {}", e.info()));
        d.hint = Some(syntax_hint(e.info()));
        builder.errors.insert(0, d);
        return Err(builder.errors);
    }
    if builder.documents > 1 {
        builder.errors.push(Diagnostic::at(
            builder.second_doc.unwrap_or_default(),
            "a stack file holds one YAML document; found more than one `---`",
        ));
    }
    if !builder.errors.is_empty() {
        return Err(builder.errors);
    }
    match builder.root {
        Some(root) => Ok(root),
        None => Err(vec![Diagnostic::at(
            Location { line: 1, col: 1 },
            "the stack file is empty",
        )
        .with_hint(
            "start from stacks/live-stats.yaml, or run `statsctl schema` for the file's structure",
        )]),
    }
}

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

enum Frame {
    Map {
        at: Location,
        entries: Vec<(Key, Node)>,
        pending_key: Option<Key>,
        anchor: usize,
    },
    Seq {
        at: Location,
        items: Vec<Node>,
        anchor: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    anchors: std::collections::HashMap<usize, Node>,
    errors: Vec<Diagnostic>,
    documents: usize,
    second_doc: Option<Location>,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
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
                            name: String::from("\u{0}invalid"),
                            at: node.at,
                        });
                    }
                },
                Some(key) => {
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.name == key.name) {
                        self.errors.push(
                            Diagnostic::at(key.at, format!("duplicate key `{}`", key.name)).with_hint(format!(
                                "`{}` is already defined at line {}; names must be unique — remove or rename one",
                                key.name, first.at.line
                            )),
                        );
                    } else {
                        entries.push((key, node));
                    }
                }
            },
        }
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
                let quoted = !matches!(style, TScalarStyle::Plain);
                self.push_value(
                    Node {
                        kind: Kind::Scalar { value, quoted },
                        at,
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, tag) => {
                if let Some(tag) = tag {
                    self.reject_tag(&tag, at);
                }
                self.stack.push(Frame::Seq {
                    at,
                    items: Vec::new(),
                    anchor,
                });
            }
            Event::MappingStart(anchor, tag) => {
                if let Some(tag) = tag {
                    self.reject_tag(&tag, at);
                }
                self.stack.push(Frame::Map {
                    at,
                    entries: Vec::new(),
                    pending_key: None,
                    anchor,
                });
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq { at, items, anchor }) = self.stack.pop() {
                    self.push_value(
                        Node {
                            kind: Kind::Seq(items),
                            at,
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
                        },
                        anchor,
                    );
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(node) => self.push_value(node, 0),
                None => self
                    .errors
                    .push(Diagnostic::at(at, "alias to an unknown anchor")),
            },
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
            for (key, value) in over_entries {
                match base_entries.iter_mut().find(|(k, _)| k.name == key.name) {
                    Some((_, existing)) => merge(existing, value),
                    None => base_entries.push((key, value)),
                }
            }
        }
        (_, kind) => {
            base.kind = kind;
            base.at = overlay.at;
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
    fn empty_and_tags() {
        assert!(parse("").is_err());
        assert!(parse("a: !Ref x\n").unwrap_err()[0]
            .message
            .contains("tags"));
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
    }
}
