//! Headers of tokens that verified, kept by their base64url text: tokens from one issuer share
//! a handful of headers (`alg`, `kid`, `typ`), so the next token with the same header segment
//! skips its decoding and JSON parse.
//!
//! Safe to trust because decoding a header is a pure function of its segment's bytes: the memo
//! gives exactly what [`decode`](super::verifier::decode) would. Only headers of tokens that
//! passed every check are remembered, so presenting forged tokens cannot fill it; what depends
//! on the issuer or the allowlist is still checked for every token.

use std::sync::Arc;

use quick_cache::sync::Cache;

use super::verifier::JoseHeader;

/// How many distinct headers are kept (a few per issuer and key rotation).
const ENTRIES: usize = 64;
/// Longer header segments are not kept (ordinary ones are 36–150 bytes).
const MAX_SEGMENT: usize = 512;

/// Verified header segment → its parsed header.
pub(crate) struct HeaderMemo(Cache<Box<str>, Arc<JoseHeader>>);

impl HeaderMemo {
    pub(crate) fn new() -> Self {
        Self(Cache::new(ENTRIES))
    }

    /// The header a verified token with this exact segment had.
    #[inline]
    pub(crate) fn get(&self, segment: &str) -> Option<Arc<JoseHeader>> {
        self.0.get(segment)
    }

    /// Remembers the header of a token that verified.
    pub(crate) fn remember(&self, segment: &str, header: &Arc<JoseHeader>) {
        if segment.len() <= MAX_SEGMENT {
            self.0.insert(segment.into(), Arc::clone(header));
        }
    }
}

impl std::fmt::Debug for HeaderMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderMemo")
            .field("entries", &self.0.len())
            .finish()
    }
}
