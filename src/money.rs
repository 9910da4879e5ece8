//! Money: an exact count of 10⁻⁸ USD in an `i64`. Parsed from and printed as decimal strings;
//! never a float anywhere money flows.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const UNITS_PER_USD: i64 = 100_000_000;
const DECIMALS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("must be a decimal string such as \"10.00\"")]
    NotDecimal,
    #[error("must not be negative")]
    Negative,
    #[error("has more than 8 decimal places")]
    TooPrecise,
    #[error("is too large (at most 10000000000.00)")]
    TooLarge,
    #[error("must be at most {0}")]
    AboveMaximum(Amount),
}

impl Amount {
    pub const ZERO: Amount = Amount(0);
    pub const MAX: Amount = Amount(i64::MAX);
    /// The most any single amount in a request may be: 10,000,000,000.00 USD. The configured
    /// maximum (`--max-amount`) is at most this. With every balance kept within
    /// `ledger::MAX_BALANCE` (2^61 units), `balance ± amount` always fits in an `i64`, on
    /// either engine.
    pub const CEILING: Amount = Amount(10_000_000_000 * UNITS_PER_USD);

    pub fn from_units(units: i64) -> Option<Amount> {
        (units >= 0).then_some(Amount(units))
    }
    pub fn units(self) -> i64 {
        self.0
    }
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Parses `"12"`, `"12.5"`, `"0.00000001"`. Rejects signs, exponents, spaces, empty parts,
    /// more than 8 decimals and values above `CEILING`.
    pub fn parse(s: &str) -> Result<Amount, AmountError> {
        Self::parse_unbounded(s).and_then(|a| if a > Amount::CEILING { Err(AmountError::TooLarge) } else { Ok(a) })
    }

    /// As `parse`, and at most `max` (the configured maximum).
    pub fn parse_at_most(s: &str, max: Amount) -> Result<Amount, AmountError> {
        Self::parse(s).and_then(|a| if a > max { Err(AmountError::AboveMaximum(max)) } else { Ok(a) })
    }

    fn parse_unbounded(s: &str) -> Result<Amount, AmountError> {
        if s.starts_with('-') {
            return Err(AmountError::Negative);
        }
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (s, None),
        };
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || frac.is_some_and(|f| !digits(f)) {
            return Err(AmountError::NotDecimal);
        }
        let frac = frac.unwrap_or("");
        if frac.len() > DECIMALS {
            return Err(AmountError::TooPrecise);
        }
        let whole_units = whole
            .trim_start_matches('0')
            .parse::<i64>()
            .or_else(|e| if whole.trim_start_matches('0').is_empty() { Ok(0) } else { Err(e) })
            .map_err(|_| AmountError::TooLarge)?;
        let frac_units: i64 = format!("{frac:0<8}").parse().map_err(|_| AmountError::NotDecimal)?;
        whole_units
            .checked_mul(UNITS_PER_USD)
            .and_then(|w| w.checked_add(frac_units))
            .map(Amount)
            .ok_or(AmountError::TooLarge)
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).and_then(Amount::from_units)
    }
}

impl fmt::Display for Amount {
    /// At least two decimals, trailing zeros beyond them dropped: `10.00`, `0.0005`, `1.23456789`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / UNITS_PER_USD;
        let frac = format!("{:08}", self.0 % UNITS_PER_USD);
        let trimmed = frac.trim_end_matches('0');
        let shown = if trimmed.len() < 2 { &frac[..2] } else { trimmed };
        write!(f, "{whole}.{shown}")
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    /// Only strings: a JSON number would already have been through a float in many clients.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Amount::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Amount {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"^\d+(\.\d{1,8})?$"))
            .description(Some("USD as a decimal string, at most 8 decimals"))
            .examples(["10.00"])
            .into()
    }
}
impl utoipa::ToSchema for Amount {}

/// Basis points: 10 000 = 100 %.
pub const BPS_SCALE: i64 = 10_000;

/// `round_half_up(amount × bps / 10 000)`, exact in 128-bit arithmetic.
pub fn apply_bps(amount: Amount, bps: i64) -> Amount {
    debug_assert!((0..=BPS_SCALE).contains(&bps));
    let product = amount.0 as i128 * bps as i128;
    let scale = BPS_SCALE as i128;
    Amount(((product + scale / 2) / scale) as i64)
}

/// How one task's held price is divided when it settles. Every unit is accounted for:
/// `to_provider + fee + to_client == held`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    pub held: Amount,
    pub to_provider: Amount,
    pub fee: Amount,
    pub to_client: Amount,
}

impl Settlement {
    /// A normal release: the provider gets the price less the platform fee.
    pub fn release(price: Amount, fee_bps: i64) -> Settlement {
        let fee = apply_bps(price, fee_bps);
        Settlement { held: price, to_provider: Amount(price.0 - fee.0), fee, to_client: Amount::ZERO }
    }

    /// A full refund: no fee.
    pub fn refund(price: Amount) -> Settlement {
        Settlement { held: price, to_provider: Amount::ZERO, fee: Amount::ZERO, to_client: price }
    }

    /// A split: the client's share first, then the fee on the provider's part only.
    pub fn split(price: Amount, fee_bps: i64, client_share_bps: i64) -> Settlement {
        let to_client = apply_bps(price, client_share_bps);
        let provider_part = Amount(price.0 - to_client.0);
        let fee = apply_bps(provider_part, fee_bps);
        Settlement { held: price, to_provider: Amount(provider_part.0 - fee.0), fee, to_client }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_formats_examples() {
        for (input, units, shown) in [
            ("0", 0, "0.00"),
            ("10", 10 * UNITS_PER_USD, "10.00"),
            ("10.5", 1_050_000_000, "10.50"),
            ("0.0005", 50_000, "0.0005"),
            ("0.00000001", 1, "0.00000001"),
            ("007.10", 710_000_000, "7.10"),
            ("10000000000", Amount::CEILING.0, "10000000000.00"),
        ] {
            let a = Amount::parse(input).unwrap();
            assert_eq!(a.units(), units, "{input}");
            assert_eq!(a.to_string(), shown, "{input}");
        }
    }

    #[test]
    fn rejects_bad_strings() {
        for (input, err) in [
            ("-1", AmountError::Negative),
            ("+1", AmountError::NotDecimal),
            ("1e5", AmountError::NotDecimal),
            ("1.", AmountError::NotDecimal),
            (".5", AmountError::NotDecimal),
            ("", AmountError::NotDecimal),
            (" 1", AmountError::NotDecimal),
            ("1,5", AmountError::NotDecimal),
            ("NaN", AmountError::NotDecimal),
            ("0.000000001", AmountError::TooPrecise),
            ("92233720368.54775808", AmountError::TooLarge),
            ("92233720368.54775807", AmountError::TooLarge),
            ("10000000000.00000001", AmountError::TooLarge),
            ("99999999999999999999999", AmountError::TooLarge),
        ] {
            assert_eq!(Amount::parse(input), Err(err), "{input:?}");
        }
    }

    #[test]
    fn the_configured_maximum_bounds_parsing() {
        let max = Amount::parse("1000000000.00").unwrap();
        assert_eq!(Amount::parse_at_most("1000000000", max), Ok(max));
        assert_eq!(Amount::parse_at_most("1000000000.00000001", max), Err(AmountError::AboveMaximum(max)));
        assert_eq!(AmountError::AboveMaximum(max).to_string(), "must be at most 1000000000.00");
        assert_eq!(Amount::parse_at_most("1e3", max), Err(AmountError::NotDecimal));
    }

    #[test]
    fn json_numbers_are_refused() {
        assert!(serde_json::from_str::<Amount>("10.5").is_err());
        assert_eq!(serde_json::from_str::<Amount>("\"10.5\"").unwrap().units(), 1_050_000_000);
    }

    #[test]
    fn fee_examples() {
        let ten = Amount::parse("10.00").unwrap();
        assert_eq!(Settlement::release(ten, 500).fee.to_string(), "0.50");
        assert_eq!(Settlement::release(ten, 500).to_provider.to_string(), "9.50");
        // Half a unit rounds up: 0.00000010 × 5 % = 0.5 units → 1.
        assert_eq!(apply_bps(Amount(10), 500), Amount(1));
        assert_eq!(apply_bps(Amount(9), 500), Amount(0));
        assert_eq!(apply_bps(Amount(1), 500), Amount(0));
        let split = Settlement::split(ten, 500, 5000);
        assert_eq!(
            (split.to_client, split.fee, split.to_provider),
            (Amount(500_000_000), Amount(25_000_000), Amount(475_000_000))
        );
        assert_eq!(Settlement::refund(ten).to_client, ten);
    }

    proptest! {
        #[test]
        fn every_settlement_accounts_for_every_unit(
            price in prop_oneof![Just(0i64), Just(1), Just(i64::MAX), 0..=i64::MAX],
            fee_bps in 0i64..=10_000,
            client_bps in 0i64..=10_000,
        ) {
            let price = Amount(price);
            for s in [Settlement::release(price, fee_bps), Settlement::refund(price), Settlement::split(price, fee_bps, client_bps)] {
                let total = s.to_provider.0 as i128 + s.fee.0 as i128 + s.to_client.0 as i128;
                prop_assert_eq!(total, price.0 as i128);
                prop_assert!(s.to_provider.0 >= 0 && s.fee.0 >= 0 && s.to_client.0 >= 0);
                prop_assert_eq!(s.held, price);
            }
            let r = Settlement::release(price, fee_bps);
            prop_assert!(r.fee <= price);
            // The fee is the rounded-half-up exact product.
            let exact = price.0 as i128 * fee_bps as i128;
            prop_assert!((r.fee.0 as i128 * 10_000 - exact).abs() <= 5_000);
        }

        #[test]
        fn format_then_parse_is_identity(units in 0..=Amount::CEILING.0) {
            let a = Amount(units);
            prop_assert_eq!(Amount::parse(&a.to_string()), Ok(a));
        }

        #[test]
        fn parse_accepts_exactly_well_formed_strings(whole in 0u64..1_000_000_000, frac in "[0-9]{0,10}") {
            let s = if frac.is_empty() { whole.to_string() } else { format!("{whole}.{frac}") };
            let parsed = Amount::parse(&s);
            if frac.len() > 8 {
                prop_assert_eq!(parsed, Err(AmountError::TooPrecise));
            } else {
                let padded = format!("{frac:0<8}");
                let expected = whole as i64 * UNITS_PER_USD + padded.parse::<i64>().unwrap();
                prop_assert_eq!(parsed.map(Amount::units), Ok(expected));
            }
        }

        #[test]
        fn arbitrary_text_parses_only_when_it_is_a_plain_decimal(s in "\\PC{0,30}") {
            if let Ok(a) = Amount::parse(&s) {
                prop_assert!(s.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
                prop_assert_eq!(Amount::parse(&a.to_string()), Ok(a));
            }
        }
    }
}
