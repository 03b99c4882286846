//! `--shard I/N`: which items one of N machines takes, by a hash of the media id that every
//! machine, build and run computes alike.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Shard `index` of `count` (1-based: `1/3`, `2/3`, `3/3`).
///
/// An id belongs to shard `(u64::from_be_bytes(sha256(id)[0..8]) mod count) + 1`: SHA-256 of
/// the id's UTF-8 bytes, its first 8 bytes read big-endian, so the split is the same on every
/// machine and release (never Rust's randomly seeded hasher) and near uniform. N machines given
/// the same source and `1/N` .. `N/N` together take every item exactly once.
///
/// ```
/// use nx_archive::Shard;
/// let shard: Shard = "2/3".parse().unwrap();
/// assert_eq!(nx_archive::shard_of("abc", 3), 1); // sha256("abc") starts ba7816bf8f01cfea
/// assert!(!shard.contains("abc"));
/// assert!("0/3".parse::<Shard>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// Shard `index` (1..=`count`) of `count`.
    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        if count == 0 || index == 0 || index > count {
            return Err(ShardError(format!(
                "shard {index}/{count}: I must be between 1 and N, and N at least 1"
            )));
        }
        Ok(Self { index, count })
    }

    /// The shard's number, from 1.
    pub fn index(self) -> u32 {
        self.index
    }

    /// How many shards there are.
    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether the media id `id` is this shard's.
    pub fn contains(self, id: &str) -> bool {
        shard_of(id, self.count) == self.index
    }
}

/// The shard (1..=`count`) of a media id; see [`Shard`]. `count` 0 is read as 1.
pub fn shard_of(id: &str, count: u32) -> u32 {
    let digest = Sha256::digest(id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % u64::from(count.max(1))) as u32 + 1
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A `--shard` value that is not `I/N` with 1 <= I <= N.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShardError(String);

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ShardError(format!("`{}` is not I/N (e.g. 1/4)", s.escape_debug()));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let i = i.trim().parse().map_err(|_| bad())?;
        let n = n.trim().parse().map_err(|_| bad())?;
        Shard::new(i, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_pinned() {
        // Computed independently: python3 -c "import hashlib; d=hashlib.sha256(b'...').digest();
        // print(int.from_bytes(d[:8],'big') % N + 1)".
        assert_eq!(shard_of("abc", 3), 1);
        assert_eq!(shard_of("abc", 7), 3);
        assert_eq!(shard_of("2bc7102f-5491-40b1-a92f-338303eab9d3", 3), 3);
        assert_eq!(shard_of("anything", 1), 1);
    }

    #[test]
    fn shards_partition_the_ids() {
        let ids: Vec<String> = (0..3000).map(|i| format!("media-{i}")).collect();
        let shards: Vec<Shard> = (1..=4).map(|i| Shard::new(i, 4).unwrap()).collect();
        let mut sizes = [0usize; 4];
        for id in &ids {
            let owners: Vec<usize> = (0..4).filter(|&s| shards[s].contains(id)).collect();
            assert_eq!(owners.len(), 1, "{id} belongs to {owners:?}");
            sizes[owners[0]] += 1;
        }
        // Near uniform: each shard within 20% of 750.
        assert!(sizes.iter().all(|&n| (600..=900).contains(&n)), "{sizes:?}");
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in ["", "1", "1/0", "0/1", "3/2", "a/b", "1/2/3", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(" 2 / 5".parse::<Shard>().unwrap().to_string(), "2/5");
    }
}
