//! Hashing one large file a piece at a time, across several healthcheck probes.
//!
//! A probe has a time budget; a file of hundreds of MiB does not fit in one. BLAKE3 is a
//! tree hash: a file is a left-balanced binary tree over 1 KiB chunks, and the hash of any
//! complete subtree (its *chaining value*) can be computed on its own and merged later
//! ([`blake3::hazmat`]). So a large file is read in pieces of [`PIECE_LEN`] bytes — each
//! piece a complete subtree, since the length is a power of two times the chunk length and
//! every piece starts at a multiple of it — and the chaining values of the pieces hashed
//! so far are kept on a stack, merged exactly as BLAKE3's own incremental hasher merges
//! chunks. When the last piece is in, the stack folds into the root hash, which equals
//! `blake3::hash` of the whole file (the tests compare the two for many lengths).
//!
//! A [`Partial`] is what lies between two probes: how far the file was read and the
//! stack. It says nothing about the bytes already read staying the same: a change to a
//! piece already hashed is found when the content slice comes round to the file again,
//! as for any file the slice has passed.

use blake3::hazmat::{
    merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};
use serde::{Deserialize, Serialize};

use crate::tree::Hash;

/// The length of one piece: 4 MiB, a power of two times BLAKE3's 1 KiB chunk (so each
/// piece is a complete subtree). Reading and hashing it takes about 25 ms warm and 30 ms
/// from a cold page cache at half a CPU, a tenth of the default probe budget.
pub const PIECE_LEN: u64 = 4 << 20;

/// A file hashed up to `offset`: the chaining values of its complete subtrees so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partial {
    /// Bytes hashed so far, a multiple of [`PIECE_LEN`].
    pub offset: u64,
    /// The chaining values of the complete subtrees so far, left to right.
    pub stack: Vec<ChainingValue>,
}

/// Where a file stands after one more piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// More pieces to go.
    More(Partial),
    /// The whole file is hashed: its BLAKE3 hash.
    Done(Hash),
}

impl Partial {
    /// Whether this partial state can belong to a file of `len` bytes hashed in pieces:
    /// the offset is inside the file, at a piece boundary, and the stack holds one
    /// chaining value per set bit of the number of pieces done (what the merges leave).
    /// A snapshot that fails this starts the file over.
    pub fn fits(&self, len: u64) -> bool {
        len > PIECE_LEN
            && self.offset < len
            && self.offset % PIECE_LEN == 0
            && self.stack.len() == (self.offset / PIECE_LEN).count_ones() as usize
    }

    /// The byte range of the next piece of a file of `len` bytes.
    pub fn next_piece(&self, len: u64) -> std::ops::Range<u64> {
        self.offset..(self.offset + PIECE_LEN).min(len)
    }

    /// Hashes the next piece, `data` (exactly [`Partial::next_piece`]'s bytes), of a file
    /// of `len` bytes.
    ///
    /// # Panics
    /// When `self` does not [`fit`](Partial::fits) `len` or `data` is not the next piece:
    /// callers check both, and a wrong merge would give a wrong hash, never a wrong pass.
    pub fn step(mut self, data: &[u8], len: u64) -> Step {
        assert!(self.fits(len), "partial hash state does not fit the file");
        let range = self.next_piece(len);
        assert_eq!(
            data.len() as u64,
            range.end - range.start,
            "not the next piece"
        );
        let mut cv = blake3::Hasher::new()
            .set_input_offset(range.start)
            .update(data)
            .finalize_non_root();
        if range.end < len {
            // A complete piece with more to come: merge the subtrees it completes, as
            // BLAKE3's incremental hasher does for chunks (one per trailing zero bit of
            // the number of pieces done).
            let mut done = range.end / PIECE_LEN;
            while done & 1 == 0 {
                let left = self.stack.pop().expect("one value per set bit");
                cv = merge_subtrees_non_root(&left, &cv, Mode::Hash);
                done >>= 1;
            }
            self.stack.push(cv);
            self.offset = range.end;
            return Step::More(self);
        }
        // The last piece: fold the stack from the right; the last merge is the root.
        // (The file is longer than one piece, so the stack is not empty.)
        loop {
            let left = self.stack.pop().expect("a file of several pieces");
            if self.stack.is_empty() {
                return Step::Done(*merge_subtrees_root(&left, &cv, Mode::Hash).as_bytes());
            }
            cv = merge_subtrees_non_root(&left, &cv, Mode::Hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_pieces(data: &[u8]) -> Hash {
        let len = data.len() as u64;
        let mut partial = Partial::default();
        loop {
            assert!(partial.fits(len));
            let r = partial.next_piece(len);
            match partial.step(&data[r.start as usize..r.end as usize], len) {
                Step::More(p) => partial = p,
                Step::Done(hash) => return hash,
            }
        }
    }

    #[test]
    fn pieces_hash_to_blake3_of_the_whole_file() {
        let piece = PIECE_LEN as usize;
        let data: Vec<u8> = (0..9 * piece + 3000)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
            .collect();
        // One byte over a piece up to nine pieces, at and around the boundaries where
        // the tree's shape changes (powers of two pieces).
        let mut lens = vec![piece + 1, piece + 1024, piece + 1025, 2 * piece];
        for pieces in 2..=9 {
            lens.extend([pieces * piece - 1, pieces * piece, pieces * piece + 1]);
        }
        lens.push(9 * piece + 3000);
        for len in lens {
            let want = *blake3::hash(&data[..len]).as_bytes();
            assert_eq!(in_pieces(&data[..len]), want, "length {len}");
        }
    }

    #[test]
    fn a_state_that_cannot_belong_to_the_file_does_not_fit() {
        let len = 3 * PIECE_LEN + 5;
        assert!(Partial::default().fits(len));
        // One piece, no file: a file of one piece is hashed whole.
        assert!(!Partial::default().fits(PIECE_LEN));
        let cv = [7u8; 32];
        let off = |offset, stack: usize| Partial {
            offset,
            stack: vec![cv; stack],
        };
        assert!(off(PIECE_LEN, 1).fits(len));
        assert!(off(2 * PIECE_LEN, 1).fits(len));
        assert!(off(3 * PIECE_LEN, 2).fits(len));
        assert!(!off(2 * PIECE_LEN, 2).fits(len), "stack of the wrong depth");
        assert!(!off(PIECE_LEN + 1, 1).fits(len), "not at a piece boundary");
        assert!(!off(4 * PIECE_LEN, 1).fits(len), "past the end");
    }
}
