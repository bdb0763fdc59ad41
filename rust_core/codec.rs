//! The wire codec: context values to and from the JSON text Flowcraft keeps in Redis.
//!
//! Run state lives in the hash `workflow:state:<runId>`; every field holds `JSON.stringify(value)`
//! of a context value, written and read by Node.js programs too. So the text written here is what
//! `JSON.stringify` writes, and the reader accepts what `JSON.parse` accepts (strict RFC 8259
//! JSON), with these decisions, shared with the pure-Python twin `bullflow._pure.codec`:
//!
//! * Writing (see [`encode`] and the `write_*` functions):
//!   * numbers are JavaScript's `Number.prototype.toString`: shortest round-trip digits, no
//!     fraction for integral values (`1.0` -> `1`, `-0.0` -> `0`), decimal notation when
//!     `1e-6 <= |x| < 1e21`, else `1e+21`, `1e-7`, `1.5e-7`; NaN and the infinities are refused;
//!   * integers are written in full in the range `-(2**63) ..= 2**64 - 1` and refused outside;
//!   * strings escape `"`, `\`, `\b \f \n \r \t`, other controls below U+0020 as `\u00xx`, and
//!     lone surrogates as `\udxxx` (lowercase hex); everything else is raw UTF-8;
//!   * nesting is limited to [`MAX_DEPTH`] containers (this also catches circular structures).
//! * Reading (see [`parse`]):
//!   * the input must be UTF-8; empty input (Flowcraft stores `''` for `undefined`) is `null`,
//!     input of only whitespace is an error;
//!   * an integer literal (no fraction, no exponent) in `-(2**63) ..= 2**64 - 1` is an integer;
//!     any other number is the nearest double, as `JSON.parse` reads it (so
//!     `123456789012345680000` is a float and `-0` is the integer 0); a number beyond the range
//!     of a double is an error;
//!   * `\uXXXX` escapes of a surrogate pair give the one character; a lone surrogate escape gives
//!     that lone surrogate (JavaScript strings are UTF-16 and keep it);
//!   * duplicate object keys: the last value wins, at the place of the first (like `JSON.parse`
//!     into a `Map`-less object, and like a Python dict);
//!   * nesting deeper than [`MAX_DEPTH`] is an error.
//!
//! Errors name what is wrong and where: a JSON path for encoding (`cannot encode a set at
//! $.items[2]`), a byte offset for decoding (`expected ',' or ']' at byte 7`).
//!
//! Pure Rust: no Python here. The parser feeds a [`Sink`], so the Python bindings in `crate::py`
//! build Python objects directly and the tests build [`Value`]s.

use std::fmt::{self, Write as _};

use crate::errors::{CoreError, CoreResult};

/// The deepest nesting of arrays and objects that is written or read.
pub const MAX_DEPTH: usize = 512;

/// The fields a job payload must have, as strings, in the order they are checked.
pub const JOB_PAYLOAD_FIELDS: [&str; 3] = ["runId", "blueprintId", "nodeId"];

/// The prefix of every message about a job payload.
pub const JOB_PAYLOAD: &str = "job payload: ";

/// A [`CoreError::Codec`] for `key`; the empty key means none.
pub fn codec_error(message: impl Into<String>, key: &str) -> CoreError {
    CoreError::Codec {
        message: message.into(),
        key: (!key.is_empty()).then(|| key.to_owned()),
    }
}

// ---- paths -------------------------------------------------------------------------------------

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// An array index.
    Index(usize),
    /// An object key, as UTF-8 that may hold lone surrogates (see [`write_string`]).
    Key(Vec<u8>),
}

/// `$` followed by the segments, outermost first: `[3]` for an index, `.name` for a key that is
/// an ASCII identifier (`[A-Za-z_$][A-Za-z0-9_$]*`), and the key as a JSON string in brackets
/// (`["a b"]`) for any other key.
pub fn format_path<'a>(segments: impl IntoIterator<Item = &'a PathSegment>) -> String {
    let mut out = String::from("$");
    for segment in segments {
        match segment {
            PathSegment::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
            PathSegment::Key(key) if is_identifier(key) => {
                out.push('.');
                // An identifier is ASCII.
                out.extend(key.iter().map(|&b| char::from(b)));
            }
            PathSegment::Key(key) => {
                let mut quoted = Vec::with_capacity(key.len() + 2);
                write_string(&mut quoted, key);
                out.push('[');
                out.push_str(&String::from_utf8_lossy(&quoted));
                out.push(']');
            }
        }
    }
    out
}

fn is_identifier(key: &[u8]) -> bool {
    let Some((&first, rest)) = key.split_first() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == b'_' || first == b'$')
        && rest
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
}

// ---- encoding errors ---------------------------------------------------------------------------

/// Why a value cannot be encoded.
#[derive(Debug, Clone, PartialEq)]
pub enum EncodeProblem {
    /// A value of a type JSON has no form for; holds the type's name (`set`, `bytes`...).
    Unsupported(String),
    /// NaN or an infinity.
    NonFinite(f64),
    /// An integer outside `-(2**63) ..= 2**64 - 1`.
    IntegerOutOfRange,
    /// An object key that is not a string; holds the key's type name.
    KeyNotStr(String),
    /// More than [`MAX_DEPTH`] nested containers (or a container that holds itself).
    TooDeep,
}

impl fmt::Display for EncodeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeProblem::Unsupported(type_name) => {
                write!(f, "cannot encode {} {type_name}", article(type_name))
            }
            EncodeProblem::NonFinite(x) if x.is_nan() => f.write_str("cannot encode NaN"),
            EncodeProblem::NonFinite(x) if *x > 0.0 => f.write_str("cannot encode Infinity"),
            EncodeProblem::NonFinite(_) => f.write_str("cannot encode -Infinity"),
            EncodeProblem::IntegerOutOfRange => f.write_str("integer out of range"),
            EncodeProblem::KeyNotStr(type_name) => {
                write!(f, "dict key must be a str, not {type_name}")
            }
            EncodeProblem::TooDeep => write!(
                f,
                "nesting deeper than {MAX_DEPTH} levels (a circular reference?)"
            ),
        }
    }
}

/// "an" before a name that starts with a vowel, else "a".
fn article(name: &str) -> &'static str {
    match name.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u' | 'A' | 'E' | 'I' | 'O' | 'U') => "an",
        _ => "a",
    }
}

/// A value that cannot be encoded: the problem and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeError {
    pub problem: EncodeProblem,
    /// Innermost segment first: each container adds its own as the error passes through it.
    path: Vec<PathSegment>,
}

impl EncodeError {
    pub fn new(problem: EncodeProblem) -> Self {
        EncodeError {
            problem,
            path: Vec::new(),
        }
    }

    /// The same error, found at index `index` of an array.
    pub fn within_index(mut self, index: usize) -> Self {
        if self.problem != EncodeProblem::TooDeep {
            self.path.push(PathSegment::Index(index));
        }
        self
    }

    /// The same error, found under `key` (UTF-8, lone surrogates allowed) of an object.
    pub fn within_key(mut self, key: &[u8]) -> Self {
        if self.problem != EncodeProblem::TooDeep {
            self.path.push(PathSegment::Key(key.to_vec()));
        }
        self
    }

    /// The path of the value, outermost segment first.
    pub fn path(&self) -> impl Iterator<Item = &PathSegment> {
        self.path.iter().rev()
    }

    /// `"<problem> at <path>"`, or only the problem for [`EncodeProblem::TooDeep`], whose path
    /// would be hundreds of segments long.
    pub fn message(&self) -> String {
        if self.problem == EncodeProblem::TooDeep {
            self.problem.to_string()
        } else {
            format!("{} at {}", self.problem, format_path(self.path()))
        }
    }

    /// The [`CoreError::Codec`] for this error in the value of context key `key`.
    pub fn into_core(self, key: &str) -> CoreError {
        codec_error(self.message(), key)
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for EncodeError {}

// ---- writers -----------------------------------------------------------------------------------

/// What to write for each byte of a string: 0 (itself), a letter (`\<letter>`), `u`
/// (`\u00xx`), or `S` (0xED: possibly the start of a surrogate, see [`write_string`]).
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table[0xed] = b'S';
    table
};

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_u_escape(out: &mut Vec<u8>, unit: u32) {
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((unit >> shift) & 0xf) as usize]);
    }
}

/// Writes `text` as a JSON string the way `JSON.stringify` does.
///
/// `text` is UTF-8, or "generalized UTF-8" that may also hold lone surrogates as three-byte
/// sequences `ED A0..BF 80..BF` (what Python's `"surrogatepass"` error handler writes). Those are
/// written as `\udxxx` escapes; valid UTF-8 never has them.
pub fn write_string(out: &mut Vec<u8>, text: &[u8]) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < text.len() {
        let byte = text[i];
        let escape = ESCAPE[byte as usize];
        if escape == 0 {
            i += 1;
            continue;
        }
        if escape == b'S' {
            match (text.get(i + 1), text.get(i + 2)) {
                (Some(&b1), Some(&b2)) if b1 >= 0xa0 => {
                    out.extend_from_slice(&text[start..i]);
                    let unit = 0xd000 | (u32::from(b1 & 0x3f) << 6) | u32::from(b2 & 0x3f);
                    write_u_escape(out, unit);
                    i += 3;
                    start = i;
                }
                _ => i += 1,
            }
            continue;
        }
        out.extend_from_slice(&text[start..i]);
        if escape == b'u' {
            write_u_escape(out, u32::from(byte));
        } else {
            out.push(b'\\');
            out.push(escape);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&text[start..]);
    out.push(b'"');
}

/// Writes an integer.
pub fn write_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Writes an unsigned integer.
pub fn write_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Writes a finite double as JavaScript's `Number.prototype.toString` does (ECMA-262
/// Number::toString): the shortest digits that read back as `value`, laid out in decimal notation
/// when `1e-6 <= |value| < 1e21` and in exponent notation (`1e+21`, `1.5e-7`) otherwise.
pub fn write_f64(out: &mut Vec<u8>, value: f64) -> Result<(), EncodeProblem> {
    if !value.is_finite() {
        return Err(EncodeProblem::NonFinite(value));
    }
    if value == 0.0 {
        // Both zeros: JavaScript writes -0 as "0".
        out.push(b'0');
        return Ok(());
    }
    if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 {
        // An integer below 2**53: its digits are its decimal form.
        write_i64(out, value as i64);
        return Ok(());
    }
    if value < 0.0 {
        out.push(b'-');
    }
    // Ryu gives the shortest digits that read back as the value and, of those, the closest to
    // it, the even one on a tie, as ECMA-262 asks (Rust's own `{:e}` rounds ties up instead:
    // 1113178120592002.25 must be "1113178120592002.2"). It writes "d.ddd", "0.000ddd" or
    // "d.ddde-7"; take the digits and where the point goes.
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(value.abs()).as_bytes();
    let e_at = text.iter().position(|&b| b == b'e').unwrap_or(text.len());
    let exponent = std::str::from_utf8(&text[(e_at + 1).min(text.len())..])
        .ok()
        .and_then(|e| e.parse::<i32>().ok())
        .unwrap_or(0);
    let mut all_digits = [0u8; 32];
    let (mut count, mut whole, mut fraction) = (0, 0, false);
    for &b in &text[..e_at] {
        if b == b'.' {
            fraction = true;
        } else if count < all_digits.len() {
            all_digits[count] = b;
            count += 1;
            whole += usize::from(!fraction);
        }
    }
    let leading = all_digits[..count]
        .iter()
        .take_while(|&&d| d == b'0')
        .count();
    let digits = &all_digits[leading..count];
    let digits = &digits[..digits.iter().rposition(|&d| d != b'0').map_or(0, |p| p + 1)];
    if digits.is_empty() {
        // Not reached: the value is not zero.
        out.push(b'0');
        return Ok(());
    }
    // value = 0.d1d2...dk * 10**n
    let n = whole as i32 - leading as i32 + exponent;
    let k = digits.len() as i32;
    if k <= n && n <= 21 {
        out.extend_from_slice(digits);
        out.resize(out.len() + (n - k) as usize, b'0');
    } else if 0 < n && n <= 21 {
        out.extend_from_slice(&digits[..n as usize]);
        out.push(b'.');
        out.extend_from_slice(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + (-n) as usize, b'0');
        out.extend_from_slice(digits);
    } else {
        out.push(digits[0]);
        if k > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if n > 0 { b'+' } else { b'-' });
        write_i64(out, i64::from((n - 1).abs()));
    }
    Ok(())
}

// ---- values ------------------------------------------------------------------------------------

/// A JSON value as pure Rust sees it (the Python bindings use Python objects instead).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// An integer that fits an `i64`.
    Int(i64),
    /// An integer above `i64::MAX`.
    UInt(u64),
    Float(f64),
    /// A string. Lone surrogates (which a Rust string cannot hold) are read as U+FFFD here; the
    /// Python bindings keep them.
    Str(String),
    Array(Vec<Value>),
    /// Key-value pairs in document order, keys unique.
    Object(Vec<(String, Value)>),
}

/// Encodes a value as `JSON.stringify` would.
pub fn encode(value: &Value) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_into(&mut out, value, 0)?;
    Ok(out)
}

/// [`encode`], with the error as a [`CoreError::Codec`] naming context key `key`.
pub fn encode_value(value: &Value, key: &str) -> CoreResult<Vec<u8>> {
    encode(value).map_err(|err| err.into_core(key))
}

fn encode_into(out: &mut Vec<u8>, value: &Value, depth: usize) -> Result<(), EncodeError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => write_i64(out, *i),
        Value::UInt(u) => write_u64(out, *u),
        Value::Float(x) => write_f64(out, *x).map_err(EncodeError::new)?,
        Value::Str(s) => write_string(out, s.as_bytes()),
        Value::Array(items) => {
            if depth >= MAX_DEPTH {
                return Err(EncodeError::new(EncodeProblem::TooDeep));
            }
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                encode_into(out, item, depth + 1).map_err(|err| err.within_index(i))?;
            }
            out.push(b']');
        }
        Value::Object(pairs) => {
            if depth >= MAX_DEPTH {
                return Err(EncodeError::new(EncodeProblem::TooDeep));
            }
            out.push(b'{');
            for (i, (key, item)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, key.as_bytes());
                out.push(b':');
                encode_into(out, item, depth + 1).map_err(|err| err.within_key(key.as_bytes()))?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

// ---- decoding ----------------------------------------------------------------------------------

/// What is wrong with a document that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntaxErrorKind {
    InvalidUtf8,
    UnexpectedEnd,
    ExpectedValue,
    ExpectedCommaOrBracket,
    ExpectedCommaOrBrace,
    ExpectedKey,
    ExpectedColon,
    ControlCharacter,
    InvalidEscape,
    InvalidUnicodeEscape,
    InvalidNumber,
    NumberOutOfRange,
    TrailingData,
    TooDeep,
}

impl fmt::Display for SyntaxErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyntaxErrorKind::InvalidUtf8 => "invalid UTF-8",
            SyntaxErrorKind::UnexpectedEnd => "unexpected end of input",
            SyntaxErrorKind::ExpectedValue => "expected a JSON value",
            SyntaxErrorKind::ExpectedCommaOrBracket => "expected ',' or ']'",
            SyntaxErrorKind::ExpectedCommaOrBrace => "expected ',' or '}'",
            SyntaxErrorKind::ExpectedKey => "expected a property name in double quotes",
            SyntaxErrorKind::ExpectedColon => "expected ':'",
            SyntaxErrorKind::ControlCharacter => "unescaped control character in string",
            SyntaxErrorKind::InvalidEscape => "invalid escape in string",
            SyntaxErrorKind::InvalidUnicodeEscape => "invalid \\u escape in string",
            SyntaxErrorKind::InvalidNumber => "invalid number",
            SyntaxErrorKind::NumberOutOfRange => "number out of range",
            SyntaxErrorKind::TrailingData => "unexpected data after the JSON value",
            SyntaxErrorKind::TooDeep => "nesting deeper than 512 levels",
        })
    }
}

/// A document that cannot be decoded: what is wrong, at which byte offset.
///
/// The offset is that of the offending byte, except: the end of the input for
/// [`SyntaxErrorKind::UnexpectedEnd`]; the start of the number for
/// [`SyntaxErrorKind::NumberOutOfRange`]; the backslash for the escape errors; the start of a
/// literal (`true`, `false`, `null`) that is misspelled; the opening bracket for
/// [`SyntaxErrorKind::TooDeep`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntaxError {
    pub kind: SyntaxErrorKind,
    pub offset: usize,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)
    }
}

impl std::error::Error for SyntaxError {}

/// A failure of [`parse`]: the document, or the sink.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodeError<E> {
    Syntax(SyntaxError),
    Sink(E),
}

impl<E> From<SyntaxError> for DecodeError<E> {
    fn from(err: SyntaxError) -> Self {
        DecodeError::Syntax(err)
    }
}

/// A decoded string, borrowed from the input when it has no escapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonStr<'a> {
    /// Valid UTF-8.
    Utf8(&'a str),
    /// UTF-8 that also holds lone surrogates, each as a three-byte sequence `ED A0..BF 80..BF`
    /// (what Python's `"surrogatepass"` handler reads).
    Surrogates(&'a [u8]),
}

/// Builds the values [`parse`] reads. Containers are built in place: `array`, then `push` for
/// each item, then `end_array` (same for objects).
pub trait Sink {
    type Value;
    type Array;
    type Object;
    type Key;
    type Error;

    fn null(&mut self) -> Result<Self::Value, Self::Error>;
    fn boolean(&mut self, value: bool) -> Result<Self::Value, Self::Error>;
    fn int(&mut self, value: i64) -> Result<Self::Value, Self::Error>;
    fn uint(&mut self, value: u64) -> Result<Self::Value, Self::Error>;
    fn float(&mut self, value: f64) -> Result<Self::Value, Self::Error>;
    fn string(&mut self, value: JsonStr<'_>) -> Result<Self::Value, Self::Error>;
    fn key(&mut self, value: JsonStr<'_>) -> Result<Self::Key, Self::Error>;
    fn array(&mut self) -> Result<Self::Array, Self::Error>;
    fn push(&mut self, array: &mut Self::Array, item: Self::Value) -> Result<(), Self::Error>;
    fn end_array(&mut self, array: Self::Array) -> Result<Self::Value, Self::Error>;
    fn object(&mut self) -> Result<Self::Object, Self::Error>;
    /// Sets `key` to `item`; a key seen before keeps its place and takes the new value.
    fn insert(
        &mut self,
        object: &mut Self::Object,
        key: Self::Key,
        item: Self::Value,
    ) -> Result<(), Self::Error>;
    fn end_object(&mut self, object: Self::Object) -> Result<Self::Value, Self::Error>;
}

/// Reads one JSON document from `data` into `sink`. Empty input gives `Ok(None)`.
///
/// Never panics and never recurses: containers are kept on an explicit stack.
pub fn parse<S: Sink>(
    data: &[u8],
    sink: &mut S,
) -> Result<Option<S::Value>, DecodeError<S::Error>> {
    if data.is_empty() {
        return Ok(None);
    }
    let text = std::str::from_utf8(data).map_err(|err| SyntaxError {
        kind: SyntaxErrorKind::InvalidUtf8,
        offset: err.valid_up_to(),
    })?;
    Parser {
        text,
        bytes: data,
        pos: 0,
        scratch: Vec::new(),
    }
    .document(sink)
    .map(Some)
}

/// An open container: an array, or an object and the key whose value comes next.
enum Frame<S: Sink> {
    Array(S::Array),
    Object(S::Object, S::Key),
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// The unescaped text of the current string, when it has escapes.
    scratch: Vec<u8>,
}

fn fail<T, E>(kind: SyntaxErrorKind, offset: usize) -> Result<T, DecodeError<E>> {
    Err(DecodeError::Syntax(SyntaxError { kind, offset }))
}

fn hex_value(byte: u8) -> Option<u32> {
    match byte {
        b'0'..=b'9' => Some(u32::from(byte - b'0')),
        b'a'..=b'f' => Some(u32::from(byte - b'a' + 10)),
        b'A'..=b'F' => Some(u32::from(byte - b'A' + 10)),
        _ => None,
    }
}

/// Bytes that end the plain part of a string: the quote, the backslash and the controls.
static STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

impl<'a> Parser<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn end<T, E>(&self) -> Result<T, DecodeError<E>> {
        fail(SyntaxErrorKind::UnexpectedEnd, self.bytes.len())
    }

    fn document<S: Sink>(mut self, sink: &mut S) -> Result<S::Value, DecodeError<S::Error>> {
        let mut stack: Vec<Frame<S>> = Vec::new();
        'value: loop {
            self.skip_whitespace();
            let Some(byte) = self.peek() else {
                return self.end();
            };
            let mut value = match byte {
                b'[' | b'{' => {
                    if stack.len() >= MAX_DEPTH {
                        return fail(SyntaxErrorKind::TooDeep, self.pos);
                    }
                    self.pos += 1;
                    self.skip_whitespace();
                    if byte == b'[' {
                        let array = sink.array().map_err(DecodeError::Sink)?;
                        if self.peek() == Some(b']') {
                            self.pos += 1;
                            sink.end_array(array).map_err(DecodeError::Sink)?
                        } else {
                            stack.push(Frame::Array(array));
                            continue 'value;
                        }
                    } else {
                        let object = sink.object().map_err(DecodeError::Sink)?;
                        if self.peek() == Some(b'}') {
                            self.pos += 1;
                            sink.end_object(object).map_err(DecodeError::Sink)?
                        } else {
                            let key = self.key(sink)?;
                            stack.push(Frame::Object(object, key));
                            continue 'value;
                        }
                    }
                }
                b'"' => {
                    let start = self.pos;
                    let s = self.string(start)?;
                    sink.string(s).map_err(DecodeError::Sink)?
                }
                b'-' | b'0'..=b'9' => self.number(sink)?,
                b't' => {
                    self.literal(b"true")?;
                    sink.boolean(true).map_err(DecodeError::Sink)?
                }
                b'f' => {
                    self.literal(b"false")?;
                    sink.boolean(false).map_err(DecodeError::Sink)?
                }
                b'n' => {
                    self.literal(b"null")?;
                    sink.null().map_err(DecodeError::Sink)?
                }
                _ => return fail(SyntaxErrorKind::ExpectedValue, self.pos),
            };
            // A value is complete: hand it to its container, closing the containers it completes.
            // The container is taken off the stack and put back if it goes on.
            loop {
                let Some(frame) = stack.pop() else {
                    self.skip_whitespace();
                    if self.pos < self.bytes.len() {
                        return fail(SyntaxErrorKind::TrailingData, self.pos);
                    }
                    return Ok(value);
                };
                match frame {
                    Frame::Array(mut array) => {
                        sink.push(&mut array, value).map_err(DecodeError::Sink)?;
                        self.skip_whitespace();
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                stack.push(Frame::Array(array));
                                continue 'value;
                            }
                            Some(b']') => {
                                self.pos += 1;
                                value = sink.end_array(array).map_err(DecodeError::Sink)?;
                            }
                            Some(_) => {
                                return fail(SyntaxErrorKind::ExpectedCommaOrBracket, self.pos);
                            }
                            None => return self.end(),
                        }
                    }
                    Frame::Object(mut object, key) => {
                        sink.insert(&mut object, key, value)
                            .map_err(DecodeError::Sink)?;
                        self.skip_whitespace();
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                self.skip_whitespace();
                                let key = self.key(sink)?;
                                stack.push(Frame::Object(object, key));
                                continue 'value;
                            }
                            Some(b'}') => {
                                self.pos += 1;
                                value = sink.end_object(object).map_err(DecodeError::Sink)?;
                            }
                            Some(_) => {
                                return fail(SyntaxErrorKind::ExpectedCommaOrBrace, self.pos);
                            }
                            None => return self.end(),
                        }
                    }
                }
            }
        }
    }

    /// An object key and its colon; `pos` is at the expected opening quote.
    fn key<S: Sink>(&mut self, sink: &mut S) -> Result<S::Key, DecodeError<S::Error>> {
        match self.peek() {
            Some(b'"') => {}
            Some(_) => return fail(SyntaxErrorKind::ExpectedKey, self.pos),
            None => return self.end(),
        }
        let start = self.pos;
        let key = self.string(start)?;
        let key = sink.key(key).map_err(DecodeError::Sink)?;
        self.skip_whitespace();
        match self.peek() {
            Some(b':') => {
                self.pos += 1;
                Ok(key)
            }
            Some(_) => fail(SyntaxErrorKind::ExpectedColon, self.pos),
            None => self.end(),
        }
    }

    fn literal<E>(&mut self, word: &[u8]) -> Result<(), DecodeError<E>> {
        let start = self.pos;
        for (i, &expected) in word.iter().enumerate() {
            match self.bytes.get(start + i) {
                None => return self.end(),
                Some(&b) if b != expected => {
                    return fail(SyntaxErrorKind::ExpectedValue, start);
                }
                Some(_) => {}
            }
        }
        self.pos += word.len();
        Ok(())
    }

    /// A string; `pos` is at its opening quote.
    fn string<E>(&mut self, start: usize) -> Result<JsonStr<'_>, DecodeError<E>> {
        let bytes = self.bytes;
        let mut i = start + 1;
        // The common case: no escape.
        while i < bytes.len() && !STRING_STOP[bytes[i] as usize] {
            i += 1;
        }
        match bytes.get(i) {
            None => return self.end(),
            Some(b'"') => {
                self.pos = i + 1;
                return Ok(JsonStr::Utf8(&self.text[start + 1..i]));
            }
            Some(b'\\') => {}
            Some(_) => return fail(SyntaxErrorKind::ControlCharacter, i),
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&bytes[start + 1..i]);
        let mut surrogates = false;
        loop {
            let run = i;
            while i < bytes.len() && !STRING_STOP[bytes[i] as usize] {
                i += 1;
            }
            self.scratch.extend_from_slice(&bytes[run..i]);
            match bytes.get(i) {
                None => return self.end(),
                Some(b'"') => break,
                Some(b'\\') => {}
                Some(_) => return fail(SyntaxErrorKind::ControlCharacter, i),
            }
            let backslash = i;
            let Some(&escape) = bytes.get(i + 1) else {
                return self.end();
            };
            let simple = match escape {
                b'"' => Some(b'"'),
                b'\\' => Some(b'\\'),
                b'/' => Some(b'/'),
                b'b' => Some(0x08),
                b'f' => Some(0x0c),
                b'n' => Some(b'\n'),
                b'r' => Some(b'\r'),
                b't' => Some(b'\t'),
                b'u' => None,
                _ => return fail(SyntaxErrorKind::InvalidEscape, backslash),
            };
            if let Some(byte) = simple {
                self.scratch.push(byte);
                i += 2;
                continue;
            }
            let mut unit = 0;
            for j in 0..4 {
                match bytes.get(i + 2 + j) {
                    None => return self.end(),
                    Some(&b) => match hex_value(b) {
                        Some(v) => unit = unit * 16 + v,
                        None => return fail(SyntaxErrorKind::InvalidUnicodeEscape, backslash),
                    },
                }
            }
            i += 6;
            let mut code = unit;
            if (0xd800..0xdc00).contains(&unit)
                && let Some(low) = low_surrogate_escape(&bytes[i..])
            {
                code = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
                i += 6;
            }
            match char::from_u32(code) {
                Some(c) => {
                    let mut buf = [0u8; 4];
                    self.scratch
                        .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                None => {
                    // A lone surrogate: its generalized UTF-8 form.
                    surrogates = true;
                    self.scratch.extend_from_slice(&[
                        0xe0 | (code >> 12) as u8,
                        0x80 | ((code >> 6) & 0x3f) as u8,
                        0x80 | (code & 0x3f) as u8,
                    ]);
                }
            }
        }
        self.pos = i + 1;
        let scratch: &[u8] = &self.scratch;
        Ok(match std::str::from_utf8(scratch) {
            Ok(text) if !surrogates => JsonStr::Utf8(text),
            _ => JsonStr::Surrogates(scratch),
        })
    }
}

/// The code unit of a `\uXXXX` escape of a low surrogate at the start of `rest`, if there is one.
fn low_surrogate_escape(rest: &[u8]) -> Option<u32> {
    let [b'\\', b'u', a, b, c, d, ..] = *rest else {
        return None;
    };
    let unit = [a, b, c, d]
        .into_iter()
        .try_fold(0, |acc, byte| Some(acc * 16 + hex_value(byte)?))?;
    (0xdc00..0xe000).contains(&unit).then_some(unit)
}

impl Parser<'_> {
    /// One or more digits from `i`; returns the position after them.
    fn digits<E>(&self, mut i: usize) -> Result<usize, DecodeError<E>> {
        match self.bytes.get(i) {
            None => return self.end(),
            Some(b'0'..=b'9') => i += 1,
            Some(_) => return fail(SyntaxErrorKind::InvalidNumber, i),
        }
        while let Some(b'0'..=b'9') = self.bytes.get(i) {
            i += 1;
        }
        Ok(i)
    }

    /// A number; `pos` is at its first byte (`-` or a digit).
    fn number<S: Sink>(&mut self, sink: &mut S) -> Result<S::Value, DecodeError<S::Error>> {
        let bytes = self.bytes;
        let start = self.pos;
        let mut i = start;
        let negative = bytes.get(i) == Some(&b'-');
        if negative {
            i += 1;
        }
        // The integer part, accumulated while it fits a u64.
        let mut magnitude: u64 = 0;
        let mut fits = true;
        match bytes.get(i) {
            None => return self.end(),
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while let Some(&digit @ b'0'..=b'9') = bytes.get(i) {
                    match magnitude
                        .checked_mul(10)
                        .and_then(|m| m.checked_add(u64::from(digit - b'0')))
                    {
                        Some(m) => magnitude = m,
                        None => fits = false,
                    }
                    i += 1;
                }
            }
            Some(_) => return fail(SyntaxErrorKind::InvalidNumber, i),
        }
        let mut integral = true;
        if bytes.get(i) == Some(&b'.') {
            integral = false;
            i = self.digits(i + 1)?;
        }
        if let Some(b'e' | b'E') = bytes.get(i) {
            integral = false;
            i += 1;
            if let Some(b'+' | b'-') = bytes.get(i) {
                i += 1;
            }
            i = self.digits(i)?;
        }
        self.pos = i;
        if integral && fits {
            let value = if !negative {
                match i64::try_from(magnitude) {
                    Ok(value) => sink.int(value),
                    Err(_) => sink.uint(magnitude),
                }
            } else if magnitude <= 1 << 63 {
                // -(2**63) is i64::MIN, whose magnitude does not fit an i64.
                sink.int(0i64.wrapping_sub(magnitude as i64))
            } else {
                return self.float(sink, start, i);
            };
            return value.map_err(DecodeError::Sink);
        }
        self.float(sink, start, i)
    }

    /// The number at `start..end` as the nearest double (correctly rounded, like `JSON.parse`).
    fn float<S: Sink>(
        &self,
        sink: &mut S,
        start: usize,
        end: usize,
    ) -> Result<S::Value, DecodeError<S::Error>> {
        match self.text[start..end].parse::<f64>() {
            Ok(value) if value.is_finite() => sink.float(value).map_err(DecodeError::Sink),
            _ => fail(SyntaxErrorKind::NumberOutOfRange, start),
        }
    }
}

/// The [`Sink`] that builds [`Value`]s.
#[derive(Debug, Default, Clone, Copy)]
pub struct ValueSink;

impl JsonStr<'_> {
    /// The text, with each lone surrogate replaced by U+FFFD.
    pub fn to_string_lossy(&self) -> String {
        match *self {
            JsonStr::Utf8(text) => text.to_owned(),
            JsonStr::Surrogates(bytes) => {
                let mut out = String::with_capacity(bytes.len());
                let (mut start, mut i) = (0, 0);
                while i < bytes.len() {
                    if bytes[i] == 0xed && bytes.get(i + 1).is_some_and(|&b| b >= 0xa0) {
                        out.push_str(&String::from_utf8_lossy(&bytes[start..i]));
                        out.push('\u{fffd}');
                        i += 3;
                        start = i.min(bytes.len());
                    } else {
                        i += 1;
                    }
                }
                out.push_str(&String::from_utf8_lossy(&bytes[start..]));
                out
            }
        }
    }
}

impl Sink for ValueSink {
    type Value = Value;
    type Array = Vec<Value>;
    type Object = Vec<(String, Value)>;
    type Key = String;
    type Error = std::convert::Infallible;

    fn null(&mut self) -> Result<Value, Self::Error> {
        Ok(Value::Null)
    }
    fn boolean(&mut self, value: bool) -> Result<Value, Self::Error> {
        Ok(Value::Bool(value))
    }
    fn int(&mut self, value: i64) -> Result<Value, Self::Error> {
        Ok(Value::Int(value))
    }
    fn uint(&mut self, value: u64) -> Result<Value, Self::Error> {
        Ok(Value::UInt(value))
    }
    fn float(&mut self, value: f64) -> Result<Value, Self::Error> {
        Ok(Value::Float(value))
    }
    fn string(&mut self, value: JsonStr<'_>) -> Result<Value, Self::Error> {
        Ok(Value::Str(value.to_string_lossy()))
    }
    fn key(&mut self, value: JsonStr<'_>) -> Result<String, Self::Error> {
        Ok(value.to_string_lossy())
    }
    fn array(&mut self) -> Result<Vec<Value>, Self::Error> {
        Ok(Vec::new())
    }
    fn push(&mut self, array: &mut Vec<Value>, item: Value) -> Result<(), Self::Error> {
        array.push(item);
        Ok(())
    }
    fn end_array(&mut self, array: Vec<Value>) -> Result<Value, Self::Error> {
        Ok(Value::Array(array))
    }
    fn object(&mut self) -> Result<Vec<(String, Value)>, Self::Error> {
        Ok(Vec::new())
    }
    fn insert(
        &mut self,
        object: &mut Vec<(String, Value)>,
        key: String,
        item: Value,
    ) -> Result<(), Self::Error> {
        match object.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => *slot = item,
            None => object.push((key, item)),
        }
        Ok(())
    }
    fn end_object(&mut self, object: Vec<(String, Value)>) -> Result<Value, Self::Error> {
        Ok(Value::Object(object))
    }
}

/// Decodes one document; empty input is [`Value::Null`].
pub fn decode(data: &[u8]) -> Result<Value, SyntaxError> {
    match parse(data, &mut ValueSink) {
        Ok(value) => Ok(value.unwrap_or(Value::Null)),
        Err(DecodeError::Syntax(err)) => Err(err),
        Err(DecodeError::Sink(never)) => match never {},
    }
}

/// [`decode`], with the error as a [`CoreError::Codec`] naming context key `key`.
pub fn decode_value(data: &[u8], key: &str) -> CoreResult<Value> {
    decode(data).map_err(|err| codec_error(err.to_string(), key))
}

// ---- Redis replies -----------------------------------------------------------------------------

/// The message for a hash field name that is not UTF-8; `valid_up_to` is the byte offset of the
/// first bad byte.
pub fn field_name_error(valid_up_to: usize) -> String {
    format!("field name is not valid UTF-8 at byte {valid_up_to}")
}

/// The message for a field name that cannot be written as UTF-8 (it holds a lone surrogate).
pub const FIELD_NAME_SURROGATE: &str = "field name is not valid Unicode (it has a lone surrogate)";

/// `bytes` as text, with each byte that is not part of valid UTF-8 written as `\xhh` (what
/// Python's `bytes.decode("utf-8", "backslashreplace")` gives): how a field name that is not
/// UTF-8 is shown as the key of its error.
pub fn backslash_replace(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// The message for an HGETALL reply given as a flat list of odd length.
pub fn odd_reply_error(len: usize) -> String {
    format!("HGETALL reply has an odd number of items ({len})")
}

/// The message for an HMGET reply whose length is not that of the keys asked for.
pub fn hmget_length_error(keys: usize, values: usize) -> String {
    format!("HMGET reply has {values} values for {keys} keys")
}

// ---- job payloads ------------------------------------------------------------------------------

/// The message for a required job payload field that is missing or not a string.
pub fn job_payload_field_error(field: &str) -> String {
    format!("{JOB_PAYLOAD}{field} must be a string")
}

/// The message for a job payload that is not a JSON object; `json_type` as [`json_type_name`]
/// gives it.
pub fn job_payload_type_error(json_type: &str) -> String {
    format!("{JOB_PAYLOAD}expected a JSON object, not {json_type}")
}

/// A JSON type as the job payload messages name it: `null`, `a boolean`, `a number`, `a string`,
/// `an array`, `an object`.
pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Int(_) | Value::UInt(_) | Value::Float(_) => "a number",
        Value::Str(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_job_payload(value: &Value) -> CoreResult<()> {
    let Value::Object(pairs) = value else {
        return Err(codec_error(
            job_payload_type_error(json_type_name(value)),
            "",
        ));
    };
    for field in JOB_PAYLOAD_FIELDS {
        if !matches!(
            pairs.iter().find(|(k, _)| k == field),
            Some((_, Value::Str(_)))
        ) {
            return Err(codec_error(job_payload_field_error(field), ""));
        }
    }
    Ok(())
}

/// Encodes the data of an `executeNode` job: an object with string `runId`, `blueprintId` and
/// `nodeId` (other keys are kept). Errors carry no key; their messages start with `job payload: `.
pub fn encode_job_payload(payload: &Value) -> CoreResult<Vec<u8>> {
    check_job_payload(payload)?;
    encode(payload).map_err(|err| codec_error(format!("{JOB_PAYLOAD}{}", err.message()), ""))
}

/// Decodes and checks the data of an `executeNode` job (see [`encode_job_payload`]).
pub fn decode_job_payload(data: &[u8]) -> CoreResult<Value> {
    let value = decode(data).map_err(|err| codec_error(format!("{JOB_PAYLOAD}{err}"), ""))?;
    check_job_payload(&value)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(value: &Value) -> String {
        String::from_utf8(encode(value).expect("encodes")).expect("UTF-8")
    }

    fn float(x: f64) -> String {
        let mut out = Vec::new();
        write_f64(&mut out, x).expect("finite");
        String::from_utf8(out).expect("ASCII")
    }

    fn string(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_string(&mut out, bytes);
        out
    }

    fn dec(text: &str) -> Value {
        decode(text.as_bytes()).unwrap_or_else(|err| panic!("{text:?}: {err}"))
    }

    fn dec_err(data: &[u8]) -> String {
        match decode(data) {
            Ok(value) => panic!("{data:?} decoded to {value:?}"),
            Err(err) => err.to_string(),
        }
    }

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    fn nested_arrays(depth: usize) -> Value {
        (1..depth).fold(Value::Array(vec![]), |inner, _| Value::Array(vec![inner]))
    }

    // ---- writing -------------------------------------------------------------------------------

    #[test]
    fn numbers_are_written_like_javascript() {
        for (x, text) in [
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (0.1, "0.1"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (1e-6, "0.000001"),
            (-1.2e-6, "-0.0000012"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN, "-1.7976931348623157e+308"),
            (9007199254740992.0, "9007199254740992"),
            (9007199254740994.0, "9007199254740994"),
            (2f64.powi(64), "18446744073709552000"),
            (1.5e300, "1.5e+300"),
            (123.456, "123.456"),
            (1.0 / 3.0, "0.3333333333333333"),
            // Exactly halfway between two shortest candidates: the even digit, as in JavaScript.
            (-1113178120592002.2, "-1113178120592002.2"),
            (111659285584252.12, "111659285584252.12"),
        ] {
            assert_eq!(float(x), text, "{x:e}");
        }
    }

    #[test]
    fn non_finite_numbers_are_refused() {
        let mut out = Vec::new();
        let mut messages = Vec::new();
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let problem = write_f64(&mut out, x).expect_err("refused");
            assert!(matches!(problem, EncodeProblem::NonFinite(_)));
            messages.push(problem.to_string());
        }
        assert_eq!(
            messages,
            [
                "cannot encode NaN",
                "cannot encode Infinity",
                "cannot encode -Infinity"
            ]
        );
        assert!(out.is_empty());
    }

    #[test]
    fn strings_are_escaped_like_json_stringify() {
        assert_eq!(string(b""), br#""""#);
        assert_eq!(string(br#"a"b\c/d"#), br#""a\"b\\c/d""#);
        assert_eq!(string(b"\x08\x0c\n\r\t"), br#""\b\f\n\r\t""#);
        assert_eq!(
            string(b"\x00\x01\x1f\x7f"),
            b"\"\\u0000\\u0001\\u001f\x7f\""
        );
        assert_eq!(
            string("é😀\u{2028}".as_bytes()),
            "\"é😀\u{2028}\"".as_bytes()
        );
        // U+D7FF and U+E000 are ED 9F BF and EE 80 80: not surrogates.
        assert_eq!(
            string("\u{d7ff}\u{e000}".as_bytes()),
            "\"\u{d7ff}\u{e000}\"".as_bytes()
        );
        // Lone surrogates, as "surrogatepass" writes them.
        assert_eq!(
            string(b"a\xed\xa0\x80b\xed\xbf\xbf"),
            br#""a\ud800b\udfff""#
        );
        assert_eq!(string(b"\xed\xa0\xbd\xed\xb8\x80"), br#""\ud83d\ude00""#);
        // A truncated sequence (never written by Python) is copied as it is, without panicking.
        assert_eq!(string(b"\xed\xa0"), b"\"\xed\xa0\"");
    }

    #[test]
    fn values_are_encoded_in_order() {
        let value = obj(&[
            ("b", Value::Int(1)),
            (
                "a",
                Value::Array(vec![
                    Value::Null,
                    Value::Bool(true),
                    Value::Bool(false),
                    Value::UInt(u64::MAX),
                    Value::Int(i64::MIN),
                    Value::Float(-0.0),
                    Value::Str("x\n".into()),
                ]),
            ),
            ("", obj(&[])),
        ]);
        assert_eq!(
            enc(&value),
            r#"{"b":1,"a":[null,true,false,18446744073709551615,-9223372036854775808,0,"x\n"],"":{}}"#
        );
    }

    #[test]
    fn encode_errors_name_the_path() {
        let value = obj(&[(
            "items",
            Value::Array(vec![
                Value::Int(1),
                obj(&[("a b", Value::Array(vec![Value::Float(f64::NAN)]))]),
            ]),
        )]);
        let err = encode(&value).expect_err("NaN");
        assert_eq!(
            err.message(),
            r#"cannot encode NaN at $.items[1]["a b"][0]"#
        );
        assert_eq!(
            encode_value(&value, "_outputs.A")
                .expect_err("NaN")
                .to_string(),
            r#"_outputs.A: cannot encode NaN at $.items[1]["a b"][0]"#
        );
        let err = encode(&Value::Float(f64::INFINITY)).expect_err("infinite");
        assert_eq!(err.message(), "cannot encode Infinity at $");
    }

    #[test]
    fn paths_quote_keys_that_are_not_identifiers() {
        let path = [
            PathSegment::Key(b"_outputs$1".to_vec()),
            PathSegment::Key(b"1a".to_vec()),
            PathSegment::Key(b"".to_vec()),
            PathSegment::Key("é".as_bytes().to_vec()),
            PathSegment::Key(b"a\"\xed\xa0\x80".to_vec()),
            PathSegment::Index(7),
        ];
        assert_eq!(
            format_path(&path),
            r#"$._outputs$1["1a"][""]["é"]["a\"\ud800"][7]"#
        );
        assert_eq!(format_path(&[]), "$");
    }

    #[test]
    fn problems_read_well() {
        let cases = [
            (
                EncodeProblem::Unsupported("set".into()),
                "cannot encode a set",
            ),
            (
                EncodeProblem::Unsupported("object".into()),
                "cannot encode an object",
            ),
            (
                EncodeProblem::Unsupported("Enum".into()),
                "cannot encode an Enum",
            ),
            (EncodeProblem::IntegerOutOfRange, "integer out of range"),
            (
                EncodeProblem::KeyNotStr("int".into()),
                "dict key must be a str, not int",
            ),
            (
                EncodeProblem::TooDeep,
                "nesting deeper than 512 levels (a circular reference?)",
            ),
        ];
        for (problem, message) in cases {
            assert_eq!(problem.to_string(), message);
        }
    }

    #[test]
    fn nesting_is_limited() {
        assert!(encode(&nested_arrays(MAX_DEPTH)).is_ok());
        let err = encode(&nested_arrays(MAX_DEPTH + 1)).expect_err("too deep");
        assert_eq!(
            err.message(),
            "nesting deeper than 512 levels (a circular reference?)"
        );
        let text = enc(&nested_arrays(MAX_DEPTH));
        assert_eq!(dec(&text), nested_arrays(MAX_DEPTH));
        let deeper = format!("[{text}]");
        assert_eq!(
            dec_err(deeper.as_bytes()),
            "nesting deeper than 512 levels at byte 512"
        );
    }

    // ---- reading -------------------------------------------------------------------------------

    #[test]
    fn empty_input_is_null_but_whitespace_is_not() {
        assert_eq!(decode(b""), Ok(Value::Null));
        assert_eq!(dec_err(b" "), "unexpected end of input at byte 1");
    }

    #[test]
    fn integers_and_floats() {
        assert_eq!(dec("0"), Value::Int(0));
        assert_eq!(dec("-0"), Value::Int(0));
        assert_eq!(dec("9007199254740993"), Value::Int(9007199254740993));
        assert_eq!(dec("-9223372036854775808"), Value::Int(i64::MIN));
        assert_eq!(dec("9223372036854775807"), Value::Int(i64::MAX));
        assert_eq!(dec("9223372036854775808"), Value::UInt(1 << 63));
        assert_eq!(dec("18446744073709551615"), Value::UInt(u64::MAX));
        assert_eq!(
            dec("18446744073709551616"),
            Value::Float(18446744073709551616.0)
        );
        assert_eq!(
            dec("-9223372036854775809"),
            Value::Float(-9223372036854775808.0)
        );
        assert_eq!(dec("1.0"), Value::Float(1.0));
        assert_eq!(dec("1e2"), Value::Float(100.0));
        let Value::Float(negative_zero) = dec("-0.0") else {
            panic!("a float")
        };
        assert!(negative_zero == 0.0 && negative_zero.is_sign_negative());
        assert_eq!(dec("1e-400"), Value::Float(0.0));
        assert_eq!(dec_err(b"1e400"), "number out of range at byte 0");
        assert_eq!(dec_err(b"[-1e400]"), "number out of range at byte 1");
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(dec(r#""a\/b\"\\""#), Value::Str("a/b\"\\".into()));
        assert_eq!(
            dec(r#""\b\f\n\r\t\u0000\u00e9\u00C9""#),
            Value::Str("\u{8}\u{c}\n\r\t\0éÉ".into())
        );
        assert_eq!(dec(r#""\ud83d\ude00""#), Value::Str("😀".into()));
        // Lone surrogates are U+FFFD in a Rust Value (the Python bindings keep them).
        assert_eq!(
            dec(r#""\ud800x\udc00\ud83d\u0041""#),
            Value::Str("\u{fffd}x\u{fffd}\u{fffd}A".into())
        );
    }

    /// Records what the parser hands to its sink, to see the lone surrogates themselves.
    struct Strings(Vec<Vec<u8>>);

    impl Sink for Strings {
        type Value = ();
        type Array = ();
        type Object = ();
        type Key = ();
        type Error = std::convert::Infallible;

        fn null(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
        fn boolean(&mut self, _: bool) -> Result<(), Self::Error> {
            Ok(())
        }
        fn int(&mut self, _: i64) -> Result<(), Self::Error> {
            Ok(())
        }
        fn uint(&mut self, _: u64) -> Result<(), Self::Error> {
            Ok(())
        }
        fn float(&mut self, _: f64) -> Result<(), Self::Error> {
            Ok(())
        }
        fn string(&mut self, value: JsonStr<'_>) -> Result<(), Self::Error> {
            self.0.push(match value {
                JsonStr::Utf8(text) => text.as_bytes().to_vec(),
                JsonStr::Surrogates(bytes) => bytes.to_vec(),
            });
            Ok(())
        }
        fn key(&mut self, value: JsonStr<'_>) -> Result<(), Self::Error> {
            self.string(value)
        }
        fn array(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
        fn push(&mut self, _: &mut (), _: ()) -> Result<(), Self::Error> {
            Ok(())
        }
        fn end_array(&mut self, _: ()) -> Result<(), Self::Error> {
            Ok(())
        }
        fn object(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
        fn insert(&mut self, _: &mut (), _: (), _: ()) -> Result<(), Self::Error> {
            Ok(())
        }
        fn end_object(&mut self, _: ()) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    #[test]
    fn lone_surrogates_reach_the_sink_and_write_back() {
        let text = r#"{"\udfff": ["\ud800", "a\ud83d\ude00b", "\ud83d\u0041", "\udc00\ud800"]}"#;
        let mut sink = Strings(Vec::new());
        parse(text.as_bytes(), &mut sink).expect("valid");
        let expected: [&[u8]; 5] = [
            b"\xed\xbf\xbf",
            b"\xed\xa0\x80",
            "a😀b".as_bytes(),
            b"\xed\xa0\xbdA",
            b"\xed\xb0\x80\xed\xa0\x80",
        ];
        assert_eq!(sink.0, expected);
        let written: Vec<Vec<u8>> = sink.0.iter().map(|s| string(s)).collect();
        assert_eq!(
            written,
            [
                br#""\udfff""#.to_vec(),
                br#""\ud800""#.to_vec(),
                "\"a😀b\"".as_bytes().to_vec(),
                br#""\ud83dA""#.to_vec(),
                br#""\udc00\ud800""#.to_vec(),
            ]
        );
    }

    #[test]
    fn duplicate_keys_keep_the_first_place_and_the_last_value() {
        assert_eq!(
            dec(r#"{"a":1,"b":2,"a":3}"#),
            obj(&[("a", Value::Int(3)), ("b", Value::Int(2))])
        );
    }

    #[test]
    fn invalid_utf8_is_reported_at_its_offset() {
        assert_eq!(dec_err(b"\"ab\xff\""), "invalid UTF-8 at byte 3");
        assert_eq!(dec_err(b"\"\xed\xa0\x80\""), "invalid UTF-8 at byte 1");
        assert_eq!(dec_err(b"[\"\xe2\x82\""), "invalid UTF-8 at byte 2");
    }

    #[test]
    fn decode_errors_name_the_key() {
        assert_eq!(
            decode_value(b"[1 2]", "_outputs.A")
                .expect_err("invalid")
                .to_string(),
            "_outputs.A: expected ',' or ']' at byte 3"
        );
        assert_eq!(
            decode_value(b"[1 2]", ""),
            Err(CoreError::Codec {
                message: "expected ',' or ']' at byte 3".into(),
                key: None
            })
        );
    }

    #[test]
    fn no_input_panics() {
        // Every prefix of a document with every kind of token, and some junk bytes at every spot.
        let text = br#" {"a\u00e9\ud83d\ude00\ud800": [1, -0.5e-3, 1E+2, true, false, null, "x\"\\\/\b"], "": {}} "#;
        for end in 0..=text.len() {
            let _ = decode(&text[..end]);
            for junk in [
                b'\0', b'"', b'\\', b'u', b'e', b'-', b'.', b']', b'}', 0xed, 0xff,
            ] {
                let mut bytes = text[..end].to_vec();
                bytes.push(junk);
                bytes.extend_from_slice(&text[end..]);
                let _ = decode(&bytes);
            }
        }
        // A deep but valid-so-far document: rejected at the limit, without recursion.
        let deep = vec![b'['; 1_000_000];
        assert_eq!(dec_err(&deep), "nesting deeper than 512 levels at byte 512");
    }

    #[test]
    fn field_names_and_messages() {
        assert_eq!(backslash_replace(b"ok"), "ok");
        assert_eq!(
            backslash_replace(b"a\xffb\xed\xa0\x80"),
            "a\\xffb\\xed\\xa0\\x80"
        );
        assert_eq!(backslash_replace("é\u{1F600}".as_bytes()), "é\u{1F600}");
        assert_eq!(backslash_replace(b"\xe2\x82"), "\\xe2\\x82");
        assert_eq!(
            field_name_error(3),
            "field name is not valid UTF-8 at byte 3"
        );
        assert_eq!(
            odd_reply_error(3),
            "HGETALL reply has an odd number of items (3)"
        );
        assert_eq!(
            hmget_length_error(3, 2),
            "HMGET reply has 2 values for 3 keys"
        );
    }

    #[test]
    fn job_payloads() {
        let payload = obj(&[
            ("runId", Value::Str("r1".into())),
            ("blueprintId", Value::Str("bp".into())),
            ("nodeId", Value::Str("A".into())),
            ("attempt", Value::Int(2)),
        ]);
        let text = encode_job_payload(&payload).expect("valid");
        assert_eq!(
            text,
            br#"{"runId":"r1","blueprintId":"bp","nodeId":"A","attempt":2}"#
        );
        assert_eq!(decode_job_payload(&text), Ok(payload));

        let message = |result: CoreResult<Value>| result.expect_err("invalid").to_string();
        assert_eq!(
            message(decode_job_payload(br#"{"runId":"r1","nodeId":"A"}"#)),
            "job payload: blueprintId must be a string"
        );
        assert_eq!(
            message(decode_job_payload(
                br#"{"runId":1,"blueprintId":"bp","nodeId":"A"}"#
            )),
            "job payload: runId must be a string"
        );
        assert_eq!(
            message(decode_job_payload(b"[]")),
            "job payload: expected a JSON object, not an array"
        );
        assert_eq!(
            message(decode_job_payload(b"")),
            "job payload: expected a JSON object, not null"
        );
        assert_eq!(
            message(decode_job_payload(b"{")),
            "job payload: unexpected end of input at byte 1"
        );
        let bad = obj(&[
            ("runId", Value::Str("r1".into())),
            ("blueprintId", Value::Str("bp".into())),
            ("nodeId", Value::Str("A".into())),
            ("x", Value::Float(f64::NAN)),
        ]);
        assert_eq!(
            encode_job_payload(&bad).expect_err("NaN").to_string(),
            "job payload: cannot encode NaN at $.x"
        );
    }

    // ---- golden cases, shared with the Python tests -------------------------------------------

    fn from_json(value: &serde_json::Value) -> Value {
        match value {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Value::UInt(u)
                } else {
                    Value::Float(n.as_f64().expect("a double"))
                }
            }
            serde_json::Value::String(s) if s == "__nested_512__" => nested_arrays(MAX_DEPTH),
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(items) => Value::Array(items.iter().map(from_json).collect()),
            serde_json::Value::Object(pairs) => Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Equality that tells 0.0 from -0.0 (and ints from floats, as `Value`'s already does).
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
            (Value::Array(xs), Value::Array(ys)) => {
                xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same(x, y))
            }
            (Value::Object(xs), Value::Object(ys)) => {
                xs.len() == ys.len()
                    && xs
                        .iter()
                        .zip(ys)
                        .all(|((kx, x), (ky, y))| kx == ky && same(x, y))
            }
            _ => a == b,
        }
    }

    fn text<'a>(case: &'a serde_json::Value, field: &str) -> &'a str {
        case[field].as_str().expect("a string field")
    }

    #[test]
    fn golden_cases() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/codec_golden.json");
        let data = std::fs::read_to_string(path).expect("golden file is readable");
        let golden: serde_json::Value = serde_json::from_str(&data).expect("golden file is JSON");
        let group = |name: &str| golden[name].as_array().expect("a list of cases").clone();
        let (encodes, decodes, errors) = (group("encode"), group("decode"), group("decode_errors"));
        assert!(
            encodes.len() >= 60 && decodes.len() >= 25 && errors.len() >= 45,
            "golden file lost cases"
        );
        for case in &encodes {
            let name = text(case, "name");
            let value = from_json(&case["value"]);
            let encoded = text(case, "encoded");
            assert_eq!(enc(&value), encoded, "encode {name:?}");
            let expected = case.get("decoded").map_or(value, from_json);
            let decoded = dec(encoded);
            assert!(
                same(&decoded, &expected),
                "decode {name:?}: {decoded:?} != {expected:?}"
            );
        }
        for case in &decodes {
            let name = text(case, "name");
            let expected = from_json(&case["value"]);
            let decoded = dec(text(case, "encoded"));
            assert!(
                same(&decoded, &expected),
                "decode {name:?}: {decoded:?} != {expected:?}"
            );
        }
        for case in &errors {
            let name = text(case, "name");
            let got = dec_err(text(case, "encoded").as_bytes());
            assert_eq!(got, text(case, "message"), "error {name:?}");
        }
    }
}
