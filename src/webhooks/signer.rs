//! Webhook signatures. `X-Webhook-Signature` is base64(HMAC-SHA256(secret, exact body bytes)),
//! which the Agrenting adapters verify; `X-Webhook-Signature-V2: t=<unix>,v1=<hex>` signs
//! `"<t>.<body>"` for receivers that want replay protection.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

pub fn signature(secret: &str, body: &[u8]) -> String {
    STANDARD.encode(mac(secret, &[body]))
}

pub fn signature_v2(secret: &str, unix_secs: i64, body: &[u8]) -> String {
    let t = unix_secs.to_string();
    let hex = crate::hex::encode(&mac(secret, &[t.as_bytes(), b".", body]));
    format!("t={t},v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_known_hmac() {
        // RFC 4231 test case 2.
        let sig = signature("Jefe", b"what do ya want for nothing?");
        let hex: String = STANDARD.decode(sig).unwrap().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn v2_signs_the_timestamp_too() {
        let a = signature_v2("secret", 100, b"{}");
        let b = signature_v2("secret", 101, b"{}");
        assert!(a.starts_with("t=100,v1=") && a.len() == "t=100,v1=".len() + 64);
        assert_ne!(a[9..], b[9..]);
    }
}
