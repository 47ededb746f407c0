//! JSON documents in one form on both backends: [`canonicalize`] and [`parse`].
//!
//! Postgres `jsonb` reformats numbers (`1e400` comes back as `1` and 400 zeros, `1e-7` as
//! `0.0000001`, `-0` as `0`) while SQLite keeps the text as written, and `serde_json`
//! alone cannot hold numbers beyond `f64`. The workspace builds `serde_json` with
//! `arbitrary_precision`, so a [`Number`] keeps its text, and every document the library
//! writes or reads goes through [`canonicalize`], which gives each numeric value exactly
//! one form, whatever the backend and however the number was written:
//!
//! * **Integer or fraction** is decided as Postgres decides it: a number is an integer
//!   when it has no fractional digits left after applying its exponent (`1e2`, `1.50e2`,
//!   `-0`), a fraction otherwise (`1.0`, `1e-7`, `100e-2`).
//! * An integer that fits `i64`/`u64` becomes that integer.
//! * Any other number whose decimal value survives a round trip through `f64` (parsed,
//!   printed in its shortest form, the same decimal value) becomes that `f64`, as
//!   [`Number::from_f64`] makes it.
//! * Any other number (`1e400`, `18446744073709551617`, `0.1000000000000000000001`) is
//!   kept exactly, as text: an integer as its digits, or as `d.ddde+N` when that would
//!   take more than 20 zeros of padding; a fraction as `ddd.ddd`, or `d.ddde-N` past 20
//!   leading zeros (trailing zeros dropped, at least one fractional digit kept).
//! * Zero has no sign (Postgres cannot store `-0`): `-0` reads as `0`, `-0.0` as `0.0`.
//!
//! ```
//! use entities::json::canonicalize;
//! let mut doc: serde_json::Value =
//!     serde_json::from_str(r#"[1e400, 1.00, 1e2, -0.0, 18446744073709551617, 0.1]"#).unwrap();
//! canonicalize(&mut doc);
//! assert_eq!(doc.to_string(), "[1e+400,1.0,100,0.0,18446744073709551617,0.1]");
//! ```

use serde_json::{Number, Value};

/// The deepest nesting of arrays and objects a stored document may have: SQLite's
/// `json_valid` refuses deeper documents, and a CHECK refuses them on Postgres.
pub const MAX_DEPTH: usize = 1000;

/// Puts every number of `value` in its canonical form (see the [module](self) docs).
/// Iterative, so any depth is safe.
pub fn canonicalize(value: &mut Value) {
    let mut pending: Vec<&mut Value> = vec![value];
    while let Some(v) = pending.pop() {
        match v {
            Value::Number(n) => {
                if let Some(canonical) = canonical_number(n) {
                    *n = canonical;
                }
            }
            Value::Array(items) => pending.extend(items.iter_mut()),
            Value::Object(map) => pending.extend(map.values_mut()),
            _ => {}
        }
    }
}

/// `value` with every number in its canonical form.
pub fn canonical(mut value: Value) -> Value {
    canonicalize(&mut value);
    value
}

/// Why a stored text is not a document the library reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// Parses a stored document and canonicalises it. Accepts nesting up to [`MAX_DEPTH`]
/// (`serde_json` alone stops at 128); deeper documents are refused before parsing, so a
/// hostile one cannot exhaust the stack.
pub fn parse(text: &[u8]) -> Result<Value, ParseError> {
    let depth = nesting_depth(text);
    if depth > MAX_DEPTH {
        return Err(ParseError(format!(
            "nested {depth} levels deep; at most {MAX_DEPTH} are read"
        )));
    }
    let mut de = serde_json::Deserializer::from_slice(text);
    de.disable_recursion_limit();
    let mut value: Value =
        serde::Deserialize::deserialize(&mut de).map_err(|e| ParseError(e.to_string()))?;
    de.end().map_err(|e| ParseError(e.to_string()))?;
    canonicalize(&mut value);
    Ok(value)
}

/// The deepest nesting of arrays and objects in JSON text (brackets inside strings do
/// not count). Malformed text gives some number; the parser reports the error.
fn nesting_depth(text: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// A JSON number as a decimal: `(-1)^neg × digits × 10^pow`, `digits` without leading or
/// trailing zeros (empty for zero).
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    neg: bool,
    digits: Vec<u8>,
    pow: i128,
    /// Postgres's rule: no fractional digits left after the exponent.
    integer: bool,
}

/// Exponents beyond this (which Postgres refuses anyway) leave the text as it is.
const MAX_EXPONENT_DIGITS: usize = 30;

fn parse_decimal(text: &str) -> Option<Decimal> {
    let (neg, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (int, frac) = match mantissa.find('.') {
        Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
        None => (mantissa, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    if mantissa.contains('.') && frac.is_empty() {
        return None;
    }
    let exp: i128 = match exponent {
        None => 0,
        Some(e) => {
            let (sign, digits) = match e.as_bytes().first() {
                Some(b'-') => (-1, &e[1..]),
                Some(b'+') => (1, &e[1..]),
                _ => (1, e),
            };
            if digits.is_empty() || !all_digits(digits) {
                return None;
            }
            let digits = digits.trim_start_matches('0');
            if digits.len() > MAX_EXPONENT_DIGITS {
                return None;
            }
            sign * digits.parse::<i128>().unwrap_or(0)
        }
    };
    let frac_len = frac.len() as i128;
    let integer = frac_len <= exp;
    let joined: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
    let first = joined.iter().position(|&d| d != 0);
    let Some(first) = first else {
        return Some(Decimal {
            neg: false,
            digits: Vec::new(),
            pow: 0,
            integer,
        });
    };
    let last = joined.iter().rposition(|&d| d != 0).unwrap_or(first);
    let trailing = (joined.len() - 1 - last) as i128;
    Some(Decimal {
        neg,
        digits: joined[first..=last].to_vec(),
        pow: exp - frac_len + trailing,
        integer,
    })
}

/// The canonical form of `n`, or `None` when it already is canonical (or is not a
/// number this module understands, which then stays as it is).
fn canonical_number(n: &Number) -> Option<Number> {
    let text = n.as_str();
    let canonical = canonical_number_of(text)?;
    (canonical.as_str() != text).then_some(canonical)
}

fn canonical_number_of(text: &str) -> Option<Number> {
    let d = parse_decimal(text)?;
    if d.digits.is_empty() {
        return Some(if d.integer {
            Number::from(0u64)
        } else {
            Number::from_f64(0.0)?
        });
    }
    if d.integer
        && let Some(n) = as_integer(&d)
    {
        return Some(n);
    }
    if let Some(f) = surviving_f64(&d) {
        return Number::from_f64(f);
    }
    exact_text(&d).parse().ok()
}

/// `d` as an `i64`/`u64`, when it is an integer in range.
fn as_integer(d: &Decimal) -> Option<Number> {
    if d.pow < 0 || d.digits.len() as i128 + d.pow > 20 {
        return None;
    }
    let mut value: u128 = 0;
    for &digit in &d.digits {
        value = value.checked_mul(10)?.checked_add(u128::from(digit))?;
    }
    for _ in 0..d.pow {
        value = value.checked_mul(10)?;
    }
    if d.neg {
        let magnitude = i128::try_from(value).ok()?;
        i64::try_from(-magnitude).ok().map(Number::from)
    } else {
        u64::try_from(value).ok().map(Number::from)
    }
}

/// The `f64` of `d`, when printing that `f64` in its shortest form gives `d`'s value back.
fn surviving_f64(d: &Decimal) -> Option<f64> {
    let f: f64 = scientific(d).parse().ok()?;
    if !f.is_finite() || f == 0.0 {
        return None;
    }
    let shortest = parse_decimal(&format!("{f:e}"))?;
    (shortest.neg == d.neg && shortest.digits == d.digits && shortest.pow == d.pow).then_some(f)
}

/// `d` as `[-]d.ddde+N` / `[-]d.ddde-N`.
fn scientific(d: &Decimal) -> String {
    let mut out = String::with_capacity(d.digits.len() + 8);
    if d.neg {
        out.push('-');
    }
    out.push(char::from(b'0' + d.digits[0]));
    if d.digits.len() > 1 {
        out.push('.');
        out.extend(d.digits[1..].iter().map(|&x| char::from(b'0' + x)));
    }
    // `e+N`, as serde_json's parser writes a positive exponent into a `Number`.
    let exponent = d.pow + d.digits.len() as i128 - 1;
    out.push_str(if exponent < 0 { "e" } else { "e+" });
    out.push_str(&exponent.to_string());
    out
}

/// Zeros of padding past which an exact number is written in scientific form.
const MAX_PADDING: i128 = 20;

/// The canonical text of a number kept exactly (see the module docs).
fn exact_text(d: &Decimal) -> String {
    let digits: String = d.digits.iter().map(|&x| char::from(b'0' + x)).collect();
    let sign = if d.neg { "-" } else { "" };
    let zeros = |n: i128| "0".repeat(usize::try_from(n).unwrap_or(0));
    if d.integer {
        if d.pow <= MAX_PADDING {
            return format!("{sign}{digits}{}", zeros(d.pow));
        }
        return scientific(d);
    }
    if d.pow >= 0 {
        // A fraction whose value is whole (`100.00`): its text held these zeros already.
        return format!("{sign}{digits}{}.0", zeros(d.pow));
    }
    let before_point = d.digits.len() as i128 + d.pow;
    if before_point > 0 {
        let (int, frac) = digits.split_at(before_point as usize);
        return format!("{sign}{int}.{frac}");
    }
    if -before_point <= MAX_PADDING {
        return format!("{sign}0.{}{digits}", zeros(-before_point));
    }
    scientific(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(text: &str) -> String {
        canonical(serde_json::from_str(text).unwrap()).to_string()
    }

    #[test]
    fn integers_are_integers_by_postgres_rule() {
        assert_eq!(canon("1e2"), "100");
        assert_eq!(canon("1.50e2"), "150");
        assert_eq!(canon("-0"), "0");
        assert_eq!(canon("0e999"), "0");
        assert_eq!(canon("18446744073709551615"), "18446744073709551615");
        assert_eq!(canon("-9223372036854775808"), "-9223372036854775808");
        assert_eq!(canon("1e16"), "10000000000000000");
    }

    #[test]
    fn fractions_that_survive_f64_are_f64() {
        assert_eq!(canon("1.00"), "1.0");
        assert_eq!(canon("0.0000001"), "1e-7");
        assert_eq!(canon("1e-7"), "1e-7");
        assert_eq!(canon("100e-2"), "1.0");
        assert_eq!(canon("-0.0"), "0.0");
        assert_eq!(canon("0.000e2"), "0.0");
        assert_eq!(canon("1.5e300"), serde_json::json!(1.5e300).to_string());
        // 1e20 is past u64 but exact in f64.
        assert_eq!(
            canon("100000000000000000000"),
            serde_json::json!(1e20).to_string()
        );
        assert_eq!(canon("0.30000000000000004"), "0.30000000000000004");
    }

    #[test]
    fn other_numbers_are_kept_exactly() {
        let zeros = "0".repeat(400);
        assert_eq!(canon("1e400"), "1e+400");
        assert_eq!(canon("1E+400"), "1e+400");
        assert_eq!(canon(&format!("1{zeros}")), "1e+400");
        assert_eq!(canon("-1e400"), "-1e+400");
        assert_eq!(canon("18446744073709551617"), "18446744073709551617");
        assert_eq!(
            canon("123456789012345678901234567890"),
            "123456789012345678901234567890"
        );
        assert_eq!(canon("1.8446744073709551617e19"), "18446744073709551617");
        assert_eq!(
            canon("0.1000000000000000000001000"),
            "0.1000000000000000000001"
        );
        assert_eq!(canon("1e-400"), "1e-400");
        assert_eq!(canon(&format!("0.{}1", "0".repeat(399))), "1e-400");
        assert_eq!(canon("9007199254740993.0"), "9007199254740993.0");
        assert_eq!(canon("0.10000000000000001"), "0.10000000000000001");
        assert_eq!(canon("1.5e-400"), "1.5e-400");
    }

    #[test]
    fn canonical_form_is_a_fixed_point() {
        for text in [
            "1e400",
            "1.5e400",
            "-1.5e-400",
            "18446744073709551617",
            "9007199254740993.0",
            "0.1000000000000000000001",
            "1e-25",
            "100000000000000000000000.5",
            "1e16",
            "0.1",
            "1.0",
            "12",
            "-7",
        ] {
            let once = canon(text);
            assert_eq!(canon(&once), once, "{text}");
        }
    }

    #[test]
    fn library_written_floats_read_back_equal() {
        for f in [
            0.1,
            1.0,
            -2.5,
            1e-7,
            1e300,
            5e-324,
            f64::MAX,
            1e15,
            123456.789,
        ] {
            let v = serde_json::json!(f);
            assert_eq!(canonical(v.clone()), v, "{f}");
        }
    }

    #[test]
    fn parse_reads_deep_documents_up_to_the_limit() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(deep(MAX_DEPTH).as_bytes()).is_ok());
        assert!(parse(deep(MAX_DEPTH + 1).as_bytes()).is_err());
        assert_eq!(nesting_depth(br#"{"a":"[[[[","b":[{}]}"#), 3);
        assert!(parse(br#"{"a": 1e400} x"#).is_err());
    }
}
