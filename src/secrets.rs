//! Secrets the server must use again later (webhook signing secrets) are sealed at rest with
//! the server's key: ChaCha20-Poly1305 with a fresh random nonce per value and the owning row's
//! id as associated data, so a sealed value copied onto another row does not open. Everything
//! else secret is stored only as a hash.
//!
//! The key is 32 random bytes: `--secrets-key` (base64) or the key file (`--secrets-key-file`,
//! created with mode 0600 on first start). The database keeps a check value of the key it was
//! first used with, and a server started with another key refuses to start rather than fail to
//! sign later: every server of a deployment must share one key.

use std::fmt;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hmac::{Hmac, Mac};
use rand::TryRngCore;
use sha2::Sha256;

use crate::db::Db;

/// Marks a sealed value (and the format's version).
const SEALED_PREFIX: &str = "sealed.v1.";

#[derive(Clone)]
pub struct SecretsKey([u8; 32]);

impl fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretsKey([redacted])")
    }
}

impl SecretsKey {
    pub fn generate() -> SecretsKey {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.try_fill_bytes(&mut key).expect("the OS random number generator failed");
        SecretsKey(key)
    }

    /// From its base64 form (standard or URL-safe alphabet).
    pub fn parse(text: &str) -> anyhow::Result<SecretsKey> {
        let text = text.trim();
        let bytes = STANDARD.decode(text).or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')));
        let bytes = bytes.context("the secrets key must be base64")?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| anyhow::anyhow!("the secrets key must be 32 bytes"))?;
        Ok(SecretsKey(key))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// `sealed.v1.<base64url(nonce ‖ ciphertext ‖ tag)>`, bound to `row_id`.
    pub fn seal(&self, plaintext: &str, row_id: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.try_fill_bytes(&mut nonce).expect("the OS random number generator failed");
        let cipher = ChaCha20Poly1305::new((&self.0).into());
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext.as_bytes(), aad: row_id.as_bytes() })
            .expect("sealing cannot fail for a value of this size");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a value sealed for `row_id` with this key.
    pub fn open(&self, sealed: &str, row_id: &str) -> anyhow::Result<String> {
        let body = sealed.strip_prefix(SEALED_PREFIX).context("not a sealed value")?;
        let bytes = URL_SAFE_NO_PAD.decode(body).context("a sealed value is base64")?;
        anyhow::ensure!(bytes.len() > 12, "a sealed value is too short");
        let (nonce, ciphertext) = bytes.split_at(12);
        let cipher = ChaCha20Poly1305::new((&self.0).into());
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: row_id.as_bytes() })
            .map_err(|_| anyhow::anyhow!("the sealed value does not open with this key for this row"))?;
        String::from_utf8(plain).context("a sealed value is UTF-8")
    }

    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(SEALED_PREFIX)
    }

    /// A value that identifies the key without revealing it.
    fn check_value(&self) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(b"agentmarket secrets key check");
        crate::hex::encode(&mac.finalize().into_bytes())
    }
}

/// The configured key, or the key file's (created on first start).
pub fn load(inline: Option<&str>, file: &Path) -> anyhow::Result<SecretsKey> {
    if let Some(text) = inline {
        return SecretsKey::parse(text).context("--secrets-key");
    }
    match std::fs::read_to_string(file) {
        Ok(text) => SecretsKey::parse(&text).with_context(|| format!("the secrets key file {}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SecretsKey::generate();
            match write_private(file, &key.to_base64()) {
                Ok(()) => {
                    tracing::info!(file = %file.display(), "created a new secrets key; keep it safe, apart from the database's backups");
                    Ok(key)
                }
                // Another server started beside us created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load(None, file),
                Err(e) => Err(e).with_context(|| format!("cannot create the secrets key file {}", file.display())),
            }
        }
        Err(e) => Err(e).with_context(|| format!("cannot read the secrets key file {}", file.display())),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")
}

/// Refuses a key other than the one the database was first used with.
pub async fn check_against(db: &Db, key: &SecretsKey) -> anyhow::Result<()> {
    let check = key.check_value();
    sqlx::query(
        "INSERT INTO server_settings (name, value) VALUES ('secrets_key_check', $1) ON CONFLICT (name) DO NOTHING",
    )
    .bind(&check)
    .execute(db.writer())
    .await?;
    let (stored,): (String,) = sqlx::query_as("SELECT value FROM server_settings WHERE name = 'secrets_key_check'")
        .fetch_one(db.pool())
        .await?;
    anyhow::ensure!(
        stored == check,
        "this database was first used with another secrets key; start every server with the same \
         --secrets-key (or key file), or webhook signing secrets cannot be read"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_row() {
        let key = SecretsKey::generate();
        let sealed = key.seal("whsec_topsecret", "row-1");
        assert!(SecretsKey::is_sealed(&sealed) && !sealed.contains("topsecret"));
        assert_ne!(sealed, key.seal("whsec_topsecret", "row-1"), "a fresh nonce every time");
        assert_eq!(key.open(&sealed, "row-1").unwrap(), "whsec_topsecret");
        assert!(key.open(&sealed, "row-2").is_err(), "bound to its row");
        assert!(SecretsKey::generate().open(&sealed, "row-1").is_err(), "bound to its key");
        assert!(format!("{key:?}").contains("redacted"));
        assert_eq!(SecretsKey::parse(&key.to_base64()).unwrap().0, key.0);
        assert!(SecretsKey::parse("c2hvcnQ=").is_err());
    }

    #[test]
    fn the_key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agentmarket.key");
        let first = load(None, &path).unwrap();
        let again = load(None, &path).unwrap();
        assert_eq!(first.0, again.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
