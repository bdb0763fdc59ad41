//! Python wrapper of [`crate::analysis`].
//!
//! Argument checking mirrors `python/bullflow/_pure/analysis.py` message for message.

use std::borrow::Cow;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use pyo3::intern;
use pyo3::prelude::*;

use super::convert::{sequence_items, type_name};
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::analysis::analyze_with_hasher;
use crate::errors::{CoreError, CoreResult};

/// From this many nodes plus edges on, the analysis runs with the GIL released.
const DETACH_FROM: usize = 10_000;

/// Analyzes a workflow graph like Flowcraft's ``analyzeBlueprint``.
///
/// ``node_ids`` is a sequence of str (duplicates allowed), ``edges`` a sequence of
/// ``(source, target)`` tuples or lists of str (ids need not be declared). Returns a dict with
/// ``start_node_ids``, ``terminal_node_ids``, ``cycles`` (lists of ids, first == last),
/// ``node_count``, ``edge_count`` and ``is_dag``. Raises ``TypeError`` naming the index of the
/// first bad element.
#[pyfunction]
#[pyo3(signature = (node_ids, edges))]
pub fn analyze_graph<'py>(
    py: Python<'py>,
    node_ids: &Bound<'py, PyAny>,
    edges: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let nodes = node_id_objects(node_ids)?;
    let pairs = edge_objects(edges)?;

    let node_keys = nodes.iter().map(key).collect::<PyResult<Vec<_>>>()?;
    let edge_keys = pairs
        .iter()
        .map(|(s, t)| Ok((key(s)?, key(t)?)))
        .collect::<PyResult<Vec<_>>>()?;

    let result = if nodes.len() + pairs.len() >= DETACH_FROM {
        py.detach(|| analyze_with_hasher(&node_keys, &edge_keys, PyHash::default()))
    } else {
        analyze_with_hasher(&node_keys, &edge_keys, PyHash::default())
    };

    // Every id in the result is one of the caller's own str objects.
    let ids = |positions: &[usize]| PyList::new(py, positions.iter().map(|&i| &nodes[i]));
    let cycles = PyList::empty(py);
    for cycle in &result.cycles {
        cycles.append(ids(cycle)?)?;
    }
    let out = PyDict::new(py);
    out.set_item(intern!(py, "start_node_ids"), ids(&result.start)?)?;
    out.set_item(intern!(py, "terminal_node_ids"), ids(&result.terminal)?)?;
    out.set_item(intern!(py, "cycles"), cycles)?;
    out.set_item(intern!(py, "node_count"), result.node_count)?;
    out.set_item(intern!(py, "edge_count"), result.edge_count)?;
    out.set_item(intern!(py, "is_dag"), result.is_dag())?;
    Ok(out)
}

/// An id as the analysis sees it: its UTF-8 bytes, borrowed from the str, and Python's hash of
/// the str (computed once per str object and cached in it). A str with lone surrogates has no
/// UTF-8 form; it is encoded with ``"surrogatepass"``, which agrees with UTF-8 elsewhere and maps
/// distinct strs to distinct bytes, so any str is a valid id.
#[derive(PartialEq, Eq)]
struct Key<'a> {
    hash: isize,
    bytes: Cow<'a, [u8]>,
}

impl Hash for Key<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_isize(self.hash);
    }
}

/// Hashes a [`Key`] to the Python hash it carries (already randomized per process by Python).
#[derive(Default)]
struct PyHashHasher(u64);

impl Hasher for PyHashHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached if something other than a Key is hashed: FNV-1a.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_isize(&mut self, hash: isize) {
        self.0 = hash as u64;
    }
}

type PyHash = BuildHasherDefault<PyHashHasher>;

fn key<'a>(id: &'a Bound<'_, PyString>) -> PyResult<Key<'a>> {
    let hash = id.hash()?;
    let bytes = match id.to_str() {
        Ok(text) => Cow::Borrowed(text.as_bytes()),
        Err(_) => {
            let py = id.py();
            let encoded = id.call_method1(intern!(py, "encode"), ("utf-8", "surrogatepass"))?;
            Cow::Owned(encoded.cast::<PyBytes>()?.as_bytes().to_vec())
        }
    };
    Ok(Key { hash, bytes })
}

fn invalid(message: String) -> PyErr {
    CoreError::InvalidArgument(message).into()
}

fn as_str<'py>(
    item: Bound<'py, PyAny>,
    what: impl FnOnce() -> String,
) -> CoreResult<Bound<'py, PyString>> {
    item.cast_into::<PyString>().map_err(|err| {
        let item = err.into_inner();
        CoreError::InvalidArgument(format!(
            "{} must be a str, not {}",
            what(),
            type_name(&item)
        ))
    })
}

fn node_id_objects<'py>(node_ids: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyString>>> {
    let Some(items) = sequence_items(node_ids)? else {
        return Err(invalid(format!(
            "node_ids must be a sequence of str, not {}",
            type_name(node_ids)
        )));
    };
    let mut nodes = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        nodes.push(as_str(item, || format!("node_ids[{i}]"))?);
    }
    Ok(nodes)
}

type StrPair<'py> = (Bound<'py, PyString>, Bound<'py, PyString>);

fn edge_objects<'py>(edges: &Bound<'py, PyAny>) -> PyResult<Vec<StrPair<'py>>> {
    let Some(items) = sequence_items(edges)? else {
        return Err(invalid(format!(
            "edges must be a sequence of (source, target) pairs, not {}",
            type_name(edges)
        )));
    };
    let mut pairs = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let (len, first, second) = if let Ok(tuple) = item.cast::<PyTuple>() {
            let len = tuple.len();
            let get = |j| (len == 2).then(|| tuple.get_item(j)).transpose();
            (len, get(0)?, get(1)?)
        } else if let Ok(list) = item.cast::<PyList>() {
            let len = list.len();
            let get = |j| (len == 2).then(|| list.get_item(j)).transpose();
            (len, get(0)?, get(1)?)
        } else {
            return Err(invalid(format!(
                "edges[{i}] must be a (source, target) tuple, not {}",
                type_name(item)
            )));
        };
        let (Some(source), Some(target)) = (first, second) else {
            return Err(invalid(format!(
                "edges[{i}] must have 2 items (source, target), not {len}"
            )));
        };
        let source = as_str(source, || format!("edges[{i}][0]"))?;
        let target = as_str(target, || format!("edges[{i}][1]"))?;
        pairs.push((source, target));
    }
    Ok(pairs)
}
