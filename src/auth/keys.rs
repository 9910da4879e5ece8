//! Credential format: `<prefix><40 base62 chars from the OS RNG>`. Only the SHA-256 of a
//! credential is stored; lookups are one indexed equality query on that hash, so no slow
//! password hashing sits on the request path (the secrets carry ~238 bits of entropy).

use std::cell::Cell;
use std::fmt;

use rand::TryRngCore;
use rand::rngs::OsRng;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_LEN: usize = 40;
/// Shortest random part accepted when parsing (the contract says ≥ 32).
const MIN_RANDOM_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A person's API key, `ap_…`.
    User,
    /// An agent's API key, `agk_…`.
    Agent,
    /// A session token from `/auth/authenticate`, `ast_…`.
    Session,
}

impl KeyKind {
    pub fn prefix(self) -> &'static str {
        match self {
            KeyKind::User => "ap_",
            KeyKind::Agent => "agk_",
            KeyKind::Session => "ast_",
        }
    }

    /// Recognises a presented credential by its prefix and shape. `None` = malformed.
    pub fn of(token: &str) -> Option<KeyKind> {
        [KeyKind::Agent, KeyKind::Session, KeyKind::User].into_iter().find(|kind| {
            token.strip_prefix(kind.prefix()).is_some_and(|rest| {
                rest.len() >= MIN_RANDOM_LEN && rest.len() <= 128 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
            })
        })
    }
}

/// What a secret reads as wherever it is recorded rather than shown: the idempotency record of
/// the response that created it, and therefore any replay of that response.
pub const SHOWN_ONCE: &str = "[shown once: this secret is not kept and cannot be replayed]";

thread_local! {
    /// Set while a response is serialized for its record instead of for the caller.
    static RECORDING: Cell<bool> = const { Cell::new(false) };
    /// Set when a secret was serialized in plain text since the last `take_shown`.
    static SHOWN: Cell<bool> = const { Cell::new(false) };
}

/// A plaintext secret. It is handed to the caller once and never logged: `Debug` is redacted,
/// and serialized inside `recording` it is the `SHOWN_ONCE` marker.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainSecret(String);

/// Runs `f` (a serialization) with every `PlainSecret` written as `SHOWN_ONCE`.
pub fn recording<T>(f: impl FnOnce() -> T) -> T {
    RECORDING.with(|r| r.set(true));
    let out = f();
    RECORDING.with(|r| r.set(false));
    out
}

/// Whether a secret was serialized in plain text since the last call (and resets it).
pub fn take_shown() -> bool {
    SHOWN.with(|s| s.replace(false))
}

impl serde::Serialize for PlainSecret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if RECORDING.with(Cell::get) {
            s.serialize_str(SHOWN_ONCE)
        } else {
            SHOWN.with(|shown| shown.set(true));
            s.serialize_str(&self.0)
        }
    }
}

impl utoipa::PartialSchema for PlainSecret {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A secret, shown once; a replay of this response carries a marker instead"))
            .into()
    }
}

impl utoipa::ToSchema for PlainSecret {}

impl PlainSecret {
    /// A secret chosen by the client (a webhook signing secret), to be shown back once.
    pub fn from_client(s: String) -> PlainSecret {
        PlainSecret(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for PlainSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainSecret([redacted])")
    }
}

/// A freshly generated credential: the plaintext (show once) and what may be stored.
#[derive(Debug)]
pub struct NewKey {
    pub plaintext: PlainSecret,
    pub hash: String,
    /// Non-secret display prefix, e.g. `ap_AbC1…`.
    pub display_prefix: String,
    pub last4: String,
}

pub fn generate(kind: KeyKind) -> NewKey {
    let mut random = String::with_capacity(RANDOM_LEN);
    let mut buf = [0u8; 64];
    while random.len() < RANDOM_LEN {
        OsRng.try_fill_bytes(&mut buf).expect("the OS random number generator failed");
        // Rejection sampling keeps every character equally likely (248 = 4 × 62).
        for b in buf.iter().filter(|b| **b < 248) {
            if random.len() == RANDOM_LEN {
                break;
            }
            random.push(BASE62[(*b % 62) as usize] as char);
        }
    }
    let plaintext = format!("{}{}", kind.prefix(), random);
    NewKey {
        hash: hash(&plaintext),
        display_prefix: format!("{}{}…", kind.prefix(), &random[..4]),
        last4: random[RANDOM_LEN - 4..].to_string(),
        plaintext: PlainSecret(plaintext),
    }
}

/// Hex SHA-256 of a presented credential: the only form that is stored or looked up.
pub fn hash(token: &str) -> String {
    crate::hex::sha256(token.as_bytes())
}

/// What lists show about a key: never the secret, only its display prefix and last four.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    /// Non-secret display prefix, e.g. `ap_AbC1…`.
    pub prefix: String,
    pub last4: String,
    pub scopes: Vec<String>,
    pub max_price_per_hire: Option<crate::money::Amount>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_their_prefix_and_length_and_parse_back() {
        for kind in [KeyKind::User, KeyKind::Agent, KeyKind::Session] {
            let key = generate(kind);
            let text = key.plaintext.expose();
            assert!(text.starts_with(kind.prefix()));
            assert_eq!(text.len(), kind.prefix().len() + RANDOM_LEN);
            assert_eq!(KeyKind::of(text), Some(kind));
            assert_eq!(key.hash, hash(text));
            assert!(text.ends_with(&key.last4));
            assert!(key.display_prefix.starts_with(kind.prefix()));
        }
    }

    #[test]
    fn keys_are_distinct_and_use_the_whole_alphabet() {
        let keys: Vec<String> = (0..200).map(|_| generate(KeyKind::User).plaintext.into_inner()).collect();
        let unique: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len());
        let chars: std::collections::HashSet<char> = keys.iter().flat_map(|k| k[3..].chars()).collect();
        assert_eq!(chars.len(), 62, "200 keys of 40 chars should cover base62");
    }

    #[test]
    fn malformed_tokens_are_not_recognised() {
        assert_eq!(KeyKind::of("ap_short"), None);
        assert_eq!(KeyKind::of("xx_0123456789012345678901234567890123456789"), None);
        assert_eq!(KeyKind::of("ap_01234567890123456789012345678901234567-9"), None);
        assert_eq!(KeyKind::of(""), None);
        assert_eq!(KeyKind::of("agk_0123456789012345678901234567890123456789"), Some(KeyKind::Agent));
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let key = generate(KeyKind::User);
        let debug = format!("{key:?}");
        assert!(!debug.contains(key.plaintext.expose()));
        assert!(debug.contains("[redacted]"));
    }

    #[test]
    fn hash_is_lowercase_hex_sha256() {
        assert_eq!(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
