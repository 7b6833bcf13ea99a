//! Running a compiled [`Program`]: a Thompson-style NFA simulation over the path decoded as
//! Go decodes a string, and, for programs of at most 64 instructions, the same automaton
//! bit-parallel ([`Fast`]).

use super::{Inst, Look, Program};

/// The same automaton with thread sets as bit masks (bit `pc` set = thread at `pc`).
/// Consuming instructions always continue at `pc + 1`, so a step is a mask and a shift;
/// the epsilon closures are precomputed for each of the 16 contexts a position can be in
/// (at the start?, at the end?, word character before?, word character after?).
#[derive(Debug, Clone)]
pub(super) struct Fast {
    /// `closure[context * 64 + pc]`: what `pc` reaches without consuming input.
    closure: Vec<u64>,
    /// For each ASCII character, the consuming instructions that accept it.
    ascii: [u64; 128],
    /// The bit of the `Match` instruction.
    matched: u64,
}

fn is_word(c: Option<u32>) -> bool {
    c.and_then(char::from_u32)
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A set of program counters, in insertion order.
#[derive(Default)]
struct Threads {
    seen: Vec<bool>,
    list: Vec<usize>,
}

impl Threads {
    /// Empty the set and make room for `size` program counters.
    fn reset(&mut self, size: usize) {
        self.clear();
        if self.seen.len() < size {
            self.seen.resize(size, false);
        }
    }

    fn clear(&mut self) {
        for &pc in &self.list {
            self.seen[pc] = false;
        }
        self.list.clear();
    }
}

/// Buffers reused across matches on one thread.
#[derive(Default)]
struct Scratch {
    current: Threads,
    next: Threads,
    stack: Vec<usize>,
    text: Vec<u32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

impl Program {
    pub(super) fn build_fast(&self) -> Option<Fast> {
        let size = self.insts.len();
        if size > 64 {
            return None;
        }
        let mut closure = vec![0u64; 16 * 64];
        let mut stack = Vec::new();
        for context in 0..16 {
            for start in 0..size {
                let mut mask = 0u64;
                stack.push(start);
                while let Some(pc) = stack.pop() {
                    if mask & (1 << pc) != 0 {
                        continue;
                    }
                    mask |= 1 << pc;
                    match &self.insts[pc] {
                        Inst::Jump(to) => stack.push(*to),
                        Inst::Split(a, b) => {
                            stack.push(*b);
                            stack.push(*a);
                        }
                        Inst::Look(look) if Self::holds_in(*look, context) => stack.push(pc + 1),
                        _ => {}
                    }
                }
                closure[context * 64 + start] = mask;
            }
        }
        let mut ascii = [0u64; 128];
        for (c, accept) in (0u32..).zip(ascii.iter_mut()) {
            *accept = self.accepting(c);
        }
        Some(Fast {
            closure,
            ascii,
            matched: 1 << (size - 1),
        })
    }

    /// The consuming instructions that accept `c`, as a mask (fast path only).
    fn accepting(&self, c: u32) -> u64 {
        let mut mask = 0;
        for (pc, inst) in self.insts.iter().enumerate() {
            let accepts = match inst {
                Inst::Class(class) => class.contains(c),
                Inst::AnyButNewline => c != u32::from('\n'),
                _ => false,
            };
            if accepts {
                mask |= 1 << pc;
            }
        }
        mask
    }

    /// Whether `look` holds in a context numbered as in [`Fast`].
    fn holds_in(look: Look, context: usize) -> bool {
        let (begin, end) = (context & 1 != 0, context & 2 != 0);
        let (word_before, word_after) = (context & 4 != 0, context & 8 != 0);
        match look {
            Look::Begin => begin,
            Look::End => end,
            Look::WordBoundary => word_before != word_after,
            Look::NotWordBoundary => word_before == word_after,
        }
    }

    fn run_fast(&self, fast: &Fast, text: &[u32]) -> bool {
        let context = |at: usize| {
            let before = at.checked_sub(1).map(|i| text[i]);
            let after = text.get(at).copied();
            usize::from(at == 0)
                | usize::from(at == text.len()) << 1
                | usize::from(is_word(before)) << 2
                | usize::from(is_word(after)) << 3
        };
        let closure_of = |mut mask: u64, context: usize| {
            let table = &fast.closure[context * 64..context * 64 + 64];
            let mut out = 0;
            while mask != 0 {
                out |= table[mask.trailing_zeros() as usize];
                mask &= mask - 1;
            }
            out
        };
        let mut current = fast.closure[context(0) * 64];
        for (at, &c) in text.iter().enumerate() {
            if current & fast.matched != 0 {
                return true;
            }
            let accept = match fast.ascii.get(c as usize) {
                Some(&mask) => mask,
                None => self.accepting(c),
            };
            let stepped = (current & accept) << 1;
            let next_context = context(at + 1);
            current = closure_of(stepped, next_context);
            if !self.anchored {
                current |= fast.closure[next_context * 64];
            } else if current == 0 {
                return false;
            }
        }
        current & fast.matched != 0
    }

    fn holds(look: Look, at: usize, text: &[u32]) -> bool {
        let before = at.checked_sub(1).map(|i| text[i]);
        let after = text.get(at).copied();
        match look {
            Look::Begin => at == 0,
            Look::End => at == text.len(),
            Look::WordBoundary => is_word(before) != is_word(after),
            Look::NotWordBoundary => is_word(before) == is_word(after),
        }
    }

    /// Add `pc` and everything reachable from it without consuming input.
    fn add(
        &self,
        threads: &mut Threads,
        pc: usize,
        at: usize,
        text: &[u32],
        stack: &mut Vec<usize>,
    ) {
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            if threads.seen[pc] {
                continue;
            }
            threads.seen[pc] = true;
            threads.list.push(pc);
            match &self.insts[pc] {
                Inst::Jump(to) => stack.push(*to),
                Inst::Split(a, b) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Inst::Look(look) if Self::holds(*look, at, text) => stack.push(pc + 1),
                _ => {}
            }
        }
    }

    /// Go's `Regexp.Match`: whether the expression matches somewhere in `path`.
    pub(in crate::ignore) fn is_match(&self, path: &[u8]) -> bool {
        if !path.ends_with(&self.suffix) {
            return false;
        }
        SCRATCH.with(|scratch| self.run(path, &mut scratch.borrow_mut(), true))
    }

    /// Both engines' answers, bit-parallel (if the program is small enough) and not.
    #[cfg(test)]
    pub(in crate::ignore) fn both_engines(&self, path: &[u8]) -> (Option<bool>, bool) {
        let mut scratch = Scratch::default();
        let fast = self
            .fast
            .as_ref()
            .map(|_| self.run(path, &mut scratch, true));
        (fast, self.run(path, &mut scratch, false))
    }

    fn run(&self, path: &[u8], scratch: &mut Scratch, allow_fast: bool) -> bool {
        let Scratch {
            current,
            next,
            stack,
            text,
        } = scratch;
        decode(path, text);
        if let Some(fast) = self.fast.as_deref().filter(|_| allow_fast) {
            return self.run_fast(fast, text);
        }
        current.reset(self.insts.len());
        next.reset(self.insts.len());
        for at in 0..=text.len() {
            // Go's MatchString searches the whole text; with a leading `^` (which the
            // translation always has) a match can only start at 0.
            if at == 0 || !self.anchored {
                self.add(current, 0, at, text, stack);
            } else if current.list.is_empty() {
                return false;
            }
            for index in 0..current.list.len() {
                let pc = current.list[index];
                let step = match &self.insts[pc] {
                    Inst::Match => return true,
                    Inst::Class(class) => text.get(at).is_some_and(|&c| class.contains(c)),
                    Inst::AnyButNewline => text.get(at).is_some_and(|&c| c != u32::from('\n')),
                    _ => false,
                };
                if step {
                    self.add(next, pc + 1, at + 1, text, stack);
                }
            }
            std::mem::swap(current, next);
            next.clear();
        }
        false
    }
}

/// The characters of `path` as Go's regexp sees them: valid UTF-8 sequences decoded,
/// every other byte read as U+FFFD on its own.
fn decode(path: &[u8], out: &mut Vec<u32>) {
    out.clear();
    for chunk in path.utf8_chunks() {
        out.extend(chunk.valid().chars().map(u32::from));
        out.extend(std::iter::repeat_n(0xFFFD, chunk.invalid().len()));
    }
}
