//! The `#[pyfunction]` wrappers: each converts its Python arguments, calls the pure Rust code
//! (outside the GIL when the input is large) and converts the result back. No logic of its own;
//! the module `_core` itself is declared in `lib.rs`.

pub mod analysis;
pub mod blueprint;
pub mod codec;
mod convert;
pub mod graph;
