//! The Rust core of bullflow, loaded by Python as the extension module `bullflow._core`.
//!
//! * `analysis`, ...: pure Rust, no pyo3, tested with `cargo test`.
//! * `errors`: [`errors::CoreError`] and its conversion to Python exceptions.
//! * `py`: the `#[pyfunction]` wrappers (only with the default `python` feature).
//!
//! The `_core` module below is the only `#[pymodule]`: what it exports is the whole Python API of
//! the extension, mirrored by `python/bullflow/_core.pyi` and by the pure-Python twin in
//! `python/bullflow/_pure/`.

pub mod analysis;
pub mod blueprint;
pub mod codec;
pub mod errors;
pub mod float_repr;
pub mod graph;

#[cfg(feature = "python")]
mod py;

/// Rust core of bullflow (use it through ``bullflow._impl``).
#[cfg(feature = "python")]
#[pyo3::pymodule]
mod _core {
    use pyo3::prelude::*;

    #[pymodule_export]
    use crate::py::analysis::analyze_graph;
    #[pymodule_export]
    use crate::py::blueprint::parse_blueprint;

    #[pymodule_export]
    use crate::py::codec::{
        decode_hash, decode_hmget, decode_job_payload, decode_value, encode_hset_args,
        encode_job_payload, encode_value,
    };

    #[pymodule_export]
    use crate::py::graph::{CompiledGraph, RunState, compile_graph};

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
