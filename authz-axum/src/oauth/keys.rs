//! The token service's signing keys (ES256) and their rotation: a new key is published in the
//! JWKS `publish_ahead` before it signs, so resource servers that cache the JWKS know it before
//! they see its first token; the key it replaces stays published until the last token it
//! signed has expired.

use std::sync::{Arc, RwLock};

use authz_core::jwt::{Algorithm, KeySet};
use authz_core::keystore::StoreError;
use authz_core::oauth::{SigningKeyRecord, TokenStore};
use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

struct Loaded {
    record: SigningKeyRecord,
    pair: EcdsaKeyPair,
}

/// The keys as loaded from the store at one moment.
pub(crate) struct KeyRing {
    keys: Vec<Loaded>,
    /// Public keys for checking our own tokens (introspection, revocation).
    pub(crate) verification: KeySet,
}

impl KeyRing {
    fn load(records: Vec<SigningKeyRecord>) -> Result<Self, StoreError> {
        let mut keys = Vec::with_capacity(records.len());
        for record in records {
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &record.private_pkcs8)
                .map_err(|_| StoreError(format!("signing key {} is not a P-256 PKCS#8 key", record.kid)))?;
            keys.push(Loaded { record, pair });
        }
        let jwks =
            serde_json::json!({ "keys": keys.iter().map(|k| public_jwk(&k.record)).collect::<Vec<_>>() });
        let verification = if keys.is_empty() {
            KeySet::default()
        } else {
            KeySet::from_jwks_value(&jwks, [Algorithm::ES256].into_iter().collect())
                .map_err(|e| StoreError(format!("signing keys: {e}")))?
        };
        Ok(Self { keys, verification })
    }

    /// The key that signs at `now`: the newest whose `signs_from` has come and that is not
    /// retired.
    fn signer(&self, now: u64) -> Option<&Loaded> {
        self.keys
            .iter()
            .filter(|k| k.record.signs_from <= now && k.record.retire_after.is_none_or(|r| now < r))
            .max_by_key(|k| (k.record.signs_from, k.record.created_at))
    }

    /// The JWKS at `now`: every key not yet retired (a pending one included).
    pub(crate) fn jwks(&self, now: u64) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .filter(|k| k.record.retire_after.is_none_or(|r| now < r))
            .map(|k| public_jwk(&k.record))
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

fn public_jwk(record: &SigningKeyRecord) -> serde_json::Value {
    serde_json::from_str(&record.public_jwk).unwrap_or(serde_json::Value::Null)
}

/// A fresh P-256 key published at `now`, signing from `signs_from`.
pub(crate) fn generate(now: u64, signs_from: u64) -> SigningKeyRecord {
    let rng = SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("P-256 key generation");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .expect("a fresh key parses");
    let point = pair.public_key().as_ref(); // 0x04 || x || y
    let (x, y) = (&point[1..33], &point[33..65]);
    let x = URL_SAFE_NO_PAD.encode(x);
    let y = URL_SAFE_NO_PAD.encode(y);
    // RFC 7638 thumbprint as the kid: stable, and distinct keys never share one.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()));
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid, "x": x, "y": y,
    });
    SigningKeyRecord {
        kid,
        alg: "ES256".into(),
        private_pkcs8: pkcs8.as_ref().to_vec(),
        public_jwk: jwk.to_string(),
        created_at: now,
        signs_from,
        retire_after: None,
    }
}

/// The keys, reloaded from the store after every change (and periodically, so that instances
/// sharing a database converge).
pub(crate) struct SigningKeys {
    ring: RwLock<Arc<KeyRing>>,
}

impl SigningKeys {
    /// Loads the keys; if none signs at `now`, makes one that signs at once.
    pub(crate) async fn open(store: &dyn TokenStore, now: u64) -> Result<Self, StoreError> {
        let mut ring = KeyRing::load(store.signing_keys().await?)?;
        if ring.signer(now).is_none() {
            store.insert_signing_key(generate(now, now)).await?;
            ring = KeyRing::load(store.signing_keys().await?)?;
        }
        Ok(Self {
            ring: RwLock::new(Arc::new(ring)),
        })
    }

    /// The current ring.
    pub(crate) fn ring(&self) -> Arc<KeyRing> {
        self.ring
            .read()
            .map(|r| Arc::clone(&r))
            .unwrap_or_else(|p| Arc::clone(&p.into_inner()))
    }

    /// Reloads from the store.
    pub(crate) async fn reload(&self, store: &dyn TokenStore) -> Result<(), StoreError> {
        let ring = Arc::new(KeyRing::load(store.signing_keys().await?)?);
        match self.ring.write() {
            Ok(mut r) => *r = ring,
            Err(p) => *p.into_inner() = ring,
        }
        Ok(())
    }

    /// Signs `claims` as an RFC 9068 access token (`typ: at+jwt`) with the key current at `now`.
    pub(crate) fn sign(&self, claims: &serde_json::Value, now: u64) -> Result<String, StoreError> {
        let ring = self.ring();
        let key = ring
            .signer(now)
            .ok_or_else(|| StoreError("no signing key is current; rotate the keys".into()))?;
        let header = serde_json::json!({ "alg": "ES256", "typ": "at+jwt", "kid": key.record.kid });
        let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig = key
            .pair
            .sign(&SystemRandom::new(), token.as_bytes())
            .map_err(|_| StoreError("ES256 signing failed".into()))?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        Ok(token)
    }

    /// Rotation: publishes a new key that signs from `now + publish_ahead`, and retires the
    /// current one once the last token it can sign has expired (`max_token_lifetime` after the
    /// new key takes over). Returns the new `kid`.
    pub(crate) async fn rotate(
        &self,
        store: &dyn TokenStore,
        now: u64,
        publish_ahead: u64,
        max_token_lifetime: u64,
    ) -> Result<String, StoreError> {
        let new = generate(now, now + publish_ahead);
        let kid = new.kid.clone();
        let takeover = new.signs_from;
        let current: Vec<String> = self
            .ring()
            .keys
            .iter()
            .filter(|k| k.record.retire_after.is_none())
            .map(|k| k.record.kid.clone())
            .collect();
        store.insert_signing_key(new).await?;
        for old in current {
            store
                .retire_signing_key(&old, takeover + max_token_lifetime)
                .await?;
        }
        self.reload(store).await?;
        Ok(kid)
    }

    /// When the newest key started signing, or will.
    pub(crate) fn newest_signs_from(&self) -> Option<u64> {
        self.ring().keys.iter().map(|k| k.record.signs_from).max()
    }
}
