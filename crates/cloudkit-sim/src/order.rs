//! The order in which the server serves the history: a seeded permutation of its indexes.
//!
//! Why: a generated account's indexes are in time order, and a bridge that relied on CloudKit
//! serving a chat's messages oldest first would pass every test against an unpermuted feed.
//! `p → (a·p + b) mod n` with `a` coprime to `n` is a bijection that costs nothing to store and
//! has a cheap inverse (for `record/retrieve` by name).

/// The history's serving permutation `p → (a·p + b) mod n`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Permutation {
    a: u64,
    b: u64,
    n: u64,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Permutation {
    /// The permutation of `0..n` for `seed`.
    pub(crate) fn new(seed: u64, n: u64) -> Self {
        let n = n.max(1);
        let mut a = (n as f64 * 0.618_033_988_7) as u64 | 1;
        while gcd(a, n) != 1 {
            a += 2;
        }
        Permutation { a: a % n.max(2), b: seed % n, n }
    }

    /// The index served at position `p` (`p < n`).
    pub(crate) fn at(&self, p: u64) -> u64 {
        (self.a.wrapping_mul(p) + self.b) % self.n
    }

    /// The position index `g` is served at (the inverse of [`Permutation::at`]).
    pub(crate) fn position(&self, g: u64) -> u64 {
        let n = self.n as i128;
        // a * p + b ≡ g (mod n)  =>  p ≡ a⁻¹ (g − b)
        let (mut t, mut new_t, mut r, mut new_r) = (0i128, 1i128, n, self.a as i128);
        while new_r != 0 {
            let q = r / new_r;
            (t, new_t) = (new_t, t - q * new_t);
            (r, new_r) = (new_r, r - q * new_r);
        }
        let inv = t.rem_euclid(n);
        ((inv * (g as i128 - self.b as i128)).rem_euclid(n)) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_inverts_at() {
        for n in [1u64, 2, 3, 10, 97, 1000, 28_072] {
            let perm = Permutation::new(7, n);
            let mut seen = vec![false; n as usize];
            for p in 0..n {
                let g = perm.at(p);
                assert!(!seen[g as usize], "n = {n}: {g} served twice");
                seen[g as usize] = true;
                assert_eq!(perm.position(g), p);
            }
        }
    }
}
