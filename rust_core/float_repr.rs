//! Python's `repr(float)` (and so `str(float)` and the float text of `json.dumps`), in pure Rust.
//!
//! Python writes the shortest decimal digits that read back as the same double (David Gay's
//! algorithm, mode 0), and of several such strings the one closest to the double, a tie going to
//! the even digit. Rust's `{:e}` formatting finds the same number of digits, but breaks such ties
//! upwards (`1059438285926254.25` gives `...254.3` where Python writes `...254.2`). Ties need
//! 16 or more digits (with fewer, two candidates cannot both read back as the same double), so
//! those are redone with Rust's exact formatting to that many digits, which rounds half to even.
//! The layout is then redone as CPython's `format_float_short` does for `repr`:
//!
//! * with `decpt` the position of the decimal point relative to the digits (value =
//!   `0.d1d2... * 10**decpt`), exponent notation is used when `decpt <= -4` or `decpt > 16`,
//!   i.e. when the decimal exponent is below -4 or at least 16: `1e-05`, `1.5e+16`, `1e+300`;
//!   the exponent has a sign and at least two digits, the mantissa no trailing `.0`;
//! * otherwise positional notation, always with a fractional part: `0.0001`, `100.0`,
//!   `1234567890123456.0`, `-0.0`;
//! * `inf`, `-inf` and `nan` (never `-nan`).

use std::io::Write;

/// Python's `repr(x)` of a float.
pub fn float_repr(x: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_float_repr(&mut out, x);
    // Only ASCII is ever written.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends Python's `repr(x)` of a float to `out`.
pub fn write_float_repr(out: &mut Vec<u8>, x: f64) {
    if x.is_nan() {
        out.extend_from_slice(b"nan");
        return;
    }
    if x.is_infinite() {
        out.extend_from_slice(if x < 0.0 { b"-inf" } else { b"inf" });
        return;
    }
    if x.is_sign_negative() {
        out.push(b'-');
    }
    // Shortest round-trip digits of |x| in scientific notation: "d[.ddd]e[-]N". At most 17
    // digits, a point, an 'e', a sign and 3 exponent digits: 32 bytes are plenty.
    let mut buf = [0u8; 32];
    let len = {
        let mut cursor = &mut buf[..];
        let room = cursor.len();
        if write!(cursor, "{:e}", x.abs()).is_err() {
            return;
        }
        room - cursor.len()
    };
    let (mut digits, mut ndigits, mut e_at) = split_digits(&buf[..len]);
    let mut len = len;
    if ndigits >= 16 {
        // Correctly rounded to that many digits, ties to even (see the module docs).
        let exact = {
            let mut cursor = &mut buf[..];
            let room = cursor.len();
            if write!(cursor, "{:.*e}", ndigits - 1, x.abs()).is_err() {
                return;
            }
            room - cursor.len()
        };
        len = exact;
        (digits, ndigits, e_at) = split_digits(&buf[..len]);
        while ndigits > 1 && digits[ndigits - 1] == b'0' {
            ndigits -= 1;
        }
    }
    let sci = &buf[..len];
    let digits = &digits[..ndigits.max(1)];
    let exponent = parse_exponent(sci.get(e_at + 1..).unwrap_or(b"0"));
    let decpt = exponent + 1;

    if decpt <= -4 || decpt > 16 {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exponent < 0 { b'-' } else { b'+' });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(itoa::Buffer::new().format(magnitude).as_bytes());
    } else if decpt <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', decpt.unsigned_abs() as usize));
        out.extend_from_slice(digits);
    } else {
        let decpt = decpt as usize;
        if decpt < digits.len() {
            out.extend_from_slice(&digits[..decpt]);
            out.push(b'.');
            out.extend_from_slice(&digits[decpt..]);
        } else {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(b'0', decpt - digits.len()));
            out.extend_from_slice(b".0");
        }
    }
}

/// The significant digits of `d[.ddd]e[-]N` (at most 24), how many there are, and where the
/// `e` is.
fn split_digits(sci: &[u8]) -> ([u8; 24], usize, usize) {
    let e_at = sci.iter().position(|&b| b == b'e').unwrap_or(sci.len());
    let mut digits = [0u8; 24];
    let mut ndigits = 0;
    for &b in &sci[..e_at] {
        if b.is_ascii_digit() && ndigits < digits.len() {
            digits[ndigits] = b;
            ndigits += 1;
        }
    }
    (digits, ndigits, e_at)
}

fn parse_exponent(text: &[u8]) -> i32 {
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let magnitude = text
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0i32, |acc, &b| acc * 10 + i32::from(b - b'0'));
    if negative { -magnitude } else { magnitude }
}

#[cfg(test)]
mod tests {
    use super::float_repr;

    /// `(value, repr(value))` as printed by CPython 3.11.
    const PYTHON_REPRS: &[(f64, &str)] = &[
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.0, "1.0"),
        (-1.0, "-1.0"),
        (0.5, "0.5"),
        (0.1, "0.1"),
        (0.2, "0.2"),
        (0.30000000000000004, "0.30000000000000004"),
        (1.5, "1.5"),
        (100.0, "100.0"),
        (123.456, "123.456"),
        (-2.5e-3, "-0.0025"),
        (0.001, "0.001"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (0.000015, "1.5e-05"),
        (0.00012345, "0.00012345"),
        (1e-7, "1e-07"),
        (1.2345e-300, "1.2345e-300"),
        (5e-324, "5e-324"),
        (2.2250738585072014e-308, "2.2250738585072014e-308"),
        (1e15, "1000000000000000.0"),
        (1234567890123456.0, "1234567890123456.0"),
        (9007199254740992.0, "9007199254740992.0"),
        (9007199254740993.0, "9007199254740992.0"),
        (1e16, "1e+16"),
        (1.5e16, "1.5e+16"),
        (12345678901234567.0, "1.2345678901234568e+16"),
        (1e17, "1e+17"),
        (1e22, "1e+22"),
        (1e100, "1e+100"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (-1.7976931348623157e308, "-1.7976931348623157e+308"),
        (std::f64::consts::PI, "3.141592653589793"),
        (std::f64::consts::E, "2.718281828459045"),
        (1.0 / 3.0, "0.3333333333333333"),
        (2.0 / 3.0, "0.6666666666666666"),
        (123456789.12345679, "123456789.12345679"),
        (0.1 + 0.7, "0.7999999999999999"),
        (4.35, "4.35"),
        (1e-4 * 3.0, "0.00030000000000000003"),
        (255.0 / 256.0, "0.99609375"),
        (8.41e21, "8.41e+21"),
        (5e-5, "5e-05"),
        (-9.5e-5, "-9.5e-05"),
        (1e21, "1e+21"),
        (123e18, "1.23e+20"),
        // Ties between two 17-digit strings: Python takes the even digit.
        (1059438285926254.0 + 0.25, "1059438285926254.2"),
        (1059438285926254.0 + 0.75, "1059438285926254.8"),
        (1125899906842624.0 + 0.25, "1125899906842624.2"),
        (1125899906842624.0 + 0.75, "1125899906842624.8"),
        (-(1059438285926254.0 + 0.25), "-1059438285926254.2"),
        (999999999999999.0 + 0.625, "999999999999999.6"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
        (f64::NAN, "nan"),
    ];

    #[test]
    fn matches_python_repr() {
        for &(value, expected) in PYTHON_REPRS {
            assert_eq!(float_repr(value), expected, "repr of {value:e}");
        }
    }

    #[test]
    fn round_trips() {
        // Every repr reads back as the same double (Python's guarantee).
        let mut x = 1.0e-310_f64;
        while x < 1.0e300 {
            for v in [x, -x, x * 1.1, x / 3.0] {
                let text = float_repr(v);
                assert_eq!(text.parse::<f64>().ok(), Some(v), "{text}");
            }
            x *= 7.3;
        }
    }
}
