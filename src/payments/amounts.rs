//! Amounts as providers send them: JSON numbers (`12.34`, `1.5e-7`) or decimal strings
//! (`"12.34"`), read as exact decimals from their text, never through arithmetic on floats.

use serde_json::Value;

use crate::money::Amount;

/// Most decimals kept when comparing crypto amounts (more than any coin uses).
const CRYPTO_DECIMALS: u32 = 18;

/// The text of a provider's number or decimal string.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.trim().to_string()),
        _ => None,
    }
}

/// `text` as a whole number of 10^-`decimals`, extra decimals cut off (so a credit is never more
/// than what arrived). `None` when it is not a non-negative decimal or is far too large.
fn scaled(text: &str, decimals: u32) -> Option<i128> {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !all_digits(whole) || !all_digits(frac) || exponent.abs() > 40 {
        return None;
    }
    let digits = format!("{whole}{frac}");
    let digits = digits.trim_start_matches('0');
    // value = digits × 10^-(frac.len() - exponent); we want it in units of 10^-decimals.
    let shift = decimals as i32 + exponent - frac.len() as i32;
    if digits.is_empty() {
        return Some(0);
    }
    if shift >= 0 {
        if digits.len() as i32 + shift > 36 {
            return None;
        }
        digits.parse::<i128>().ok()?.checked_mul(10i128.checked_pow(shift as u32)?)
    } else {
        let keep = digits.len() as i32 + shift;
        if keep <= 0 { Some(0) } else { digits[..keep as usize].parse::<i128>().ok() }
    }
}

/// A USD amount from a provider (`actually_paid_at_fiat`, `price_amount`), truncated to 8
/// decimals; `None` when absent, malformed or beyond `Amount::CEILING`.
pub fn usd(v: Option<&Value>) -> Option<Amount> {
    let units = scaled(&text_of(v?)?, 8)?;
    let amount = Amount::from_units(i64::try_from(units).ok()?)?;
    (amount <= Amount::CEILING).then_some(amount)
}

/// Whether crypto amount `paid` is at least `asked` (both as the provider printed them).
pub fn at_least(paid: Option<&Value>, asked: Option<&Value>) -> bool {
    let value = |v: Option<&Value>| text_of(v?).and_then(|t| scaled(&t, CRYPTO_DECIMALS));
    matches!((value(paid), value(asked)), (Some(p), Some(a)) if a > 0 && p >= a)
}

/// An id the provider may send as a number or a string.
pub fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn provider_amounts_are_exact_and_truncated() {
        let units = |v: Value| usd(Some(&v)).map(Amount::units);
        assert_eq!(units(json!(12.34)), Some(1_234_000_000));
        assert_eq!(units(json!("12.34")), Some(1_234_000_000));
        assert_eq!(units(json!(10)), Some(1_000_000_000));
        assert_eq!(units(json!(1.5e-7)), Some(15));
        assert_eq!(units(json!("9.999999999")), Some(999_999_999));
        assert_eq!(units(json!("0")), Some(0));
        assert_eq!(units(json!(-1)), None);
        assert_eq!(units(json!("1e400")), None);
        assert_eq!(units(json!("abc")), None);
        assert_eq!(units(json!("20000000000")), None, "beyond the ceiling");
        assert_eq!(units(json!(null)), None);
    }

    #[test]
    fn crypto_amounts_compare_exactly() {
        assert!(at_least(Some(&json!(0.00123)), Some(&json!("0.00123"))));
        assert!(!at_least(Some(&json!("0.001229999999999999")), Some(&json!(0.00123))));
        assert!(!at_least(Some(&json!(1)), None));
        assert_eq!(id_text(Some(&json!(5524759814u64))).as_deref(), Some("5524759814"));
    }
}
