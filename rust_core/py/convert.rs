//! Conversions shared by the wrappers: type names for messages, and the items of a sequence.

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PySequence, PyString, PyTuple};

/// The Python type name of ``obj`` (for messages like "must be a str, not int").
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "object".to_owned(), |name| name.to_string())
}

/// The items of a list, a tuple or another `collections.abc.Sequence` (but not of a str, bytes
/// or bytearray), or `None` for anything else.
pub(crate) fn sequence_items<'py>(
    obj: &Bound<'py, PyAny>,
) -> PyResult<Option<Vec<Bound<'py, PyAny>>>> {
    if let Ok(list) = obj.cast_exact::<PyList>() {
        return Ok(Some(list.iter().collect()));
    }
    if let Ok(tuple) = obj.cast_exact::<PyTuple>() {
        return Ok(Some(tuple.iter().collect()));
    }
    if obj.is_instance_of::<PyString>()
        || obj.is_instance_of::<PyBytes>()
        || obj.is_instance_of::<PyByteArray>()
        || obj.cast::<PySequence>().is_err()
    {
        return Ok(None);
    }
    obj.try_iter()?.collect::<PyResult<Vec<_>>>().map(Some)
}
