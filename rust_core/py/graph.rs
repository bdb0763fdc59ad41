//! Python classes of [`crate::graph`]: `CompiledGraph`, `RunState` and `compile_graph`.
//!
//! Same API and results as `python/bullflow/_pure/graph.py`, message for message. A blueprint
//! given as JSON text is compiled in pure Rust with the GIL released ([`graph::compile_json`]);
//! one given as a mapping is read here with the twin's Python operations, in the twin's order, so
//! that a malformed one raises what the twin raises (`KeyError`, `AttributeError`, `TypeError`,
//! `BlueprintError` quoting `repr`s...). The content hash of a mapping is written from the
//! Python objects; anything unusual in it (a value `json.dumps` refuses, a big int, deep
//! nesting) is left to the twin's own `canonical_json`, which then raises or answers exactly.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use pyo3::exceptions::{PyIndexError, PyOverflowError, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;

use super::convert::type_name;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMapping, PySet, PyString, PyTuple,
};

use crate::blueprint::Text;
use crate::errors::CoreError;
use crate::graph::{
    self, Action, Compiled, FromJson, HashSink, Interner, LOOP_CONTROLLER, MAX_ITEMS, MAX_WAVE,
    NONE, Names, Parts, Snapshot, Spec,
};
use crate::py::blueprint::text as py_text;

/// From this many nodes plus edges (or bytes of JSON text) on, compiling runs with the GIL
/// released.
const DETACH_FROM: usize = 10_000;
/// Deeper nesting than this in a mapping's content is hashed by the twin (which raises Python's
/// `RecursionError` where the twin would).
const MAX_NATIVE_DEPTH: usize = 200;

// ---- helpers -------------------------------------------------------------------------------------

/// The characters of a str in the encoding of [`Text`].
fn str_bytes<'a>(s: &'a Bound<'_, PyString>) -> PyResult<Cow<'a, [u8]>> {
    match s.to_str() {
        Ok(text) => Ok(Cow::Borrowed(text.as_bytes())),
        Err(_) => {
            let py = s.py();
            let encoded = s.call_method1(intern!(py, "encode"), ("utf-8", "surrogatepass"))?;
            Ok(Cow::Owned(encoded.cast::<PyBytes>()?.as_bytes().to_vec()))
        }
    }
}

/// `operator.index(value)` checked against `0 <= i < count`, with the twin's `_index` message.
fn index_arg(value: &Bound<'_, PyAny>, count: usize, what: &str) -> PyResult<usize> {
    match value.extract::<i64>() {
        Ok(i) if i >= 0 && (i as u64) < count as u64 => Ok(i as usize),
        Ok(i) => Err(PyIndexError::new_err(format!(
            "{what} index {i} out of range"
        ))),
        Err(err) if err.is_instance_of::<PyOverflowError>(value.py()) => {
            let py = value.py();
            let index = py
                .import(intern!(py, "operator"))?
                .getattr(intern!(py, "index"))?
                .call1((value,))?;
            Err(PyIndexError::new_err(format!(
                "{what} index {} out of range",
                index.str()?
            )))
        }
        Err(err) => Err(err),
    }
}

/// `obj[key]`.
fn item<'py>(obj: &Bound<'py, PyAny>, key: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyAny>> {
    if let Ok(dict) = obj.cast_exact::<PyDict>()
        && let Some(value) = dict.get_item(key)?
    {
        return Ok(value);
    }
    obj.get_item(key)
}

/// `obj.get(key)`.
fn get<'py>(obj: &Bound<'py, PyAny>, key: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    if let Ok(dict) = obj.cast_exact::<PyDict>() {
        return Ok(dict
            .get_item(key)?
            .unwrap_or_else(|| py.None().into_bound(py)));
    }
    obj.call_method1(intern!(py, "get"), (key,))
}

/// `obj.get(key) or default()`.
fn get_or<'py>(
    obj: &Bound<'py, PyAny>,
    key: &Bound<'py, PyString>,
    default: impl FnOnce() -> Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let value = get(obj, key)?;
    Ok(if value.is_truthy()? { value } else { default() })
}

/// `value == text`, as Python compares.
fn equals(value: &Bound<'_, PyAny>, text: &str) -> PyResult<bool> {
    if let Ok(s) = value.cast_exact::<PyString>() {
        return Ok(s.to_str().is_ok_and(|s| s == text));
    }
    value
        .rich_compare(text, pyo3::basic::CompareOp::Eq)?
        .is_truthy()
}

/// The items of a list or tuple, or of any other iterable.
fn items<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if let Ok(list) = obj.cast_exact::<PyList>() {
        return Ok(list.iter().collect());
    }
    if let Ok(tuple) = obj.cast_exact::<PyTuple>() {
        return Ok(tuple.iter().collect());
    }
    obj.try_iter()?.collect()
}

fn bytes_obj<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    py_text(py, bytes)
}

// ---- compile_graph -------------------------------------------------------------------------------

/// Compiles a sanitised blueprint: a mapping, or its JSON text (str or bytes), as
/// ``compile_graph`` of the twin. Raises ``BlueprintError`` (``StrictModeError`` for a cycle in
/// strict mode) for a blueprint that cannot run.
#[pyfunction]
#[pyo3(signature = (blueprint, strict = None), text_signature = "(blueprint, strict=False)")]
pub fn compile_graph(
    py: Python<'_>,
    blueprint: &Bound<'_, PyAny>,
    strict: Option<&Bound<'_, PyAny>>,
) -> PyResult<CompiledGraph> {
    let strict = match strict {
        Some(strict) => strict.is_truthy()?,
        None => false,
    };
    if let Some(outcome) = compile_text(py, blueprint, strict)? {
        return match outcome {
            FromJson::Compiled(compiled) => Ok(CompiledGraph::from_core(py, *compiled, None)),
            FromJson::NeedsPython => {
                let loaded = py
                    .import(intern!(py, "json"))?
                    .getattr(intern!(py, "loads"))?
                    .call1((blueprint,))?;
                compile_mapping(py, &loaded, strict)
            }
        };
    }
    compile_mapping(py, blueprint, strict)
}

/// The JSON path, when `blueprint` is text (`None` otherwise).
fn compile_text(
    py: Python<'_>,
    blueprint: &Bound<'_, PyAny>,
    strict: bool,
) -> PyResult<Option<FromJson>> {
    let run = |bytes: &[u8]| -> PyResult<FromJson> {
        let result = if bytes.len() >= DETACH_FROM {
            py.detach(|| graph::compile_json(bytes, strict))
        } else {
            graph::compile_json(bytes, strict)
        };
        Ok(result?)
    };
    if let Ok(text) = blueprint.cast::<PyString>() {
        return match text.to_str() {
            Ok(text) => run(text.as_bytes()).map(Some),
            // Lone surrogates: json.loads reads them, serde_json does not.
            Err(_) => Ok(Some(FromJson::NeedsPython)),
        };
    }
    if let Ok(bytes) = blueprint.cast::<PyBytes>() {
        return run(bytes.as_bytes()).map(Some);
    }
    if let Ok(array) = blueprint.cast::<PyByteArray>() {
        return run(&array.to_vec()).map(Some);
    }
    Ok(None)
}

/// What the mapping path keeps beside the core graph.
struct FromMapping {
    ids: Py<PyList>,
    uses: Vec<Py<PyAny>>,
    other_actions: HashMap<u32, Py<PyAny>>,
    blueprint_id: Py<PyString>,
}

/// Node ids that are not strs, with their positions: only kept to raise what the twin raises
/// (`analyze_graph` refuses them once the structural checks have passed).
struct OtherIds<'py> {
    index: Option<Bound<'py, PyDict>>,
    first: Option<(usize, Bound<'py, PyAny>)>,
}

impl<'py> OtherIds<'py> {
    /// The index of `value` among the node ids; Python's hashing and equality.
    fn find(&self, names: &Names, value: &Bound<'py, PyAny>) -> PyResult<Option<u32>> {
        if let Ok(s) = value.cast::<PyString>() {
            return Ok(names.index_of(&str_bytes(s)?));
        }
        match &self.index {
            Some(index) => index
                .get_item(value)?
                .map(|i| i.extract::<u32>())
                .transpose(),
            None => {
                // Unhashable values raise as `value in dict` does.
                value.hash()?;
                Ok(None)
            }
        }
    }
}

fn compile_mapping(
    py: Python<'_>,
    blueprint: &Bound<'_, PyAny>,
    strict: bool,
) -> PyResult<CompiledGraph> {
    let k_id = intern!(py, "id");
    let k_nodes = intern!(py, "nodes");
    let k_edges = intern!(py, "edges");
    let k_metadata = intern!(py, "metadata");
    let k_uses = intern!(py, "uses");
    let k_config = intern!(py, "config");
    let k_join = intern!(py, "joinStrategy");
    let k_fallback = intern!(py, "fallback");
    let k_source = intern!(py, "source");
    let k_target = intern!(py, "target");
    let k_action = intern!(py, "action");
    let k_condition = intern!(py, "condition");
    let empty_list = || PyList::empty(py).into_any();
    let empty_dict = || PyDict::new(py).into_any();

    // bp_id = str(blueprint.get("id", ""))
    let bp_id_obj = if let Ok(dict) = blueprint.cast_exact::<PyDict>() {
        dict.get_item(k_id)?
            .unwrap_or_else(|| PyString::new(py, "").into_any())
    } else {
        blueprint.call_method1(intern!(py, "get"), (k_id, ""))?
    };
    let bp_id = bp_id_obj.str()?;
    let bp_text = Text::from_bytes(str_bytes(&bp_id)?.into_owned());
    let nodes_obj = get_or(blueprint, k_nodes, empty_list)?;
    let edges_obj = get_or(blueprint, k_edges, empty_list)?;
    let metadata = get_or(blueprint, k_metadata, empty_dict)?;
    let in_blueprint = |error: CoreError| -> PyErr {
        CoreError::InBlueprint {
            blueprint_id: bp_text.clone(),
            error: Box::new(error),
        }
        .into()
    };
    let blueprint_error = |problem: String, path: String| -> PyErr {
        in_blueprint(CoreError::Blueprint {
            problem: Text::from(problem),
            path: Text::from(path),
        })
    };

    // The ids, duplicates refused.
    let n = nodes_obj.len()?;
    let nodes = items(&nodes_obj)?;
    let mut names = Names::with_capacity(nodes.len(), nodes.len() * 8);
    let mut other = OtherIds {
        index: None,
        first: None,
    };
    let ids = PyList::empty(py);
    for (i, node) in nodes.iter().enumerate() {
        let node_id = item(node, k_id)?;
        let first = if let Ok(s) = node_id.cast::<PyString>() {
            names.insert(&str_bytes(s)?).err()
        } else {
            let index = other.index.get_or_insert_with(|| PyDict::new(py));
            let first = match index.get_item(&node_id)? {
                Some(first) => Some(first.extract::<u32>()?),
                None => {
                    // Keep the positions aligned: a placeholder no str's encoding can equal
                    // (0xFF never occurs in UTF-8, surrogates or not).
                    let mut placeholder = vec![0xFF];
                    placeholder.extend_from_slice(&(i as u64).to_le_bytes());
                    names.insert(&placeholder).ok();
                    index.set_item(&node_id, i)?;
                    None
                }
            };
            if other.first.is_none() {
                other.first = Some((i, node_id.clone()));
            }
            first
        };
        if let Some(first) = first {
            return Err(blueprint_error(
                format!(
                    "duplicate node id {} (first defined at nodes[{first}])",
                    node_id.repr()?
                ),
                format!("nodes[{i}].id"),
            ));
        }
        ids.append(&node_id)?;
    }
    let m = edges_obj.len()?;
    if n != nodes.len() {
        return Err(CoreError::InvalidValue(format!(
            "nodes has {n} items but gave {} when iterated",
            nodes.len()
        ))
        .into());
    }
    if n >= MAX_ITEMS || m >= MAX_ITEMS {
        return Err(CoreError::InvalidValue(format!(
            "a blueprint may have at most {MAX_ITEMS} nodes and edges"
        ))
        .into());
    }

    let mut uses = Vec::with_capacity(n);
    let mut spec = Spec {
        join_any: Vec::with_capacity(n),
        loop_controller: Vec::with_capacity(n),
        fallback: Vec::with_capacity(n),
        edge_source: Vec::with_capacity(m),
        edge_target: Vec::with_capacity(m),
        edge_continue: Vec::with_capacity(m),
        edge_conditional: Vec::with_capacity(m),
    };
    for node in &nodes {
        let node_uses = item(node, k_uses)?;
        spec.loop_controller
            .push(equals(&node_uses, LOOP_CONTROLLER)?);
        uses.push(node_uses.unbind());
    }
    let mut configs = Vec::with_capacity(n);
    for node in &nodes {
        let config = get_or(node, k_config, empty_dict)?;
        spec.join_any.push(equals(&get(&config, k_join)?, "any")?);
        configs.push(config);
    }

    let edges = items(&edges_obj)?;
    let mut action_texts = Interner::default();
    let mut actions = Vec::with_capacity(m);
    let mut other_actions = HashMap::new();
    for (e, edge) in edges.iter().enumerate() {
        let mut ends = [0u32; 2];
        for (k, (key, attr)) in [(k_source, "source"), (k_target, "target")]
            .iter()
            .enumerate()
        {
            let end = item(edge, key)?;
            match other.find(&names, &end)? {
                Some(i) => ends[k] = i,
                None => {
                    return Err(blueprint_error(
                        format!("unknown node {}", end.repr()?),
                        format!("edges[{e}].{attr}"),
                    ));
                }
            }
        }
        spec.edge_source.push(ends[0]);
        spec.edge_target.push(ends[1]);
        let action = get(edge, k_action)?;
        let (action, is_continue) = if action.is_none() {
            (Action::None, false)
        } else if let Ok(s) = action.cast::<PyString>() {
            let bytes = str_bytes(s)?;
            (
                Action::Text(action_texts.intern(&bytes)),
                &*bytes == b"continue",
            )
        } else {
            let is_continue = equals(&action, "continue")?;
            other_actions.insert(e as u32, action.unbind());
            (Action::Other, is_continue)
        };
        actions.push(action);
        spec.edge_continue.push(is_continue);
        spec.edge_conditional
            .push(!get(edge, k_condition)?.is_none());
    }

    for (i, config) in configs.iter().enumerate() {
        let fb = get(config, k_fallback)?;
        if fb.is_none() {
            spec.fallback.push(NONE);
            continue;
        }
        let path = || format!("nodes[{i}].config.fallback");
        match other.find(&names, &fb)? {
            None => {
                return Err(blueprint_error(
                    format!("fallback node {} not found in blueprint", fb.repr()?),
                    path(),
                ));
            }
            Some(f) if f as usize == i => {
                return Err(blueprint_error(
                    "a node cannot be its own fallback".into(),
                    path(),
                ));
            }
            Some(f) => spec.fallback.push(f),
        }
    }

    // analyze_graph(node_ids, ...) refuses ids that are not strs.
    if let Some((i, node_id)) = &other.first {
        return Err(PyTypeError::new_err(format!(
            "node_ids[{i}] must be a str, not {}",
            type_name(node_id)
        )));
    }

    // set(metadata.get("cycleEntryPoints") or ()), read now but only raised if needed.
    let entry_points: Result<Vec<u32>, PyErr> = (|| {
        let listed = get_or(&metadata, intern!(py, "cycleEntryPoints"), || {
            PyTuple::empty(py).into_any()
        })?;
        let set = py.get_type::<PySet>().call1((listed,))?;
        let mut found = Vec::new();
        for x in set.try_iter()? {
            let x = x?;
            if let Ok(s) = x.cast::<PyString>() {
                found.extend(names.index_of(&str_bytes(s)?));
            }
        }
        Ok(found)
    })();

    let parts = Parts {
        blueprint_id: bp_text.clone(),
        names,
        uses: Vec::new(),
        uses_texts: Interner::default(),
        actions,
        action_texts,
        spec,
    };
    let run = move || graph::compile(parts, strict, move |_| entry_points);
    let compiled = if n + m >= DETACH_FROM {
        py.detach(run)
    } else {
        run()
    };
    let mut compiled = match compiled {
        Ok(compiled) => compiled,
        Err(graph::CompileFailure::Core(err)) => return Err(err.into()),
        Err(graph::CompileFailure::EntryPoints(err)) => return Err(err),
    };
    compiled.content_hash = content_hash(py, blueprint)?;
    Ok(CompiledGraph::from_core(
        py,
        compiled,
        Some(FromMapping {
            ids: ids.unbind(),
            uses,
            other_actions,
            blueprint_id: bp_id.unbind(),
        }),
    ))
}

// ---- the content hash of a mapping ------------------------------------------------------------------

/// Something the native writer leaves to the twin.
struct Unusual;

impl From<PyErr> for Unusual {
    fn from(_: PyErr) -> Self {
        Unusual
    }
}

/// sha256 of the twin's `canonical_json(blueprint)`.
fn content_hash(py: Python<'_>, blueprint: &Bound<'_, PyAny>) -> PyResult<String> {
    let mut sink = HashSink::default();
    if write_py(blueprint, &mut sink, 0).is_ok() {
        return Ok(sink.finish());
    }
    let text = py
        .import(intern!(py, "bullflow._pure.graph"))?
        .getattr(intern!(py, "canonical_json"))?
        .call1((blueprint,))?;
    Ok(graph::sha256_hex(&str_bytes(text.cast::<PyString>()?)?))
}

/// Writes the canonical text of a Python value as the twin's `_canonical` + `json.dumps` would.
fn write_py(value: &Bound<'_, PyAny>, sink: &mut HashSink, depth: usize) -> Result<(), Unusual> {
    if depth > MAX_NATIVE_DEPTH {
        return Err(Unusual);
    }
    // Exact types first (the common case), then the twin's order of isinstance checks.
    if let Ok(s) = value.cast_exact::<PyString>() {
        graph::write_json_str(sink.buf(), &str_bytes(s)?);
        return Ok(());
    }
    if value.is_none() {
        sink.buf().extend_from_slice(b"null");
        return Ok(());
    }
    if let Ok(b) = value.cast_exact::<pyo3::types::PyBool>() {
        sink.buf()
            .extend_from_slice(if b.is_true() { b"true" } else { b"false" });
        return Ok(());
    }
    if value.is_exact_instance_of::<PyInt>() {
        let i = value.extract::<i64>()?;
        sink.buf()
            .extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
        return Ok(());
    }
    if let Ok(f) = value.cast::<PyFloat>() {
        let x = f.value();
        if !x.is_finite() {
            return Err(Unusual);
        }
        graph::write_canonical_float(sink.buf(), x);
        return Ok(());
    }
    if let Ok(dict) = value.cast_exact::<PyDict>() {
        let mut members = Vec::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            members.push((key_bytes(&k)?, v));
        }
        return write_members(members, sink, depth);
    }
    if let Ok(list) = value.cast_exact::<PyList>() {
        return write_items(list.iter(), sink, depth);
    }
    if let Ok(mapping) = value.cast::<PyMapping>() {
        let mut members = Vec::new();
        for pair in mapping.items()?.iter() {
            let (k, v) = pair.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>()?;
            members.push((key_bytes(&k)?, v));
        }
        return write_members(members, sink, depth);
    }
    if let Ok(list) = value.cast::<PyList>() {
        return write_items(list.iter(), sink, depth);
    }
    if let Ok(tuple) = value.cast::<PyTuple>() {
        return write_items(tuple.iter(), sink, depth);
    }
    if let Ok(s) = value.cast::<PyString>() {
        graph::write_json_str(sink.buf(), &str_bytes(s)?);
        return Ok(());
    }
    if value.is_instance_of::<PyInt>() {
        // An int subclass: json.dumps writes int.__repr__ of it.
        let i = value.extract::<i64>()?;
        sink.buf()
            .extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
        return Ok(());
    }
    Err(Unusual)
}

/// `str(k)` of a key, in the encoding of [`Text`].
fn key_bytes(key: &Bound<'_, PyAny>) -> Result<Vec<u8>, Unusual> {
    let s = match key.cast_exact::<PyString>() {
        Ok(s) => s.clone(),
        Err(_) => key.str()?,
    };
    Ok(str_bytes(&s)?.into_owned())
}

fn write_members(
    members: Vec<(Vec<u8>, Bound<'_, PyAny>)>,
    sink: &mut HashSink,
    depth: usize,
) -> Result<(), Unusual> {
    let keys: Vec<&[u8]> = members.iter().map(|(k, _)| k.as_slice()).collect();
    let order = graph::canonical_member_order(&keys);
    sink.buf().push(b'{');
    for (k, idx) in order.into_iter().enumerate() {
        if k > 0 {
            sink.buf().push(b',');
        }
        let (key, value) = &members[idx];
        graph::write_json_str(sink.buf(), key);
        sink.buf().push(b':');
        write_py(value, sink, depth + 1)?;
    }
    sink.buf().push(b'}');
    Ok(())
}

fn write_items<'py>(
    values: impl Iterator<Item = Bound<'py, PyAny>>,
    sink: &mut HashSink,
    depth: usize,
) -> Result<(), Unusual> {
    sink.buf().push(b'[');
    for (k, value) in values.enumerate() {
        if k > 0 {
            sink.buf().push(b',');
        }
        write_py(&value, sink, depth + 1)?;
    }
    sink.buf().push(b']');
    Ok(())
}

// ---- CompiledGraph ---------------------------------------------------------------------------------

/// A compiled blueprint, by index. Node ``i`` is ``blueprint["nodes"][i]``; edge ``e`` is
/// ``blueprint["edges"][e]``.
#[pyclass(module = "bullflow._core", frozen)]
pub struct CompiledGraph {
    core: Arc<Compiled>,
    /// The node ids as strs (the blueprint's own objects when it was a mapping).
    ids: PyOnceLock<Py<PyList>>,
    /// The `uses` values as given (mapping path), else taken from the core's texts.
    uses: Option<Vec<Py<PyAny>>>,
    /// Actions that are neither a str nor None, by edge.
    other_actions: HashMap<u32, Py<PyAny>>,
    blueprint_id: Py<PyString>,
}

impl CompiledGraph {
    fn from_core(py: Python<'_>, compiled: Compiled, mapping: Option<FromMapping>) -> Self {
        let ids = PyOnceLock::new();
        match mapping {
            Some(m) => {
                let _ = ids.set(py, m.ids);
                CompiledGraph {
                    core: Arc::new(compiled),
                    ids,
                    uses: Some(m.uses),
                    other_actions: m.other_actions,
                    blueprint_id: m.blueprint_id,
                }
            }
            None => {
                let blueprint_id = bytes_obj(py, compiled.blueprint_id.as_bytes())
                    .unwrap_or_else(|_| PyString::new(py, ""))
                    .unbind();
                CompiledGraph {
                    core: Arc::new(compiled),
                    ids,
                    uses: None,
                    other_actions: HashMap::new(),
                    blueprint_id,
                }
            }
        }
    }

    fn ids<'py>(&self, py: Python<'py>) -> PyResult<&Bound<'py, PyList>> {
        let ids = self.ids.get_or_try_init(py, || -> PyResult<Py<PyList>> {
            let names = &self.core.names;
            let strs = (0..names.len())
                .map(|i| bytes_obj(py, names.get(i)))
                .collect::<PyResult<Vec<_>>>()?;
            Ok(PyList::new(py, strs)?.unbind())
        })?;
        Ok(ids.bind(py))
    }

    fn node(&self, i: &Bound<'_, PyAny>) -> PyResult<usize> {
        index_arg(i, self.core.graph.node_count, "node")
    }

    fn action<'py>(&self, py: Python<'py>, e: usize) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.core.actions[e] {
            Action::None => py.None().into_bound(py),
            Action::Text(t) => bytes_obj(
                py,
                self.core.action_texts.get(t).map_or(&[], Text::as_bytes),
            )?
            .into_any(),
            Action::Other => match self.other_actions.get(&(e as u32)) {
                Some(obj) => obj.bind(py).clone(),
                None => py.None().into_bound(py),
            },
        })
    }

    /// Whether `lua_encoding` must go through Python's json (actions that are not plain
    /// strings, or texts Python's `str.encode()` refuses).
    fn lua_needs_python(&self) -> bool {
        !self.other_actions.is_empty()
            || self.core.blueprint_id.as_str().is_none()
            || self
                .core
                .action_texts
                .texts()
                .iter()
                .any(|t| t.as_str().is_none())
    }

    /// The twin's `lua_encoding`, built with Python's json (the rare case above).
    fn lua_encoding_python<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let dumps = py
            .import(intern!(py, "json"))?
            .getattr(intern!(py, "dumps"))?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("separators", (",", ":"))?;
        kwargs.set_item("ensure_ascii", false)?;
        let compact = |value: Bound<'py, PyAny>| -> PyResult<Bound<'py, PyAny>> {
            dumps
                .call((value,), Some(&kwargs))?
                .call_method0(intern!(py, "encode"))
        };
        let g = &self.core.graph;
        let out = PyList::empty(py);
        out.append(PyBytes::new(py, b"meta"))?;
        let meta = PyDict::new(py);
        meta.set_item("id", self.blueprint_id.bind(py))?;
        meta.set_item("hash", &self.core.content_hash)?;
        meta.set_item("nodes", g.node_count)?;
        meta.set_item("edges", g.edge_count)?;
        meta.set_item("start", g.start())?;
        out.append(compact(meta.into_any())?)?;
        let signed = |x: Option<u32>| x.map_or(-1, i64::from);
        for i in 0..g.node_count {
            let edges = PyList::empty(py);
            for &e in g.out_edges(i)? {
                let (s, t, conditional) = g.edge(e as usize)?;
                edges.append((e, s, t, self.action(py, e as usize)?, u8::from(conditional)))?;
            }
            let record = (
                u8::from(g.join_any(i)?),
                u8::from(g.is_loop_controller(i)?),
                signed(g.fallback(i)?),
                signed(g.loop_start(i)?),
                g.preds(i)?,
                g.back_preds(i)?,
                edges,
                g.loop_body(i)?,
            );
            out.append(PyBytes::new(py, i.to_string().as_bytes()))?;
            out.append(compact(record.into_pyobject(py)?.into_any())?)?;
        }
        Ok(out)
    }
}

#[pymethods]
impl CompiledGraph {
    #[new]
    #[pyo3(signature = (blueprint, strict = None), text_signature = "(blueprint, strict=False)")]
    fn new(
        py: Python<'_>,
        blueprint: &Bound<'_, PyAny>,
        strict: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        compile_graph(py, blueprint, strict)
    }

    #[getter]
    fn blueprint_id(&self, py: Python<'_>) -> Py<PyString> {
        self.blueprint_id.clone_ref(py)
    }

    #[getter]
    fn node_ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let ids = self.ids(py)?;
        PyList::new(py, ids.iter())
    }

    #[getter]
    fn node_count(&self) -> usize {
        self.core.graph.node_count
    }

    #[getter]
    fn edge_count(&self) -> usize {
        self.core.graph.edge_count
    }

    #[getter]
    fn start<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.core.graph.start())
    }

    #[getter]
    fn content_hash(&self) -> &str {
        &self.core.content_hash
    }

    fn index_of(&self, node_id: &Bound<'_, PyAny>) -> PyResult<Option<u32>> {
        match node_id.cast::<PyString>() {
            Ok(s) => Ok(self.core.names.index_of(&str_bytes(s)?)),
            Err(_) => {
                node_id.hash()?;
                Ok(None)
            }
        }
    }

    fn uses<'py>(&self, py: Python<'py>, i: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let i = self.node(i)?;
        match &self.uses {
            Some(uses) => Ok(uses[i].bind(py).clone()),
            None => {
                let t = self.core.uses.get(i).copied().unwrap_or(NONE);
                let text = self.core.uses_texts.get(t).map_or(&[][..], Text::as_bytes);
                Ok(bytes_obj(py, text)?.into_any())
            }
        }
    }

    fn join_any(&self, i: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.core.graph.join_any(self.node(i)?)?)
    }

    fn is_loop_controller(&self, i: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.core.graph.is_loop_controller(self.node(i)?)?)
    }

    fn preds<'py>(&self, py: Python<'py>, i: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.core.graph.preds(self.node(i)?)?)
    }

    fn back_preds<'py>(
        &self,
        py: Python<'py>,
        i: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.core.graph.back_preds(self.node(i)?)?)
    }

    /// Edge indices leaving node ``i``: its own, then those it inherits as a fallback.
    fn out_edges<'py>(
        &self,
        py: Python<'py>,
        i: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.core.graph.out_edges(self.node(i)?)?)
    }

    /// (source node, target node, action, has a condition) of edge ``e``.
    fn edge<'py>(&self, py: Python<'py>, e: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
        let e = index_arg(e, self.core.graph.edge_count, "edge")?;
        let (s, t, conditional) = self.core.graph.edge(e)?;
        (s, t, self.action(py, e)?, conditional).into_pyobject(py)
    }

    fn fallback(&self, i: &Bound<'_, PyAny>) -> PyResult<Option<u32>> {
        Ok(self.core.graph.fallback(self.node(i)?)?)
    }

    fn loop_body<'py>(
        &self,
        py: Python<'py>,
        i: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.core.graph.loop_body(self.node(i)?)?)
    }

    fn loop_start(&self, i: &Bound<'_, PyAny>) -> PyResult<Option<u32>> {
        Ok(self.core.graph.loop_start(self.node(i)?)?)
    }

    /// Node ``i``'s own and inherited edges grouped by action ("" = unlabelled/default).
    fn successors_by_action<'py>(
        &self,
        py: Python<'py>,
        i: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let i = self.node(i)?;
        let groups = PyDict::new(py);
        match self.core.successors_by_action(i)? {
            Some(found) => {
                for (key, edges) in found {
                    groups.set_item(bytes_obj(py, key)?, edges)?;
                }
            }
            None => {
                // An action that is not a str: group as Python does (`action or ""`).
                for &e in self.core.graph.out_edges(i)? {
                    let action = self.action(py, e as usize)?;
                    let key = if action.is_truthy()? {
                        action
                    } else {
                        PyString::new(py, "").into_any()
                    };
                    match groups.get_item(&key)? {
                        Some(list) => list.cast::<PyList>()?.append(e)?,
                        None => groups.set_item(key, PyList::new(py, [e])?)?,
                    }
                }
            }
        }
        Ok(groups)
    }

    /// Flowcraft's analysis plus strongly connected components, a topological order,
    /// unreachable nodes, distinct predecessor counts and loop bodies (all by node id).
    fn analysis<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let core = &self.core;
        let g = &core.graph;
        let extras = if g.node_count + g.edge_count >= DETACH_FROM {
            let shared = Arc::clone(core);
            py.detach(move || {
                shared.graph.extras();
            });
            g.extras()
        } else {
            g.extras()
        };
        let ids: Vec<Bound<'py, PyAny>> = self.ids(py)?.iter().collect();
        let id_list = |positions: &mut dyn ExactSizeIterator<Item = usize>| {
            PyList::new(py, positions.map(|i| &ids[i]))
        };
        let a = g.analysis();
        let out = PyDict::new(py);
        out.set_item(
            intern!(py, "start_node_ids"),
            id_list(&mut a.start.iter().copied())?,
        )?;
        out.set_item(
            intern!(py, "terminal_node_ids"),
            id_list(&mut a.terminal.iter().copied())?,
        )?;
        let cycles = a
            .cycles
            .iter()
            .map(|cycle| id_list(&mut cycle.iter().copied()))
            .collect::<PyResult<Vec<_>>>()?;
        out.set_item(intern!(py, "cycles"), PyList::new(py, cycles)?)?;
        out.set_item(intern!(py, "node_count"), a.node_count)?;
        out.set_item(intern!(py, "edge_count"), a.edge_count)?;
        out.set_item(intern!(py, "is_dag"), a.is_dag())?;
        let components = extras
            .cyclic_components
            .iter()
            .map(|c| id_list(&mut c.iter().map(|&i| i as usize)))
            .collect::<PyResult<Vec<_>>>()?;
        out.set_item(
            intern!(py, "strongly_connected_components"),
            PyList::new(py, components)?,
        )?;
        out.set_item(
            intern!(py, "topological_order"),
            id_list(&mut extras.topological_order.iter().map(|&i| i as usize))?,
        )?;
        out.set_item(
            intern!(py, "unreachable_node_ids"),
            id_list(&mut extras.unreachable.iter().map(|&i| i as usize))?,
        )?;
        let counts = PyDict::new(py);
        for (i, id) in ids.iter().enumerate() {
            counts.set_item(id, g.predecessor_count(i))?;
        }
        out.set_item(intern!(py, "predecessor_counts"), counts)?;
        let loops = PyDict::new(py);
        for i in g.loop_controllers() {
            loops.set_item(
                &ids[i],
                id_list(&mut g.loop_body(i)?.iter().map(|&b| b as usize))?,
            )?;
        }
        out.set_item(intern!(py, "loops"), loops)?;
        Ok(out)
    }

    /// HSET arguments of the compiled graph as the Lua coordination scripts read it: field
    /// ``meta`` (counts, start nodes, content hash) and one field per node index holding
    /// ``[joinAny, loopController, fallback|-1, loopStart|-1, [preds], [backPreds],
    /// [[edge, source, target, action|null, conditional], ...], [loopBody]]``.
    fn lua_encoding<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        if self.lua_needs_python() {
            return self.lua_encoding_python(py);
        }
        let fields = self
            .core
            .lua_encoding(|_, _| Err::<(), ()>(()))
            .map_err(|()| CoreError::InvalidValue("unexpected action".into()))?;
        PyList::new(py, fields.iter().map(|f| PyBytes::new(py, f)))
    }
}

// ---- RunState ----------------------------------------------------------------------------------------

/// The scheduling state of one run over a :class:`CompiledGraph` (plus nodes added while it
/// runs, e.g. batch workers). Node and edge ids are the graph's indices; added nodes and their
/// edges get the next indices.
#[pyclass(module = "bullflow._core")]
pub struct RunState {
    state: graph::RunState<Arc<Compiled>>,
    graph: Py<CompiledGraph>,
    max_waves: Py<PyAny>,
    taken: Vec<u32>,
}

/// `max_waves` as the comparison `wave > max_waves` needs it, for an int or a float.
fn wave_limit(max_waves: &Bound<'_, PyAny>) -> PyResult<i64> {
    if let Ok(f) = max_waves.cast::<PyFloat>() {
        let x = f.value();
        // wave > x  <=>  wave > floor(x), for an int wave; never true for NaN.
        return Ok(if x.is_nan() || x >= 9.2e18 {
            i64::MAX
        } else if x < -9.2e18 {
            i64::MIN
        } else {
            x.floor() as i64
        });
    }
    if max_waves.is_instance_of::<PyInt>() {
        return match max_waves.extract::<i64>() {
            Ok(i) => Ok(i),
            Err(_) => Ok(if max_waves.lt(0)? { i64::MIN } else { i64::MAX }),
        };
    }
    Err(PyTypeError::new_err(format!(
        "max_waves must be an int or a float, not {}",
        type_name(max_waves)
    )))
}

/// `int(value)`, as an i64 or the Python int when it is larger.
fn py_int<'py>(value: &Bound<'py, PyAny>) -> PyResult<Result<i64, Bound<'py, PyAny>>> {
    if value.is_exact_instance_of::<PyInt>()
        && let Ok(i) = value.extract::<i64>()
    {
        return Ok(Ok(i));
    }
    let py = value.py();
    let int = py.get_type::<PyInt>().call1((value,))?;
    Ok(int.extract::<i64>().map_err(|_| int))
}

/// Reads a snapshot with the twin's operations, in its order, checking as it goes.
struct SnapshotReader {
    count: usize,
}

impl SnapshotReader {
    fn node(&self, value: &Bound<'_, PyAny>) -> PyResult<u32> {
        match py_int(value)? {
            Ok(i) if i >= 0 && (i as u64) < self.count as u64 => Ok(i as u32),
            Ok(i) => Err(snapshot_error(format!("node index {i} out of range"))),
            Err(big) => Err(snapshot_error(format!(
                "node index {} out of range",
                big.str()?
            ))),
        }
    }

    fn nodes(&self, values: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
        items(values)?.iter().map(|v| self.node(v)).collect()
    }

    /// `{node(t): {node(p) for p in ps} for t, ps in (snapshot.get(key) or {}).items()}`.
    fn sets(&self, snapshot: &Bound<'_, PyAny>, key: &str) -> PyResult<Vec<(u32, Vec<u32>)>> {
        let py = snapshot.py();
        let mapping = get_or(snapshot, &PyString::new(py, key), || {
            PyDict::new(py).into_any()
        })?;
        let mut out = Vec::new();
        for pair in mapping.call_method0(intern!(py, "items"))?.try_iter()? {
            let (t, ps) = pair?.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>()?;
            let t = self.node(&t)?;
            out.push((t, self.nodes(&ps)?));
        }
        Ok(out)
    }
}

fn negative_workers(workers: &dyn std::fmt::Display) -> PyErr {
    CoreError::InvalidValue(format!("workers must not be negative, got {workers}")).into()
}

fn snapshot_error(message: String) -> PyErr {
    CoreError::InvalidValue(format!("snapshot: {message}")).into()
}

impl RunState {
    fn node(&self, i: &Bound<'_, PyAny>) -> PyResult<usize> {
        index_arg(i, self.state.node_count(), "node")
    }

    /// `taken` as edge indices into `self.taken` (`None` stays `None`).
    fn read_taken(&mut self, taken: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        let Some(taken) = taken else {
            return Ok(false);
        };
        self.taken.clear();
        let count = self.state.edge_count();
        if let Ok(list) = taken.cast_exact::<PyList>() {
            for e in list.iter() {
                self.taken.push(index_arg(&e, count, "edge")? as u32);
            }
        } else {
            for e in taken.try_iter()? {
                self.taken.push(index_arg(&e?, count, "edge")? as u32);
            }
        }
        Ok(true)
    }

    fn complete_index<'py>(
        &mut self,
        py: Python<'py>,
        i: usize,
        taken: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let result = if self.read_taken(taken)? {
            let taken = std::mem::take(&mut self.taken);
            let result = self.state.complete(i, Some(&taken));
            self.taken = taken;
            result
        } else {
            self.state.complete(i, None)
        };
        result?;
        self.answer(py)
    }

    fn answer<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let ready = PyList::new(py, self.state.ready())?;
        let skipped = PyList::new(py, self.state.skipped())?;
        PyTuple::new(py, [ready, skipped])
    }
}

#[pymethods]
impl RunState {
    #[new]
    #[pyo3(signature = (graph, max_waves = None), text_signature = "(graph, max_waves=10000)")]
    fn new(
        graph: &Bound<'_, CompiledGraph>,
        max_waves: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let py = graph.py();
        let max_waves = match max_waves {
            Some(m) => m.clone(),
            None => 10_000i64.into_pyobject(py)?.into_any(),
        };
        let limit = wave_limit(&max_waves)?;
        Ok(RunState {
            state: graph::RunState::new(Arc::clone(&graph.get().core), limit),
            graph: graph.clone().unbind(),
            max_waves: max_waves.unbind(),
            taken: Vec::new(),
        })
    }

    #[getter]
    fn graph(&self, py: Python<'_>) -> Py<CompiledGraph> {
        self.graph.clone_ref(py)
    }

    #[getter]
    fn max_waves(&self, py: Python<'_>) -> Py<PyAny> {
        self.max_waves.clone_ref(py)
    }

    fn start<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.state.start()?;
        PyList::new(py, self.state.ready())
    }

    fn mark_running(&mut self, i: &Bound<'_, PyAny>) -> PyResult<()> {
        let i = self.node(i)?;
        Ok(self.state.mark_running(i)?)
    }

    /// Node ``i`` completed and took the edges ``taken`` (None: all of its outgoing edges).
    /// Returns (nodes that became ready, nodes that became skipped).
    #[pyo3(signature = (i, taken))]
    fn complete<'py>(
        &mut self,
        py: Python<'py>,
        i: &Bound<'py, PyAny>,
        taken: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let i = self.node(i)?;
        self.complete_index(py, i, taken)
    }

    /// Node ``i`` failed and its fallback node takes over (and then its edges).
    fn complete_with_fallback<'py>(
        &mut self,
        py: Python<'py>,
        i: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let i = self.node(i)?;
        self.state.complete_with_fallback(i)?;
        self.answer(py)
    }

    fn fail(&mut self, i: &Bound<'_, PyAny>) -> PyResult<()> {
        let i = self.node(i)?;
        Ok(self.state.fail(i)?)
    }

    /// Node ``i`` is paused (awaiting a resume).
    fn suspend(&mut self, i: &Bound<'_, PyAny>) -> PyResult<()> {
        let i = self.node(i)?;
        Ok(self.state.suspend(i)?)
    }

    /// Node ``i`` did not run after all (the run was cancelled).
    fn reset_pending(&mut self, i: &Bound<'_, PyAny>) -> PyResult<()> {
        let i = self.node(i)?;
        Ok(self.state.reset_pending(i)?)
    }

    #[pyo3(signature = (i, taken))]
    fn resume<'py>(
        &mut self,
        py: Python<'py>,
        i: &Bound<'py, PyAny>,
        taken: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let i = self.node(i)?;
        if self.state.node_status(i)? != graph::AWAITING {
            // Raises ResumeError, naming the node.
            self.state.resume(i, None)?;
        }
        self.complete_index(py, i, taken)
    }

    /// The node whose edges fallback node ``i`` is currently carrying, if any.
    fn fallback_origin(&self, i: &Bound<'_, PyAny>) -> PyResult<Option<u32>> {
        let i = self.node(i)?;
        Ok(self.state.fallback_origin(i)?)
    }

    /// Add ``workers`` nodes (predecessor ``pred``; successor ``gather`` and the continuation)
    /// and, with ``continuation``, one node that waits for all of them (successor ``gather``).
    /// They become predecessors of ``gather``. Returns the new indices, workers first.
    fn add_dynamic_nodes<'py>(
        &mut self,
        py: Python<'py>,
        pred: &Bound<'py, PyAny>,
        gather: Option<&Bound<'py, PyAny>>,
        workers: &Bound<'py, PyAny>,
        continuation: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let pred = self.node(pred)?;
        let gather = gather.map(|g| self.node(g)).transpose()?;
        let workers = match workers.extract::<i64>() {
            Ok(w) if w >= 0 => usize::try_from(w).unwrap_or(usize::MAX),
            Ok(w) => return Err(negative_workers(&w)),
            Err(err) if err.is_instance_of::<PyOverflowError>(py) => {
                let w = py
                    .import(intern!(py, "operator"))?
                    .getattr(intern!(py, "index"))?
                    .call1((workers,))?;
                if w.lt(0)? {
                    return Err(negative_workers(&w.str()?));
                }
                usize::MAX
            }
            Err(err) => return Err(err),
        };
        let continuation = continuation.is_truthy()?;
        let new = self
            .state
            .add_dynamic_nodes(pred, gather, workers, continuation)?;
        PyList::new(py, new)
    }

    /// ``pred`` arrives at ``nodes`` (used for freshly added dynamic nodes). Returns the nodes
    /// that became ready.
    fn arrive<'py>(
        &mut self,
        py: Python<'py>,
        nodes: &Bound<'py, PyAny>,
        pred: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let count = self.state.node_count();
        let targets = items(nodes)?
            .iter()
            .map(|t| index_arg(t, count, "node").map(|t| t as u32))
            .collect::<PyResult<Vec<u32>>>()?;
        let pred = self.node(pred)?;
        self.state.arrive(&targets, pred)?;
        PyList::new(py, self.state.ready())
    }

    fn out_edges<'py>(
        &self,
        py: Python<'py>,
        i: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let i = self.node(i)?;
        PyList::new(py, self.state.out_edges(i)?)
    }

    fn edge_target(&self, e: &Bound<'_, PyAny>) -> PyResult<u32> {
        let e = index_arg(e, self.state.edge_count(), "edge")?;
        Ok(self.state.edge_target(e)?)
    }

    #[getter]
    fn node_count(&self) -> usize {
        self.state.node_count()
    }

    fn node_status(&self, i: &Bound<'_, PyAny>) -> PyResult<u8> {
        let i = self.node(i)?;
        Ok(self.state.node_status(i)?)
    }

    fn statuses<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.state.statuses())
    }

    fn nodes_with_status<'py>(
        &self,
        py: Python<'py>,
        status: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        // Which of the seven statuses equal `status`, as Python's == decides.
        let mut matches = [false; 7];
        for (s, slot) in matches.iter_mut().enumerate() {
            *slot = (s as i64)
                .into_pyobject(py)?
                .rich_compare(status, pyo3::basic::CompareOp::Eq)?
                .is_truthy()?;
        }
        let found: Vec<u32> = (0..self.state.node_count() as u32)
            .filter(|&i| matches[usize::from(self.state.statuses()[i as usize])])
            .collect();
        PyList::new(py, found)
    }

    /// JSON-friendly state, by index, with the graph's content hash.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let snap = self.state.snapshot();
        let sets = |items: &[(u32, Vec<u32>)]| -> PyResult<Bound<'py, PyDict>> {
            let dict = PyDict::new(py);
            for (t, ps) in items {
                dict.set_item(t.to_string(), ps)?;
            }
            Ok(dict)
        };
        let out = PyDict::new(py);
        out.set_item("graph", &snap.graph)?;
        out.set_item("status", PyList::new(py, &snap.status)?)?;
        out.set_item("wave", &snap.wave)?;
        out.set_item("arrived", sets(&snap.arrived)?)?;
        out.set_item("resolved", sets(&snap.resolved)?)?;
        let fallback_for = PyDict::new(py);
        for (f, o) in &snap.fallback_for {
            fallback_for.set_item(f.to_string(), o)?;
        }
        out.set_item("fallbackFor", fallback_for)?;
        let dynamic = PyList::empty(py);
        for (preds, targets) in &snap.dynamic {
            let entry = PyDict::new(py);
            entry.set_item("preds", preds)?;
            entry.set_item("targets", targets)?;
            dynamic.append(entry)?;
        }
        out.set_item("dynamic", dynamic)?;
        out.set_item("extraPreds", sets(&snap.extra_preds)?)?;
        Ok(out)
    }

    /// Continue from a :meth:`snapshot` of a run of the same graph. A snapshot with an index
    /// or a status out of range raises ``ValueError`` and leaves the state as it was.
    fn restore(&mut self, snapshot: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = snapshot.py();
        let hash = get(snapshot, intern!(py, "graph"))?;
        let content_hash = self.state.compiled().content_hash.clone();
        if hash.ne(&content_hash)? {
            return Err(CoreError::Resume(Text::from(
                "Cannot resume: the run was paused with a different version of this blueprint.",
            ))
            .into());
        }
        let entries = items(&get_or(snapshot, intern!(py, "dynamic"), || {
            PyList::empty(py).into_any()
        })?)?;
        let reader = SnapshotReader {
            count: self.state.node_count() + entries.len(),
        };
        let mut dynamic = Vec::with_capacity(entries.len());
        for entry in &entries {
            let get_list = |key: &str| -> PyResult<Bound<'_, PyAny>> {
                if let Ok(dict) = entry.cast_exact::<PyDict>() {
                    return Ok(dict
                        .get_item(key)?
                        .unwrap_or_else(|| PyTuple::empty(py).into_any()));
                }
                entry.call_method1(intern!(py, "get"), (key, PyTuple::empty(py)))
            };
            let preds = reader.nodes(&get_list("preds")?)?;
            let targets = reader.nodes(&get_list("targets")?)?;
            dynamic.push((preds, targets));
        }
        let mut status = Vec::new();
        for s in items(&get_or(snapshot, intern!(py, "status"), || {
            PyList::empty(py).into_any()
        })?)? {
            match py_int(&s)? {
                Ok(s) if (0..=i64::from(graph::AWAITING)).contains(&s) => status.push(s as u8),
                Ok(s) => return Err(snapshot_error(format!("status {s} is not a node status"))),
                Err(big) => {
                    return Err(snapshot_error(format!(
                        "status {} is not a node status",
                        big.str()?
                    )));
                }
            }
        }
        if status.len() > reader.count {
            return Err(snapshot_error(format!(
                "{} statuses for {} nodes",
                status.len(),
                reader.count
            )));
        }
        let mut wave = Vec::new();
        for w in items(&get_or(snapshot, intern!(py, "wave"), || {
            PyList::empty(py).into_any()
        })?)? {
            match py_int(&w)? {
                Ok(w) if (0..MAX_WAVE).contains(&w) => wave.push(w),
                Ok(w) => return Err(snapshot_error(format!("wave {w} out of range"))),
                Err(big) => {
                    return Err(snapshot_error(format!("wave {} out of range", big.str()?)));
                }
            }
        }
        if wave.len() > reader.count {
            return Err(snapshot_error(format!(
                "{} waves for {} nodes",
                wave.len(),
                reader.count
            )));
        }
        let arrived = reader.sets(snapshot, "arrived")?;
        let resolved = reader.sets(snapshot, "resolved")?;
        let mut fallback_for = Vec::new();
        let mapping = get_or(snapshot, intern!(py, "fallbackFor"), || {
            PyDict::new(py).into_any()
        })?;
        for pair in mapping.call_method0(intern!(py, "items"))?.try_iter()? {
            let (f, o) = pair?.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>()?;
            let f = reader.node(&f)?;
            fallback_for.push((f, reader.node(&o)?));
        }
        let extra_preds = reader.sets(snapshot, "extraPreds")?;
        let snapshot = Snapshot {
            graph: content_hash,
            status,
            wave,
            arrived,
            resolved,
            fallback_for,
            dynamic,
            extra_preds,
        };
        Ok(self.state.restore(&snapshot)?)
    }
}
