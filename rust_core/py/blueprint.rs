//! Python wrapper of [`crate::blueprint`]: `parse_blueprint`.
//!
//! JSON text (str or bytes) is parsed and checked by the pure code, with the GIL released when
//! it is large, then turned into Python objects. A mapping is checked in place through
//! [`PyDocument`], which answers the validation's questions the way
//! `python/bullflow/_pure/blueprint.py` does (`isinstance(x, Mapping)`, `x.get(key)`, `repr(x)`...),
//! so both give the same results and messages; `params` and `metadata` values are returned as
//! the very objects given.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};

use crate::blueprint::{
    self as core, BlueprintId, Document, Entry, Field, Inputs, JsonDocument, JsonOptions, Kind,
    MAX_DEPTH, Members, Parsed, Sanitised, Text,
};
use crate::errors::CoreResult;

/// From this many bytes of JSON text on, parsing and checking run with the GIL released.
const DETACH_FROM: usize = 64 * 1024;

/// Parses and checks a Flowcraft blueprint; returns it sanitised, as plain data.
///
/// ``source`` is JSON text (``str``, or UTF-8 ``bytes``) or an already decoded mapping. The
/// result is ``{"id", "nodes", "edges", "metadata"}`` with only the known fields. ``id``
/// overrides the blueprint id; ``default_id`` is used when the document has no (or a null) id.
/// Raises ``BlueprintError`` naming the JSON path of the first problem.
#[pyfunction]
#[pyo3(signature = (source, id=None, default_id=None))]
pub fn parse_blueprint<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    id: Option<Bound<'py, PyAny>>,
    default_id: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let ids = (id, default_id);
    if let Ok(string) = source.cast::<PyString>() {
        let text = str_bytes(string)?;
        return from_text(py, &text, false, ids);
    }
    if let Ok(bytes) = source.cast::<PyBytes>() {
        return from_text(py, bytes.as_bytes(), true, ids);
    }
    let doc = PyDocument { py };
    let sanitised = core::sanitise(&doc, source, ids.0.is_some(), ids.1.is_some())?;
    build(py, &doc, sanitised, ids)
}

type Ids<'py> = (Option<Bound<'py, PyAny>>, Option<Bound<'py, PyAny>>);

fn from_text<'py>(
    py: Python<'py>,
    text: &[u8],
    is_bytes: bool,
    ids: Ids<'py>,
) -> PyResult<Bound<'py, PyDict>> {
    let options = JsonOptions {
        max_depth: MAX_DEPTH,
        int_max_str_digits: int_max_str_digits(py)?,
        trailing_comma_errors: py.version_info() >= (3, 13),
    };
    let parse = || -> CoreResult<Parsed<'_>> {
        let text = if is_bytes {
            core::decode_utf8(text)?
        } else {
            text
        };
        core::parse_json(text, &options)
    };
    let large = text.len() >= DETACH_FROM;
    let parsed = if large { py.detach(parse) } else { parse() }?;
    let (has_id, has_default_id) = (ids.0.is_some(), ids.1.is_some());
    let check = || core::sanitise(&JsonDocument::new(&parsed), &0, has_id, has_default_id);
    let sanitised = if large { py.detach(check) } else { check() }?;
    let convert = JsonToPy {
        py,
        parsed: &parsed,
        keys: RefCell::new(HashMap::new()),
    };
    build(py, &convert, sanitised, ids)
}

/// `sys.get_int_max_str_digits()`, or 0 (no limit) on Pythons without it.
fn int_max_str_digits(py: Python<'_>) -> PyResult<usize> {
    let sys = py.import(intern!(py, "sys"))?;
    match sys.getattr(intern!(py, "get_int_max_str_digits")) {
        Ok(get) => get.call0()?.extract(),
        Err(_) => Ok(0),
    }
}

// ---- text ----------------------------------------------------------------------------------------

/// A Python str from text that may hold lone surrogates (see [`Text`]).
pub fn text<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    // Python decodes (and so checks) the UTF-8 itself; only text with a lone surrogate fails.
    PyString::from_bytes(py, bytes).or_else(|_| {
        PyString::from_encoded_object(
            PyBytes::new(py, bytes).as_any(),
            Some(c"utf-8"),
            Some(c"surrogatepass"),
        )
    })
}

/// The characters of a str in the encoding of [`Text`]: its UTF-8, or, when it holds lone
/// surrogates, its `"surrogatepass"` encoding.
fn str_bytes<'a>(string: &'a Bound<'_, PyString>) -> PyResult<Cow<'a, [u8]>> {
    match string.to_str() {
        Ok(s) => Ok(Cow::Borrowed(s.as_bytes())),
        Err(_) => {
            // str.encode itself, not an override of a subclass.
            let py = string.py();
            let encoded = py
                .get_type::<PyString>()
                .call_method1(intern!(py, "encode"), (string, "utf-8", "surrogatepass"))?;
            Ok(Cow::Owned(encoded.cast::<PyBytes>()?.as_bytes().to_vec()))
        }
    }
}

fn str_text(value: &Bound<'_, PyAny>) -> PyResult<Text> {
    Ok(Text::from_bytes(str_bytes(value.cast::<PyString>()?)?))
}

/// The field names as interned Python strs, indexed by [`Field::index`].
fn names(py: Python<'_>) -> &Vec<Py<PyString>> {
    static NAMES: PyOnceLock<Vec<Py<PyString>>> = PyOnceLock::new();
    NAMES.get_or_init(py, || {
        Field::ALL
            .iter()
            .map(|f| PyString::intern(py, f.name()).unbind())
            .collect()
    })
}

fn name<'py>(py: Python<'py>, field: Field) -> &'py Bound<'py, PyString> {
    names(py)[field.index()].bind(py)
}

// ---- Python objects as a document ----------------------------------------------------------------

/// Python objects as a [`Document`]: `Mapping`s are objects, lists and tuples arrays.
struct PyDocument<'py> {
    py: Python<'py>,
}

impl<'py> PyDocument<'py> {
    fn is_mapping(&self, value: &Bound<'py, PyAny>) -> PyResult<bool> {
        static MAPPING: PyOnceLock<Py<PyType>> = PyOnceLock::new();
        if value.is_instance_of::<PyDict>() {
            return Ok(true);
        }
        value.is_instance(MAPPING.import(self.py, "collections.abc", "Mapping")?)
    }

    /// The items of a list, a tuple or anything iterable, in order.
    fn iterate(&self, value: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        if let Ok(list) = value.cast_exact::<PyList>() {
            return Ok(list.iter().collect());
        }
        if let Ok(tuple) = value.cast_exact::<PyTuple>() {
            return Ok(tuple.iter().collect());
        }
        value.try_iter()?.collect()
    }
}

impl<'py> Document for PyDocument<'py> {
    type Value = Bound<'py, PyAny>;
    type Key = Bound<'py, PyAny>;
    type Error = PyErr;

    fn kind(&self, value: &Bound<'py, PyAny>) -> PyResult<Kind> {
        Ok(if value.is_none() {
            Kind::Null
        } else if let Ok(b) = value.cast::<PyBool>() {
            Kind::Bool(b.is_true())
        } else if value.is_instance_of::<PyString>() {
            Kind::Str
        } else if value.is_instance_of::<PyInt>() {
            Kind::Int
        } else if let Ok(f) = value.cast::<PyFloat>() {
            Kind::Float(f.value())
        } else if value.is_exact_instance_of::<PyList>() || value.is_exact_instance_of::<PyTuple>()
        {
            Kind::Array
        } else if self.is_mapping(value)? {
            Kind::Object
        } else if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
            Kind::Array
        } else {
            Kind::Other
        })
    }

    fn get(&self, object: &Bound<'py, PyAny>, field: Field) -> PyResult<Option<Bound<'py, PyAny>>> {
        let key = name(self.py, field);
        if let Ok(dict) = object.cast_exact::<PyDict>() {
            return dict.get_item(key);
        }
        object
            .call_method1(intern!(self.py, "get"), (key,))
            .map(Some)
    }

    fn values(&self, object: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        if let Ok(dict) = object.cast_exact::<PyDict>() {
            return Ok(dict.iter().map(|(_, v)| v).collect());
        }
        object
            .call_method0(intern!(self.py, "values"))?
            .try_iter()?
            .collect()
    }

    fn items(&self, object: &Bound<'py, PyAny>) -> PyResult<Members<Self>> {
        if let Ok(dict) = object.cast_exact::<PyDict>() {
            return Ok(dict.iter().collect());
        }
        object
            .call_method0(intern!(self.py, "items"))?
            .try_iter()?
            .map(|item| item?.extract())
            .collect()
    }

    fn elements(&self, array: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        self.iterate(array)
    }

    fn copy_object(&self, object: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if let Ok(dict) = object.cast_exact::<PyDict>() {
            return Ok(dict.copy()?.into_any());
        }
        self.py.get_type::<PyDict>().call1((object,))
    }

    fn text<'s>(&'s self, string: &'s Bound<'py, PyAny>) -> PyResult<Cow<'s, [u8]>> {
        str_bytes(string.cast::<PyString>()?)
    }

    fn key_text(&self, key: &Bound<'py, PyAny>) -> PyResult<Text> {
        // f"{key}": format(key, "").
        if key.is_exact_instance_of::<PyString>() {
            return str_text(key);
        }
        let builtins = self.py.import(intern!(self.py, "builtins"))?;
        str_text(
            &builtins
                .getattr(intern!(self.py, "format"))?
                .call1((key,))?,
        )
    }

    fn number_repr(&self, number: &Bound<'py, PyAny>) -> PyResult<Text> {
        str_text(number.repr()?.as_any())
    }

    fn type_name(&self, value: &Bound<'py, PyAny>) -> PyResult<Text> {
        str_text(value.get_type().name()?.as_any())
    }
}

// ---- the result as Python objects ------------------------------------------------------------------

/// How the values of a sanitised blueprint become Python objects.
trait Convert<'py, V, K> {
    /// A value as it is (a str, the `params` object, the `metadata` copy...).
    fn value(&self, value: &V) -> PyResult<Bound<'py, PyAny>>;
    fn key(&self, key: &K) -> PyResult<Bound<'py, PyAny>>;
    /// An integral number as an int (Python: `int(value)`).
    fn int(&self, number: &V) -> PyResult<Bound<'py, PyAny>>;
    /// A number as a float if it is one, else as an int (Python: `float(value)` / `int(value)`).
    fn number(&self, number: &V) -> PyResult<Bound<'py, PyAny>>;
}

impl<'py> Convert<'py, Bound<'py, PyAny>, Bound<'py, PyAny>> for PyDocument<'py> {
    fn value(&self, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        Ok(value.clone())
    }

    fn key(&self, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        Ok(key.clone())
    }

    fn int(&self, number: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if number.is_exact_instance_of::<PyInt>() {
            return Ok(number.clone());
        }
        self.py.get_type::<PyInt>().call1((number,))
    }

    fn number(&self, number: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if number.is_exact_instance_of::<PyFloat>() {
            return Ok(number.clone());
        }
        if number.is_instance_of::<PyFloat>() {
            return self.py.get_type::<PyFloat>().call1((number,));
        }
        self.int(number)
    }
}

/// Parsed JSON to Python objects, as `json.loads` makes them.
struct JsonToPy<'p, 'py> {
    py: Python<'py>,
    parsed: &'p Parsed<'p>,
    /// The keys made so far, so that a key used by many objects is one str (as `json` does).
    keys: RefCell<HashMap<&'p [u8], Bound<'py, PyString>>>,
}

impl<'py> JsonToPy<'_, 'py> {
    fn key_str(&self, key: usize) -> PyResult<Bound<'py, PyString>> {
        let bytes = self.parsed.str_at(key);
        if let Some(s) = self.keys.borrow().get(bytes) {
            return Ok(s.clone());
        }
        let s = text(self.py, bytes)?;
        self.keys.borrow_mut().insert(bytes, s.clone());
        Ok(s)
    }

    /// Recursive: the scanner allows at most [`MAX_DEPTH`] levels.
    fn convert(&self, index: usize) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        Ok(match self.parsed.entry(index) {
            Entry::Null => py.None().into_bound(py),
            Entry::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
            Entry::Int(n) => n.into_pyobject(py)?.into_any(),
            Entry::BigInt { .. } => {
                let digits = self.parsed.bigint_at(index);
                match py.get_type::<PyInt>().call1((digits,)) {
                    Ok(int) => int,
                    // The int max str digits limit was lowered since the text was parsed.
                    Err(_) => PyFloat::new(py, digits.parse().unwrap_or(f64::NAN)).into_any(),
                }
            }
            Entry::Float(f) => PyFloat::new(py, f).into_any(),
            Entry::Str { .. } => text(py, self.parsed.str_at(index))?.into_any(),
            Entry::Array { .. } => {
                let list = PyList::empty(py);
                for item in self.parsed.elements(index) {
                    list.append(self.convert(item)?)?;
                }
                list.into_any()
            }
            Entry::Object { .. } => {
                let dict = PyDict::new(py);
                for (key, item) in self.parsed.raw_members(index) {
                    dict.set_item(self.key_str(key)?, self.convert(item)?)?;
                }
                dict.into_any()
            }
        })
    }
}

impl<'py> Convert<'py, usize, usize> for JsonToPy<'_, 'py> {
    fn value(&self, value: &usize) -> PyResult<Bound<'py, PyAny>> {
        self.convert(*value)
    }

    fn key(&self, key: &usize) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.key_str(*key)?.into_any())
    }

    fn int(&self, number: &usize) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        match self.parsed.entry(*number) {
            // Integral and finite (checked): exact in an i64 below 2**63, else through Python.
            Entry::Float(f) if f.abs() < 9.2e18 => Ok((f as i64).into_pyobject(py)?.into_any()),
            Entry::Float(f) => py.get_type::<PyInt>().call1((f,)),
            _ => self.convert(*number),
        }
    }

    fn number(&self, number: &usize) -> PyResult<Bound<'py, PyAny>> {
        self.convert(*number)
    }
}

/// The sanitised blueprint as `{"id", "nodes", "edges", "metadata"}`.
fn build<'py, V, K>(
    py: Python<'py>,
    conv: &impl Convert<'py, V, K>,
    bp: Sanitised<V, K>,
    ids: Ids<'py>,
) -> PyResult<Bound<'py, PyDict>> {
    let n = |field| name(py, field);
    let mut nodes = Vec::with_capacity(bp.nodes.len());
    for node in &bp.nodes {
        let d = PyDict::new(py);
        d.set_item(n(Field::Id), conv.value(&node.id)?)?;
        d.set_item(n(Field::Uses), conv.value(&node.uses)?)?;
        if let Some(params) = &node.params {
            d.set_item(n(Field::Params), conv.value(params)?)?;
        }
        match &node.inputs {
            None => {}
            Some(Inputs::Text(s)) => d.set_item(n(Field::Inputs), conv.value(s)?)?,
            Some(Inputs::Map(members)) => {
                let map = PyDict::new(py);
                for (key, value) in members {
                    map.set_item(conv.key(key)?, conv.value(value)?)?;
                }
                d.set_item(n(Field::Inputs), map)?;
            }
        }
        if let Some(c) = &node.config {
            let config = PyDict::new(py);
            if let Some(v) = &c.max_retries {
                config.set_item(n(Field::MaxRetries), conv.int(v)?)?;
            }
            if let Some(v) = &c.retry_delay {
                config.set_item(n(Field::RetryDelay), conv.number(v)?)?;
            }
            if let Some(v) = &c.backoff {
                config.set_item(n(Field::Backoff), conv.value(v)?)?;
            }
            if let Some(v) = &c.timeout {
                config.set_item(n(Field::Timeout), conv.number(v)?)?;
            }
            if let Some(v) = &c.fallback {
                config.set_item(n(Field::Fallback), conv.value(v)?)?;
            }
            if let Some(v) = &c.join_strategy {
                config.set_item(n(Field::JoinStrategy), conv.value(v)?)?;
            }
            d.set_item(n(Field::Config), config)?;
        }
        nodes.push(d);
    }
    let mut edges = Vec::with_capacity(bp.edges.len());
    for edge in &bp.edges {
        let d = PyDict::new(py);
        d.set_item(n(Field::Source), conv.value(&edge.source)?)?;
        d.set_item(n(Field::Target), conv.value(&edge.target)?)?;
        let optional = [
            (Field::Action, &edge.action),
            (Field::Condition, &edge.condition),
            (Field::Transform, &edge.transform),
        ];
        for (field, value) in optional {
            if let Some(v) = value {
                d.set_item(n(field), conv.value(v)?)?;
            }
        }
        edges.push(d);
    }
    let (id, default_id) = ids;
    let id = match &bp.id {
        BlueprintId::Given => id,
        BlueprintId::Default => default_id,
        BlueprintId::Document(v) => Some(conv.value(v)?),
    };
    let metadata = match &bp.metadata {
        Some(v) => conv.value(v)?,
        None => PyDict::new(py).into_any(),
    };
    let out = PyDict::new(py);
    out.set_item(n(Field::Id), id)?;
    out.set_item(n(Field::Nodes), PyList::new(py, nodes)?)?;
    out.set_item(n(Field::Edges), PyList::new(py, edges)?)?;
    out.set_item(n(Field::Metadata), metadata)?;
    Ok(out)
}
