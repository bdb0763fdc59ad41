//! Blueprint loading: JSON text to a sanitised blueprint (Flowcraft's `sanitizeBlueprint`, spec
//! §1.2), with the type checks and error messages of `python/bullflow/_pure/blueprint.py`.
//!
//! Pure Rust: no Python here (the bindings live in `crate::py::blueprint`). Two halves:
//!
//! * [`parse_json`]: a JSON scanner that accepts exactly what Python's `json.loads` accepts and
//!   stops at the same character on malformed input (its checks mirror CPython's `_json.c`), plus
//!   a nesting limit ([`MAX_DEPTH`]) and [`decode_utf8`] for bytes. Strings are kept as "WTF-8"
//!   ([`Text`]): UTF-8 that may also hold lone surrogates, which JSON escapes (`"\ud800"`) and
//!   Python strs can contain.
//! * [`sanitise`]: the validation, written once against the [`Document`] trait so that it runs
//!   on parsed JSON ([`JsonDocument`]) and, in the bindings, directly on Python mappings.
//!
//! The sanitised blueprint is `{"id", "nodes", "edges", "metadata"}`; each node
//! `{"id", "uses"}` plus `params` / `inputs` / `config` when present and not null; each edge
//! `{"source", "target"}` plus `action` / `condition` / `transform` when present and not null;
//! unknown fields are dropped. Every type problem is a [`CoreError::Blueprint`] naming the JSON
//! path, e.g. `nodes[3].config.maxRetries: expected an integer, got "3"`.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::errors::{CoreError, CoreResult};

/// The deepest nesting of arrays and objects accepted in JSON text (the document itself is level
/// 1). A deeper bracket is a malformed-JSON error at that bracket. Python's `json` module has no
/// fixed limit (it stops at the interpreter's recursion limit, which depends on the caller); this
/// one keeps both implementations deterministic and well below that limit.
pub const MAX_DEPTH: usize = 512;

// ---- text that may hold lone surrogates -------------------------------------------------------

/// Text as Python sees it: UTF-8, extended (like Python's `"surrogatepass"` error handler) to
/// encode the surrogate code points U+D800..U+DFFF on their own, as three bytes each.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Text(Vec<u8>);

impl Text {
    /// Text from bytes in the encoding described on [`Text`].
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Text(bytes.into())
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text as a `str`, unless it holds a lone surrogate.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn push_str(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }

    pub fn push_text(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    /// Lone surrogates shown as U+FFFD.
    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(s.as_bytes().to_vec())
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(s.into_bytes())
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string_lossy(), f)
    }
}

/// Appends code point `cp` (any value up to U+10FFFF, surrogates included) in the encoding of
/// [`Text`].
fn push_code_point(out: &mut Vec<u8>, cp: u32) {
    // Each `as u8` keeps the low bits on purpose: the masks and shifts fit them in a byte.
    if cp < 0x80 {
        out.push(cp as u8);
    } else if cp < 0x800 {
        out.extend_from_slice(&[0xC0 | (cp >> 6) as u8, 0x80 | (cp & 0x3F) as u8]);
    } else if cp < 0x1_0000 {
        out.extend_from_slice(&[
            0xE0 | (cp >> 12) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]);
    } else {
        out.extend_from_slice(&[
            0xF0 | (cp >> 18) as u8,
            0x80 | ((cp >> 12) & 0x3F) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]);
    }
}

/// How many characters (code points) `bytes` holds: the bytes that are not UTF-8 continuation
/// bytes.
fn char_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| (b & 0xC0) != 0x80).count()
}

/// The byte offset of the character at position `chars`, or `None` past the end.
fn char_boundary(bytes: &[u8], chars: usize) -> Option<usize> {
    bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| (b & 0xC0) != 0x80)
        .map(|(i, _)| i)
        .nth(chars)
}

// ---- JSON values and the scanner ------------------------------------------------------------------

/// A JSON value as Python's `json.loads` returns it, as an owned tree (see [`Parsed::to_json`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// An integer that fits an `i64`.
    Int(i64),
    /// Any other integer: its decimal digits, with an optional leading `-`.
    BigInt(Box<str>),
    /// A number with a fraction or an exponent, `NaN`, `Infinity`, `-Infinity`, or an integer
    /// with more digits than Python's int max str digits (as `float(text)`).
    Float(f64),
    /// A string, in the encoding of [`Text`].
    Str(Box<[u8]>),
    Array(Vec<Json>),
    /// The members in order; a key given twice keeps its first place and its last value, like a
    /// Python dict.
    Object(Vec<(Box<[u8]>, Json)>),
}

/// One value of parsed JSON text, on the tape of a [`Parsed`]: a container is followed by its
/// contents (an object by key, value, key, value...; keys are `Str` entries).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Entry {
    Null,
    Bool(bool),
    /// An integer that fits an `i64`.
    Int(i64),
    /// See [`Json::Float`].
    Float(f64),
    /// Any other integer: its text (digits with an optional `-`) at `at..at + len` of the input.
    BigInt {
        at: usize,
        len: usize,
    },
    /// A string: its characters, in the encoding of [`Text`], at `at..at + len` of the input,
    /// or of the parse's own buffer when it had escapes (`escaped`).
    Str {
        at: usize,
        len: usize,
        escaped: bool,
    },
    /// `len` elements; the entries of the array end before `end`.
    Array {
        len: usize,
        end: usize,
    },
    /// `len` members; the entries of the object end before `end`. `duplicates`: a key is given
    /// more than once (a Python dict keeps its first place and its last value).
    Object {
        len: usize,
        end: usize,
        duplicates: bool,
    },
}

/// JSON text parsed by [`parse_json`]: a tape of [`Entry`]s in document order (the document is
/// entry 0), with the strings that had escapes decoded into a buffer of its own. Two
/// allocations for the whole document, whatever its size.
#[derive(Debug, Clone)]
pub struct Parsed<'t> {
    input: &'t [u8],
    tape: Vec<Entry>,
    decoded: Vec<u8>,
}

impl<'t> Parsed<'t> {
    /// The entry at `index` of the tape.
    pub fn entry(&self, index: usize) -> Entry {
        self.tape[index]
    }

    /// The index after the value at `index` and its contents.
    pub fn skip(&self, index: usize) -> usize {
        match self.tape[index] {
            Entry::Array { end, .. } | Entry::Object { end, .. } => end,
            _ => index + 1,
        }
    }

    /// The characters of the string at `index` (empty for any other entry).
    pub fn str_at(&self, index: usize) -> &[u8] {
        match self.tape[index] {
            Entry::Str {
                at,
                len,
                escaped: false,
            } => &self.input[at..at + len],
            Entry::Str { at, len, .. } => &self.decoded[at..at + len],
            _ => &[],
        }
    }

    /// The text of the big integer at `index` (empty for any other entry).
    pub fn bigint_at(&self, index: usize) -> &str {
        match self.tape[index] {
            Entry::BigInt { at, len } => {
                std::str::from_utf8(&self.input[at..at + len]).unwrap_or("")
            }
            _ => "",
        }
    }

    /// The elements of the array at `index`, in order.
    pub fn elements(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        let (len, mut i) = match self.tape[index] {
            Entry::Array { len, .. } => (len, index + 1),
            _ => (0, index + 1),
        };
        (0..len).map(move |_| {
            let at = i;
            i = self.skip(i);
            at
        })
    }

    /// The members (key, value) of the object at `index`, in document order, duplicates
    /// included.
    pub fn raw_members(&self, index: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let (len, mut i) = match self.tape[index] {
            Entry::Object { len, .. } => (len, index + 1),
            _ => (0, index + 1),
        };
        (0..len).map(move |_| {
            let key = i;
            i = self.skip(key + 1);
            (key, key + 1)
        })
    }

    /// Whether the object at `index` gives a key more than once.
    fn has_duplicates(&self, index: usize) -> bool {
        matches!(
            self.tape[index],
            Entry::Object {
                duplicates: true,
                ..
            }
        )
    }

    /// The members of the object at `index` as a Python dict holds them: a key given twice keeps
    /// its first place and its last value.
    pub fn members(&self, index: usize) -> Vec<(usize, usize)> {
        let members: Vec<_> = self.raw_members(index).collect();
        if !self.has_duplicates(index) {
            return members;
        }
        let mut position: HashMap<&[u8], usize> = HashMap::with_capacity(members.len());
        let mut out: Vec<(usize, usize)> = Vec::with_capacity(members.len());
        for (key, value) in members {
            match position.get(self.str_at(key)) {
                Some(&at) => out[at].1 = value,
                None => {
                    position.insert(self.str_at(key), out.len());
                    out.push((key, value));
                }
            }
        }
        out
    }

    /// The value under `key` in the object at `index` (its last one, if given twice).
    pub fn get(&self, index: usize, key: &[u8]) -> Option<usize> {
        let mut found = self
            .raw_members(index)
            .filter(|&(k, _)| self.str_at(k) == key)
            .map(|(_, v)| v);
        if self.has_duplicates(index) {
            found.last()
        } else {
            found.next()
        }
    }

    /// The value at `index` as an owned tree. Recursive: [`parse_json`] limits the depth.
    pub fn to_json(&self, index: usize) -> Json {
        match self.tape[index] {
            Entry::Null => Json::Null,
            Entry::Bool(b) => Json::Bool(b),
            Entry::Int(n) => Json::Int(n),
            Entry::Float(f) => Json::Float(f),
            Entry::BigInt { .. } => Json::BigInt(self.bigint_at(index).into()),
            Entry::Str { .. } => Json::Str(self.str_at(index).into()),
            Entry::Array { .. } => {
                Json::Array(self.elements(index).map(|i| self.to_json(i)).collect())
            }
            Entry::Object { .. } => Json::Object(
                self.members(index)
                    .into_iter()
                    .map(|(k, v)| (self.str_at(k).into(), self.to_json(v)))
                    .collect(),
            ),
        }
    }
}

/// How [`parse_json`] behaves where Python versions or settings differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonOptions {
    /// See [`MAX_DEPTH`].
    pub max_depth: usize,
    /// Python's `sys.get_int_max_str_digits()` (0: no limit). An integer with more digits
    /// becomes a float, as `float(text)` (Python's `int(text)` would refuse it).
    pub int_max_str_digits: usize,
    /// Python 3.13+ reports a comma before `]` or `}` at the comma ("Illegal trailing comma");
    /// older versions report the bracket ("Expecting value" / "Expecting property name").
    pub trailing_comma_errors: bool,
}

impl Default for JsonOptions {
    fn default() -> Self {
        JsonOptions {
            max_depth: MAX_DEPTH,
            int_max_str_digits: 4300,
            trailing_comma_errors: false,
        }
    }
}

const EXPECTING_VALUE: &str = "Expecting value";
const EXPECTING_DELIMITER: &str = "Expecting ',' delimiter";
const EXPECTING_NAME: &str = "Expecting property name enclosed in double quotes";
const EXPECTING_COLON: &str = "Expecting ':' delimiter";
const UNTERMINATED: &str = "Unterminated string starting at";
const CONTROL_CHARACTER: &str = "Invalid control character at";
const BAD_ESCAPE: &str = "Invalid \\escape";
const BAD_UNICODE_ESCAPE: &str = "Invalid \\uXXXX escape";
const EXTRA_DATA: &str = "Extra data";
const BOM: &str = "Unexpected UTF-8 BOM (decode using utf-8-sig)";

/// Where and why scanning stopped: a byte offset and what went wrong.
#[derive(Debug)]
struct Stop(usize, Cow<'static, str>);

impl Stop {
    fn at(pos: usize, what: &'static str) -> Stop {
        Stop(pos, Cow::Borrowed(what))
    }
}

/// `BlueprintError("malformed JSON at line L, column C: <what>")` for a stop at byte
/// `byte_offset` of `text`. Line and column are 1-based and counted in characters like Python's
/// `JSONDecodeError`'s: the line is 1 + the newlines before the offset, the column the
/// characters since the last of them, plus one.
fn malformed(text: &[u8], byte_offset: usize, what: &str) -> CoreError {
    let before = &text[..byte_offset.min(text.len())];
    let (line, column) = match before.iter().rposition(|&b| b == b'\n') {
        Some(nl) => (
            1 + before.iter().filter(|&&b| b == b'\n').count(),
            char_count(&before[nl + 1..]) + 1,
        ),
        None => (1, char_count(before) + 1),
    };
    CoreError::Blueprint {
        problem: format!("malformed JSON at line {line}, column {column}: {what}").into(),
        path: Text::default(),
    }
}

/// The JSON text in `bytes`: one UTF-8 byte order mark is skipped, the rest must be UTF-8. Bad
/// UTF-8 is a malformed-JSON error at the first character that cannot be decoded.
pub fn decode_utf8(bytes: &[u8]) -> CoreResult<&[u8]> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(_) => Ok(bytes),
        Err(err) => Err(malformed(bytes, err.valid_up_to(), "invalid UTF-8")),
    }
}

/// Parses JSON text (a Python str's characters, in the encoding of [`Text`]) like Python's
/// `json.loads(str)`: the same values, and on malformed text a malformed-JSON error at the same
/// line and column. The explanation after them is worded like Python 3.11's `json` module
/// (`Expecting value`, ...); it is the one part of any message that may differ from the
/// pure-Python twin's, which shows whatever the running Python's `json` says. Never panics,
/// whatever the bytes.
pub fn parse_json<'t>(text: &'t [u8], options: &JsonOptions) -> CoreResult<Parsed<'t>> {
    if text.starts_with("\u{FEFF}".as_bytes()) {
        return Err(malformed(text, 0, BOM));
    }
    let mut scanner = Scanner {
        s: text,
        options,
        tape: Vec::with_capacity(text.len() / 8 + 1),
        decoded: Vec::new(),
        keys: Vec::new(),
    };
    match scanner.document() {
        Ok(()) => Ok(Parsed {
            input: text,
            tape: scanner.tape,
            decoded: scanner.decoded,
        }),
        Err(Stop(pos, what)) => Err(malformed(text, pos, &what)),
    }
}

/// An array or object being scanned: its entry on the tape, how many elements or members it
/// has so far, and (objects) where its keys start on the scanner's key stack.
struct Open {
    entry: usize,
    len: usize,
    keys_from: usize,
    is_object: bool,
}

struct Scanner<'a> {
    s: &'a [u8],
    options: &'a JsonOptions,
    tape: Vec<Entry>,
    decoded: Vec<u8>,
    /// The keys of the objects being scanned (their tape entries).
    keys: Vec<usize>,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl Scanner<'_> {
    fn at(&self, i: usize) -> Option<u8> {
        self.s.get(i).copied()
    }

    fn skip_ws(&self, mut i: usize) -> usize {
        while self.at(i).is_some_and(is_ws) {
            i += 1;
        }
        i
    }

    /// The whole document: a value between optional whitespace. Iterative, with the open
    /// containers on a heap stack, so the nesting never touches the thread's stack.
    fn document(&mut self) -> Result<(), Stop> {
        let mut open: Vec<Open> = Vec::new();
        let mut i = self.skip_ws(0);
        'value: loop {
            // A value starts at `i`.
            let mut end = match self.at(i) {
                Some(b'{' | b'[') if open.len() >= self.options.max_depth => {
                    let what = format!("nested more than {} levels deep", self.options.max_depth);
                    return Err(Stop(i, what.into()));
                }
                Some(b'{') => {
                    let entry = self.tape.len();
                    let j = self.skip_ws(i + 1);
                    if self.at(j) == Some(b'}') {
                        self.tape.push(Entry::Object {
                            len: 0,
                            end: entry + 1,
                            duplicates: false,
                        });
                        j + 1
                    } else {
                        self.tape.push(Entry::Null); // filled in when the object closes
                        open.push(Open {
                            entry,
                            len: 0,
                            keys_from: self.keys.len(),
                            is_object: true,
                        });
                        i = self.key(j)?;
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    let entry = self.tape.len();
                    let j = self.skip_ws(i + 1);
                    if self.at(j) == Some(b']') {
                        self.tape.push(Entry::Array {
                            len: 0,
                            end: entry + 1,
                        });
                        j + 1
                    } else {
                        self.tape.push(Entry::Null); // filled in when the array closes
                        open.push(Open {
                            entry,
                            len: 0,
                            keys_from: 0,
                            is_object: false,
                        });
                        i = j;
                        continue 'value;
                    }
                }
                _ => self.scalar(i)?,
            };
            // A value ends before `end`: count it in its container, closing every container
            // that ends here.
            loop {
                let Some(top) = open.last_mut() else {
                    let j = self.skip_ws(end);
                    return if j == self.s.len() {
                        Ok(())
                    } else {
                        Err(Stop::at(j, EXTRA_DATA))
                    };
                };
                top.len += 1;
                let j = self.skip_ws(end);
                let (closer, trailing) = if top.is_object {
                    (b'}', "Illegal trailing comma before end of object")
                } else {
                    (b']', "Illegal trailing comma before end of array")
                };
                match self.at(j) {
                    Some(b) if b == closer => {
                        let Some(done) = open.pop() else {
                            unreachable!("the container was just looked at")
                        };
                        self.close(&done);
                        end = j + 1;
                    }
                    Some(b',') => {
                        let k = self.skip_ws(j + 1);
                        if self.options.trailing_comma_errors && self.at(k) == Some(closer) {
                            return Err(Stop::at(j, trailing));
                        }
                        i = if top.is_object { self.key(k)? } else { k };
                        continue 'value;
                    }
                    _ => return Err(Stop::at(j, EXPECTING_DELIMITER)),
                }
            }
        }
    }

    /// Writes the entry of a container that has just closed.
    fn close(&mut self, done: &Open) {
        let end = self.tape.len();
        self.tape[done.entry] = if done.is_object {
            let keys = &self.keys[done.keys_from..];
            let text = |k: usize| match self.tape[k] {
                Entry::Str {
                    at,
                    len,
                    escaped: false,
                } => &self.s[at..at + len],
                Entry::Str { at, len, .. } => &self.decoded[at..at + len],
                _ => &[],
            };
            let duplicates = if keys.len() <= 16 {
                (1..keys.len()).any(|i| keys[..i].iter().any(|&k| text(k) == text(keys[i])))
            } else {
                let mut seen = HashSet::with_capacity(keys.len());
                !keys.iter().all(|&k| seen.insert(text(k)))
            };
            self.keys.truncate(done.keys_from);
            Entry::Object {
                len: done.len,
                end,
                duplicates,
            }
        } else {
            Entry::Array { len: done.len, end }
        };
    }

    /// A member's key at `i`, its colon and the whitespace after it: pushes the key and returns
    /// where its value starts.
    fn key(&mut self, i: usize) -> Result<usize, Stop> {
        if self.at(i) != Some(b'"') {
            return Err(Stop::at(i, EXPECTING_NAME));
        }
        let next = self.string(i + 1)?;
        self.keys.push(self.tape.len() - 1);
        let j = self.skip_ws(next);
        if self.at(j) != Some(b':') {
            return Err(Stop::at(j, EXPECTING_COLON));
        }
        Ok(self.skip_ws(j + 1))
    }

    /// A value that is not a container, at `i` (possibly past the end): pushes it and returns
    /// where it ends.
    fn scalar(&mut self, i: usize) -> Result<usize, Stop> {
        let rest = &self.s[i.min(self.s.len())..];
        let (word, value): (&str, Entry) = match rest.first() {
            None => return Err(Stop::at(i, EXPECTING_VALUE)),
            Some(b'"') => return self.string(i + 1),
            Some(b'n') => ("null", Entry::Null),
            Some(b't') => ("true", Entry::Bool(true)),
            Some(b'f') => ("false", Entry::Bool(false)),
            Some(b'N') => ("NaN", Entry::Float(f64::NAN)),
            Some(b'I') => ("Infinity", Entry::Float(f64::INFINITY)),
            Some(b'-') => ("-Infinity", Entry::Float(f64::NEG_INFINITY)),
            Some(_) => return self.number(i),
        };
        if rest.starts_with(word.as_bytes()) {
            self.tape.push(value);
            Ok(i + word.len())
        } else {
            self.number(i)
        }
    }

    /// A number at `start`, matched like CPython's `_match_number_unicode` (the regex
    /// `-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?`); no number is "Expecting value" at `start`.
    fn number(&mut self, start: usize) -> Result<usize, Stop> {
        let digit = |i: usize| self.at(i).is_some_and(|b| b.is_ascii_digit());
        let mut i = start;
        if self.at(i) == Some(b'-') {
            i += 1;
        }
        match self.at(i) {
            Some(b'1'..=b'9') => {
                i += 1;
                while digit(i) {
                    i += 1;
                }
            }
            Some(b'0') => i += 1,
            _ => return Err(Stop::at(start, EXPECTING_VALUE)),
        }
        let int_end = i;
        let mut is_float = false;
        if self.at(i) == Some(b'.') && digit(i + 1) {
            is_float = true;
            i += 2;
            while digit(i) {
                i += 1;
            }
        }
        if matches!(self.at(i), Some(b'e' | b'E')) {
            let mut j = i + 1;
            if matches!(self.at(j), Some(b'-' | b'+')) {
                j += 1;
            }
            if digit(j) {
                while digit(j) {
                    j += 1;
                }
                is_float = true;
                i = j;
            }
        }
        // ASCII by construction.
        let text = std::str::from_utf8(&self.s[start..i]).unwrap_or("0");
        let float = || Entry::Float(text.parse().unwrap_or(f64::NAN));
        let value = if is_float {
            float()
        } else {
            let digits = int_end - start - usize::from(self.s[start] == b'-');
            let limit = self.options.int_max_str_digits;
            match text.parse::<i64>() {
                Ok(n) => Entry::Int(n),
                Err(_) if limit > 0 && digits > limit => float(),
                Err(_) => Entry::BigInt {
                    at: start,
                    len: i - start,
                },
            }
        };
        self.tape.push(value);
        Ok(i)
    }

    /// The string whose first character (after the opening quote) is at `start`: pushes it and
    /// returns the offset after the closing quote. Mirrors CPython's `scanstring_unicode`
    /// (strict mode), error positions included.
    fn string(&mut self, start: usize) -> Result<usize, Stop> {
        let s = self.s;
        let begin = start - 1;
        let mut end = start;
        let mut escaped: Option<usize> = None; // where the decoded text starts, once it has one
        loop {
            let mut next = end;
            while let Some(&b) = s.get(next) {
                if b == b'"' || b == b'\\' {
                    break;
                }
                if b < 0x20 {
                    return Err(Stop::at(next, CONTROL_CHARACTER));
                }
                next += 1;
            }
            let Some(&c) = s.get(next) else {
                return Err(Stop::at(begin, UNTERMINATED));
            };
            if c == b'"' {
                let entry = match escaped {
                    None => Entry::Str {
                        at: start,
                        len: next - start,
                        escaped: false,
                    },
                    Some(at) => {
                        self.decoded.extend_from_slice(&s[end..next]);
                        Entry::Str {
                            at,
                            len: self.decoded.len() - at,
                            escaped: true,
                        }
                    }
                };
                self.tape.push(entry);
                return Ok(next + 1);
            }
            let out = &mut self.decoded;
            if escaped.is_none() {
                escaped = Some(out.len());
            }
            out.extend_from_slice(&s[end..next]);
            next += 1;
            let Some(&c) = s.get(next) else {
                return Err(Stop::at(begin, UNTERMINATED));
            };
            if c != b'u' {
                end = next + 1;
                let ch = match c {
                    b'"' | b'\\' | b'/' => c,
                    b'b' => 0x08,
                    b'f' => 0x0C,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    _ => return Err(Stop::at(end - 2, BAD_ESCAPE)),
                };
                out.push(ch);
                continue;
            }
            next += 1;
            end = next + 4;
            if end >= s.len() {
                return Err(Stop::at(next - 1, BAD_UNICODE_ESCAPE));
            }
            let Some(mut cp) = hex4(&s[next..end]) else {
                return Err(Stop::at(end - 5, BAD_UNICODE_ESCAPE));
            };
            if (0xD800..0xDC00).contains(&cp)
                && end + 6 < s.len()
                && s[end] == b'\\'
                && s[end + 1] == b'u'
            {
                let Some(low) = hex4(&s[end + 2..end + 6]) else {
                    return Err(Stop::at(end + 1, BAD_UNICODE_ESCAPE));
                };
                if (0xDC00..0xE000).contains(&low) {
                    cp = 0x1_0000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                    end += 6;
                }
            }
            push_code_point(out, cp);
        }
    }
}

fn hex4(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = (d as char).to_digit(16)?;
        Some(acc << 4 | v)
    })
}

// ---- how values are described in messages --------------------------------------------------------

pub use crate::float_repr::float_repr;

/// A string as messages show it: JSON-quoted without escaping non-ASCII (Python's
/// `json.dumps(s, ensure_ascii=False)`), cut to its first 37 characters plus `...` when it is
/// longer than 40.
pub fn quote(text: &[u8]) -> Text {
    let cut = if char_count(text) > 40 {
        char_boundary(text, 37)
    } else {
        None
    };
    let shown = cut.map_or(text, |at| &text[..at]);
    let mut out = Vec::with_capacity(shown.len() + 5);
    out.push(b'"');
    for &b in shown {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0C => out.extend_from_slice(b"\\f"),
            0..=0x1F => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    if cut.is_some() {
        out.extend_from_slice(b"...");
    }
    out.push(b'"');
    Text(out)
}

// ---- documents: what the validation needs to know about a value --------------------------------

/// The kind of a value, in the order the checks look at them (Python: `None`, `bool`, `str`,
/// `int`, `float`, `Mapping`, `list`/`tuple`, anything else).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Str,
    Int,
    Float(f64),
    Object,
    Array,
    Other,
}

/// A field the validation looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Id,
    Nodes,
    Edges,
    Metadata,
    Uses,
    Params,
    Inputs,
    Config,
    MaxRetries,
    RetryDelay,
    Backoff,
    Timeout,
    Fallback,
    JoinStrategy,
    Source,
    Target,
    Action,
    Condition,
    Transform,
    Version,
    CycleEntryPoints,
}

impl Field {
    /// Every field, in the order of [`Field::index`].
    pub const ALL: [Field; 21] = [
        Field::Id,
        Field::Nodes,
        Field::Edges,
        Field::Metadata,
        Field::Uses,
        Field::Params,
        Field::Inputs,
        Field::Config,
        Field::MaxRetries,
        Field::RetryDelay,
        Field::Backoff,
        Field::Timeout,
        Field::Fallback,
        Field::JoinStrategy,
        Field::Source,
        Field::Target,
        Field::Action,
        Field::Condition,
        Field::Transform,
        Field::Version,
        Field::CycleEntryPoints,
    ];

    /// The key in the blueprint (Flowcraft's camelCase).
    pub fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Nodes => "nodes",
            Field::Edges => "edges",
            Field::Metadata => "metadata",
            Field::Uses => "uses",
            Field::Params => "params",
            Field::Inputs => "inputs",
            Field::Config => "config",
            Field::MaxRetries => "maxRetries",
            Field::RetryDelay => "retryDelay",
            Field::Backoff => "backoff",
            Field::Timeout => "timeout",
            Field::Fallback => "fallback",
            Field::JoinStrategy => "joinStrategy",
            Field::Source => "source",
            Field::Target => "target",
            Field::Action => "action",
            Field::Condition => "condition",
            Field::Transform => "transform",
            Field::Version => "version",
            Field::CycleEntryPoints => "cycleEntryPoints",
        }
    }

    /// The position of the field in [`Field::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A tree of values the validation can walk: parsed JSON ([`JsonDocument`]) or, in the
/// bindings, Python objects. Each method is called only on values of the kind it names.
pub trait Document {
    /// A handle to a value (cheap to clone).
    type Value: Clone;
    /// A key of an object, as returned by [`Document::items`].
    type Key;
    /// What a lookup can fail with besides a blueprint error (a Python exception).
    type Error: From<CoreError>;

    fn kind(&self, value: &Self::Value) -> Result<Kind, Self::Error>;
    /// The value under `field` in an object, or `None` when it has none.
    fn get(&self, object: &Self::Value, field: Field) -> Result<Option<Self::Value>, Self::Error>;
    /// The values of an object, in order.
    fn values(&self, object: &Self::Value) -> Result<Vec<Self::Value>, Self::Error>;
    /// The members of an object, in order.
    fn items(&self, object: &Self::Value) -> Result<Members<Self>, Self::Error>;
    /// The elements of an array, in order.
    fn elements(&self, array: &Self::Value) -> Result<Vec<Self::Value>, Self::Error>;
    /// A shallow copy of an object (Python: `dict(obj)`).
    fn copy_object(&self, object: &Self::Value) -> Result<Self::Value, Self::Error>;
    /// The characters of a string.
    fn text<'s>(&'s self, string: &'s Self::Value) -> Result<Cow<'s, [u8]>, Self::Error>;
    /// A key as a path shows it (Python: `f"{key}"`).
    fn key_text(&self, key: &Self::Key) -> Result<Text, Self::Error>;
    /// Python's `repr` of a number.
    fn number_repr(&self, number: &Self::Value) -> Result<Text, Self::Error>;
    /// The name of the type of a value of kind [`Kind::Other`].
    fn type_name(&self, value: &Self::Value) -> Result<Text, Self::Error>;
}

/// The members of an object of a [`Document`], in order.
pub type Members<D> = Vec<(<D as Document>::Key, <D as Document>::Value)>;

/// A short description of a value for messages: `null`, `true`, `"text"`, `2.5`, `an object`,
/// `an array`, `a <type name>`.
pub fn describe<D: Document>(doc: &D, value: &D::Value) -> Result<Text, D::Error> {
    Ok(match doc.kind(value)? {
        Kind::Null => "null".into(),
        Kind::Bool(true) => "true".into(),
        Kind::Bool(false) => "false".into(),
        Kind::Str => quote(&doc.text(value)?),
        Kind::Int | Kind::Float(_) => doc.number_repr(value)?,
        Kind::Object => "an object".into(),
        Kind::Array => "an array".into(),
        Kind::Other => {
            let mut text = Text::from("a ");
            text.push_text(doc.type_name(value)?.as_bytes());
            text
        }
    })
}

/// Parsed JSON as a [`Document`]: values and keys are indexes of the tape.
#[derive(Debug, Clone, Copy)]
pub struct JsonDocument<'p> {
    parsed: &'p Parsed<'p>,
}

impl<'p> JsonDocument<'p> {
    pub fn new(parsed: &'p Parsed<'p>) -> Self {
        JsonDocument { parsed }
    }
}

impl Document for JsonDocument<'_> {
    type Value = usize;
    type Key = usize;
    type Error = CoreError;

    fn kind(&self, value: &usize) -> CoreResult<Kind> {
        Ok(match self.parsed.entry(*value) {
            Entry::Null => Kind::Null,
            Entry::Bool(b) => Kind::Bool(b),
            Entry::Str { .. } => Kind::Str,
            Entry::Int(_) | Entry::BigInt { .. } => Kind::Int,
            Entry::Float(f) => Kind::Float(f),
            Entry::Object { .. } => Kind::Object,
            Entry::Array { .. } => Kind::Array,
        })
    }

    fn get(&self, object: &usize, field: Field) -> CoreResult<Option<usize>> {
        Ok(self.parsed.get(*object, field.name().as_bytes()))
    }

    fn values(&self, object: &usize) -> CoreResult<Vec<usize>> {
        Ok(self
            .parsed
            .members(*object)
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    fn items(&self, object: &usize) -> CoreResult<Vec<(usize, usize)>> {
        Ok(self.parsed.members(*object))
    }

    fn elements(&self, array: &usize) -> CoreResult<Vec<usize>> {
        Ok(self.parsed.elements(*array).collect())
    }

    fn copy_object(&self, object: &usize) -> CoreResult<usize> {
        Ok(*object)
    }

    fn text<'s>(&'s self, string: &'s usize) -> CoreResult<Cow<'s, [u8]>> {
        Ok(Cow::Borrowed(self.parsed.str_at(*string)))
    }

    fn key_text(&self, key: &usize) -> CoreResult<Text> {
        Ok(Text::from_bytes(self.parsed.str_at(*key)))
    }

    fn number_repr(&self, number: &usize) -> CoreResult<Text> {
        Ok(match self.parsed.entry(*number) {
            Entry::Int(n) => n.to_string().into(),
            Entry::BigInt { .. } => self.parsed.bigint_at(*number).into(),
            Entry::Float(f) => float_repr(f).into(),
            _ => Text::default(),
        })
    }

    fn type_name(&self, _value: &usize) -> CoreResult<Text> {
        Ok(Text::default())
    }
}

// ---- the sanitised blueprint and the validation ---------------------------------------------------

/// Where the blueprint id comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum BlueprintId<V> {
    /// The `id` argument (it overrides the document).
    Given,
    /// The `default_id` argument (the document has no id, or a null one).
    Default,
    /// The document's `id`, a string.
    Document(V),
}

/// A node's `inputs`: a string, or the members of an object of strings.
#[derive(Debug, Clone, PartialEq)]
pub enum Inputs<V, K> {
    Text(V),
    Map(Vec<(K, V)>),
}

/// A node's `config`, with only the known fields. `max_retries` is an integral number (convert
/// it to an int), `retry_delay` and `timeout` finite numbers, the others strings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config<V> {
    pub max_retries: Option<V>,
    pub retry_delay: Option<V>,
    pub backoff: Option<V>,
    pub timeout: Option<V>,
    pub fallback: Option<V>,
    pub join_strategy: Option<V>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node<V, K> {
    pub id: V,
    pub uses: V,
    /// An object, passed through untouched.
    pub params: Option<V>,
    pub inputs: Option<Inputs<V, K>>,
    pub config: Option<Config<V>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Edge<V> {
    pub source: V,
    pub target: V,
    pub action: Option<V>,
    pub condition: Option<V>,
    pub transform: Option<V>,
}

/// A sanitised blueprint, holding the document's own values.
#[derive(Debug, Clone, PartialEq)]
pub struct Sanitised<V, K> {
    pub id: BlueprintId<V>,
    pub nodes: Vec<Node<V, K>>,
    pub edges: Vec<Edge<V>>,
    /// A shallow copy of the document's `metadata` (an object); `None` when it has none (an
    /// empty object).
    pub metadata: Option<V>,
}

fn blueprint_error(path: Text, problem: Text) -> CoreError {
    CoreError::Blueprint { problem, path }
}

/// `<path>: expected <what>, got <description of value>`.
fn expected<D: Document>(doc: &D, path: Text, what: &str, value: &D::Value) -> D::Error {
    match describe(doc, value) {
        Ok(got) => {
            let mut problem = Text::from(format!("expected {what}, got "));
            problem.push_text(got.as_bytes());
            blueprint_error(path, problem).into()
        }
        Err(err) => err,
    }
}

fn missing<D: Document>(path: Text) -> D::Error {
    blueprint_error(path, "required field is missing".into()).into()
}

/// Where in the blueprint an object is; its path is made only for an error message.
#[derive(Debug, Clone, Copy)]
enum At {
    Root,
    Node(usize),
    NodeConfig(usize),
    Edge(usize),
}

impl At {
    fn path(self) -> String {
        match self {
            At::Root => String::new(),
            At::Node(i) => format!("nodes[{i}]"),
            At::NodeConfig(i) => format!("nodes[{i}].config"),
            At::Edge(i) => format!("edges[{i}]"),
        }
    }

    /// The path `<path>.<field>` (or `<field>` at the top).
    fn join(self, field: Field) -> Text {
        match self {
            At::Root => field.name().into(),
            _ => format!("{}.{}", self.path(), field.name()).into(),
        }
    }
}

/// The value under `field`, with its kind, unless it is missing or null.
fn present<D: Document>(
    doc: &D,
    object: &D::Value,
    field: Field,
) -> Result<Option<(D::Value, Kind)>, D::Error> {
    let Some(value) = doc.get(object, field)? else {
        return Ok(None);
    };
    match doc.kind(&value)? {
        Kind::Null => Ok(None),
        kind => Ok(Some((value, kind))),
    }
}

fn required_str<D: Document>(
    doc: &D,
    object: &D::Value,
    field: Field,
    at: At,
) -> Result<D::Value, D::Error> {
    match present(doc, object, field)? {
        None => Err(missing::<D>(at.join(field))),
        Some((value, Kind::Str)) => Ok(value),
        Some((value, _)) => Err(expected(doc, at.join(field), "a string", &value)),
    }
}

fn optional_str<D: Document>(
    doc: &D,
    object: &D::Value,
    field: Field,
    at: At,
) -> Result<Option<D::Value>, D::Error> {
    match present(doc, object, field)? {
        None => Ok(None),
        Some((value, Kind::Str)) => Ok(Some(value)),
        Some((value, _)) => Err(expected(doc, at.join(field), "a string", &value)),
    }
}

fn optional_number<D: Document>(
    doc: &D,
    object: &D::Value,
    field: Field,
    at: At,
) -> Result<Option<D::Value>, D::Error> {
    match present(doc, object, field)? {
        None => Ok(None),
        Some((value, Kind::Int)) => Ok(Some(value)),
        Some((value, Kind::Float(f))) if f.is_finite() => Ok(Some(value)),
        Some((value, Kind::Float(_))) => {
            Err(expected(doc, at.join(field), "a finite number", &value))
        }
        Some((value, _)) => Err(expected(doc, at.join(field), "a number", &value)),
    }
}

fn optional_int<D: Document>(
    doc: &D,
    object: &D::Value,
    field: Field,
    at: At,
) -> Result<Option<D::Value>, D::Error> {
    match present(doc, object, field)? {
        None => Ok(None),
        Some((value, Kind::Int)) => Ok(Some(value)),
        Some((value, Kind::Float(f))) if f.is_finite() && f.fract() == 0.0 => Ok(Some(value)),
        Some((value, _)) => Err(expected(doc, at.join(field), "an integer", &value)),
    }
}

/// `nodes` / `edges`: an array, or an object whose values are taken; missing or null is empty.
fn collection<D: Document>(
    doc: &D,
    root: &D::Value,
    field: Field,
) -> Result<Vec<D::Value>, D::Error> {
    match present(doc, root, field)? {
        None => Ok(Vec::new()),
        Some((value, Kind::Object)) => doc.values(&value),
        Some((value, Kind::Array)) => doc.elements(&value),
        Some((value, _)) => Err(expected(
            doc,
            field.name().into(),
            "an array or an object",
            &value,
        )),
    }
}

fn node<D: Document>(
    doc: &D,
    raw: &D::Value,
    index: usize,
) -> Result<Node<D::Value, D::Key>, D::Error> {
    let at = At::Node(index);
    if doc.kind(raw)? != Kind::Object {
        return Err(expected(doc, at.path().into(), "an object", raw));
    }
    let id = required_str(doc, raw, Field::Id, at)?;
    let uses = required_str(doc, raw, Field::Uses, at)?;
    let params = match present(doc, raw, Field::Params)? {
        None => None,
        Some((value, Kind::Object)) => Some(value),
        Some((value, _)) => {
            return Err(expected(doc, at.join(Field::Params), "an object", &value));
        }
    };
    let inputs = match present(doc, raw, Field::Inputs)? {
        None => None,
        Some((value, Kind::Str)) => Some(Inputs::Text(value)),
        Some((value, Kind::Object)) => {
            let members = doc.items(&value)?;
            for (key, item) in &members {
                if doc.kind(item)? != Kind::Str {
                    let mut item_path = at.join(Field::Inputs);
                    item_path.push_str(".");
                    item_path.push_text(doc.key_text(key)?.as_bytes());
                    return Err(expected(doc, item_path, "a string", item));
                }
            }
            Some(Inputs::Map(members))
        }
        Some((value, _)) => {
            return Err(expected(
                doc,
                at.join(Field::Inputs),
                "a string or an object of strings",
                &value,
            ));
        }
    };
    let config = match present(doc, raw, Field::Config)? {
        None => None,
        Some((value, Kind::Object)) => {
            let cpath = At::NodeConfig(index);
            Some(Config {
                max_retries: optional_int(doc, &value, Field::MaxRetries, cpath)?,
                retry_delay: optional_number(doc, &value, Field::RetryDelay, cpath)?,
                backoff: optional_str(doc, &value, Field::Backoff, cpath)?,
                timeout: optional_number(doc, &value, Field::Timeout, cpath)?,
                fallback: optional_str(doc, &value, Field::Fallback, cpath)?,
                join_strategy: optional_str(doc, &value, Field::JoinStrategy, cpath)?,
            })
        }
        Some((value, _)) => {
            return Err(expected(doc, at.join(Field::Config), "an object", &value));
        }
    };
    Ok(Node {
        id,
        uses,
        params,
        inputs,
        config,
    })
}

fn edge<D: Document>(doc: &D, raw: &D::Value, index: usize) -> Result<Edge<D::Value>, D::Error> {
    let at = At::Edge(index);
    if doc.kind(raw)? != Kind::Object {
        return Err(expected(doc, at.path().into(), "an object", raw));
    }
    Ok(Edge {
        source: required_str(doc, raw, Field::Source, at)?,
        target: required_str(doc, raw, Field::Target, at)?,
        action: optional_str(doc, raw, Field::Action, at)?,
        condition: optional_str(doc, raw, Field::Condition, at)?,
        transform: optional_str(doc, raw, Field::Transform, at)?,
    })
}

fn metadata<D: Document>(doc: &D, root: &D::Value) -> Result<Option<D::Value>, D::Error> {
    let Some((value, kind)) = present(doc, root, Field::Metadata)? else {
        return Ok(None);
    };
    if kind != Kind::Object {
        return Err(expected(doc, "metadata".into(), "an object", &value));
    }
    let copy = doc.copy_object(&value)?;
    if let Some((version, kind)) = present(doc, &copy, Field::Version)? {
        if kind != Kind::Str {
            return Err(expected(
                doc,
                "metadata.version".into(),
                "a string",
                &version,
            ));
        }
    }
    if let Some((entries, kind)) = present(doc, &copy, Field::CycleEntryPoints)? {
        let mut ok = kind == Kind::Array;
        if ok {
            for entry in doc.elements(&entries)? {
                if doc.kind(&entry)? != Kind::Str {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            return Err(expected(
                doc,
                "metadata.cycleEntryPoints".into(),
                "an array of strings",
                &entries,
            ));
        }
    }
    Ok(Some(copy))
}

/// Validates and sanitises a blueprint document. `has_id`: an id was given that overrides the
/// document's; `has_default_id`: an id was given for a document without one (or a null one).
/// Checks in document order: the id, every node, every edge, the metadata; the first problem
/// is the error.
pub fn sanitise<D: Document>(
    doc: &D,
    root: &D::Value,
    has_id: bool,
    has_default_id: bool,
) -> Result<Sanitised<D::Value, D::Key>, D::Error> {
    if doc.kind(root)? != Kind::Object {
        let got = describe(doc, root)?;
        let mut problem = Text::from("a blueprint must be a JSON object, got ");
        problem.push_text(got.as_bytes());
        return Err(blueprint_error(Text::default(), problem).into());
    }
    let id = if has_id {
        BlueprintId::Given
    } else if has_default_id && present(doc, root, Field::Id)?.is_none() {
        BlueprintId::Default
    } else {
        BlueprintId::Document(required_str(doc, root, Field::Id, At::Root)?)
    };
    let raw_nodes = collection(doc, root, Field::Nodes)?;
    let mut nodes = Vec::with_capacity(raw_nodes.len());
    for (i, raw) in raw_nodes.iter().enumerate() {
        nodes.push(node(doc, raw, i)?);
    }
    let raw_edges = collection(doc, root, Field::Edges)?;
    let mut edges = Vec::with_capacity(raw_edges.len());
    for (i, raw) in raw_edges.iter().enumerate() {
        edges.push(edge(doc, raw, i)?);
    }
    let metadata = metadata(doc, root)?;
    Ok(Sanitised {
        id,
        nodes,
        edges,
        metadata,
    })
}

// ---- all in one, for Rust callers --------------------------------------------------------------

/// Parses and sanitises a blueprint given as JSON text, returning the sanitised blueprint as
/// JSON (Python's `parse_blueprint` with default [`JsonOptions`]).
pub fn parse_blueprint(text: &str, id: Option<&str>, default_id: Option<&str>) -> CoreResult<Json> {
    let parsed = parse_json(text.as_bytes(), &JsonOptions::default())?;
    let doc = JsonDocument::new(&parsed);
    let bp = sanitise(&doc, &0, id.is_some(), default_id.is_some())?;
    let json = |i: &usize| parsed.to_json(*i);
    let string = |s: &str| Json::Str(s.as_bytes().into());
    let field = |f: Field| -> Box<[u8]> { f.name().as_bytes().into() };
    let as_int = |i: &usize| match parsed.entry(*i) {
        Entry::Float(f) if f.abs() < 9.2e18 => Json::Int(f as i64),
        _ => parsed.to_json(*i),
    };
    let mut nodes = Vec::with_capacity(bp.nodes.len());
    for n in &bp.nodes {
        let mut out = vec![
            (field(Field::Id), json(&n.id)),
            (field(Field::Uses), json(&n.uses)),
        ];
        if let Some(params) = &n.params {
            out.push((field(Field::Params), json(params)));
        }
        match &n.inputs {
            None => {}
            Some(Inputs::Text(s)) => out.push((field(Field::Inputs), json(s))),
            Some(Inputs::Map(members)) => {
                let members = members
                    .iter()
                    .map(|(k, v)| (parsed.str_at(*k).into(), json(v)));
                out.push((field(Field::Inputs), Json::Object(members.collect())));
            }
        }
        if let Some(c) = &n.config {
            let known = [
                (Field::MaxRetries, c.max_retries.as_ref().map(as_int)),
                (Field::RetryDelay, c.retry_delay.as_ref().map(json)),
                (Field::Backoff, c.backoff.as_ref().map(json)),
                (Field::Timeout, c.timeout.as_ref().map(json)),
                (Field::Fallback, c.fallback.as_ref().map(json)),
                (Field::JoinStrategy, c.join_strategy.as_ref().map(json)),
            ];
            let config = known
                .into_iter()
                .filter_map(|(f, v)| Some((field(f), v?)))
                .collect();
            out.push((field(Field::Config), Json::Object(config)));
        }
        nodes.push(Json::Object(out));
    }
    let edges = bp
        .edges
        .iter()
        .map(|e| {
            let known = [
                (Field::Source, Some(e.source)),
                (Field::Target, Some(e.target)),
                (Field::Action, e.action),
                (Field::Condition, e.condition),
                (Field::Transform, e.transform),
            ];
            Json::Object(
                known
                    .into_iter()
                    .filter_map(|(f, v)| Some((field(f), json(&v?))))
                    .collect(),
            )
        })
        .collect();
    let id = match &bp.id {
        BlueprintId::Given => string(id.unwrap_or_default()),
        BlueprintId::Default => string(default_id.unwrap_or_default()),
        BlueprintId::Document(v) => json(v),
    };
    let metadata = bp.metadata.as_ref().map_or(Json::Object(Vec::new()), json);
    Ok(Json::Object(vec![
        (field(Field::Id), id),
        (field(Field::Nodes), Json::Array(nodes)),
        (field(Field::Edges), Json::Array(edges)),
        (field(Field::Metadata), metadata),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> CoreResult<Json> {
        parse_with(text.as_bytes(), &JsonOptions::default())
    }

    fn parse_with(text: &[u8], options: &JsonOptions) -> CoreResult<Json> {
        parse_json(text, options).map(|parsed| parsed.to_json(0))
    }

    fn error(result: CoreResult<Json>) -> String {
        match result {
            Ok(value) => panic!("expected an error, got {value:?}"),
            Err(err) => err.to_string(),
        }
    }

    fn s(text: &str) -> Json {
        Json::Str(text.as_bytes().into())
    }

    // ---- the scanner -----------------------------------------------------------------------------

    #[test]
    fn scalars() {
        assert_eq!(parse(" null ").unwrap(), Json::Null);
        assert_eq!(parse("true").unwrap(), Json::Bool(true));
        assert_eq!(parse("false").unwrap(), Json::Bool(false));
        assert_eq!(parse("-0").unwrap(), Json::Int(0));
        assert_eq!(parse("123").unwrap(), Json::Int(123));
        assert_eq!(parse("2.5").unwrap(), Json::Float(2.5));
        assert_eq!(parse("1E2").unwrap(), Json::Float(100.0));
        assert_eq!(parse("1e400").unwrap(), Json::Float(f64::INFINITY));
        assert_eq!(parse("-Infinity").unwrap(), Json::Float(f64::NEG_INFINITY));
        assert!(matches!(parse("NaN").unwrap(), Json::Float(f) if f.is_nan()));
        assert_eq!(
            parse("123456789012345678901234567890").unwrap(),
            Json::BigInt("123456789012345678901234567890".into())
        );
        assert_eq!(parse("-9223372036854775808").unwrap(), Json::Int(i64::MIN));
        assert_eq!(
            parse(r#""a\"\\\/\b\f\n\r\tz""#).unwrap(),
            s("a\"\\/\u{8}\u{c}\n\r\tz")
        );
        assert_eq!(parse(r#""\u00e9\ud83d\ude00""#).unwrap(), s("é😀"));
        assert_eq!(parse(r#""é😀""#).unwrap(), s("é😀"));
    }

    #[test]
    fn lone_surrogates_are_kept() {
        assert_eq!(
            parse(r#""\ud800""#).unwrap(),
            Json::Str(b"\xED\xA0\x80".as_slice().into())
        );
        assert_eq!(
            parse(r#""\udc00\ud800x""#).unwrap(),
            Json::Str(b"\xED\xB0\x80\xED\xA0\x80x".as_slice().into())
        );
        // A high surrogate followed by an escape that is not a low one: two characters.
        assert_eq!(
            parse(r#""\ud800\u0041""#).unwrap(),
            Json::Str(b"\xED\xA0\x80A".as_slice().into())
        );
    }

    #[test]
    fn integers_longer_than_the_limit_are_floats() {
        let options = JsonOptions {
            int_max_str_digits: 20,
            ..JsonOptions::default()
        };
        let long = "1".repeat(21);
        assert_eq!(
            parse_with(long.as_bytes(), &options).unwrap(),
            Json::Float(long.parse().unwrap())
        );
        let ok = "1".repeat(20);
        assert_eq!(
            parse_with(ok.as_bytes(), &options).unwrap(),
            Json::BigInt(ok.as_str().into())
        );
        let unlimited = JsonOptions {
            int_max_str_digits: 0,
            ..JsonOptions::default()
        };
        let huge = "9".repeat(5000);
        assert!(matches!(
            parse_with(huge.as_bytes(), &unlimited).unwrap(),
            Json::BigInt(_)
        ));
    }

    #[test]
    fn containers_and_duplicate_keys() {
        assert_eq!(
            parse(r#"{"a": [1, {}, []], "b": {"c": null}, "a": 2}"#).unwrap(),
            Json::Object(vec![
                (b"a".as_slice().into(), Json::Int(2)),
                (
                    b"b".as_slice().into(),
                    Json::Object(vec![(b"c".as_slice().into(), Json::Null)])
                ),
            ])
        );
        let many: Vec<String> = (0..40).map(|i| format!("\"k{}\": {i}", i % 20)).collect();
        let Json::Object(members) = parse(&format!("{{{}}}", many.join(","))).unwrap() else {
            panic!("an object");
        };
        assert_eq!(members.len(), 20);
        assert_eq!(members[3], (b"k3".as_slice().into(), Json::Int(23)));
    }

    #[test]
    fn malformed_json_positions_match_python() {
        // Each expectation is what Python 3.11's json.loads reports.
        let cases = [
            ("", 1, 1, EXPECTING_VALUE),
            ("   ", 1, 4, EXPECTING_VALUE),
            (
                "{\n  \"id\": \"x\",\n  \"nodes\": [,]\n}",
                3,
                13,
                EXPECTING_VALUE,
            ),
            ("{\"id\": ", 1, 8, EXPECTING_VALUE),
            ("[1,]", 1, 4, EXPECTING_VALUE),
            ("{\"a\":1,}", 1, 8, EXPECTING_NAME),
            ("{\"a\" 1}", 1, 6, EXPECTING_COLON),
            ("[1 2]", 1, 4, EXPECTING_DELIMITER),
            ("{", 1, 2, EXPECTING_NAME),
            ("[", 1, 2, EXPECTING_VALUE),
            ("\"abc", 1, 1, UNTERMINATED),
            ("[\"a\\", 1, 2, UNTERMINATED),
            ("\"a\nb\"", 1, 3, CONTROL_CHARACTER),
            ("\"\\x\"", 1, 2, BAD_ESCAPE),
            ("\"\\u12\"", 1, 3, BAD_UNICODE_ESCAPE),
            ("\"\\u0041", 1, 3, BAD_UNICODE_ESCAPE),
            ("\"\\ud800\\uzzzz\"", 1, 9, BAD_UNICODE_ESCAPE),
            ("1 2", 1, 3, EXTRA_DATA),
            ("01", 1, 2, EXTRA_DATA),
            ("-", 1, 1, EXPECTING_VALUE),
            ("-x", 1, 1, EXPECTING_VALUE),
            ("1.e5", 1, 2, EXTRA_DATA),
            ("nul", 1, 1, EXPECTING_VALUE),
            ("\u{FEFF}{}", 1, 1, BOM),
            ("[\"é\", x]", 1, 7, EXPECTING_VALUE),
            ("{\"é\":\n\"ü\" x}", 2, 5, EXPECTING_DELIMITER),
        ];
        for (text, line, column, what) in cases {
            assert_eq!(
                error(parse(text)),
                format!("malformed JSON at line {line}, column {column}: {what}"),
                "{text:?}"
            );
        }
    }

    #[test]
    fn trailing_commas_in_python_3_13() {
        let options = JsonOptions {
            trailing_comma_errors: true,
            ..JsonOptions::default()
        };
        let err = parse_json(b"[1 , ]", &options).unwrap_err().to_string();
        assert_eq!(
            err,
            "malformed JSON at line 1, column 4: Illegal trailing comma before end of array"
        );
        let err = parse_json(b"{\"a\": 1,}", &options)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "malformed JSON at line 1, column 8: Illegal trailing comma before end of object"
        );
    }

    #[test]
    fn nesting_is_limited() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let deep = format!("{}1{}", "[{\"a\":".repeat(300), "}]".repeat(300));
        assert_eq!(
            error(parse(&deep)),
            format!(
                "malformed JSON at line 1, column {}: nested more than 512 levels deep",
                6 * 256 + 1
            )
        );
        // Far deeper than any stack: still an error, not a crash.
        let abyss = "[".repeat(10_000_000);
        assert!(parse(&abyss).is_err());
    }

    #[test]
    fn bytes_must_be_utf8() {
        assert_eq!(decode_utf8(b"\xEF\xBB\xBF{}").unwrap(), b"{}");
        let err = decode_utf8(b"{\"a\":\n \"\xC3\xA9\xFF\"}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed JSON at line 2, column 4: invalid UTF-8"
        );
        // A second byte order mark is text, and JSON text may not start with one.
        let text = decode_utf8(b"\xEF\xBB\xBF\xEF\xBB\xBF{}").unwrap();
        assert!(parse_json(text, &JsonOptions::default()).is_err());
    }

    #[test]
    fn never_panics_on_prefixes_and_byte_flips() {
        let doc = br#"{"id": "x", "nodes": [{"id": "a\u00e9\ud800", "uses": "u", "config": {"maxRetries": 2.0e0}}], "edges": {"e": {"source": "a", "target": "a"}}, "metadata": {"v": [1, -2.5E-3, true, null]}}"#;
        for cut in 0..=doc.len() {
            let _ = parse_json(&doc[..cut], &JsonOptions::default());
        }
        for i in 0..doc.len() {
            for b in [
                0u8, b'"', b'\\', b'{', b']', b'u', 0xFF, 0xED, b'-', b'e', b'.',
            ] {
                let mut mutated = doc.to_vec();
                mutated[i] = b;
                if let Ok(parsed) = parse_json(&mutated, &JsonOptions::default()) {
                    let _ = sanitise(&JsonDocument::new(&parsed), &0, false, false);
                    let _ = parsed.to_json(0);
                }
            }
        }
    }

    // ---- messages --------------------------------------------------------------------------------

    #[test]
    fn float_reprs_match_python() {
        let cases = [
            (2.5, "2.5"),
            (1e16, "1e+16"),
            (1e-5, "1e-05"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (1e15, "1000000000000000.0"),
            (9007199254740993.0, "9007199254740992.0"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (-0.0, "-0.0"),
            (3.0, "3.0"),
            (-1.5e-7, "-1.5e-07"),
            (1e100, "1e+100"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (0.30000000000000004, "0.30000000000000004"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ];
        for (x, want) in cases {
            assert_eq!(float_repr(x), want);
        }
    }

    #[test]
    fn quoting_matches_python() {
        assert_eq!(quote(b"abc").to_string(), "\"abc\"");
        assert_eq!(
            quote("a\"b\\c\n\u{1}\u{7f}é".as_bytes()).to_string(),
            "\"a\\\"b\\\\c\\n\\u0001\u{7f}é\""
        );
        let forty = "é".repeat(40);
        assert_eq!(quote(forty.as_bytes()).to_string(), format!("\"{forty}\""));
        let long = "é".repeat(41);
        assert_eq!(
            quote(long.as_bytes()).to_string(),
            format!("\"{}...\"", "é".repeat(37))
        );
    }

    // ---- validation ------------------------------------------------------------------------------

    fn bp_error(text: &str) -> String {
        error(parse_blueprint(text, None, None))
    }

    #[test]
    fn ids_come_from_the_arguments_or_the_document() {
        let id_of = |text: &str, id: Option<&str>, default: Option<&str>| {
            let Json::Object(members) = parse_blueprint(text, id, default).unwrap() else {
                panic!("an object");
            };
            members[0].1.clone()
        };
        assert_eq!(id_of(r#"{"id": "doc"}"#, None, None), s("doc"));
        assert_eq!(id_of(r#"{"id": 5}"#, Some("given"), None), s("given"));
        assert_eq!(id_of(r#"{"id": null}"#, None, Some("file")), s("file"));
        assert_eq!(id_of(r#"{}"#, None, Some("file")), s("file"));
        assert_eq!(id_of(r#"{"id": "doc"}"#, None, Some("file")), s("doc"));
        assert_eq!(
            error(parse_blueprint(r#"{"id": 5}"#, None, Some("file"))),
            "id: expected a string, got 5"
        );
        assert_eq!(bp_error("{}"), "id: required field is missing");
        assert_eq!(bp_error(r#"{"id": null}"#), "id: required field is missing");
    }

    #[test]
    fn error_messages() {
        let cases = [
            ("[]", "a blueprint must be a JSON object, got an array"),
            ("\"x\"", "a blueprint must be a JSON object, got \"x\""),
            (r#"{"id": 1e16}"#, "id: expected a string, got 1e+16"),
            (
                r#"{"id": "x", "nodes": "nope"}"#,
                "nodes: expected an array or an object, got \"nope\"",
            ),
            (
                r#"{"id": "x", "nodes": [1]}"#,
                "nodes[0]: expected an object, got 1",
            ),
            (
                r#"{"id": "x", "nodes": {"a": {"id": "a", "uses": "u"}, "b": {"uses": "u"}}}"#,
                "nodes[1].id: required field is missing",
            ),
            (
                r#"{"id": "x", "nodes": [{"id": "a", "uses": "u", "inputs": {"k": 1}}]}"#,
                "nodes[0].inputs.k: expected a string, got 1",
            ),
            (
                r#"{"id": "x", "nodes": [{"id": "a", "uses": "u", "config": {"maxRetries": 2.5}}]}"#,
                "nodes[0].config.maxRetries: expected an integer, got 2.5",
            ),
            (
                r#"{"id": "x", "nodes": [{"id": "a", "uses": "u", "config": {"timeout": NaN}}]}"#,
                "nodes[0].config.timeout: expected a finite number, got nan",
            ),
            (
                r#"{"id": "x", "nodes": [{"id": "a", "uses": "u", "config": {"retryDelay": -1e-5}}], "edges": 3}"#,
                "edges: expected an array or an object, got 3",
            ),
            (
                r#"{"id": "x", "edges": [{"source": "a", "target": "b", "action": false}]}"#,
                "edges[0].action: expected a string, got false",
            ),
            (
                r#"{"id": "x", "metadata": {"version": 2}}"#,
                "metadata.version: expected a string, got 2",
            ),
            (
                r#"{"id": "x", "metadata": {"cycleEntryPoints": ["a", 1]}}"#,
                "metadata.cycleEntryPoints: expected an array of strings, got an array",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(bp_error(text), want, "{text}");
        }
    }

    #[test]
    fn sanitises() {
        let got = parse_blueprint(
            r#"{"id": "x", "extra": 1, "nodes": {"n": {"id": "a", "uses": "u", "position": 1,
                "params": {"p": [1]}, "inputs": {"k": "v"}, "config": {"maxRetries": 3.0,
                "retryDelay": 2.5, "other": 1, "timeout": null}}},
                "edges": [{"source": "a", "target": "a", "action": null, "_x": 1}]}"#,
            None,
            None,
        )
        .unwrap();
        let want = parse(
            r#"{"id": "x", "nodes": [{"id": "a", "uses": "u", "params": {"p": [1]},
                "inputs": {"k": "v"}, "config": {"maxRetries": 3, "retryDelay": 2.5}}],
                "edges": [{"source": "a", "target": "a"}], "metadata": {}}"#,
        )
        .unwrap();
        assert_eq!(got, want);
    }

    // ---- golden cases, shared with the Python tests ------------------------------------------

    fn to_serde(value: &Json) -> serde_json::Value {
        use serde_json::Value as V;
        match value {
            Json::Null => V::Null,
            Json::Bool(b) => V::Bool(*b),
            Json::Int(n) => V::from(*n),
            // serde_json reads big integers as floats (no arbitrary_precision).
            Json::BigInt(digits) => digits
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(V::Null, V::Number),
            Json::Float(f) => serde_json::Number::from_f64(*f).map_or(V::Null, V::Number),
            Json::Str(s) => V::String(String::from_utf8_lossy(s).into_owned()),
            Json::Array(items) => V::Array(items.iter().map(to_serde).collect()),
            Json::Object(members) => V::Object(
                members
                    .iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), to_serde(v)))
                    .collect(),
            ),
        }
    }

    #[test]
    fn golden_cases() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/blueprint_golden.json"
        );
        let text = std::fs::read_to_string(path).expect("golden file is readable");
        let cases: serde_json::Value = serde_json::from_str(&text).expect("golden file is JSON");
        let cases = cases.as_array().expect("golden file is a list");
        assert!(cases.len() >= 40, "golden file lost cases");
        for case in cases {
            let name = case["name"].as_str().expect("case name");
            let input = case["text"].as_str().expect("case text");
            let got = parse_blueprint(input, case["id"].as_str(), case["default_id"].as_str());
            match (
                &case["expected"],
                case["error"].as_str(),
                case["error_prefix"].as_str(),
            ) {
                (serde_json::Value::Null, Some(want), None) => {
                    assert_eq!(error(got), want, "golden case {name:?}");
                }
                (serde_json::Value::Null, None, Some(prefix)) => {
                    let message = error(got);
                    assert!(
                        message.starts_with(prefix),
                        "golden case {name:?}: {message:?} does not start with {prefix:?}"
                    );
                }
                (want, None, None) => {
                    let got = got.unwrap_or_else(|err| panic!("golden case {name:?}: {err}"));
                    assert_eq!(&to_serde(&got), want, "golden case {name:?}");
                }
                _ => panic!("golden case {name:?}: give one of expected, error, error_prefix"),
            }
        }
    }
}
