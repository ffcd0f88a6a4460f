//! [`PermissionSet`]: a bitset over a catalog's dense permission indices.

use smallvec::SmallVec;

use crate::catalog::{PermissionCatalog, PermissionId};

/// A set of permissions of one catalog, as a bitset.
///
/// Checking a permission is one bit test: no allocation, no hashing. Sets of catalogs of up to
/// 256 permissions live inline (no heap at all).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PermissionSet {
    fingerprint: u64,
    words: SmallVec<[u64; 4]>,
}

impl PermissionSet {
    /// The empty set for `catalog`.
    pub fn empty(catalog: &PermissionCatalog) -> Self {
        Self::with_capacity(catalog.fingerprint(), catalog.len())
    }

    pub(crate) fn with_capacity(fingerprint: u64, bits: usize) -> Self {
        Self {
            fingerprint,
            words: SmallVec::from_elem(0, bits.div_ceil(64)),
        }
    }

    /// The fingerprint of the catalog this set belongs to.
    #[inline]
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Whether the set holds `id`.
    #[inline]
    pub fn contains(&self, id: PermissionId) -> bool {
        let i = id.index();
        match self.words.get(i / 64) {
            Some(w) => (w >> (i % 64)) & 1 == 1,
            None => false,
        }
    }

    /// Adds `id`.
    pub fn insert(&mut self, id: PermissionId) {
        let i = id.index();
        if let Some(w) = self.words.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    /// Removes `id`.
    pub fn remove(&mut self, id: PermissionId) {
        let i = id.index();
        if let Some(w) = self.words.get_mut(i / 64) {
            *w &= !(1 << (i % 64));
        }
    }

    /// Adds every permission of `other` (which must belong to the same catalog).
    #[inline]
    pub fn union_with(&mut self, other: &PermissionSet) {
        debug_assert_eq!(self.fingerprint, other.fingerprint);
        for (a, b) in self.words.iter_mut().zip(other.words.iter()) {
            *a |= *b;
        }
    }

    /// Whether every permission of `other` is in `self`.
    pub fn is_superset(&self, other: &PermissionSet) -> bool {
        self.words
            .iter()
            .zip(other.words.iter())
            .all(|(a, b)| a & b == *b)
    }

    /// Whether `self` and `other` share a permission.
    pub fn intersects(&self, other: &PermissionSet) -> bool {
        self.words.iter().zip(other.words.iter()).any(|(a, b)| a & b != 0)
    }

    /// Number of permissions in the set.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// The ids in the set, in index order.
    pub fn iter(&self) -> impl Iterator<Item = PermissionId> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, w)| {
            let w = *w;
            (0..64)
                .filter(move |b| (w >> b) & 1 == 1)
                .map(move |b| PermissionId::new(wi * 64 + b))
        })
    }
}

impl std::fmt::Debug for PermissionSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter().map(|id| id.index())).finish()
    }
}
