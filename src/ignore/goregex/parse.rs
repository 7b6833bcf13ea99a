//! Go's `regexp/syntax` parser, as far as patternmatcher's translations need it: the
//! expression's text → [`Node`]s, with Go's refusals (and its error wording) for what it
//! rejects.

use super::{Class, Look, Node, Repeat};

const MAX_RUNE: u32 = 0x10FFFF;

fn perl_class(letter: char) -> Option<(&'static [(u32, u32)], bool)> {
    const DIGIT: &[(u32, u32)] = &[(0x30, 0x39)];
    const SPACE: &[(u32, u32)] = &[(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)];
    const WORD: &[(u32, u32)] = &[(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)];
    Some(match letter {
        'd' => (DIGIT, false),
        'D' => (DIGIT, true),
        's' => (SPACE, false),
        'S' => (SPACE, true),
        'w' => (WORD, false),
        'W' => (WORD, true),
        _ => return None,
    })
}

fn posix_class(name: &str) -> Option<(&'static [(u32, u32)], bool)> {
    let (negated, name) = match name.strip_prefix('^') {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    let ranges: &'static [(u32, u32)] = match name {
        "alnum" => &[(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
        "alpha" => &[(0x41, 0x5A), (0x61, 0x7A)],
        "ascii" => &[(0x00, 0x7F)],
        "blank" => &[(0x09, 0x09), (0x20, 0x20)],
        "cntrl" => &[(0x00, 0x1F), (0x7F, 0x7F)],
        "digit" => &[(0x30, 0x39)],
        "graph" => &[(0x21, 0x7E)],
        "lower" => &[(0x61, 0x7A)],
        "print" => &[(0x20, 0x7E)],
        "punct" => &[(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
        "space" => &[(0x09, 0x0D), (0x20, 0x20)],
        "upper" => &[(0x41, 0x5A)],
        "word" => &[(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
        "xdigit" => &[(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
        _ => return None,
    };
    Some((ranges, negated))
}

/// Append `ranges` (sorted, disjoint), or their complement, to `out`.
fn append_ranges(out: &mut Vec<(u32, u32)>, ranges: &[(u32, u32)], negated: bool) {
    if !negated {
        out.extend_from_slice(ranges);
        return;
    }
    let mut next = 0;
    for &(lo, hi) in ranges {
        if lo > next {
            out.push((next, lo - 1));
        }
        next = hi + 1;
    }
    if next <= MAX_RUNE {
        out.push((next, MAX_RUNE));
    }
}

/// Go's limit on a repeat count: `regexp/syntax` rejects `x{1001}` as an invalid repeat size.
const MAX_REPEAT: u32 = 1000;

/// The open alternative of the innermost open group.
fn current(frames: &mut [Vec<Vec<Node>>]) -> Result<&mut Vec<Node>, String> {
    frames
        .last_mut()
        .and_then(|alternatives| alternatives.last_mut())
        .ok_or_else(|| "internal: no frame".into())
}

/// Go's `parseRepeat` on text starting at `{`: `{n}`, `{n,}` or `{n,m}` with decimal counts
/// without leading zeros, as `(min, max, characters used)`; `None` when the text does not
/// have that shape (then Go reads the `{` as a literal). A count too large to hold is
/// returned as `u32::MAX`, which the caller rejects like any count over the limit.
fn parse_repeat(text: &[char]) -> Option<(u32, Option<u32>, usize)> {
    fn int(text: &[char], at: &mut usize) -> Option<u32> {
        let digits = text[*at..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 || (digits >= 2 && text[*at] == '0') {
            return None;
        }
        let value = text[*at..*at + digits].iter().try_fold(0u32, |n, &d| {
            n.checked_mul(10)?.checked_add(d.to_digit(10)?)
        });
        *at += digits;
        Some(value.unwrap_or(u32::MAX))
    }
    if text.first() != Some(&'{') {
        return None;
    }
    let mut at = 1;
    let min = int(text, &mut at)?;
    let max = match text.get(at)? {
        ',' => {
            at += 1;
            match text.get(at)? {
                '}' => None,
                _ => Some(int(text, &mut at)?),
            }
        }
        _ => Some(min),
    };
    (text.get(at)? == &'}').then_some((min, max, at + 1))
}

/// The parser's state: the expression's characters and the position reached.
pub(super) struct Parser {
    pub(super) chars: Vec<char>,
    pub(super) pos: usize,
}

impl Parser {
    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn text(&self, from: usize, to: usize) -> String {
        self.chars[from..to.min(self.chars.len())].iter().collect()
    }

    /// Applies the repetition operator `op` (`*`, `+`, `?` or a count; it starts at
    /// `start` and ends at `self.pos`) to the last node of the open alternative. Go accepts
    /// one `?` after an operator (non-greedy; it changes nothing for a yes/no match) and
    /// refuses a repeat of a repeat and a repeat of nothing.
    fn repeat_last(
        &mut self,
        frames: &mut [Vec<Vec<Node>>],
        start: usize,
        op: &str,
        after_repeat: bool,
        wrap: impl FnOnce(Box<Node>) -> Node,
    ) -> Result<(), String> {
        if self.peek_at(0) == Some('?') {
            self.pos += 1;
        }
        if after_repeat {
            return Err(format!(
                "invalid nested repetition operator `{}`",
                self.text(start, self.pos)
            ));
        }
        let frame = current(frames)?;
        let Some(last) = frame.pop() else {
            return Err(format!("missing argument to repetition operator `{op}`"));
        };
        frame.push(wrap(Box::new(last)));
        Ok(())
    }

    /// Parse the whole expression into a sequence.
    pub(super) fn parse(&mut self) -> Result<Vec<Node>, String> {
        // One frame per open group, each a list of alternatives (the last one is open).
        let mut frames: Vec<Vec<Vec<Node>>> = vec![vec![Vec::new()]];
        let mut after_repeat = false;
        while let Some(c) = self.peek_at(0) {
            let start = self.pos;
            self.pos += 1;
            let mut repeated = false;
            let node = match c {
                '(' => {
                    if self.peek_at(0) == Some('?') {
                        return Err("unsupported group syntax `(?`".into());
                    }
                    frames.push(vec![Vec::new()]);
                    None
                }
                ')' => {
                    if frames.len() < 2 {
                        return Err("unexpected `)`".into());
                    }
                    let inner = frames.pop().unwrap_or_default();
                    Some(Node::Group(inner))
                }
                '|' => {
                    frames
                        .last_mut()
                        .ok_or("internal: no frame")?
                        .push(Vec::new());
                    None
                }
                '{' => match parse_repeat(&self.chars[start..]) {
                    // Go: a `{` that does not start a valid repeat is a literal.
                    None => Some(Node::Class(Class::single('{'))),
                    Some((min, max, width)) => {
                        self.pos = start + width;
                        let text = self.text(start, self.pos);
                        let bounds = [Some(min), max];
                        if bounds.iter().flatten().any(|&n| n > MAX_REPEAT)
                            || max.is_some_and(|max| min > max)
                        {
                            return Err(format!("invalid repeat count `{text}`"));
                        }
                        self.repeat_last(&mut frames, start, &text, after_repeat, |last| {
                            Node::Counted(last, min, max)
                        })?;
                        repeated = true;
                        None
                    }
                },
                '^' => Some(Node::Look(Look::Begin)),
                '$' => Some(Node::Look(Look::End)),
                '.' => Some(Node::AnyButNewline),
                '[' => {
                    self.pos = start;
                    Some(Node::Class(self.parse_class()?))
                }
                '*' | '+' | '?' => {
                    let op = match c {
                        '*' => Repeat::Star,
                        '+' => Repeat::Plus,
                        _ => Repeat::Quest,
                    };
                    let text = c.to_string();
                    self.repeat_last(&mut frames, start, &text, after_repeat, |last| {
                        Node::Repeat(last, op)
                    })?;
                    repeated = true;
                    None
                }
                '\\' => {
                    self.pos = start;
                    Some(self.parse_escape_atom()?)
                }
                other => Some(Node::Class(Class::single(other))),
            };
            after_repeat = repeated;
            if let Some(node) = node {
                current(&mut frames)?.push(node);
            }
        }
        if frames.len() != 1 {
            return Err("missing closing `)`".into());
        }
        let mut top = frames.pop().unwrap_or_default();
        if top.len() == 1 {
            return Ok(top.pop().unwrap_or_default());
        }
        Ok(vec![Node::Group(top)])
    }

    /// A `\` outside a class, at `self.pos`.
    fn parse_escape_atom(&mut self) -> Result<Node, String> {
        let start = self.pos;
        let look = match self.peek_at(1) {
            Some('A') => Some(Look::Begin),
            Some('z') => Some(Look::End),
            Some('b') => Some(Look::WordBoundary),
            Some('B') => Some(Look::NotWordBoundary),
            Some('C') | Some('Q') | Some('E') | Some('p') | Some('P') => {
                return Err(format!(
                    "escape `{}` is not supported",
                    self.text(start, start + 2)
                ))
            }
            _ => None,
        };
        if let Some(look) = look {
            self.pos += 2;
            return Ok(Node::Look(look));
        }
        if let Some((ranges, negated)) = self.peek_at(1).and_then(perl_class) {
            self.pos += 2;
            return Ok(Node::Class(Class {
                ranges: ranges.to_vec(),
                negated,
            }));
        }
        let c = self.parse_escape()?;
        Ok(Node::Class(Class {
            ranges: vec![(c, c)],
            negated: false,
        }))
    }

    /// Go's `parseEscape`: the character a `\` escape at `self.pos` stands for.
    fn parse_escape(&mut self) -> Result<u32, String> {
        let start = self.pos;
        self.pos += 1;
        let Some(c) = self.peek_at(0) else {
            return Err("trailing backslash at end of expression".into());
        };
        self.pos += 1;
        let bad = |p: &Parser| format!("invalid escape sequence `{}`", p.text(start, p.pos));
        let is_octal = |c: Option<char>| matches!(c, Some('0'..='7'));
        match c {
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok(c as u32),
            '1'..='7' | '0' => {
                if c != '0' && !is_octal(self.peek_at(0)) {
                    // A single non-zero digit would be a backreference.
                    return Err(bad(self));
                }
                let mut value = c as u32 - '0' as u32;
                for _ in 1..3 {
                    match self.peek_at(0) {
                        Some(d @ '0'..='7') => {
                            value = value * 8 + (d as u32 - '0' as u32);
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                Ok(value)
            }
            'x' => {
                let hi = self.peek_at(0).and_then(|d| d.to_digit(16));
                let lo = self.peek_at(1).and_then(|d| d.to_digit(16));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        self.pos += 2;
                        Ok(hi * 16 + lo)
                    }
                    _ => {
                        self.pos = (self.pos + 2).min(self.chars.len());
                        Err(bad(self))
                    }
                }
            }
            'a' => Ok(0x07),
            'f' => Ok(0x0C),
            'n' => Ok(0x0A),
            'r' => Ok(0x0D),
            't' => Ok(0x09),
            'v' => Ok(0x0B),
            _ => Err(bad(self)),
        }
    }

    /// Go's `parseClassChar`.
    fn parse_class_char(&mut self, class_start: usize) -> Result<u32, String> {
        match self.peek_at(0) {
            None => Err(format!(
                "missing closing ]: `{}`",
                self.text(class_start, self.chars.len())
            )),
            Some('\\') => self.parse_escape(),
            Some(c) => {
                self.pos += 1;
                Ok(c as u32)
            }
        }
    }

    /// Go's `parseClass`, at the `[`.
    fn parse_class(&mut self) -> Result<Class, String> {
        let class_start = self.pos;
        self.pos += 1;
        let mut negated = false;
        if self.peek_at(0) == Some('^') {
            negated = true;
            self.pos += 1;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            if self.peek_at(0) == Some(']') && !first {
                self.pos += 1;
                break;
            }
            first = false;
            // POSIX class `[:name:]`; Go looks for the closing `:]` anywhere further on.
            if self.peek_at(0) == Some('[')
                && self.peek_at(1) == Some(':')
                && self.pos + 2 < self.chars.len()
            {
                let rest = &self.chars[self.pos + 2..];
                if let Some(end) = rest.windows(2).position(|w| w == [':', ']']) {
                    let name: String = rest[..end].iter().collect();
                    let whole = self.text(self.pos, self.pos + 2 + end + 2);
                    let (group, neg) = posix_class(&name)
                        .ok_or_else(|| format!("invalid character class range `{whole}`"))?;
                    append_ranges(&mut ranges, group, neg);
                    self.pos += 2 + end + 2;
                    continue;
                }
            }
            if self.peek_at(0) == Some('\\') {
                if let Some(letter @ ('p' | 'P')) = self.peek_at(1) {
                    return Err(format!("escape `\\{letter}` is not supported"));
                }
                if let Some((group, neg)) = self.peek_at(1).and_then(perl_class) {
                    append_ranges(&mut ranges, group, neg);
                    self.pos += 2;
                    continue;
                }
            }
            let range_start = self.pos;
            let lo = self.parse_class_char(class_start)?;
            let mut hi = lo;
            if self.peek_at(0) == Some('-') && self.peek_at(1).is_some_and(|c| c != ']') {
                self.pos += 1;
                hi = self.parse_class_char(class_start)?;
                if hi < lo {
                    return Err(format!(
                        "invalid character class range `{}`",
                        self.text(range_start, self.pos)
                    ));
                }
            }
            ranges.push((lo, hi));
        }
        Ok(Class { ranges, negated })
    }
}
