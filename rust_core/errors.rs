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
}

/// The result of a fallible function of the Rust core.
pub type CoreResult<T> = Result<T, CoreError>;

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::InvalidArgument(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for CoreError {}

#[cfg(feature = "python")]
mod python {
    use pyo3::call::PyCallArgs;
    use pyo3::exceptions::PyTypeError;
    use pyo3::prelude::*;

    use super::CoreError;

    /// The table: which Python exception each [`CoreError`] becomes.
    impl From<CoreError> for PyErr {
        fn from(err: CoreError) -> PyErr {
            match err {
                CoreError::InvalidArgument(message) => PyTypeError::new_err(message),
            }
        }
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
}

#[cfg(feature = "python")]
pub use python::bullflow_exception;

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
}
