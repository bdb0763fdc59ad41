//! Errors of the Rust core, and the one table that turns them into Python exceptions.
//!
//! Pure code returns [`CoreResult`]; the `#[pyfunction]` wrappers in `crate::py` return
//! `PyResult` and let `?` convert through `From<CoreError> for PyErr` below. Errors that have a
//! class in `bullflow.exceptions` are raised as that class (looked up at run time with
//! `bullflow_exception`, with the `python` feature); the others as the builtin exception named in
//! the table.
//!
//! To add an error: add a variant here, with the message a person needs, and its row in the
//! `From<CoreError> for PyErr` table.

use std::fmt;

/// An error of the Rust core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// An argument has the wrong type (Python: `TypeError`). The message names the argument and,
    /// for an element of a sequence, its index: `"node_ids[3] must be a str, not int"`.
    InvalidArgument(String),
    /// A value cannot be encoded as JSON, or stored text cannot be decoded (Python:
    /// `bullflow.exceptions.CodecError`). `key` names the context key that holds the value, if
    /// any; the message says what is wrong and where (`"cannot encode a set at $.items[2]"`).
    Codec {
        message: String,
        key: Option<String>,
    },
    /// A blueprint is malformed or invalid (Python: `bullflow.exceptions.BlueprintError`).
    /// `path` is the JSON path of the offending value (`nodes[3].config.maxRetries`, empty for
    /// the whole document), `problem` what is wrong with it. Both may hold lone surrogates, as
    /// Python strs can (see [`crate::blueprint::Text`]).
    Blueprint {
        problem: crate::blueprint::Text,
        path: crate::blueprint::Text,
    },
    /// A blueprint with a cycle, compiled in strict mode (Python:
    /// `bullflow.exceptions.StrictModeError`, a `BlueprintError` without a path).
    StrictMode { problem: crate::blueprint::Text },
    /// `error`, about the blueprint `blueprint_id`: the exception also gets that `blueprint_id`
    /// attribute (as the twin's `BlueprintError(..., blueprint_id=...)` has).
    InBlueprint {
        blueprint_id: crate::blueprint::Text,
        error: Box<CoreError>,
    },
    /// A run or a node cannot be resumed (Python: `bullflow.exceptions.ResumeError`).
    Resume(crate::blueprint::Text),
    /// A run exceeded its maximum number of waves (Python: `bullflow.exceptions.InfiniteLoopError`).
    InfiniteLoop(String),
    /// An index is out of range (Python: `IndexError`): `"node index 7 out of range"`.
    IndexOutOfRange(String),
    /// An argument has the right type but a value that cannot be used (Python: `ValueError`).
    InvalidValue(String),
}

/// The result of a fallible function of the Rust core.
pub type CoreResult<T> = Result<T, CoreError>;

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::InvalidArgument(message) => f.write_str(message),
            CoreError::Codec {
                message,
                key: Some(key),
            } => write!(f, "{key}: {message}"),
            CoreError::Codec { message, key: None } => f.write_str(message),
            CoreError::Blueprint { problem, path } if path.is_empty() => write!(f, "{problem}"),
            CoreError::Blueprint { problem, path } => write!(f, "{path}: {problem}"),
            CoreError::StrictMode { problem } => write!(f, "{problem}"),
            CoreError::Resume(message) => write!(f, "{message}"),
            CoreError::InBlueprint { error, .. } => fmt::Display::fmt(error, f),
            CoreError::InfiniteLoop(message)
            | CoreError::IndexOutOfRange(message)
            | CoreError::InvalidValue(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for CoreError {}

#[cfg(feature = "python")]
mod python {
    use pyo3::call::PyCallArgs;
    use pyo3::exceptions::PyTypeError;
    use pyo3::exceptions::{PyIndexError, PyValueError};
    use pyo3::prelude::*;
    use pyo3::types::PyDict;

    use super::CoreError;

    /// The table: which Python exception each [`CoreError`] becomes.
    impl From<CoreError> for PyErr {
        fn from(err: CoreError) -> PyErr {
            match err {
                CoreError::InvalidArgument(message) => PyTypeError::new_err(message),
                CoreError::Codec { message, key } => Python::attach(|py| {
                    let kwargs = PyDict::new(py);
                    match kwargs.set_item("key", key) {
                        Ok(()) => bullflow_exception_with_kwargs(
                            py,
                            "CodecError",
                            (message,),
                            Some(&kwargs),
                        ),
                        Err(err) => err,
                    }
                }),
                CoreError::Blueprint { problem, path } => Python::attach(|py| {
                    let text =
                        |t: &crate::blueprint::Text| crate::py::blueprint::text(py, t.as_bytes());
                    match (text(&problem), text(&path)) {
                        (Ok(problem), Ok(path)) => {
                            bullflow_exception(py, "BlueprintError", (problem, path))
                        }
                        (Err(err), _) | (_, Err(err)) => err,
                    }
                }),
                CoreError::StrictMode { problem } => {
                    text_exception("StrictModeError", problem.as_bytes())
                }
                CoreError::InBlueprint {
                    blueprint_id,
                    error,
                } => {
                    let err = PyErr::from(*error);
                    Python::attach(|py| {
                        let set = crate::py::blueprint::text(py, blueprint_id.as_bytes())
                            .and_then(|id| err.value(py).setattr("blueprint_id", id));
                        match set {
                            Ok(()) => err,
                            Err(failure) => failure,
                        }
                    })
                }
                CoreError::Resume(message) => text_exception("ResumeError", message.as_bytes()),
                CoreError::InfiniteLoop(message) => {
                    Python::attach(|py| bullflow_exception(py, "InfiniteLoopError", (message,)))
                }
                CoreError::IndexOutOfRange(message) => PyIndexError::new_err(message),
                CoreError::InvalidValue(message) => PyValueError::new_err(message),
            }
        }
    }

    /// `bullflow.exceptions.<class_name>(text)`, `text` in the encoding of
    /// [`crate::blueprint::Text`] (lone surrogates allowed).
    fn text_exception(class_name: &str, text: &[u8]) -> PyErr {
        Python::attach(|py| match crate::py::blueprint::text(py, text) {
            Ok(text) => bullflow_exception(py, class_name, (text,)),
            Err(err) => err,
        })
    }

    /// An instance of the exception class `bullflow.exceptions.<class_name>`, built with `args`.
    ///
    /// The module is imported when the error is raised, not when `_core` is loaded (it is a
    /// Python module of the same package). If the import, the lookup or the constructor fails,
    /// that failure is returned instead, so an error is never lost.
    pub fn bullflow_exception<'py, A>(py: Python<'py>, class_name: &str, args: A) -> PyErr
    where
        A: PyCallArgs<'py>,
    {
        let built = py
            .import("bullflow.exceptions")
            .and_then(|module| module.getattr(class_name))
            .and_then(|class| class.call1(args));
        match built {
            Ok(instance) => PyErr::from_value(instance),
            Err(err) => err,
        }
    }

    /// [`bullflow_exception`], with keyword arguments too (`CodecError(message, key=...)`).
    pub fn bullflow_exception_with_kwargs<'py, A>(
        py: Python<'py>,
        class_name: &str,
        args: A,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyErr
    where
        A: PyCallArgs<'py>,
    {
        let built = py
            .import("bullflow.exceptions")
            .and_then(|module| module.getattr(class_name))
            .and_then(|class| class.call(args, kwargs));
        match built {
            Ok(instance) => PyErr::from_value(instance),
            Err(err) => err,
        }
    }
}

#[cfg(feature = "python")]
pub use python::bullflow_exception;
#[cfg(feature = "python")]
pub use python::bullflow_exception_with_kwargs;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_displays_its_message() {
        let err = CoreError::InvalidArgument("edges[2] must be a str, not int".into());
        assert_eq!(err.to_string(), "edges[2] must be a str, not int");
        let result: CoreResult<()> = Err(err.clone());
        assert_eq!(result, Err(err));
    }

    #[test]
    fn codec_error_displays_its_key_and_message() {
        let err = CoreError::Codec {
            message: "cannot encode a set at $.items[2]".into(),
            key: Some("_outputs.A".into()),
        };
        assert_eq!(
            err.to_string(),
            "_outputs.A: cannot encode a set at $.items[2]"
        );
        let err = CoreError::Codec {
            message: "expected a JSON value at byte 0".into(),
            key: None,
        };
        assert_eq!(err.to_string(), "expected a JSON value at byte 0");
    }

    #[test]
    fn blueprint_error_displays_its_path_and_problem() {
        let err = CoreError::Blueprint {
            problem: "expected an integer, got \"3\"".into(),
            path: "nodes[3].config.maxRetries".into(),
        };
        assert_eq!(
            err.to_string(),
            "nodes[3].config.maxRetries: expected an integer, got \"3\""
        );
        let err = CoreError::Blueprint {
            problem: "a blueprint must be a JSON object, got an array".into(),
            path: "".into(),
        };
        assert_eq!(
            err.to_string(),
            "a blueprint must be a JSON object, got an array"
        );
    }

    #[test]
    fn graph_errors_display_their_message() {
        use crate::blueprint::Text;
        let err = CoreError::InBlueprint {
            blueprint_id: Text::from("g"),
            error: Box::new(CoreError::StrictMode {
                problem: Text::from(
                    "Workflow 'g' failed strictness check: Cycles are not allowed.",
                ),
            }),
        };
        assert_eq!(
            err.to_string(),
            "Workflow 'g' failed strictness check: Cycles are not allowed."
        );
        let err = CoreError::Resume(Text::from_bytes(b"Node '\xed\xa0\x80'".to_vec()));
        assert_eq!(err.to_string(), "Node '\u{fffd}\u{fffd}\u{fffd}'");
        assert_eq!(
            CoreError::IndexOutOfRange("node index 7 out of range".into()).to_string(),
            "node index 7 out of range"
        );
    }
}
