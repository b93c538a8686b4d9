//! Signed license tokens for **offline** verification by the products seatbridge licenses.
//!
//! seatbridge issues two kinds of token, both compact JWS (RFC 7515) signed with Ed25519
//! (`"alg":"EdDSA"`, RFC 8037):
//!
//! * [`TenantLicenseClaims`] (`typ` claim `seatbridge-license`): a tenant's plan, features, seats
//!   and license status;
//! * [`UserEntitlementClaims`] (`typ` claim `seatbridge-entitlement`): whether one provisioned
//!   user holds a seat, and which features that gives them.
//!
//! The signing keys live in a [`KeyRing`]: one active key that signs, plus retired public keys
//! that are still published so tokens they signed keep verifying. [`KeyRing::jwks`] is the JWK
//! Set (RFC 7517 / RFC 8037 `OKP`/`Ed25519`) a product fetches once and caches; [`verify`] is the
//! whole offline check a product runs (signature, `exp`/`iat` with leeway, `iss`, `typ`).
//!
//! # How long may a product trust a token offline?
//!
//! Until the token's own `exp`, plus at most the documented clock-skew leeway
//! ([`DEFAULT_LEEWAY_SECS`], 60 s) — never longer. The issuer picks the TTL when it signs:
//! by default [`DEFAULT_TENANT_TOKEN_TTL_SECS`] (24 h) for tenant license tokens and
//! [`DEFAULT_USER_TOKEN_TTL_SECS`] (1 h) for user entitlement tokens. Within that window a
//! product needs no network: the cached JWKS and the token are enough. Once the token has expired
//! the product must fetch a fresh token (and, if the token's `kid` is not in its cached JWKS,
//! a fresh JWKS) before trusting anything it says; an expired token is not a license.
//!
//! Key rotation never cuts a valid token short: [`KeyRing::rotate`] keeps the previous public
//! key in the JWKS for `keep_old_for`, which callers set to the longest TTL they issue
//! ([`MAX_TOKEN_TTL_SECS`]), so every token signed before the rotation expires before its key
//! leaves the JWKS.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use rand::RngCore as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The JWS `alg` every seatbridge token carries (RFC 8037 §3.1).
pub const ALGORITHM: &str = "EdDSA";
/// `typ` claim of a [`TenantLicenseClaims`] token.
pub const TENANT_LICENSE_TYP: &str = "seatbridge-license";
/// `typ` claim of a [`UserEntitlementClaims`] token.
pub const USER_ENTITLEMENT_TYP: &str = "seatbridge-entitlement";
/// Default lifetime of a tenant license token: 24 hours.
pub const DEFAULT_TENANT_TOKEN_TTL_SECS: i64 = 24 * 60 * 60;
/// Default lifetime of a user entitlement token: 1 hour.
pub const DEFAULT_USER_TOKEN_TTL_SECS: i64 = 60 * 60;
/// The longest TTL seatbridge issues; pass it (as a duration) to [`KeyRing::rotate`].
pub const MAX_TOKEN_TTL_SECS: i64 = DEFAULT_TENANT_TOKEN_TTL_SECS;
/// Clock-skew allowance products should pass to [`verify`].
pub const DEFAULT_LEEWAY_SECS: i64 = 60;
/// Name of the key file inside the directory given to [`KeyRing::load_or_create`].
pub const KEY_FILE_NAME: &str = "license-keys.json";
/// Environment variable that may carry the signing key for [`KeyRing::from_env_secret`].
pub const SIGNING_KEY_ENV: &str = "SEATBRIDGE_LICENSE_SIGNING_KEY";

/// Tokens longer than this are refused before any decoding (a cheap guard against abuse).
const MAX_TOKEN_LEN: usize = 64 * 1024;
/// Version of the on-disk key file layout.
const KEY_FILE_VERSION: u32 = 1;

/// Everything that can go wrong signing, verifying or managing keys.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token is not a well-formed compact JWS, or its header/claims are not what seatbridge
    /// issues.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header's `alg` is not `EdDSA` (this includes `none` and every HMAC/RSA/ECDSA alg).
    #[error("unsupported token algorithm {0:?}: only \"EdDSA\" is accepted")]
    UnsupportedAlgorithm(String),
    /// No usable Ed25519 key in the JWKS has the token's `kid`.
    #[error("no Ed25519 key with kid {0:?} in the JWKS (fetch a fresh JWKS or token)")]
    UnknownKey(String),
    /// The JWKS document itself is not a JWK Set.
    #[error("invalid JWKS: {0}")]
    InvalidJwks(String),
    /// The signature does not verify under the key named by `kid`.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` is in the past, beyond the leeway.
    #[error("token expired at {exp} (now {now}, leeway {leeway}s)")]
    Expired { exp: i64, now: i64, leeway: i64 },
    /// `iat` (or `nbf`) is in the future, beyond the leeway.
    #[error("token not valid before {not_before} (now {now}, leeway {leeway}s)")]
    NotYetValid { not_before: i64, now: i64, leeway: i64 },
    /// The `iss` claim is not the expected issuer.
    #[error("token issuer {found:?} is not the expected {expected:?}")]
    WrongIssuer { expected: String, found: String },
    /// The `typ` claim is not the expected token type.
    #[error("token type {found:?} is not the expected {expected:?}")]
    WrongType { expected: String, found: String },
    /// A secret key given as text (e.g. via [`SIGNING_KEY_ENV`]) is unusable.
    #[error("invalid license signing key: {0}")]
    InvalidKey(String),
    /// Reading or writing the key file (or its directory) failed.
    #[error("license key file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The key file exists but its content is not a valid key file.
    #[error("license key file {}: {reason}", path.display())]
    KeyFile { path: PathBuf, reason: String },
    /// The key file is readable by users other than its owner.
    #[error(
        "license key file {} has mode {mode:03o} but holds a private signing key; \
         restrict it with `chmod 600 {}` and restart",
        path.display(),
        path.display()
    )]
    KeyFilePermissions { path: PathBuf, mode: u32 },
    /// Claims could not be serialized to a JSON object.
    #[error("cannot serialize token claims: {0}")]
    Claims(String),
}

// ---------------------------------------------------------------------------------------------
// Claims
// ---------------------------------------------------------------------------------------------

/// Claims of a tenant license token (`typ` = [`TENANT_LICENSE_TYP`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantLicenseClaims {
    /// Issuer: the seatbridge deployment's public base URL (or configured issuer name).
    pub iss: String,
    /// Subject: the tenant slug.
    pub sub: String,
    /// The tenant's id.
    pub tenant_id: String,
    /// Plan (tier) name.
    pub plan: String,
    /// Features the plan grants.
    #[serde(default)]
    pub features: Vec<String>,
    /// Seats of the default pool.
    pub seats: i64,
    /// Extra seat pools by seat type; `null` means unlimited.
    #[serde(default)]
    pub seat_pools: BTreeMap<String, Option<i64>>,
    /// Effective license status (`active`, `grace`, `expired`, `suspended`, …).
    pub license_status: String,
    /// When the license itself expires (unix seconds), if it does.
    #[serde(default)]
    pub license_expires_at: Option<i64>,
    /// Monotonic version of the license; a product may refuse a token older than one it saw.
    pub license_version: i64,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Expires at (unix seconds).
    pub exp: i64,
    /// Always [`TENANT_LICENSE_TYP`].
    pub typ: String,
}

impl TenantLicenseClaims {
    /// The `typ` claim value of this token kind.
    pub const TYP: &'static str = TENANT_LICENSE_TYP;
}

/// Claims of a user entitlement token (`typ` = [`USER_ENTITLEMENT_TYP`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEntitlementClaims {
    /// Issuer, as for [`TenantLicenseClaims::iss`].
    pub iss: String,
    /// Subject: the user's id.
    pub sub: String,
    /// The tenant's id.
    pub tenant_id: String,
    /// The tenant's slug.
    pub tenant: String,
    /// The user's SCIM `userName`.
    pub user_name: String,
    /// The seat pool the user occupies.
    pub seat_type: String,
    /// Whether the user holds a seat.
    pub entitled: bool,
    /// Why (the entitlement reason code).
    pub reason: String,
    /// Features the user may use (empty when not entitled).
    #[serde(default)]
    pub features: Vec<String>,
    /// License version the decision was taken against.
    pub license_version: i64,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Expires at (unix seconds).
    pub exp: i64,
    /// Always [`USER_ENTITLEMENT_TYP`].
    pub typ: String,
}

impl UserEntitlementClaims {
    /// The `typ` claim value of this token kind.
    pub const TYP: &'static str = USER_ENTITLEMENT_TYP;
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// The key id seatbridge gives an Ed25519 public key: the first 16 hex characters of the
/// SHA-256 of its 32 raw bytes.
pub fn kid_for(public_key: &VerifyingKey) -> String {
    let digest = Sha256::digest(public_key.as_bytes());
    let mut kid = hex::encode(digest);
    kid.truncate(16);
    kid
}

/// An Ed25519 signing key with its key id. The secret never appears in `Debug` output.
#[derive(Clone)]
pub struct LicenseKey {
    kid: String,
    signing: SigningKey,
    created_at: DateTime<Utc>,
}

impl std::fmt::Debug for LicenseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicenseKey")
            .field("kid", &self.kid)
            .field(
                "public",
                &URL_SAFE_NO_PAD.encode(self.signing.verifying_key().as_bytes()),
            )
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl LicenseKey {
    /// A fresh random key (32 bytes from the thread-local CSPRNG).
    pub fn generate(now: DateTime<Utc>) -> LicenseKey {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let key = LicenseKey::from_secret_bytes(&secret, now);
        secret.fill(0);
        key
    }

    /// A key from its 32-byte Ed25519 secret (the RFC 8032 seed).
    pub fn from_secret_bytes(secret: &[u8; 32], created_at: DateTime<Utc>) -> LicenseKey {
        let signing = SigningKey::from_bytes(secret);
        LicenseKey {
            kid: kid_for(&signing.verifying_key()),
            signing,
            created_at,
        }
    }

    /// The key id (see [`kid_for`]).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// When the key was generated (or loaded, for keys given by environment).
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The public half with its kid.
    pub fn public_info(&self) -> VerifyingKeyInfo {
        VerifyingKeyInfo {
            kid: self.kid.clone(),
            key: self.verifying_key(),
        }
    }

    /// The secret as unpadded base64url — the format [`KeyRing::from_env_secret`] accepts.
    /// Handle with care: whoever has it can mint licenses.
    pub fn secret_b64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.signing.as_bytes())
    }
}

/// A public key and its key id, as published in the JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKeyInfo {
    /// Key id.
    pub kid: String,
    /// Ed25519 public key.
    pub key: VerifyingKey,
}

impl VerifyingKeyInfo {
    /// The RFC 8037 JWK of this key:
    /// `{"kty":"OKP","crv":"Ed25519","x":…,"kid":…,"use":"sig","alg":"EdDSA"}`.
    pub fn to_jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.key.as_bytes()),
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
        })
    }
}

/// A retired public key and the moment it leaves the JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredKey {
    /// The key.
    pub info: VerifyingKeyInfo,
    /// Published until (exclusive) this moment; [`KeyRing::prune`] drops it afterwards.
    pub keep_until: DateTime<Utc>,
}

/// The deployment's license signing keys: one active key and the retired public keys that are
/// still published.
#[derive(Debug, Clone)]
pub struct KeyRing {
    active: LicenseKey,
    retired: Vec<RetiredKey>,
}

#[derive(Serialize, Deserialize)]
struct KeyFileRepr {
    version: u32,
    active: ActiveKeyRepr,
    #[serde(default)]
    retired: Vec<RetiredKeyRepr>,
}

#[derive(Serialize, Deserialize)]
struct ActiveKeyRepr {
    kid: String,
    /// Unpadded base64url of the 32-byte secret.
    secret: String,
    created_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct RetiredKeyRepr {
    kid: String,
    /// Unpadded base64url of the 32-byte public key.
    x: String,
    retire_until: DateTime<Utc>,
}

impl KeyRing {
    /// A ring holding just `active`.
    pub fn new(active: LicenseKey) -> KeyRing {
        KeyRing {
            active,
            retired: Vec::new(),
        }
    }

    /// A ring with a freshly generated key (not persisted; see [`KeyRing::save`]).
    pub fn generate(now: DateTime<Utc>) -> KeyRing {
        KeyRing::new(LicenseKey::generate(now))
    }

    /// Where [`KeyRing::load_or_create`] and [`KeyRing::save`] keep the keys inside `dir`.
    pub fn key_file_path(dir: &Path) -> PathBuf {
        dir.join(KEY_FILE_NAME)
    }

    /// Load the ring from `dir/license-keys.json`, or generate a key and write that file
    /// (mode 0600, atomically) when it does not exist. `dir` is created (mode 0700) if missing.
    ///
    /// On unix a key file readable or writable by group or others is refused with
    /// [`TokenError::KeyFilePermissions`], whose message says to `chmod 600` it.
    pub fn load_or_create(dir: &Path) -> Result<KeyRing, TokenError> {
        create_private_dir(dir)?;
        let path = KeyRing::key_file_path(dir);
        if let Some(ring) = read_key_file(&path)? {
            return Ok(ring);
        }
        let ring = KeyRing::generate(Utc::now());
        if write_key_file(&ring, dir, true)? {
            Ok(ring)
        } else {
            // Another process created the file between our read and our write: use its key.
            read_key_file(&path)?.ok_or_else(|| TokenError::KeyFile {
                path: path.clone(),
                reason: "the key file vanished while it was being created".to_owned(),
            })
        }
    }

    /// A ring whose active key is the unpadded (or padded) base64url 32-byte secret given by
    /// environment ([`SIGNING_KEY_ENV`]). The kid is derived from the public key ([`kid_for`]).
    /// Such a ring has no retired keys: to rotate an environment key, publish the old JWKS
    /// alongside until the longest TTL has passed.
    pub fn from_env_secret(b64url_secret: &str) -> Result<KeyRing, TokenError> {
        let secret = decode_secret(b64url_secret.trim().trim_end_matches('='))
            .map_err(|reason| TokenError::InvalidKey(format!("{SIGNING_KEY_ENV}: {reason}")))?;
        Ok(KeyRing::new(LicenseKey::from_secret_bytes(&secret, Utc::now())))
    }

    /// The key that signs new tokens.
    pub fn active(&self) -> &LicenseKey {
        &self.active
    }

    /// Retired keys still held (including ones past `keep_until` that were not pruned yet).
    pub fn retired(&self) -> &[RetiredKey] {
        &self.retired
    }

    /// Replace the active key with a fresh one. The previous public key stays published until
    /// `now + keep_old_for` — pass the longest token TTL you issue ([`MAX_TOKEN_TTL_SECS`]) so
    /// no valid token loses its key. Keys already past their time are pruned. Call
    /// [`KeyRing::save`] afterwards to persist.
    pub fn rotate(&mut self, now: DateTime<Utc>, keep_old_for: chrono::Duration) {
        let previous = std::mem::replace(&mut self.active, LicenseKey::generate(now));
        let keep_until = now.checked_add_signed(keep_old_for).unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.retired.push(RetiredKey {
            info: previous.public_info(),
            keep_until,
        });
        self.prune(now);
    }

    /// Drop retired keys whose `keep_until` is not after `now`.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        self.retired.retain(|r| r.keep_until > now);
    }

    /// Write the ring to `dir/license-keys.json` (mode 0600, via a temporary file and rename).
    pub fn save(&self, dir: &Path) -> Result<(), TokenError> {
        create_private_dir(dir)?;
        write_key_file(self, dir, false).map(|_| ())
    }

    /// Public keys a verifier should accept at `now`: the active key, then the retired keys
    /// whose `keep_until` is after `now`.
    pub fn verifying_keys(&self, now: DateTime<Utc>) -> Vec<VerifyingKeyInfo> {
        std::iter::once(self.active.public_info())
            .chain(
                self.retired
                    .iter()
                    .filter(|r| r.keep_until > now)
                    .map(|r| r.info.clone()),
            )
            .collect()
    }

    /// The RFC 7517 JWK Set to publish (RFC 8037 `OKP`/`Ed25519` keys):
    /// `{"keys":[{"kty":"OKP","crv":"Ed25519","x":…,"kid":…,"use":"sig","alg":"EdDSA"},…]}`.
    pub fn jwks(&self, now: DateTime<Utc>) -> Value {
        let keys: Vec<Value> = self.verifying_keys(now).iter().map(VerifyingKeyInfo::to_jwk).collect();
        json!({ "keys": keys })
    }

    /// Sign `claims` (which must serialize to a JSON object) as a compact JWS with header
    /// `{"alg":"EdDSA","typ":"JWT","kid":…}`, all parts unpadded base64url.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, TokenError> {
        let payload = serde_json::to_value(claims).map_err(|e| TokenError::Claims(e.to_string()))?;
        if !payload.is_object() {
            return Err(TokenError::Claims("claims must serialize to a JSON object".to_owned()));
        }
        let payload = serde_json::to_vec(&payload).map_err(|e| TokenError::Claims(e.to_string()))?;
        let header = json!({ "alg": ALGORITHM, "typ": "JWT", "kid": self.active.kid });
        let header = serde_json::to_vec(&header).map_err(|e| TokenError::Claims(e.to_string()))?;
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
        let signature = sign_input(&self.active.signing, &signing_input);
        Ok(format!("{signing_input}.{signature}"))
    }
}

/// Ed25519-sign a JWS signing input and return the unpadded base64url signature.
fn sign_input(key: &SigningKey, signing_input: &str) -> String {
    let signature: Signature = key.sign(signing_input.as_bytes());
    URL_SAFE_NO_PAD.encode(signature.to_bytes())
}

fn decode_secret(text: &str) -> Result<[u8; 32], String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| "not unpadded base64url".to_owned())?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| format!("must decode to 32 bytes, got {}", bytes.len()))
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> TokenError + '_ {
    move |source| TokenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn create_private_dir(dir: &Path) -> Result<(), TokenError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io_err(dir))
}

/// Read and validate the key file; `Ok(None)` when it does not exist.
fn read_key_file(path: &Path) -> Result<Option<KeyRing>, TokenError> {
    let metadata = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    if !metadata.is_file() {
        return Err(TokenError::KeyFile {
            path: path.to_path_buf(),
            reason: "not a regular file".to_owned(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(TokenError::KeyFilePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    let bad = |reason: String| TokenError::KeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let repr: KeyFileRepr = serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    if repr.version != KEY_FILE_VERSION {
        return Err(bad(format!(
            "unsupported version {} (expected {KEY_FILE_VERSION})",
            repr.version
        )));
    }
    let secret = decode_secret(&repr.active.secret).map_err(|r| bad(format!("active secret: {r}")))?;
    let active = LicenseKey::from_secret_bytes(&secret, repr.active.created_at);
    if active.kid != repr.active.kid {
        return Err(bad(format!(
            "active kid {:?} does not match its key (expected {:?}); the file is corrupt",
            repr.active.kid, active.kid
        )));
    }
    let mut retired = Vec::with_capacity(repr.retired.len());
    for r in repr.retired {
        let key = decode_public_key(&r.x).map_err(|e| bad(format!("retired key {:?}: {e}", r.kid)))?;
        retired.push(RetiredKey {
            info: VerifyingKeyInfo { kid: r.kid, key },
            keep_until: r.retire_until,
        });
    }
    Ok(Some(KeyRing { active, retired }))
}

/// Write the ring to `dir/KEY_FILE_NAME` via a 0600 temporary file. With `no_clobber`, an
/// existing key file is left alone and `Ok(false)` is returned.
fn write_key_file(ring: &KeyRing, dir: &Path, no_clobber: bool) -> Result<bool, TokenError> {
    let path = KeyRing::key_file_path(dir);
    let repr = KeyFileRepr {
        version: KEY_FILE_VERSION,
        active: ActiveKeyRepr {
            kid: ring.active.kid.clone(),
            secret: ring.active.secret_b64url(),
            created_at: ring.active.created_at,
        },
        retired: ring
            .retired
            .iter()
            .map(|r| RetiredKeyRepr {
                kid: r.info.kid.clone(),
                x: URL_SAFE_NO_PAD.encode(r.info.key.as_bytes()),
                retire_until: r.keep_until,
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&repr).map_err(|e| TokenError::KeyFile {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    text.push('\n');

    let tmp = dir.join(format!(".{KEY_FILE_NAME}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = write_private_file(&tmp, text.as_bytes()).and_then(|()| {
        if no_clobber {
            // A hard link fails with AlreadyExists instead of replacing: atomic create-if-absent.
            match fs::hard_link(&tmp, &path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                // Filesystems without hard links: fall back to rename-if-absent.
                Err(_) if path.exists() => Ok(false),
                Err(_) => fs::rename(&tmp, &path).map(|()| true).map_err(io_err(&path)),
            }
        } else {
            fs::rename(&tmp, &path).map(|()| true).map_err(io_err(&path))
        }
    });
    // Gone already after a rename; after a hard link or a failure it is removed here.
    let _ = fs::remove_file(&tmp);
    if result.is_ok() {
        // Make the rename durable; not every platform can open or sync a directory.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    result
}

fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), TokenError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_err(path))?;
    file.write_all(bytes).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

fn decode_public_key(x: &str) -> Result<VerifyingKey, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(x)
        .map_err(|_| "x is not unpadded base64url".to_owned())?;
    let bytes = <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("x must decode to 32 bytes, got {}", bytes.len()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "x is not a valid Ed25519 public key".to_owned())
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

/// Verify a seatbridge token offline and return its claims.
///
/// Checks, in order: exactly three non-empty base64url segments; header `alg` is `EdDSA`
/// (`none`, `HS256`, … are refused) and no `crit`; the header `kid` names an `OKP`/`Ed25519` key
/// in `jwks`; the signature verifies (`verify_strict`); `iss` equals `expected_iss`; the `typ`
/// claim equals `expected_typ`; `exp` is after `now - leeway_secs`; `iat` (and `nbf`, if present)
/// are not after `now + leeway_secs`. Only then are the claims deserialized into `C`.
pub fn verify<C: DeserializeOwned>(
    token: &str,
    jwks: &Value,
    expected_iss: &str,
    expected_typ: &str,
    now: DateTime<Utc>,
    leeway_secs: i64,
) -> Result<C, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed(format!(
            "token longer than {MAX_TOKEN_LEN} bytes"
        )));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(
            "a compact JWS has exactly three '.'-separated segments".to_owned(),
        ));
    };
    // Header: alg first, before anything else is looked at (an unsecured `alg:none` token has
    // an empty signature segment and must be reported as the algorithm it is).
    let header = decode_json_object(header_b64, "header")?;
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.as_str(),
        Some(other) => return Err(TokenError::UnsupportedAlgorithm(other.to_string())),
        None => return Err(TokenError::UnsupportedAlgorithm(String::new())),
    };
    if alg != ALGORITHM {
        return Err(TokenError::UnsupportedAlgorithm(alg.to_owned()));
    }
    if payload_b64.is_empty() || signature_b64.is_empty() {
        return Err(TokenError::Malformed("empty JWS segment".to_owned()));
    }
    if header.contains_key("crit") {
        // RFC 7515 §4.1.11: we understand no extensions, so a token that requires one is refused.
        return Err(TokenError::Malformed("unsupported \"crit\" header".to_owned()));
    }
    let kid = match header.get("kid") {
        Some(Value::String(kid)) => kid.as_str(),
        _ => return Err(TokenError::Malformed("header has no string \"kid\"".to_owned())),
    };

    // Signature.
    let candidates = jwks_keys_for(jwks, kid)?;
    if candidates.is_empty() {
        return Err(TokenError::UnknownKey(kid.to_owned()));
    }
    let signature_bytes = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| TokenError::Malformed("signature is not unpadded base64url".to_owned()))?;
    let signature_bytes = <[u8; 64]>::try_from(signature_bytes.as_slice())
        .map_err(|_| TokenError::Malformed("an Ed25519 signature is 64 bytes".to_owned()))?;
    let signature = Signature::from_bytes(&signature_bytes);
    let signing_input_len = header_b64.len() + 1 + payload_b64.len();
    let signing_input = token.get(..signing_input_len).unwrap_or_default().as_bytes();
    if !candidates
        .iter()
        .any(|key| key.verify_strict(signing_input, &signature).is_ok())
    {
        return Err(TokenError::BadSignature);
    }

    // Claims.
    let claims = decode_json_object(payload_b64, "payload")?;
    let iss = string_claim(&claims, "iss")?;
    if iss != expected_iss {
        return Err(TokenError::WrongIssuer {
            expected: expected_iss.to_owned(),
            found: iss.to_owned(),
        });
    }
    let typ = string_claim(&claims, "typ")?;
    if typ != expected_typ {
        return Err(TokenError::WrongType {
            expected: expected_typ.to_owned(),
            found: typ.to_owned(),
        });
    }
    let leeway = leeway_secs.max(0);
    let now_secs = now.timestamp();
    let exp =
        numeric_date(&claims, "exp")?.ok_or_else(|| TokenError::Malformed("claim \"exp\" is required".to_owned()))?;
    if now_secs >= exp.saturating_add(leeway) {
        return Err(TokenError::Expired {
            exp,
            now: now_secs,
            leeway,
        });
    }
    let iat =
        numeric_date(&claims, "iat")?.ok_or_else(|| TokenError::Malformed("claim \"iat\" is required".to_owned()))?;
    let nbf = numeric_date(&claims, "nbf")?;
    for not_before in std::iter::once(iat).chain(nbf) {
        if not_before > now_secs.saturating_add(leeway) {
            return Err(TokenError::NotYetValid {
                not_before,
                now: now_secs,
                leeway,
            });
        }
    }

    serde_json::from_value(Value::Object(claims))
        .map_err(|e| TokenError::Malformed(format!("claims do not match the expected shape: {e}")))
}

fn decode_json_object(segment: &str, what: &str) -> Result<serde_json::Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed(format!("{what} is not unpadded base64url")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(TokenError::Malformed(format!("{what} is not a JSON object"))),
        Err(e) => Err(TokenError::Malformed(format!("{what} is not JSON: {e}"))),
    }
}

fn string_claim<'a>(claims: &'a serde_json::Map<String, Value>, name: &str) -> Result<&'a str, TokenError> {
    match claims.get(name) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(TokenError::Malformed(format!("claim {name:?} must be a string"))),
    }
}

/// A NumericDate claim (RFC 7519 §2), truncated to whole seconds; `None` when absent.
fn numeric_date(claims: &serde_json::Map<String, Value>, name: &str) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64))
            .map(Some)
            .ok_or_else(|| TokenError::Malformed(format!("claim {name:?} is not a NumericDate"))),
        Some(_) => Err(TokenError::Malformed(format!("claim {name:?} must be a number"))),
    }
}

/// The usable Ed25519 keys in `jwks` whose `kid` is `kid`.
fn jwks_keys_for(jwks: &Value, kid: &str) -> Result<Vec<VerifyingKey>, TokenError> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| TokenError::InvalidJwks("no \"keys\" array".to_owned()))?;
    let field = |jwk: &Value, name: &str| jwk.get(name).and_then(Value::as_str).map(str::to_owned);
    Ok(keys
        .iter()
        .filter(|jwk| field(jwk, "kid").as_deref() == Some(kid))
        .filter(|jwk| field(jwk, "kty").as_deref() == Some("OKP"))
        .filter(|jwk| field(jwk, "crv").as_deref() == Some("Ed25519"))
        .filter(|jwk| jwk.get("alg").is_none() || field(jwk, "alg").as_deref() == Some(ALGORITHM))
        .filter(|jwk| jwk.get("use").is_none() || field(jwk, "use").as_deref() == Some("sig"))
        .filter_map(|jwk| field(jwk, "x"))
        .filter_map(|x| decode_public_key(&x).ok())
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone as _};

    const ISS: &str = "https://seatbridge.example";

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
    }

    fn tenant_claims(now: DateTime<Utc>) -> TenantLicenseClaims {
        TenantLicenseClaims {
            iss: ISS.to_owned(),
            sub: "acme".to_owned(),
            tenant_id: "0190d1c2-0000-7000-8000-000000000001".to_owned(),
            plan: "business".to_owned(),
            features: vec!["scim.groups".to_owned(), "sso".to_owned()],
            seats: 25,
            seat_pools: BTreeMap::from([("contractor".to_owned(), Some(5)), ("viewer".to_owned(), None)]),
            license_status: "active".to_owned(),
            license_expires_at: Some(now.timestamp() + 86400 * 365),
            license_version: 7,
            iat: now.timestamp(),
            exp: now.timestamp() + DEFAULT_TENANT_TOKEN_TTL_SECS,
            typ: TENANT_LICENSE_TYP.to_owned(),
        }
    }

    fn user_claims(now: DateTime<Utc>) -> UserEntitlementClaims {
        UserEntitlementClaims {
            iss: ISS.to_owned(),
            sub: "0190d1c2-0000-7000-8000-00000000abcd".to_owned(),
            tenant_id: "0190d1c2-0000-7000-8000-000000000001".to_owned(),
            tenant: "acme".to_owned(),
            user_name: "ada@acme.example".to_owned(),
            seat_type: "default".to_owned(),
            entitled: true,
            reason: "seat_assigned".to_owned(),
            features: vec!["sso".to_owned()],
            license_version: 7,
            iat: now.timestamp(),
            exp: now.timestamp() + DEFAULT_USER_TOKEN_TTL_SECS,
            typ: USER_ENTITLEMENT_TYP.to_owned(),
        }
    }

    fn verify_tenant(token: &str, jwks: &Value, now: DateTime<Utc>) -> Result<TenantLicenseClaims, TokenError> {
        verify(token, jwks, ISS, TENANT_LICENSE_TYP, now, DEFAULT_LEEWAY_SECS)
    }

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    fn segments(token: &str) -> Vec<String> {
        token.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn tenant_token_round_trips() {
        let ring = KeyRing::generate(t0());
        let claims = tenant_claims(t0());
        let token = ring.sign(&claims).unwrap();
        assert_eq!(token.split('.').count(), 3);
        assert!(!token.contains('='), "base64url without padding");
        let back = verify_tenant(&token, &ring.jwks(t0()), t0()).unwrap();
        assert_eq!(back, claims);
    }

    #[test]
    fn user_token_round_trips() {
        let ring = KeyRing::generate(t0());
        let claims = user_claims(t0());
        let token = ring.sign(&claims).unwrap();
        let back: UserEntitlementClaims = verify(
            &token,
            &ring.jwks(t0()),
            ISS,
            UserEntitlementClaims::TYP,
            t0(),
            DEFAULT_LEEWAY_SECS,
        )
        .unwrap();
        assert_eq!(back, claims);
    }

    #[test]
    fn header_is_eddsa_jwt_with_kid() {
        let ring = KeyRing::generate(t0());
        let token = ring.sign(&tenant_claims(t0())).unwrap();
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&segments(&token)[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            json!({"alg": "EdDSA", "typ": "JWT", "kid": ring.active().kid()})
        );
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let ring = KeyRing::generate(t0());
        let token = ring.sign(&tenant_claims(t0())).unwrap();
        let parts = segments(&token);
        let mut claims = tenant_claims(t0());
        claims.seats = 25_000;
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64(&serde_json::to_value(&claims).unwrap()),
            parts[2]
        );
        assert!(matches!(
            verify_tenant(&forged, &ring.jwks(t0()), t0()),
            Err(TokenError::BadSignature)
        ));
    }

    #[test]
    fn tampered_signature_is_rejected() {
        let ring = KeyRing::generate(t0());
        let token = ring.sign(&tenant_claims(t0())).unwrap();
        let parts = segments(&token);
        let mut sig = URL_SAFE_NO_PAD.decode(&parts[2]).unwrap();
        sig[10] ^= 0x01;
        let forged = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
        assert!(matches!(
            verify_tenant(&forged, &ring.jwks(t0()), t0()),
            Err(TokenError::BadSignature)
        ));
    }

    #[test]
    fn another_rings_jwks_is_rejected() {
        let ring = KeyRing::generate(t0());
        let other = KeyRing::generate(t0());
        let token = ring.sign(&tenant_claims(t0())).unwrap();
        assert!(matches!(
            verify_tenant(&token, &other.jwks(t0()), t0()),
            Err(TokenError::UnknownKey(kid)) if kid == ring.active().kid()
        ));

        // Same kid but a different key (e.g. a spoofed JWKS entry): the signature fails.
        let mut spoofed = other.jwks(t0());
        spoofed["keys"][0]["kid"] = json!(ring.active().kid());
        assert!(matches!(
            verify_tenant(&token, &spoofed, t0()),
            Err(TokenError::BadSignature)
        ));
    }

    #[test]
    fn alg_none_and_hs256_are_rejected() {
        let ring = KeyRing::generate(t0());
        let jwks = ring.jwks(t0());
        let token = ring.sign(&tenant_claims(t0())).unwrap();
        let parts = segments(&token);
        let kid = ring.active().kid();

        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
            parts[1]
        );
        assert!(matches!(verify_tenant(&none, &jwks, t0()), Err(TokenError::UnsupportedAlgorithm(a)) if a == "none"));
        // `none` with a (bogus) non-empty signature segment too.
        let none = format!("{}.{}.{}", b64(&json!({"alg": "none", "kid": kid})), parts[1], parts[2]);
        assert!(matches!(
            verify_tenant(&none, &jwks, t0()),
            Err(TokenError::UnsupportedAlgorithm(_))
        ));

        // HS256 "signed" with the public key as HMAC secret (the classic confusion attack).
        let hs = format!(
            "{}.{}.{}",
            b64(&json!({"alg": "HS256", "typ": "JWT", "kid": kid})),
            parts[1],
            parts[2]
        );
        assert!(matches!(verify_tenant(&hs, &jwks, t0()), Err(TokenError::UnsupportedAlgorithm(a)) if a == "HS256"));

        let missing = format!("{}.{}.{}", b64(&json!({"typ": "JWT", "kid": kid})), parts[1], parts[2]);
        assert!(matches!(
            verify_tenant(&missing, &jwks, t0()),
            Err(TokenError::UnsupportedAlgorithm(_))
        ));

        // Case matters: "eddsa" is not "EdDSA".
        let lower = format!(
            "{}.{}.{}",
            b64(&json!({"alg": "eddsa", "kid": kid})),
            parts[1],
            parts[2]
        );
        assert!(matches!(
            verify_tenant(&lower, &jwks, t0()),
            Err(TokenError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let ring = KeyRing::generate(t0());
        let jwks = ring.jwks(t0());
        let token = ring.sign(&tenant_claims(t0())).unwrap();
        let parts = segments(&token);
        for bad in [
            String::new(),
            "abc".to_owned(),
            format!("{}.{}", parts[0], parts[1]),
            format!("{token}.x"),
            format!("{}..{}", parts[0], parts[2]),
            format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
            format!("{}.{}.{}", parts[0], parts[1], &parts[2][..20]),
            format!("{}.{}.{}", b64(&json!(["alg", "EdDSA"])), parts[1], parts[2]),
        ] {
            assert!(
                matches!(verify_tenant(&bad, &jwks, t0()), Err(TokenError::Malformed(_))),
                "{bad:?}"
            );
        }
        let crit = format!(
            "{}.{}.{}",
            b64(&json!({"alg": "EdDSA", "kid": ring.active().kid(), "crit": ["b64"], "b64": false})),
            parts[1],
            parts[2]
        );
        assert!(matches!(
            verify_tenant(&crit, &jwks, t0()),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            verify_tenant(&token, &json!({"nokeys": []}), t0()),
            Err(TokenError::InvalidJwks(_))
        ));
    }

    #[test]
    fn expiry_and_leeway() {
        let ring = KeyRing::generate(t0());
        let jwks = ring.jwks(t0());
        let claims = tenant_claims(t0());
        let token = ring.sign(&claims).unwrap();
        let exp = Utc.timestamp_opt(claims.exp, 0).unwrap();

        assert!(verify_tenant(&token, &jwks, exp - Duration::seconds(1)).is_ok());
        // Past exp but inside the leeway: still accepted.
        assert!(
            verify::<TenantLicenseClaims>(&token, &jwks, ISS, TENANT_LICENSE_TYP, exp + Duration::seconds(30), 60)
                .is_ok()
        );
        // At exp + leeway: expired.
        assert!(matches!(
            verify::<TenantLicenseClaims>(&token, &jwks, ISS, TENANT_LICENSE_TYP, exp + Duration::seconds(60), 60),
            Err(TokenError::Expired { .. })
        ));
        // Without leeway, exp itself is already too late (RFC 7519 §4.1.4).
        assert!(matches!(
            verify::<TenantLicenseClaims>(&token, &jwks, ISS, TENANT_LICENSE_TYP, exp, 0),
            Err(TokenError::Expired { .. })
        ));
    }

    #[test]
    fn issued_in_the_future_beyond_leeway_is_rejected() {
        let ring = KeyRing::generate(t0());
        let jwks = ring.jwks(t0());
        let token = ring.sign(&tenant_claims(t0())).unwrap();
        assert!(verify::<TenantLicenseClaims>(
            &token,
            &jwks,
            ISS,
            TENANT_LICENSE_TYP,
            t0() - Duration::seconds(59),
            60
        )
        .is_ok());
        assert!(matches!(
            verify::<TenantLicenseClaims>(&token, &jwks, ISS, TENANT_LICENSE_TYP, t0() - Duration::seconds(61), 60),
            Err(TokenError::NotYetValid { .. })
        ));
    }

    #[test]
    fn wrong_issuer_and_wrong_type_are_rejected() {
        let ring = KeyRing::generate(t0());
        let jwks = ring.jwks(t0());
        let token = ring.sign(&tenant_claims(t0())).unwrap();
        assert!(matches!(
            verify::<TenantLicenseClaims>(&token, &jwks, "https://other.example", TENANT_LICENSE_TYP, t0(), 60),
            Err(TokenError::WrongIssuer { .. })
        ));
        // A tenant token presented where a user entitlement is expected.
        assert!(matches!(
            verify::<UserEntitlementClaims>(&token, &jwks, ISS, USER_ENTITLEMENT_TYP, t0(), 60),
            Err(TokenError::WrongType { .. })
        ));
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_until_pruned() {
        let mut ring = KeyRing::generate(t0());
        let old_kid = ring.active().kid().to_owned();
        let token = ring.sign(&tenant_claims(t0())).unwrap();

        ring.rotate(t0(), Duration::seconds(MAX_TOKEN_TTL_SECS));
        assert_ne!(ring.active().kid(), old_kid);
        let later = t0() + Duration::hours(12);
        let jwks = ring.jwks(later);
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        assert!(verify_tenant(&token, &jwks, later).is_ok());
        // New tokens are signed with the new key.
        let new_token = ring.sign(&tenant_claims(later)).unwrap();
        assert!(verify_tenant(&new_token, &jwks, later).is_ok());

        // Past keep_until the old key is no longer published, even before prune...
        let past = t0() + Duration::seconds(MAX_TOKEN_TTL_SECS);
        assert_eq!(ring.jwks(past)["keys"].as_array().unwrap().len(), 1);
        // ...and after prune it is gone from the ring.
        ring.prune(past);
        assert!(ring.retired().is_empty());
        assert!(matches!(
            verify_tenant(&token, &ring.jwks(later), later),
            Err(TokenError::UnknownKey(kid)) if kid == old_kid
        ));
    }

    #[cfg(unix)]
    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn load_or_create_creates_then_reloads_the_same_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state").join("keys");
        let ring = KeyRing::load_or_create(&dir).unwrap();
        let path = KeyRing::key_file_path(&dir);
        assert!(path.is_file());
        #[cfg(unix)]
        assert_eq!(mode_of(&path), 0o600);
        // No temporary files left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);

        let again = KeyRing::load_or_create(&dir).unwrap();
        assert_eq!(again.active().kid(), ring.active().kid());
        assert_eq!(again.active().secret_b64url(), ring.active().secret_b64url());
        assert_eq!(again.active().created_at(), ring.active().created_at());

        // A token from the first instance verifies with the second's JWKS.
        let token = ring.sign(&tenant_claims(t0())).unwrap();
        assert!(verify_tenant(&token, &again.jwks(t0()), t0()).is_ok());
    }

    #[test]
    fn save_persists_rotation_and_retired_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ring = KeyRing::load_or_create(tmp.path()).unwrap();
        let token = ring.sign(&tenant_claims(t0())).unwrap();
        ring.rotate(t0(), Duration::hours(24));
        ring.save(tmp.path()).unwrap();
        #[cfg(unix)]
        assert_eq!(mode_of(&KeyRing::key_file_path(tmp.path())), 0o600);

        let loaded = KeyRing::load_or_create(tmp.path()).unwrap();
        assert_eq!(loaded.active().kid(), ring.active().kid());
        assert_eq!(loaded.retired(), ring.retired());
        assert!(verify_tenant(&token, &loaded.jwks(t0()), t0()).is_ok());
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn world_readable_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().unwrap();
        KeyRing::load_or_create(tmp.path()).unwrap();
        let path = KeyRing::key_file_path(tmp.path());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = KeyRing::load_or_create(tmp.path()).unwrap_err();
        assert!(
            matches!(err, TokenError::KeyFilePermissions { mode: 0o644, .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(&format!("chmod 600 {}", path.display())), "{message}");
        // The file was not replaced.
        assert_eq!(mode_of(&path), 0o644);
    }

    #[test]
    fn corrupt_key_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let ring = KeyRing::load_or_create(tmp.path()).unwrap();
        let path = KeyRing::key_file_path(tmp.path());
        let text = fs::read_to_string(&path).unwrap();
        let other = LicenseKey::generate(t0());
        fs::write(
            &path,
            text.replace(&ring.active().secret_b64url(), &other.secret_b64url()),
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(matches!(
            KeyRing::load_or_create(tmp.path()),
            Err(TokenError::KeyFile { .. })
        ));
    }

    #[test]
    fn env_secret_round_trips_and_derives_kid() {
        let key = LicenseKey::generate(t0());
        let ring = KeyRing::from_env_secret(&format!("  {}\n", key.secret_b64url())).unwrap();
        assert_eq!(ring.active().kid(), key.kid());
        let digest = hex::encode(Sha256::digest(key.verifying_key().as_bytes()));
        assert_eq!(ring.active().kid(), &digest[..16]);
        let token = ring.sign(&user_claims(t0())).unwrap();
        let jwks = KeyRing::new(key).jwks(t0());
        assert!(verify::<UserEntitlementClaims>(&token, &jwks, ISS, USER_ENTITLEMENT_TYP, t0(), 60).is_ok());

        assert!(matches!(
            KeyRing::from_env_secret("not base64!"),
            Err(TokenError::InvalidKey(_))
        ));
        assert!(matches!(
            KeyRing::from_env_secret(&URL_SAFE_NO_PAD.encode([1u8; 16])),
            Err(TokenError::InvalidKey(_))
        ));
        // The error never echoes the secret.
        let secret = URL_SAFE_NO_PAD.encode([7u8; 31]);
        let err = KeyRing::from_env_secret(&secret).unwrap_err().to_string();
        assert!(!err.contains(&secret));
    }

    #[test]
    fn debug_output_does_not_leak_the_secret() {
        let ring = KeyRing::generate(t0());
        let debug = format!("{ring:?}");
        assert!(!debug.contains(&ring.active().secret_b64url()));
        assert!(debug.contains(ring.active().kid()));
    }

    #[test]
    fn jwks_has_rfc8037_shape() {
        let mut ring = KeyRing::generate(t0());
        ring.rotate(t0(), Duration::hours(1));
        let jwks = ring.jwks(t0());
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        for jwk in keys {
            let obj = jwk.as_object().unwrap();
            let mut names: Vec<&str> = obj.keys().map(String::as_str).collect();
            names.sort_unstable();
            assert_eq!(names, ["alg", "crv", "kid", "kty", "use", "x"]);
            assert_eq!(jwk["kty"], "OKP");
            assert_eq!(jwk["crv"], "Ed25519");
            assert_eq!(jwk["use"], "sig");
            assert_eq!(jwk["alg"], "EdDSA");
            assert!(jwk.get("d").is_none(), "private key material must never be published");
            let x = jwk["x"].as_str().unwrap();
            assert_eq!(x.len(), 43);
            assert_eq!(URL_SAFE_NO_PAD.decode(x).unwrap().len(), 32);
        }
        assert_eq!(keys[0]["kid"], ring.active().kid());
    }

    /// RFC 8037 appendix A.1/A.2/A.4: the RFC 8032 test-1 key.
    #[test]
    fn rfc8037_test_vector() {
        let d = URL_SAFE_NO_PAD
            .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .unwrap();
        let secret: [u8; 32] = d.as_slice().try_into().unwrap();
        assert_eq!(
            hex::encode(secret),
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
        );
        let key = LicenseKey::from_secret_bytes(&secret, t0());
        assert_eq!(
            hex::encode(key.verifying_key().as_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let jwk = key.public_info().to_jwk();
        assert_eq!(jwk["x"], "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        assert_eq!(jwk["kid"], key.kid());

        // A.4: signing "Example of Ed25519 signing" under {"alg":"EdDSA"}.
        let input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
        assert_eq!(
            sign_input(&key.signing, input),
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
    }

    #[test]
    fn sign_refuses_non_object_claims() {
        let ring = KeyRing::generate(t0());
        assert!(matches!(ring.sign(&vec![1, 2, 3]), Err(TokenError::Claims(_))));
    }
}
