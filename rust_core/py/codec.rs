//! Python wrappers of [`crate::codec`].
//!
//! Values are written straight from the Python objects and read straight into Python objects
//! (the parser feeds a [`Sink`] that builds them), with no intermediate tree. Argument checking
//! and every message mirror `python/bullflow/_pure/codec.py`.

use std::borrow::Cow;
use std::ptr;

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;

use super::convert::{sequence_items, type_name};
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple};

use crate::codec::{
    self, DecodeError, EncodeError, EncodeProblem, JOB_PAYLOAD, JOB_PAYLOAD_FIELDS, JsonStr,
    MAX_DEPTH, Sink,
};
use crate::errors::{CoreError, bullflow_exception_with_kwargs};

// ---- arguments and errors ----------------------------------------------------------------------

/// The optional `key` argument. `KeyArg::default()` stands for "not given", so that an explicit
/// `key=None` is still checked (and refused, like the pure twin does).
#[derive(Default)]
pub struct KeyArg<'py>(Option<Bound<'py, PyAny>>);

impl<'a, 'py> FromPyObject<'a, 'py> for KeyArg<'py> {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(KeyArg(Some(obj.to_owned())))
    }
}

/// The `key` argument as a str, or `TypeError`.
fn key_str<'py>(key: KeyArg<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
    match key.0 {
        None => Ok(None),
        Some(key) => key.cast_into::<PyString>().map(Some).map_err(|err| {
            invalid(format!(
                "key must be a str, not {}",
                type_name(&err.into_inner())
            ))
        }),
    }
}

fn invalid(message: String) -> PyErr {
    CoreError::InvalidArgument(message).into()
}

/// `bullflow.exceptions.CodecError(message, key=key)`; an empty key is no key.
fn codec_error(py: Python<'_>, message: String, key: Option<&Bound<'_, PyString>>) -> PyErr {
    let kwargs = PyDict::new(py);
    if let Some(key) = key.filter(|key| key.len().is_ok_and(|len| len > 0))
        && let Err(err) = kwargs.set_item(intern!(py, "key"), key)
    {
        return err;
    }
    bullflow_exception_with_kwargs(py, "CodecError", (message,), Some(&kwargs))
}

/// The UTF-8 bytes of a str; a str with lone surrogates gives its `"surrogatepass"` encoding.
fn str_bytes<'a>(text: &'a Bound<'_, PyString>) -> PyResult<Cow<'a, [u8]>> {
    match text.to_str() {
        Ok(text) => Ok(Cow::Borrowed(text.as_bytes())),
        Err(_) => {
            let py = text.py();
            let encoded = text.call_method1(
                intern!(py, "encode"),
                (intern!(py, "utf-8"), intern!(py, "surrogatepass")),
            )?;
            Ok(Cow::Owned(encoded.cast::<PyBytes>()?.as_bytes().to_vec()))
        }
    }
}

/// The bytes of a `bytes | str` argument (a str as UTF-8, see [`str_bytes`]), or `TypeError`
/// with `"<what> must be bytes or str, not <type>"`.
fn data_bytes<'a>(
    data: &'a Bound<'_, PyAny>,
    what: impl FnOnce() -> String,
) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(bytes) = data.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(bytes.as_bytes()));
    }
    if let Ok(text) = data.cast::<PyString>() {
        return str_bytes(text);
    }
    Err(invalid(format!(
        "{} must be bytes or str, not {}",
        what(),
        type_name(data)
    )))
}

/// Calls `f` with each key and value of an exact dict, in order.
///
/// Like iterating over `dict.items()`, but without building the items, and raising
/// `RuntimeError` (not panicking, as pyo3's dict iterator does) if the dict changes size.
fn for_each_item<'py, E: From<PyErr>>(
    dict: &Bound<'py, PyDict>,
    mut f: impl FnMut(Bound<'py, PyAny>, Bound<'py, PyAny>) -> Result<(), E>,
) -> Result<(), E> {
    let py = dict.py();
    let len = dict.len();
    let mut pos: ffi::Py_ssize_t = 0;
    loop {
        if dict.len() != len {
            return Err(PyRuntimeError::new_err("dictionary changed size during iteration").into());
        }
        let mut key: *mut ffi::PyObject = ptr::null_mut();
        let mut value: *mut ffi::PyObject = ptr::null_mut();
        // SAFETY: `dict` is a live dict and the GIL is held. PyDict_Next bounds-checks `pos`
        // against the current table and returns borrowed references, which are made owned at
        // once, before any other Python code can run.
        let (key, value) = unsafe {
            if ffi::PyDict_Next(dict.as_ptr(), &mut pos, &mut key, &mut value) == 0 {
                return Ok(());
            }
            (
                Bound::from_borrowed_ptr(py, key),
                Bound::from_borrowed_ptr(py, value),
            )
        };
        f(key, value)?;
    }
}

/// Calls `f` with each `(key, value)` of a dict or another mapping, in the mapping's order.
fn for_each_mapping_item<'py, E: From<PyErr>>(
    mapping: &Bound<'py, PyAny>,
    mut f: impl FnMut(Bound<'py, PyAny>, Bound<'py, PyAny>) -> Result<(), E>,
) -> Result<(), E> {
    if let Ok(dict) = mapping.cast_exact::<PyDict>() {
        return for_each_item(dict, f);
    }
    let items = mapping.call_method0(intern!(mapping.py(), "items"))?;
    for item in items.try_iter()? {
        let (key, value): (Bound<'py, PyAny>, Bound<'py, PyAny>) = item?.extract()?;
        f(key, value)?;
    }
    Ok(())
}

// ---- encoding ----------------------------------------------------------------------------------

/// Why encoding stopped: the value, or Python.
enum Fail {
    Encode(EncodeError),
    Py(PyErr),
}

impl From<PyErr> for Fail {
    fn from(err: PyErr) -> Self {
        Fail::Py(err)
    }
}

impl From<EncodeProblem> for Fail {
    fn from(problem: EncodeProblem) -> Self {
        Fail::Encode(EncodeError::new(problem))
    }
}

impl Fail {
    fn within_index(self, index: usize) -> Self {
        match self {
            Fail::Encode(err) => Fail::Encode(err.within_index(index)),
            other => other,
        }
    }

    fn within_key(self, key: &[u8]) -> Self {
        match self {
            Fail::Encode(err) => Fail::Encode(err.within_key(key)),
            other => other,
        }
    }

    /// The Python exception: `CodecError` with `prefix + message` naming `key`.
    fn into_pyerr(self, py: Python<'_>, prefix: &str, key: Option<&Bound<'_, PyString>>) -> PyErr {
        match self {
            Fail::Encode(err) => codec_error(py, format!("{prefix}{}", err.message()), key),
            Fail::Py(err) => err,
        }
    }
}

/// Writes `obj` as `JSON.stringify` would (see [`crate::codec`]); `depth` is the number of
/// containers around it.
fn encode_any(out: &mut Vec<u8>, obj: &Bound<'_, PyAny>, depth: usize) -> Result<(), Fail> {
    // The exact types first: they are nearly all values.
    if let Ok(text) = obj.cast_exact::<PyString>() {
        codec::write_string(out, &str_bytes(text)?);
        return Ok(());
    }
    if obj.is_none() {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    if let Ok(flag) = obj.cast_exact::<PyBool>() {
        out.extend_from_slice(if flag.is_true() { b"true" } else { b"false" });
        return Ok(());
    }
    // An int (bool is done above), float, dict, list, tuple or str, or a subclass of one: as
    // the value of the base type.
    if let Ok(int) = obj.cast::<PyInt>() {
        if let Ok(value) = int.extract::<i64>() {
            codec::write_i64(out, value);
        } else if let Ok(value) = int.extract::<u64>() {
            codec::write_u64(out, value);
        } else {
            return Err(EncodeProblem::IntegerOutOfRange.into());
        }
        return Ok(());
    }
    if let Ok(float) = obj.cast::<PyFloat>() {
        return Ok(codec::write_f64(out, float.value())?);
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        return encode_dict(out, dict, depth);
    }
    if let Ok(list) = obj.cast::<PyList>() {
        if list.is_exact_instance_of::<PyList>() {
            return encode_list(out, list, depth);
        }
        return encode_iterable(out, obj, depth);
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        if tuple.is_exact_instance_of::<PyTuple>() {
            return encode_items(out, tuple.iter(), depth);
        }
        return encode_iterable(out, obj, depth);
    }
    if let Ok(text) = obj.cast::<PyString>() {
        codec::write_string(out, &str_bytes(text)?);
        return Ok(());
    }
    Err(EncodeProblem::Unsupported(type_name(obj)).into())
}

fn encode_dict(out: &mut Vec<u8>, dict: &Bound<'_, PyDict>, depth: usize) -> Result<(), Fail> {
    if depth >= MAX_DEPTH {
        return Err(EncodeProblem::TooDeep.into());
    }
    out.push(b'{');
    let mut first = true;
    for_each_mapping_item(dict.as_any(), |key, value| {
        if !first {
            out.push(b',');
        }
        first = false;
        let Ok(key) = key.cast::<PyString>() else {
            return Err(EncodeProblem::KeyNotStr(type_name(&key)).into());
        };
        let key = str_bytes(key)?;
        codec::write_string(out, &key);
        out.push(b':');
        encode_any(out, &value, depth + 1).map_err(|fail| fail.within_key(&key))
    })?;
    out.push(b'}');
    Ok(())
}

/// An exact list, item by item (it may change while it is written, as a Python loop allows).
fn encode_list(out: &mut Vec<u8>, list: &Bound<'_, PyList>, depth: usize) -> Result<(), Fail> {
    if depth >= MAX_DEPTH {
        return Err(EncodeProblem::TooDeep.into());
    }
    out.push(b'[');
    let mut i = 0;
    while i < list.len() {
        if i > 0 {
            out.push(b',');
        }
        let item = list.get_item(i)?;
        encode_any(out, &item, depth + 1).map_err(|fail| fail.within_index(i))?;
        i += 1;
    }
    out.push(b']');
    Ok(())
}

/// A list or tuple subclass, through its own `__iter__`.
fn encode_iterable(out: &mut Vec<u8>, obj: &Bound<'_, PyAny>, depth: usize) -> Result<(), Fail> {
    if depth >= MAX_DEPTH {
        return Err(EncodeProblem::TooDeep.into());
    }
    let items = obj.try_iter()?.collect::<PyResult<Vec<_>>>()?;
    encode_items(out, items.into_iter(), depth)
}

fn encode_items<'py>(
    out: &mut Vec<u8>,
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    depth: usize,
) -> Result<(), Fail> {
    if depth >= MAX_DEPTH {
        return Err(EncodeProblem::TooDeep.into());
    }
    out.push(b'[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        encode_any(out, &item, depth + 1).map_err(|fail| fail.within_index(i))?;
    }
    out.push(b']');
    Ok(())
}

/// Encodes a context value as UTF-8 JSON text, exactly as ``JSON.stringify`` would.
///
/// ``None``, bool, int (``-(2**63) .. 2**64 - 1``), finite float (written like JavaScript's
/// ``Number.prototype.toString``), str, list, tuple and dict with str keys (in insertion order),
/// and subclasses of these (as their base type's value), nested at most 512 deep. Anything else
/// raises ``CodecError`` naming ``key`` and the JSON path of the value, e.g.
/// ``cannot encode a set at $.items[2]``.
#[pyfunction]
#[pyo3(signature = (value, key = KeyArg::default()), text_signature = "(value, key='')")]
pub fn encode_value<'py>(
    py: Python<'py>,
    value: &Bound<'py, PyAny>,
    key: KeyArg<'py>,
) -> PyResult<Bound<'py, PyBytes>> {
    let key = key_str(key)?;
    let mut out = Vec::new();
    encode_any(&mut out, value, 0).map_err(|fail| fail.into_pyerr(py, "", key.as_ref()))?;
    Ok(PyBytes::new(py, &out))
}

/// The arguments of one ``HSET`` call: ``[key1, value1, key2, value2, ...]``, keys as UTF-8
/// and values as ``encode_value`` writes them. A value that cannot be encoded raises
/// ``CodecError`` naming its key.
#[pyfunction]
pub fn encode_hset_args<'py>(
    py: Python<'py>,
    writes: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    if writes.cast::<PyMapping>().is_err() {
        return Err(invalid(format!(
            "writes must be a mapping, not {}",
            type_name(writes)
        )));
    }
    let args = PyList::empty(py);
    let mut out = Vec::new();
    for_each_mapping_item(writes, |key, value| -> PyResult<()> {
        let key = key.cast_into::<PyString>().map_err(|err| {
            invalid(format!(
                "writes keys must be str, not {}",
                type_name(&err.into_inner())
            ))
        })?;
        let Ok(name) = key.to_str() else {
            return Err(codec_error(
                py,
                codec::FIELD_NAME_SURROGATE.to_owned(),
                Some(&key),
            ));
        };
        out.clear();
        encode_any(&mut out, &value, 0).map_err(|fail| fail.into_pyerr(py, "", Some(&key)))?;
        args.append(PyBytes::new(py, name.as_bytes()))?;
        args.append(PyBytes::new(py, &out))
    })?;
    Ok(args)
}

// ---- decoding ----------------------------------------------------------------------------------

/// Builds Python objects: dict, list, str, int, float, bool and None.
struct PySink<'py> {
    py: Python<'py>,
}

fn py_str<'py>(py: Python<'py>, text: JsonStr<'_>) -> PyResult<Bound<'py, PyString>> {
    match text {
        JsonStr::Utf8(text) => PyString::from_bytes(py, text.as_bytes()),
        JsonStr::Surrogates(bytes) => PyString::from_encoded_object(
            PyBytes::new(py, bytes).as_any(),
            Some(c"utf-8"),
            Some(c"surrogatepass"),
        ),
    }
}

impl<'py> Sink for PySink<'py> {
    type Value = Bound<'py, PyAny>;
    type Array = Bound<'py, PyList>;
    type Object = Bound<'py, PyDict>;
    type Key = Bound<'py, PyString>;
    type Error = PyErr;

    fn null(&mut self) -> PyResult<Self::Value> {
        Ok(self.py.None().into_bound(self.py))
    }
    fn boolean(&mut self, value: bool) -> PyResult<Self::Value> {
        Ok(PyBool::new(self.py, value).to_owned().into_any())
    }
    fn int(&mut self, value: i64) -> PyResult<Self::Value> {
        Ok(value.into_pyobject(self.py)?.into_any())
    }
    fn uint(&mut self, value: u64) -> PyResult<Self::Value> {
        Ok(value.into_pyobject(self.py)?.into_any())
    }
    fn float(&mut self, value: f64) -> PyResult<Self::Value> {
        Ok(PyFloat::new(self.py, value).into_any())
    }
    fn string(&mut self, value: JsonStr<'_>) -> PyResult<Self::Value> {
        Ok(py_str(self.py, value)?.into_any())
    }
    fn key(&mut self, value: JsonStr<'_>) -> PyResult<Self::Key> {
        py_str(self.py, value)
    }
    fn array(&mut self) -> PyResult<Self::Array> {
        Ok(PyList::empty(self.py))
    }
    fn push(&mut self, array: &mut Self::Array, item: Self::Value) -> PyResult<()> {
        array.append(item)
    }
    fn end_array(&mut self, array: Self::Array) -> PyResult<Self::Value> {
        Ok(array.into_any())
    }
    fn object(&mut self) -> PyResult<Self::Object> {
        Ok(PyDict::new(self.py))
    }
    fn insert(
        &mut self,
        object: &mut Self::Object,
        key: Self::Key,
        item: Self::Value,
    ) -> PyResult<()> {
        object.set_item(key, item)
    }
    fn end_object(&mut self, object: Self::Object) -> PyResult<Self::Value> {
        Ok(object.into_any())
    }
}

/// Decodes `data`; a syntax error becomes `CodecError(prefix + message, key=key)`.
fn decode_bytes<'py>(
    py: Python<'py>,
    data: &[u8],
    prefix: &str,
    key: Option<&Bound<'py, PyString>>,
) -> PyResult<Bound<'py, PyAny>> {
    match codec::parse(data, &mut PySink { py }) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Ok(py.None().into_bound(py)),
        Err(DecodeError::Syntax(err)) => Err(codec_error(py, format!("{prefix}{err}"), key)),
        Err(DecodeError::Sink(err)) => Err(err),
    }
}

/// Decodes JSON text (bytes or str) to a Python value, as ``JSON.parse`` reads it.
///
/// Objects become dicts in document order (a duplicate key: the last value wins), integer
/// literals in ``-(2**63) .. 2**64 - 1`` ints, other numbers floats; empty input is ``None``
/// (Flowcraft stores ``''`` for ``undefined``). Invalid JSON raises ``CodecError`` naming
/// ``key``, what is wrong and its byte offset.
#[pyfunction]
#[pyo3(signature = (data, key = KeyArg::default()), text_signature = "(data, key='')")]
pub fn decode_value<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    key: KeyArg<'py>,
) -> PyResult<Bound<'py, PyAny>> {
    let key = key_str(key)?;
    let bytes = data_bytes(data, || "data".to_owned())?;
    decode_bytes(py, &bytes, "", key.as_ref())
}

/// A hash field name as a str: a str as it is, bytes decoded as UTF-8 (`CodecError` if they are
/// not), anything else `TypeError` with `what()`.
fn field_name<'py>(
    py: Python<'py>,
    field: Bound<'py, PyAny>,
    what: impl FnOnce() -> String,
) -> PyResult<Bound<'py, PyString>> {
    let field = match field.cast_into::<PyString>() {
        Ok(text) => return Ok(text),
        Err(err) => err.into_inner(),
    };
    let Ok(bytes) = field.cast::<PyBytes>() else {
        return Err(invalid(format!(
            "{} must be bytes or str, not {}",
            what(),
            type_name(&field)
        )));
    };
    let bytes = bytes.as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(text) => PyString::from_bytes(py, text.as_bytes()),
        Err(err) => {
            let shown = PyString::new(py, &codec::backslash_replace(bytes));
            Err(codec_error(
                py,
                codec::field_name_error(err.valid_up_to()),
                Some(&shown),
            ))
        }
    }
}

/// Decodes an ``HGETALL`` reply (a mapping of field to value, or a flat sequence ``field1,
/// value1, ...``; fields and values bytes or str) to ``{field: decoded value}``. A value that
/// does not decode raises ``CodecError`` naming its field.
#[pyfunction]
pub fn decode_hash<'py>(
    py: Python<'py>,
    reply: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    let one = |field: Bound<'py, PyAny>,
               value: Bound<'py, PyAny>,
               what_field: &dyn Fn() -> String,
               what_value: &dyn Fn() -> String|
     -> PyResult<()> {
        let field = field_name(py, field, what_field)?;
        let data = data_bytes(&value, what_value)?;
        let value = decode_bytes(py, &data, "", Some(&field))?;
        out.set_item(field, value)
    };
    if reply.cast::<PyMapping>().is_ok() {
        for_each_mapping_item(reply, |field, value| {
            one(field, value, &|| "reply keys".to_owned(), &|| {
                "reply values".to_owned()
            })
        })?;
        return Ok(out);
    }
    let Some(items) = sequence_items(reply)? else {
        return Err(invalid(format!(
            "reply must be a mapping or a sequence, not {}",
            type_name(reply)
        )));
    };
    if items.len() % 2 == 1 {
        return Err(codec_error(py, codec::odd_reply_error(items.len()), None));
    }
    let mut items = items.into_iter().enumerate();
    while let (Some((i, field)), Some((j, value))) = (items.next(), items.next()) {
        one(field, value, &|| format!("reply[{i}]"), &|| {
            format!("reply[{j}]")
        })?;
    }
    Ok(out)
}

/// Decodes an ``HMGET`` reply: ``values[i]`` is the stored text of ``keys[i]``, or ``None`` for
/// a missing field, which is left out of the result. A value that does not decode raises
/// ``CodecError`` naming its key.
#[pyfunction]
pub fn decode_hmget<'py>(
    py: Python<'py>,
    keys: &Bound<'py, PyAny>,
    values: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let Some(key_items) = sequence_items(keys)? else {
        return Err(invalid(format!(
            "keys must be a sequence of str, not {}",
            type_name(keys)
        )));
    };
    let mut names = Vec::with_capacity(key_items.len());
    for (i, key) in key_items.into_iter().enumerate() {
        names.push(key.cast_into::<PyString>().map_err(|err| {
            invalid(format!(
                "keys[{i}] must be a str, not {}",
                type_name(&err.into_inner())
            ))
        })?);
    }
    let Some(value_items) = sequence_items(values)? else {
        return Err(invalid(format!(
            "values must be a sequence, not {}",
            type_name(values)
        )));
    };
    if names.len() != value_items.len() {
        return Err(codec_error(
            py,
            codec::hmget_length_error(names.len(), value_items.len()),
            None,
        ));
    }
    let out = PyDict::new(py);
    for (i, (name, value)) in names.into_iter().zip(value_items).enumerate() {
        if value.is_none() {
            continue;
        }
        let data = data_bytes(&value, || format!("values[{i}]")).map_err(|_| {
            invalid(format!(
                "values[{i}] must be bytes, str or None, not {}",
                type_name(&value)
            ))
        })?;
        let decoded = decode_bytes(py, &data, "", Some(&name))?;
        out.set_item(name, decoded)?;
    }
    Ok(out)
}

// ---- job payloads ------------------------------------------------------------------------------

fn check_job_fields(py: Python<'_>, payload: &Bound<'_, PyDict>) -> PyResult<()> {
    for field in JOB_PAYLOAD_FIELDS {
        let value = payload.get_item(field)?;
        if !value.is_some_and(|value| value.is_instance_of::<PyString>()) {
            return Err(codec_error(py, codec::job_payload_field_error(field), None));
        }
    }
    Ok(())
}

/// Encodes the data of an ``executeNode`` job: a mapping with str ``runId``, ``blueprintId``
/// and ``nodeId`` (other keys are kept). ``CodecError`` messages start with ``job payload: ``.
#[pyfunction]
pub fn encode_job_payload<'py>(
    py: Python<'py>,
    payload: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let payload = match payload.cast_exact::<PyDict>() {
        Ok(dict) => dict.clone(),
        Err(_) if payload.cast::<PyMapping>().is_ok() => py
            .get_type::<PyDict>()
            .call1((payload,))?
            .cast_into::<PyDict>()?,
        Err(_) => {
            return Err(invalid(format!(
                "payload must be a mapping, not {}",
                type_name(payload)
            )));
        }
    };
    check_job_fields(py, &payload)?;
    let mut out = Vec::new();
    encode_dict(&mut out, &payload, 0).map_err(|fail| fail.into_pyerr(py, JOB_PAYLOAD, None))?;
    Ok(PyBytes::new(py, &out))
}

/// A decoded value's JSON type, as the job payload messages name it.
fn json_type(value: &Bound<'_, PyAny>) -> &'static str {
    if value.is_none() {
        "null"
    } else if value.is_instance_of::<PyBool>() {
        "a boolean"
    } else if value.is_instance_of::<PyInt>() || value.is_instance_of::<PyFloat>() {
        "a number"
    } else if value.is_instance_of::<PyString>() {
        "a string"
    } else {
        "an array"
    }
}

/// Decodes and checks the data of an ``executeNode`` job (see ``encode_job_payload``).
#[pyfunction]
pub fn decode_job_payload<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let bytes = data_bytes(data, || "data".to_owned())?;
    let value = decode_bytes(py, &bytes, JOB_PAYLOAD, None)?;
    let payload = match value.cast_into::<PyDict>() {
        Ok(payload) => payload,
        Err(err) => {
            let message = codec::job_payload_type_error(json_type(&err.into_inner()));
            return Err(codec_error(py, message, None));
        }
    };
    check_job_fields(py, &payload)?;
    Ok(payload)
}
