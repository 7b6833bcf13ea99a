//! Just enough of Go's `regexp` (RE2 syntax with Go's `Perl` flags, as `regexp.Compile`
//! uses) to run what patternmatcher's translation produces: literals, `.`, classes (ranges,
//! negation, `[:alpha:]`, `\d`…), groups, alternation `|`, `*` `+` `?`, counted repetition
//! `{n}` `{n,}` `{n,m}` (expanded into copies), `^` `$` `\A` `\z` `\b` `\B`, and the escapes;
//! with Go's parse errors. Matching is a Thompson-style NFA simulation over the
//! path decoded as Go decodes a string (one U+FFFD per byte that is not valid UTF-8).
//!
//! Why not a regex crate: the parser is needed either way, because Go's syntax and its
//! refusals differ from every Rust crate's (`[[]`, `{a,b}` as a literal, octal escapes,
//! `\Q`, nested repetition), so a crate could only run what this parser re-prints. Tried
//! with `regex-lite` running the re-printed expression on the same decoded text, both
//! agreed on every table test and on about 15 million random pattern × path pairs, but the
//! release binary grew by 60 KB and typical patterns matched 5 to 250 times slower
//! (`**/*.pyc`: 11 ns against 2.6 µs a path), for some 300 fewer lines here.
//!
//! [`parse`] turns the text into a syntax tree ([`Node`]), this module compiles the tree
//! into instructions ([`Inst`]) and [`run`] runs them.

mod parse;
mod run;

use parse::Parser;
use run::Fast;

/// A zero-width assertion.
#[derive(Debug, Clone, Copy)]
enum Look {
    Begin,
    End,
    WordBoundary,
    NotWordBoundary,
}

/// A set of characters: ranges, possibly negated.
#[derive(Debug, Clone)]
struct Class {
    ranges: Vec<(u32, u32)>,
    negated: bool,
}

impl Class {
    fn single(c: char) -> Class {
        Class {
            ranges: vec![(c as u32, c as u32)],
            negated: false,
        }
    }

    fn contains(&self, c: u32) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != self.negated
    }
}

#[derive(Debug, Clone, Copy)]
enum Repeat {
    Star,
    Plus,
    Quest,
}

#[derive(Debug, Clone)]
enum Node {
    Class(Class),
    AnyButNewline,
    Look(Look),
    /// Alternatives (`a|b`), each a sequence; one alternative is a plain group.
    Group(Vec<Vec<Node>>),
    /// `x{min}`, `x{min,}` (no maximum), `x{min,max}`.
    Counted(Box<Node>, u32, Option<u32>),
    Repeat(Box<Node>, Repeat),
}

#[derive(Debug, Clone)]
enum Inst {
    Class(Class),
    AnyButNewline,
    Look(Look),
    Split(usize, usize),
    Jump(usize),
    Match,
}

/// A compiled regular expression.
#[derive(Debug, Clone)]
pub(super) struct Program {
    insts: Vec<Inst>,
    /// The expression starts with `^`: only a match starting at 0 counts.
    anchored: bool,
    /// Bytes every matching path must end with: the UTF-8 encoding of the literal
    /// characters just before a final `$` (a quick reject; U+FFFD never counts, since a
    /// literal U+FFFD also matches a stray byte).
    suffix: Vec<u8>,
    /// Bit-parallel tables, for programs of at most 64 instructions.
    fast: Option<Box<Fast>>,
}

fn emit(node: &Node, insts: &mut Vec<Inst>) {
    match node {
        Node::Class(class) => insts.push(Inst::Class(class.clone())),
        Node::AnyButNewline => insts.push(Inst::AnyButNewline),
        Node::Look(look) => insts.push(Inst::Look(*look)),
        Node::Group(alternatives) => {
            // Split to each alternative in turn; every one but the last jumps to the end.
            let mut jumps = Vec::new();
            for (index, nodes) in alternatives.iter().enumerate() {
                let last = index + 1 == alternatives.len();
                let split = insts.len();
                if !last {
                    insts.push(Inst::Split(0, 0));
                }
                nodes.iter().for_each(|n| emit(n, insts));
                if !last {
                    jumps.push(insts.len());
                    insts.push(Inst::Jump(0));
                    insts[split] = Inst::Split(split + 1, insts.len());
                }
            }
            for jump in jumps {
                insts[jump] = Inst::Jump(insts.len());
            }
        }
        Node::Counted(inner, min, max) => {
            // x{2,4} is x x x? x?, and x{2,} is x x x*: the same strings, which is all a
            // yes/no match needs.
            for _ in 0..*min {
                emit(inner, insts);
            }
            match max {
                None => emit(&Node::Repeat(inner.clone(), Repeat::Star), insts),
                Some(max) => {
                    for _ in *min..*max {
                        emit(&Node::Repeat(inner.clone(), Repeat::Quest), insts);
                    }
                }
            }
        }
        Node::Repeat(inner, Repeat::Star) => {
            let split = insts.len();
            insts.push(Inst::Split(0, 0));
            emit(inner, insts);
            insts.push(Inst::Jump(split));
            insts[split] = Inst::Split(split + 1, insts.len());
        }
        Node::Repeat(inner, Repeat::Plus) => {
            let start = insts.len();
            emit(inner, insts);
            insts.push(Inst::Split(start, insts.len() + 1));
        }
        Node::Repeat(inner, Repeat::Quest) => {
            let split = insts.len();
            insts.push(Inst::Split(0, 0));
            emit(inner, insts);
            insts[split] = Inst::Split(split + 1, insts.len());
        }
    }
}

/// The most instructions a program may have. Counted repetition multiplies (`[^/]{1000}` is
/// a thousand), and a match costs up to instructions × path length, so a bound keeps every
/// pattern cheap. Go's own bound (`regexp/syntax`'s "expression too large") is about three
/// million; a `.dockerignore` pattern that needs more than this one is not a real use.
const MAX_INSTS: usize = 10_000;

/// How many instructions [`emit`] produces for `node`, saturating.
fn size(node: &Node) -> usize {
    let sum = |nodes: &[Node]| {
        nodes
            .iter()
            .fold(0, |n: usize, x| n.saturating_add(size(x)))
    };
    match node {
        Node::Class(_) | Node::AnyButNewline | Node::Look(_) => 1,
        Node::Group(alternatives) => alternatives
            .iter()
            .fold(2 * (alternatives.len() - 1), |n, nodes| {
                n.saturating_add(sum(nodes))
            }),
        Node::Repeat(inner, Repeat::Plus | Repeat::Quest) => size(inner).saturating_add(1),
        Node::Repeat(inner, Repeat::Star) => size(inner).saturating_add(2),
        Node::Counted(inner, min, max) => {
            let inner = size(inner);
            let optional = match max {
                None => inner.saturating_add(2),
                Some(max) => inner.saturating_add(1).saturating_mul((max - min) as usize),
            };
            inner.saturating_mul(*min as usize).saturating_add(optional)
        }
    }
}

impl Program {
    /// Parse and compile `regex` with Go's syntax rules.
    pub(super) fn new(regex: &str) -> Result<Program, String> {
        let mut parser = Parser {
            chars: regex.chars().collect(),
            pos: 0,
        };
        let nodes = parser.parse()?;
        let size = nodes
            .iter()
            .fold(1, |total: usize, node| total.saturating_add(size(node)));
        if size > MAX_INSTS {
            return Err(format!(
                "its counted repetitions expand to {size} steps; treeseal's limit is {MAX_INSTS}"
            ));
        }
        let mut insts = Vec::with_capacity(size);
        for node in &nodes {
            emit(node, &mut insts);
        }
        insts.push(Inst::Match);
        debug_assert_eq!(insts.len(), size);
        let anchored = matches!(nodes.first(), Some(Node::Look(Look::Begin)));
        let mut suffix = Vec::new();
        if let Some((Node::Look(Look::End), before)) = nodes.split_last() {
            let literals = before.iter().rev().map_while(|node| match node {
                Node::Class(Class {
                    ranges,
                    negated: false,
                }) if ranges.len() == 1 && ranges[0].0 == ranges[0].1 => {
                    char::from_u32(ranges[0].0).filter(|&c| c != '\u{FFFD}')
                }
                _ => None,
            });
            let mut chars: Vec<char> = literals.collect();
            chars.reverse();
            suffix = chars.into_iter().collect::<String>().into_bytes();
        }
        let mut program = Program {
            insts,
            anchored,
            suffix,
            fast: None,
        };
        program.fast = program.build_fast().map(Box::new);
        Ok(program)
    }
}
