//! The graph compiler and the scheduling rule: a port of `python/bullflow/_pure/graph.py`, which is
//! the specification. Every result, order and error message must be the twin's.
//!
//! Pure Rust: no Python here (the bindings live in `crate::py::graph`).
//!
//! * [`compile`] turns a [`Parts`] (the blueprint already resolved to node indices) into a
//!   [`Compiled`] graph: joins, distinct forward and back-edge predecessors, outgoing edges (a
//!   fallback node also carries the edges of the nodes it stands in for), loop bodies, start
//!   nodes and the analysis (`crate::analysis`, reused for start nodes and cycles).
//! * [`compile_json`] does the same from JSON text, in one pass over it with no Python objects
//!   and no tree of values, and computes the content hash. It handles the blueprints that
//!   `parse_blueprint` produces and everything else that is unambiguous; for the rest (malformed
//!   JSON, integers Python reads exactly but serde_json as floats, structural errors whose
//!   messages quote Python `repr`s, unusual value types) it answers [`FromJson::NeedsPython`],
//!   and the bindings compile the result of `json.loads`, as the twin does.
//! * The content hash is the sha256 of the canonical JSON text of the blueprint, written like the
//!   twin's `json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)`
//!   ([`write_json_str`], [`write_canonical_float`], [`canonical_member_order`]).
//! * [`RunState`]: one run's arrival bookkeeping; `complete(node, taken)` answers the nodes that
//!   became ready and those that became skipped. Nothing here panics on bad input: indices are
//!   checked and answered with the twin's `IndexError` / `ValueError` messages.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use hashbrown::{DefaultHashBuilder, HashMap, HashSet, HashTable};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use sha2::{Digest, Sha256};

use crate::analysis::{Analysis, analyze_with_hasher};
use crate::blueprint::Text;
use crate::errors::{CoreError, CoreResult};
use crate::float_repr::write_float_repr;

/// Node statuses, as the twin numbers them.
pub const PENDING: u8 = 0;
pub const READY: u8 = 1;
pub const RUNNING: u8 = 2;
pub const COMPLETED: u8 = 3;
pub const SKIPPED: u8 = 4;
pub const FAILED: u8 = 5;
pub const AWAITING: u8 = 6;
pub const STATUS_NAMES: [&str; 7] = [
    "pending",
    "ready",
    "running",
    "completed",
    "skipped",
    "failed",
    "awaiting",
];

/// The `uses` of a loop controller.
pub const LOOP_CONTROLLER: &str = "loop-controller";
/// "No node" in the `u32` arrays (no fallback, no loop start...).
pub const NONE: u32 = u32::MAX;
/// The most nodes (and edges) a graph may have, so that every index fits a `u32` with room.
pub const MAX_ITEMS: usize = 1 << 30;
/// The largest wave a snapshot may hold (waves grow by one per node made ready).
pub const MAX_WAVE: i64 = 1 << 62;

const INFINITE_LOOP: &str = "Traversal exceeded maximum iterations, possible infinite loop";

fn index_error(what: &str, i: impl fmt::Display) -> CoreError {
    CoreError::IndexOutOfRange(format!("{what} index {i} out of range"))
}

// ---- compressed rows ----------------------------------------------------------------------------

/// Rows of items, stored flat: row `i` is `items[offsets[i]..offsets[i + 1]]`.
#[derive(Debug, Clone)]
pub struct Csr<T> {
    offsets: Vec<u32>,
    items: Vec<T>,
}

impl<T: Copy + Default> Csr<T> {
    fn with_capacity(rows: usize, items: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Csr {
            offsets,
            items: Vec::with_capacity(items),
        }
    }

    fn push(&mut self, item: T) {
        self.items.push(item);
    }

    fn end_row(&mut self) {
        self.offsets.push(self.items.len() as u32);
    }

    /// Row `i` (empty when `i` is out of range).
    #[inline]
    pub fn row(&self, i: usize) -> &[T] {
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.items[a as usize..b as usize],
            _ => &[],
        }
    }

    /// Rows grouping `(row, item)` pairs, keeping their order within a row (a stable counting
    /// sort).
    fn from_pairs(rows: usize, pairs: impl Iterator<Item = (u32, T)> + Clone) -> Self {
        let mut counts = vec![0u32; rows + 1];
        let mut total = 0usize;
        for (r, _) in pairs.clone() {
            counts[r as usize + 1] += 1;
            total += 1;
        }
        for r in 0..rows {
            counts[r + 1] += counts[r];
        }
        let mut fill: Vec<u32> = counts[..rows].to_vec();
        let mut items: Vec<T> = vec![T::default(); total];
        for (r, item) in pairs {
            items[fill[r as usize] as usize] = item;
            fill[r as usize] += 1;
        }
        Csr {
            offsets: counts,
            items,
        }
    }
}

impl Csr<u32> {
    /// Removes adjacent duplicates within each row.
    fn dedup_rows(&mut self) {
        let rows = self.offsets.len() - 1;
        let mut write = 0usize;
        let mut start = 0usize;
        for r in 0..rows {
            let end = self.offsets[r + 1] as usize;
            let row_start = write;
            for k in start..end {
                let item = self.items[k];
                if write == row_start || self.items[write - 1] != item {
                    self.items[write] = item;
                    write += 1;
                }
            }
            start = end;
            self.offsets[r + 1] = write as u32;
        }
        self.items.truncate(write);
    }
}

// ---- node names ---------------------------------------------------------------------------------

/// The node ids of a graph, in order, each in the encoding of [`Text`] (UTF-8, lone surrogates
/// allowed), with an index from id to position. Ids are unique.
pub struct Names {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl Names {
    pub fn with_capacity(count: usize, bytes: usize) -> Self {
        Names {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(count),
            table: HashTable::with_capacity(count),
            hasher: DefaultHashBuilder::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The id of node `i` (empty past the end).
    pub fn get(&self, i: usize) -> &[u8] {
        name_at(&self.bytes, &self.ends, i)
    }

    /// Adds `name` as the next node: its index, or `Err(index)` of the node that already has it.
    pub fn insert(&mut self, name: &[u8]) -> Result<u32, u32> {
        let hash = self.hasher.hash_one(name);
        let (bytes, ends) = (&self.bytes, &self.ends);
        if let Some(&existing) = self
            .table
            .find(hash, |&j| name_at(bytes, ends, j as usize) == name)
        {
            return Err(existing);
        }
        let index = self.ends.len() as u32;
        self.bytes.extend_from_slice(name);
        self.ends.push(self.bytes.len());
        let (bytes, ends, hasher) = (&self.bytes, &self.ends, &self.hasher);
        self.table.insert_unique(hash, index, |&j| {
            hasher.hash_one(name_at(bytes, ends, j as usize))
        });
        Ok(index)
    }

    /// The index of the node with id `name`.
    pub fn index_of(&self, name: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        self.table
            .find(hash, |&j| self.get(j as usize) == name)
            .copied()
    }
}

fn name_at<'a>(bytes: &'a [u8], ends: &[usize], i: usize) -> &'a [u8] {
    let Some(&end) = ends.get(i) else {
        return &[];
    };
    let start = if i == 0 { 0 } else { ends[i - 1] };
    &bytes[start..end]
}

/// Distinct texts (the `uses` of nodes, the actions of edges), each stored once.
#[derive(Default)]
pub struct Interner {
    texts: Vec<Text>,
    index: HashMap<Vec<u8>, u32>,
}

impl Interner {
    pub fn intern(&mut self, text: &[u8]) -> u32 {
        if let Some(&i) = self.index.get(text) {
            return i;
        }
        let i = self.texts.len() as u32;
        self.texts.push(Text::from_bytes(text));
        self.index.insert(text.to_vec(), i);
        i
    }

    pub fn texts(&self) -> &[Text] {
        &self.texts
    }

    pub fn get(&self, i: u32) -> Option<&Text> {
        self.texts.get(i as usize)
    }
}

/// A multiplicative hash for node indices (used for the analysis, whose ids are indices here).
#[derive(Default)]
struct IndexHasher(u64);

impl Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, i: u32) {
        self.0 = (u64::from(i) ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IndexHash = BuildHasherDefault<IndexHasher>;

// ---- compiling ----------------------------------------------------------------------------------

/// What the compiler needs of a blueprint, by index: node `i` is `nodes[i]`, edge `e` is
/// `edges[e]`. The caller has resolved every edge end and fallback to a node index (reporting
/// unknown ids, duplicate ids and self-fallbacks, whose messages quote the ids).
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// `config.joinStrategy == "any"`.
    pub join_any: Vec<bool>,
    /// `uses == "loop-controller"`.
    pub loop_controller: Vec<bool>,
    /// `config.fallback` as a node index, or [`NONE`]; never the node itself.
    pub fallback: Vec<u32>,
    pub edge_source: Vec<u32>,
    pub edge_target: Vec<u32>,
    /// `action == "continue"`.
    pub edge_continue: Vec<bool>,
    /// `condition` is present and not null.
    pub edge_conditional: Vec<bool>,
}

/// An edge's action: none, a text (an index into [`Parts::actions`]'s interner), or another
/// value the caller keeps (the bindings keep the Python object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    None,
    Text(u32),
    Other,
}

/// A blueprint resolved to indices, with what the queries show of it.
pub struct Parts {
    /// `str(blueprint.get("id", ""))`.
    pub blueprint_id: Text,
    pub names: Names,
    /// Each node's `uses`, interned; empty when the caller keeps the values itself.
    pub uses: Vec<u32>,
    pub uses_texts: Interner,
    /// Each edge's action.
    pub actions: Vec<Action>,
    pub action_texts: Interner,
    pub spec: Spec,
}

/// The compiled graph: the blueprint's ids and texts plus the [`Graph`].
pub struct Compiled {
    pub blueprint_id: Text,
    pub names: Names,
    pub uses: Vec<u32>,
    pub uses_texts: Interner,
    pub actions: Vec<Action>,
    pub action_texts: Interner,
    /// sha256 of the canonical JSON text of the blueprint, in hex (set by the caller of
    /// [`compile`]; [`compile_json`] sets it).
    pub content_hash: String,
    pub graph: Graph,
}

/// The structure the scheduler runs on. Node and edge ids are indices.
pub struct Graph {
    pub node_count: usize,
    pub edge_count: usize,
    join_any: Vec<bool>,
    loop_controller: Vec<bool>,
    fallback: Vec<u32>,
    loop_start: Vec<u32>,
    edge_source: Vec<u32>,
    edge_target: Vec<u32>,
    edge_conditional: Vec<bool>,
    /// Own edges, in edge order (duplicates kept): the `succ` of the twin's `analysis()`.
    own_succ: Csr<u32>,
    /// Own edges, then the edges inherited as a fallback node.
    out_edges: Csr<u32>,
    /// Targets of the distinct own (source, target) pairs, in first-seen order.
    own_targets: Csr<u32>,
    /// The distinct inherited (source, target) pairs.
    inherited: Csr<(u32, u32)>,
    preds: Csr<u32>,
    back_preds: Csr<u32>,
    loop_body: Csr<u32>,
    start: Vec<u32>,
    analysis: Analysis,
    extras: OnceLock<Extras>,
}

/// The analysis beyond Flowcraft's, computed on first use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extras {
    /// Strongly connected components that hold a cycle, each in node order, ordered by their
    /// first node.
    pub cyclic_components: Vec<Vec<u32>>,
    pub topological_order: Vec<u32>,
    pub unreachable: Vec<u32>,
}

/// Why [`compile`] failed: a [`CoreError`], or the error of the `entry_points` callback.
#[derive(Debug)]
pub enum CompileFailure<E> {
    Core(CoreError),
    EntryPoints(E),
}

impl<E> From<CoreError> for CompileFailure<E> {
    fn from(err: CoreError) -> Self {
        CompileFailure::Core(err)
    }
}

fn blueprint_error(bp_id: &Text, problem: Text, path: String) -> CoreError {
    CoreError::InBlueprint {
        blueprint_id: bp_id.clone(),
        error: Box::new(CoreError::Blueprint {
            problem,
            path: Text::from(path),
        }),
    }
}

/// Compiles `parts`. `entry_points` is asked (only when the graph has cycles and no start node,
/// as the twin reads `metadata.cycleEntryPoints` only then) for the nodes listed as cycle entry
/// points.
pub fn compile<E>(
    parts: Parts,
    strict: bool,
    entry_points: impl FnOnce(&Names) -> Result<Vec<u32>, E>,
) -> Result<Compiled, CompileFailure<E>> {
    let Parts {
        blueprint_id,
        names,
        uses,
        uses_texts,
        actions,
        action_texts,
        spec,
    } = parts;
    let n = spec.join_any.len();
    let m = spec.edge_source.len();
    let consistent = spec.loop_controller.len() == n
        && spec.fallback.len() == n
        && names.len() == n
        && spec.edge_target.len() == m
        && spec.edge_continue.len() == m
        && spec.edge_conditional.len() == m
        && spec.edge_source.iter().all(|&s| (s as usize) < n)
        && spec.edge_target.iter().all(|&t| (t as usize) < n)
        && spec
            .fallback
            .iter()
            .enumerate()
            .all(|(i, &f)| f == NONE || ((f as usize) < n && f as usize != i));
    if !consistent {
        return Err(CoreError::InvalidValue("inconsistent graph specification".into()).into());
    }
    if n >= MAX_ITEMS || m >= MAX_ITEMS {
        return Err(CoreError::InvalidValue(format!(
            "a graph may have at most {MAX_ITEMS} nodes and edges"
        ))
        .into());
    }
    let source = &spec.edge_source;
    let target = &spec.edge_target;

    let own: Csr<u32> = Csr::from_pairs(n, (0..m as u32).map(|e| (source[e as usize], e)));
    let fallback_of: Csr<u32> = Csr::from_pairs(
        n,
        (0..n as u32)
            .filter(|&i| spec.fallback[i as usize] != NONE)
            .map(|i| (spec.fallback[i as usize], i)),
    );

    let ids: Vec<u32> = (0..n as u32).collect();
    let pairs: Vec<(u32, u32)> = source.iter().copied().zip(target.iter().copied()).collect();
    let analysis = analyze_with_hasher(&ids, &pairs, IndexHash::default());
    drop((ids, pairs));
    if strict && !analysis.is_dag() {
        return Err(CoreError::InBlueprint {
            blueprint_id: blueprint_id.clone(),
            error: Box::new(CoreError::StrictMode {
                problem: {
                    let mut text = Text::from("Workflow '");
                    text.push_text(blueprint_id.as_bytes());
                    text.push_str("' failed strictness check: Cycles are not allowed.");
                    text
                },
            }),
        }
        .into());
    }

    let mut start: Vec<u32> = analysis
        .start
        .iter()
        .map(|&s| s as u32)
        .filter(|&s| fallback_of.row(s as usize).is_empty())
        .collect();
    if start.is_empty() && !analysis.cycles.is_empty() {
        let mut entry = vec![false; n];
        for i in entry_points(&names).map_err(CompileFailure::EntryPoints)? {
            if let Some(slot) = entry.get_mut(i as usize) {
                *slot = true;
            }
        }
        let mut in_start = vec![false; n];
        for cycle in &analysis.cycles {
            let chosen = cycle
                .iter()
                .copied()
                .find(|&x| entry[x])
                .unwrap_or(cycle[0]);
            if !in_start[chosen] {
                in_start[chosen] = true;
                start.push(chosen as u32);
            }
        }
    }

    // Successors for the predecessor sets: own edge targets, then the fallback.
    let mut succ: Csr<u32> = Csr::with_capacity(n, m + n);
    for i in 0..n {
        for &e in own.row(i) {
            succ.push(target[e as usize]);
        }
        if spec.fallback[i] != NONE {
            succ.push(spec.fallback[i]);
        }
        succ.end_row();
    }
    let back = back_edges(n, &succ, &start);
    let is_back = |s: u32, t: u32| !back.is_empty() && back.contains(&pair_key(s, t));
    let mut preds = Csr::from_pairs(
        n,
        (0..n as u32).flat_map(|s| {
            succ.row(s as usize)
                .iter()
                .filter(move |&&t| !is_back(s, t))
                .map(move |&t| (t, s))
        }),
    );
    preds.dedup_rows();
    let mut back_preds = Csr::from_pairs(
        n,
        (0..n as u32).flat_map(|s| {
            succ.row(s as usize)
                .iter()
                .filter(move |&&t| is_back(s, t))
                .map(move |&t| (t, s))
        }),
    );
    back_preds.dedup_rows();
    drop(succ);

    let mut own_succ: Csr<u32> = Csr::with_capacity(n, m);
    let mut out_edges: Csr<u32> = Csr::with_capacity(n, m);
    let mut own_targets: Csr<u32> = Csr::with_capacity(n, m);
    let mut inherited: Csr<(u32, u32)> = Csr::with_capacity(n, 0);
    // seen[t] == stamp: t already listed for the current (node, source).
    let mut seen = vec![0u32; n];
    let mut stamp = 0u32;
    for i in 0..n {
        stamp += 1;
        for &e in own.row(i) {
            let t = target[e as usize];
            own_succ.push(t);
            out_edges.push(e);
            if seen[t as usize] != stamp {
                seen[t as usize] = stamp;
                own_targets.push(t);
            }
        }
        for &original in fallback_of.row(i) {
            stamp += 1;
            for &e in own.row(original as usize) {
                out_edges.push(e);
                let t = target[e as usize];
                if seen[t as usize] != stamp {
                    seen[t as usize] = stamp;
                    inherited.push((original, t));
                }
            }
        }
        own_succ.end_row();
        out_edges.end_row();
        own_targets.end_row();
        inherited.end_row();
    }

    let mut loop_start = vec![NONE; n];
    let mut loop_body: Csr<u32> = Csr::with_capacity(n, 0);
    let mut queue: VecDeque<u32> = VecDeque::new();
    for (i, start_of_loop) in loop_start.iter_mut().enumerate() {
        if spec.loop_controller[i] {
            let Some(&cont) = own.row(i).iter().find(|&&e| spec.edge_continue[e as usize]) else {
                let mut problem = Text::from("Loop '");
                problem.push_text(names.get(i));
                problem.push_str(
                    "' has no continue edge to start node. Add an edge with action 'continue' \
                     from the loop controller to the first node of the loop body.",
                );
                return Err(blueprint_error(&blueprint_id, problem, format!("nodes[{i}]")).into());
            };
            let first = target[cont as usize];
            *start_of_loop = first;
            stamp += 1;
            seen[first as usize] = stamp;
            queue.clear();
            queue.push_back(first);
            while let Some(current) = queue.pop_front() {
                // The body ends where the path returns to this controller; inner loops (and
                // their controllers) are part of it, so nested loops reset as a whole.
                if current as usize == i {
                    continue;
                }
                loop_body.push(current);
                for &e in out_edges.row(current as usize) {
                    let t = target[e as usize];
                    if seen[t as usize] != stamp {
                        seen[t as usize] = stamp;
                        queue.push_back(t);
                    }
                }
            }
        }
        loop_body.end_row();
    }

    let Spec {
        join_any,
        loop_controller,
        fallback,
        edge_source,
        edge_target,
        edge_conditional,
        ..
    } = spec;
    Ok(Compiled {
        blueprint_id,
        names,
        uses,
        uses_texts,
        actions,
        action_texts,
        content_hash: String::new(),
        graph: Graph {
            node_count: n,
            edge_count: m,
            join_any,
            loop_controller,
            fallback,
            loop_start,
            edge_source,
            edge_target,
            edge_conditional,
            own_succ,
            out_edges,
            own_targets,
            inherited,
            preds,
            back_preds,
            loop_body,
            start,
            analysis,
            extras: OnceLock::new(),
        },
    })
}

fn pair_key(s: u32, t: u32) -> u64 {
    (u64::from(s) << 32) | u64::from(t)
}

/// The edges closing a cycle in a depth-first search from the start nodes, then from every node
/// not reached yet, in order (the twin's `_back_edges`), as [`pair_key`]s.
fn back_edges(n: usize, succ: &Csr<u32>, start: &[u32]) -> HashSet<u64> {
    let mut state = vec![0u8; n]; // 0 new, 1 on the stack, 2 done
    let mut back = HashSet::new();
    let mut stack: Vec<(u32, u32)> = Vec::new();
    for root in start.iter().copied().chain(0..n as u32) {
        if state[root as usize] != 0 {
            continue;
        }
        state[root as usize] = 1;
        stack.push((root, 0));
        while let Some(top) = stack.last_mut() {
            let (node, pos) = *top;
            let nexts = succ.row(node as usize);
            if let Some(&t) = nexts.get(pos as usize) {
                top.1 += 1;
                match state[t as usize] {
                    1 => {
                        back.insert(pair_key(node, t));
                    }
                    0 => {
                        state[t as usize] = 1;
                        stack.push((t, 0));
                    }
                    _ => {}
                }
            } else {
                state[node as usize] = 2;
                stack.pop();
            }
        }
    }
    back
}

// ---- queries --------------------------------------------------------------------------------------

impl Graph {
    pub fn start(&self) -> &[u32] {
        &self.start
    }

    /// Flowcraft's analysis: start and terminal nodes and cycles, by node index.
    pub fn analysis(&self) -> &Analysis {
        &self.analysis
    }

    fn node(&self, i: usize) -> CoreResult<usize> {
        if i < self.node_count {
            Ok(i)
        } else {
            Err(index_error("node", i))
        }
    }

    pub fn join_any(&self, i: usize) -> CoreResult<bool> {
        Ok(self.join_any[self.node(i)?])
    }

    pub fn is_loop_controller(&self, i: usize) -> CoreResult<bool> {
        Ok(self.loop_controller[self.node(i)?])
    }

    /// Distinct forward predecessors, ascending.
    pub fn preds(&self, i: usize) -> CoreResult<&[u32]> {
        Ok(self.preds.row(self.node(i)?))
    }

    /// Distinct back-edge predecessors, ascending.
    pub fn back_preds(&self, i: usize) -> CoreResult<&[u32]> {
        Ok(self.back_preds.row(self.node(i)?))
    }

    /// Edge indices leaving node `i`: its own, then those it inherits as a fallback.
    pub fn out_edges(&self, i: usize) -> CoreResult<&[u32]> {
        Ok(self.out_edges.row(self.node(i)?))
    }

    /// (source, target, has a condition) of edge `e`.
    pub fn edge(&self, e: usize) -> CoreResult<(u32, u32, bool)> {
        if e >= self.edge_count {
            return Err(index_error("edge", e));
        }
        Ok((
            self.edge_source[e],
            self.edge_target[e],
            self.edge_conditional[e],
        ))
    }

    pub fn fallback(&self, i: usize) -> CoreResult<Option<u32>> {
        Ok(Some(self.fallback[self.node(i)?]).filter(|&f| f != NONE))
    }

    pub fn loop_body(&self, i: usize) -> CoreResult<&[u32]> {
        Ok(self.loop_body.row(self.node(i)?))
    }

    pub fn loop_start(&self, i: usize) -> CoreResult<Option<u32>> {
        Ok(Some(self.loop_start[self.node(i)?]).filter(|&s| s != NONE))
    }

    /// The number of distinct forward predecessors of each node.
    pub fn predecessor_count(&self, i: usize) -> usize {
        self.preds.row(i).len()
    }

    pub fn loop_controllers(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.node_count).filter(|&i| self.loop_controller[i])
    }

    /// Strongly connected components, topological order and unreachable nodes (the twin's
    /// `analysis()` beyond Flowcraft's), computed once.
    pub fn extras(&self) -> &Extras {
        self.extras.get_or_init(|| self.compute_extras())
    }

    fn compute_extras(&self) -> Extras {
        let n = self.node_count;
        let succ = &self.own_succ;
        let sccs = strongly_connected(n, succ);
        let mut cyclic: Vec<Vec<u32>> = sccs
            .iter()
            .filter(|c| c.len() > 1 || succ.row(c[0] as usize).contains(&c[0]))
            .cloned()
            .collect();
        cyclic.sort_by_key(|c| c[0]);
        let topological_order = topological_order(n, succ, &sccs);

        let mut seen = vec![false; n];
        let mut stack: Vec<u32> = self.start.clone();
        while let Some(node) = stack.pop() {
            let node = node as usize;
            if seen[node] {
                continue;
            }
            seen[node] = true;
            stack.extend_from_slice(succ.row(node));
            if self.fallback[node] != NONE {
                stack.push(self.fallback[node]);
            }
        }
        Extras {
            cyclic_components: cyclic,
            topological_order,
            unreachable: (0..n as u32).filter(|&i| !seen[i as usize]).collect(),
        }
    }
}

/// Tarjan's algorithm, iteratively: each component's nodes ascending; components in the order
/// Tarjan emits them (reverse topological order of the condensation).
fn strongly_connected(n: usize, succ: &Csr<u32>) -> Vec<Vec<u32>> {
    let mut index_of = vec![NONE; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<u32> = Vec::new();
    let mut components = Vec::new();
    let mut counter = 0u32;
    let mut work: Vec<(u32, u32)> = Vec::new();
    for root in 0..n as u32 {
        if index_of[root as usize] != NONE {
            continue;
        }
        work.push((root, 0));
        index_of[root as usize] = counter;
        low[root as usize] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root as usize] = true;
        while let Some(top) = work.last_mut() {
            let (node, pos) = *top;
            let nexts = succ.row(node as usize);
            if let Some(&t) = nexts.get(pos as usize) {
                top.1 += 1;
                let (node, t) = (node as usize, t as usize);
                if index_of[t] == NONE {
                    index_of[t] = counter;
                    low[t] = counter;
                    counter += 1;
                    stack.push(t as u32);
                    on_stack[t] = true;
                    work.push((t as u32, 0));
                } else if on_stack[t] {
                    low[node] = low[node].min(index_of[t]);
                }
                continue;
            }
            work.pop();
            let node = node as usize;
            if let Some(&(parent, _)) = work.last() {
                low[parent as usize] = low[parent as usize].min(low[node]);
            }
            if low[node] == index_of[node] {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member as usize] = false;
                    component.push(member);
                    if member as usize == node {
                        break;
                    }
                }
                component.sort_unstable();
                components.push(component);
            }
        }
    }
    components
}

/// Kahn's algorithm over the components, the ready component with the smallest first node
/// first; nodes of a component in order.
fn topological_order(n: usize, succ: &Csr<u32>, sccs: &[Vec<u32>]) -> Vec<u32> {
    let mut comp_of = vec![0u32; n];
    for (c, members) in sccs.iter().enumerate() {
        for &m in members {
            comp_of[m as usize] = c as u32;
        }
    }
    let count = sccs.len();
    let mut indegree = vec![0u32; count];
    let mut mark = vec![NONE; count];
    let mut comp_succ: Csr<u32> = Csr::with_capacity(count, 0);
    for (a, members) in sccs.iter().enumerate() {
        for &s in members {
            for &t in succ.row(s as usize) {
                let b = comp_of[t as usize];
                if b as usize != a && mark[b as usize] != a as u32 {
                    mark[b as usize] = a as u32;
                    comp_succ.push(b);
                    indegree[b as usize] += 1;
                }
            }
        }
        comp_succ.end_row();
    }
    let mut heap: BinaryHeap<Reverse<(u32, u32)>> = (0..count)
        .filter(|&c| indegree[c] == 0)
        .map(|c| Reverse((sccs[c][0], c as u32)))
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse((_, c))) = heap.pop() {
        order.extend_from_slice(&sccs[c as usize]);
        for &d in comp_succ.row(c as usize) {
            indegree[d as usize] -= 1;
            if indegree[d as usize] == 0 {
                heap.push(Reverse((sccs[d as usize][0], d)));
            }
        }
    }
    order
}

/// Edge indices grouped by action text, groups in order of first appearance.
pub type ActionGroups<'a> = Vec<(&'a [u8], Vec<u32>)>;

impl Compiled {
    /// The edges of node `i` (own and inherited) grouped by action (`""` for none or an empty
    /// one), groups in order of first appearance. `None` when one of them is an
    /// [`Action::Other`], which the caller groups itself.
    pub fn successors_by_action(&self, i: usize) -> CoreResult<Option<ActionGroups<'_>>> {
        let mut groups: ActionGroups<'_> = Vec::new();
        for &e in self.graph.out_edges(i)? {
            let key: &[u8] = match self.actions[e as usize] {
                Action::None => b"",
                Action::Text(t) => self.action_texts.get(t).map_or(&[], Text::as_bytes),
                Action::Other => return Ok(None),
            };
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, edges)) => edges.push(e),
                None => groups.push((key, vec![e])),
            }
        }
        Ok(Some(groups))
    }

    /// The HSET arguments the Lua scripts read (the twin's `lua_encoding`): `meta`, then one
    /// field per node index. `other_action(e, out)` writes the JSON of an [`Action::Other`].
    /// Fields are in the encoding of [`Text`]; the caller refuses those that are not UTF-8, as
    /// Python's `str.encode()` does.
    pub fn lua_encoding<E>(
        &self,
        mut other_action: impl FnMut(usize, &mut Vec<u8>) -> Result<(), E>,
    ) -> Result<Vec<Vec<u8>>, E> {
        let g = &self.graph;
        let mut out = Vec::with_capacity(2 * g.node_count + 2);
        out.push(b"meta".to_vec());
        let mut meta = Vec::with_capacity(128);
        meta.extend_from_slice(b"{\"id\":");
        write_json_str(&mut meta, self.blueprint_id.as_bytes());
        meta.extend_from_slice(b",\"hash\":");
        write_json_str(&mut meta, self.content_hash.as_bytes());
        meta.extend_from_slice(b",\"nodes\":");
        push_int(&mut meta, g.node_count);
        meta.extend_from_slice(b",\"edges\":");
        push_int(&mut meta, g.edge_count);
        meta.extend_from_slice(b",\"start\":");
        push_list(&mut meta, &g.start);
        meta.push(b'}');
        out.push(meta);
        let signed = |x: u32| if x == NONE { -1 } else { i64::from(x) };
        for i in 0..g.node_count {
            out.push(itoa::Buffer::new().format(i).as_bytes().to_vec());
            let mut record = Vec::with_capacity(64);
            record.push(b'[');
            record.push(if g.join_any[i] { b'1' } else { b'0' });
            record.push(b',');
            record.push(if g.loop_controller[i] { b'1' } else { b'0' });
            record.push(b',');
            push_int(&mut record, signed(g.fallback[i]));
            record.push(b',');
            push_int(&mut record, signed(g.loop_start[i]));
            record.push(b',');
            push_list(&mut record, g.preds.row(i));
            record.push(b',');
            push_list(&mut record, g.back_preds.row(i));
            record.extend_from_slice(b",[");
            for (k, &e) in g.out_edges.row(i).iter().enumerate() {
                let e = e as usize;
                if k > 0 {
                    record.push(b',');
                }
                record.push(b'[');
                push_int(&mut record, e);
                record.push(b',');
                push_int(&mut record, g.edge_source[e]);
                record.push(b',');
                push_int(&mut record, g.edge_target[e]);
                record.push(b',');
                match self.actions[e] {
                    Action::None => record.extend_from_slice(b"null"),
                    Action::Text(t) => write_json_str(
                        &mut record,
                        self.action_texts.get(t).map_or(&[], Text::as_bytes),
                    ),
                    Action::Other => other_action(e, &mut record)?,
                }
                record.push(b',');
                record.push(if g.edge_conditional[e] { b'1' } else { b'0' });
                record.push(b']');
            }
            record.extend_from_slice(b"],");
            push_list(&mut record, g.loop_body.row(i));
            record.push(b']');
            out.push(record);
        }
        Ok(out)
    }
}

fn push_int(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

fn push_list(out: &mut Vec<u8>, items: &[u32]) {
    out.push(b'[');
    for (k, &x) in items.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        push_int(out, x);
    }
    out.push(b']');
}

// ---- canonical JSON and the content hash ----------------------------------------------------------

/// Appends `s` (in the encoding of [`Text`]) as a JSON string, escaped as Python's
/// `json.dumps(..., ensure_ascii=False)` does: `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, the other
/// control characters as `\u00XX` (lowercase hex), everything else as is.
pub fn write_json_str(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = first_to_escape(s, 0);
    while i < s.len() {
        let b = s[i];
        out.extend_from_slice(&s[start..i]);
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            _ => b"",
        };
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
        i = first_to_escape(s, start);
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

/// The position of the first byte at or after `from` that a JSON string must escape (a control
/// character, `"` or `\\`), or `s.len()`. Eight bytes at a time.
#[inline]
fn first_to_escape(s: &[u8], from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let needs = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let mut i = from;
    while i + 8 <= s.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&s[i..i + 8]);
        let w = u64::from_le_bytes(word);
        // A byte below 0x20, or equal to '"' or '\\' (zero after the xor), sets its high bit.
        let below = w.wrapping_sub(ONES * 0x20) & !w;
        let quote =
            (w ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES) & !(w ^ (ONES * u64::from(b'"')));
        let slash =
            (w ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES) & !(w ^ (ONES * u64::from(b'\\')));
        if (below | quote | slash) & HIGHS != 0 {
            break;
        }
        i += 8;
    }
    while i < s.len() && !needs(s[i]) {
        i += 1;
    }
    i
}

/// 2**53: integral floats below it are written as ints in the canonical text.
const EXACT_INTS: f64 = 9_007_199_254_740_992.0;

/// Appends a float as the canonical text writes it: an integral value below 2**53 in magnitude as
/// an int (`2.0` -> `2`, `-0.0` -> `0`), anything else as Python's `repr`. `x` must be finite
/// (the twin refuses NaN and infinities).
pub fn write_canonical_float(out: &mut Vec<u8>, x: f64) {
    if x.fract() == 0.0 && x.abs() < EXACT_INTS {
        push_int(out, x as i64);
    } else {
        write_float_repr(out, x);
    }
}

/// Where the canonical text goes: sha256, fed in chunks.
pub struct HashSink {
    sha: Sha256,
    buf: Vec<u8>,
}

impl Default for HashSink {
    fn default() -> Self {
        HashSink {
            sha: Sha256::new(),
            buf: Vec::with_capacity(1 << 16),
        }
    }
}

impl HashSink {
    /// The buffer to append to; flushed to the hash from time to time.
    #[inline]
    pub fn buf(&mut self) -> &mut Vec<u8> {
        if self.buf.len() >= 1 << 16 {
            self.sha.update(&self.buf);
            self.buf.clear();
        }
        &mut self.buf
    }

    /// The hash, in lowercase hex.
    pub fn finish(mut self) -> String {
        self.sha.update(&self.buf);
        hex(&self.sha.finalize())
    }
}

/// sha256 (hex) of some bytes: the content hash of an already canonical text.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut sink = HashSink::default();
    sink.buf().extend_from_slice(bytes);
    sink.finish()
}

/// Sorts object members by key (code point order, which is the byte order of [`Text`]) and keeps
/// the last of equal keys, as a dict built from them and then `sort_keys` would.
pub fn canonical_member_order<K: AsRef<[u8]>>(keys: &[K]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| keys[a].as_ref().cmp(keys[b].as_ref()));
    let mut kept: Vec<usize> = Vec::with_capacity(order.len());
    for idx in order {
        match kept.last_mut() {
            Some(last) if keys[*last].as_ref() == keys[idx].as_ref() => *last = idx,
            _ => kept.push(idx),
        }
    }
    kept
}

// ---- JSON text --------------------------------------------------------------------------------------
//
// One pass over the text: while serde_json parses it, the canonical text is written (objects are
// written as they come, then their members reordered by key when they are not in order) and the
// fields the compiler needs are picked up (node ids, uses, join strategies, fallbacks, edge ends,
// actions, conditions, the cycle entry points). No tree of values is built. Whatever this path
// does not handle exactly like the twin ends the parse with a "defer" error, and the caller
// compiles the result of Python's `json.loads` instead.

/// The message of the error that ends a parse to leave the blueprint to Python.
const DEFER: &str = "left to Python";

fn defer<E: de::Error>() -> E {
    E::custom(DEFER)
}

/// What a value is, for the blueprint: where it sits decides what is picked up from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Only written to the canonical text.
    Any,
    Top,
    Id,
    NodeList,
    Node,
    NodeId,
    Uses,
    Config,
    Join,
    Fallback,
    EdgeList,
    Edge,
    Source,
    Target,
    Action,
    Condition,
    Metadata,
    EntryPoints,
    EntryPoint,
}

/// `metadata.cycleEntryPoints` as read: `Unsupported` when reading it would need Python (a str,
/// an object, an unhashable item...), which only matters if the compiler asks for it.
enum EntryPoints<'de> {
    List(Vec<Cow<'de, str>>),
    Unsupported,
}

#[derive(Default)]
struct NodeFields<'de> {
    id: Option<Cow<'de, str>>,
    uses: Option<Cow<'de, str>>,
    join_any: bool,
    fallback: Option<Cow<'de, str>>,
}

#[derive(Default)]
struct EdgeFields<'de> {
    source: Option<Cow<'de, str>>,
    target: Option<Cow<'de, str>>,
    action: Option<Cow<'de, str>>,
    conditional: bool,
}

/// The state of the one-pass reader.
struct Reader<'de> {
    out: Vec<u8>,
    /// (key, start, end) of the members of the objects being written, innermost last.
    members: Vec<(Cow<'de, str>, usize, usize)>,
    scratch: Vec<u8>,
    order: Vec<usize>,
    blueprint_id: Text,
    entry_points: EntryPoints<'de>,
    names: Names,
    uses: Vec<u32>,
    uses_texts: Interner,
    join_any: Vec<bool>,
    loop_controller: Vec<bool>,
    fallback_ids: Vec<Option<Cow<'de, str>>>,
    node: NodeFields<'de>,
    ends: Vec<(Cow<'de, str>, Cow<'de, str>)>,
    actions: Vec<Action>,
    action_texts: Interner,
    edge_continue: Vec<bool>,
    edge_conditional: Vec<bool>,
    edge: EdgeFields<'de>,
    /// The members of the document when it is an object read in role `Top`: (key, start, end)
    /// in `out`, in document order.
    top: Option<Vec<(Cow<'de, str>, usize, usize)>>,
}

/// The canonical text as pieces: `out`, with the members of the top-level object (if `top`) put
/// in key order, the last of equal keys kept.
fn canonical_pieces<'a>(
    out: &'a [u8],
    top: &Option<Vec<(Cow<'_, str>, usize, usize)>>,
) -> Vec<&'a [u8]> {
    let Some(members) = top else {
        return vec![out];
    };
    let keys: Vec<&[u8]> = members.iter().map(|(k, _, _)| k.as_bytes()).collect();
    let mut pieces = vec![&b"{"[..]];
    for (k, idx) in canonical_member_order(&keys).into_iter().enumerate() {
        if k > 0 {
            pieces.push(b",");
        }
        pieces.push(&out[members[idx].1..members[idx].2]);
    }
    pieces.push(b"}");
    pieces
}

/// sha256 (hex) of the concatenation of `pieces`.
fn sha256_pieces(pieces: &[&[u8]]) -> String {
    let mut sha = Sha256::new();
    for piece in pieces {
        sha.update(piece);
    }
    hex(&sha.finalize())
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
    }
    out
}

impl<'de> Reader<'de> {
    fn new(size: usize) -> Self {
        Reader {
            out: Vec::with_capacity(size + size / 8),
            members: Vec::new(),
            scratch: Vec::new(),
            order: Vec::new(),
            blueprint_id: Text::default(),
            entry_points: EntryPoints::List(Vec::new()),
            // A guess: blueprints take a few hundred bytes of text per node.
            names: Names::with_capacity(size / 256, size / 32),
            uses: Vec::new(),
            uses_texts: Interner::default(),
            join_any: Vec::new(),
            loop_controller: Vec::new(),
            fallback_ids: Vec::new(),
            node: NodeFields::default(),
            ends: Vec::new(),
            actions: Vec::new(),
            action_texts: Interner::default(),
            edge_continue: Vec::new(),
            edge_conditional: Vec::new(),
            edge: EdgeFields::default(),
            top: None,
        }
    }

    /// Closes the object whose first member starts at `start` (after its `{`), its members being
    /// `self.members[base..]`: reorders them by key, keeping the last of equal keys.
    fn close_object(&mut self, base: usize, start: usize) {
        let members = &self.members[base..];
        let sorted = members
            .windows(2)
            .all(|w| key_order(w[0].0.as_bytes(), w[1].0.as_bytes()).is_lt());
        if !sorted {
            let order = &mut self.order;
            order.clear();
            order.extend(0..members.len());
            order.sort_by(|&a, &b| key_order(members[a].0.as_bytes(), members[b].0.as_bytes()));
            // Of equal keys (adjacent now, in document order), keep the last.
            let mut kept = 0;
            for k in 0..order.len() {
                let idx = order[k];
                if kept > 0
                    && key_order(
                        members[order[kept - 1]].0.as_bytes(),
                        members[idx].0.as_bytes(),
                    )
                    .is_eq()
                {
                    order[kept - 1] = idx;
                } else {
                    order[kept] = idx;
                    kept += 1;
                }
            }
            order.truncate(kept);
            self.scratch.clear();
            self.scratch.extend_from_slice(&self.out[start..]);
            self.out.truncate(start);
            for (k, &idx) in order.iter().enumerate() {
                if k > 0 {
                    self.out.push(b',');
                }
                let (_, from, to) = members[idx];
                self.out
                    .extend_from_slice(&self.scratch[from - start..to - start]);
            }
        }
        self.out.push(b'}');
        self.members.truncate(base);
    }
}

/// Byte order of two keys (code point order), deciding on the first byte without a call to
/// `memcmp` when it differs, as it mostly does between the keys of one object.
#[inline]
fn key_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// The role of a member of an object in role `parent`, and the bit marking it as one that must
/// not appear twice (0: may repeat).
fn member_role(parent: Role, key: &str) -> (Role, u32) {
    if parent == Role::Any {
        return (Role::Any, 0);
    }
    match (parent, key.as_bytes()) {
        (Role::Top, b"id") => (Role::Id, 1),
        (Role::Top, b"nodes") => (Role::NodeList, 2),
        (Role::Top, b"edges") => (Role::EdgeList, 4),
        (Role::Top, b"metadata") => (Role::Metadata, 8),
        (Role::Node, b"id") => (Role::NodeId, 1),
        (Role::Node, b"uses") => (Role::Uses, 2),
        (Role::Node, b"config") => (Role::Config, 4),
        (Role::Config, b"joinStrategy") => (Role::Join, 1),
        (Role::Config, b"fallback") => (Role::Fallback, 2),
        (Role::Edge, b"source") => (Role::Source, 1),
        (Role::Edge, b"target") => (Role::Target, 2),
        (Role::Edge, b"action") => (Role::Action, 4),
        (Role::Edge, b"condition") => (Role::Condition, 8),
        (Role::Metadata, b"cycleEntryPoints") => (Role::EntryPoints, 1),
        _ => (Role::Any, 0),
    }
}

struct Seed<'r, 'de> {
    r: &'r mut Reader<'de>,
    role: Role,
}

impl<'de> de::DeserializeSeed<'de> for Seed<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Seed<'_, 'de> {
    /// A scalar other than a str: `falsy` tells whether Python reads it as false.
    fn scalar<E: de::Error>(
        self,
        falsy: bool,
        python_str: impl FnOnce() -> String,
    ) -> Result<(), E> {
        match self.role {
            Role::Any | Role::Join | Role::EntryPoint => Ok(()),
            Role::Id => {
                self.r.blueprint_id = Text::from(python_str());
                Ok(())
            }
            Role::Condition => {
                self.r.edge.conditional = true;
                Ok(())
            }
            Role::EntryPoints => {
                if !falsy {
                    self.r.entry_points = EntryPoints::Unsupported;
                }
                Ok(())
            }
            _ => Err(defer()),
        }
    }

    fn string<E: de::Error>(self, s: Cow<'de, str>) -> Result<(), E> {
        write_literal(&mut self.r.out, &s);
        let r = self.r;
        match self.role {
            Role::Any => {}
            Role::Id => r.blueprint_id = Text::from(&*s),
            Role::NodeId => r.node.id = Some(s),
            Role::Uses => r.node.uses = Some(s),
            Role::Join => r.node.join_any = s == "any",
            Role::Fallback => r.node.fallback = Some(s),
            Role::Source => r.edge.source = Some(s),
            Role::Target => r.edge.target = Some(s),
            Role::Action => r.edge.action = Some(s),
            Role::Condition => r.edge.conditional = true,
            Role::EntryPoints if s.is_empty() => {}
            Role::EntryPoints => r.entry_points = EntryPoints::Unsupported,
            Role::EntryPoint => {
                if let EntryPoints::List(list) = &mut r.entry_points {
                    list.push(s);
                }
            }
            _ => return Err(defer()),
        }
        Ok(())
    }

    /// The members of an object in role `role`, written and picked up.
    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let r = self.r;
        let role = self.role;
        r.out.push(b'{');
        let start = r.out.len();
        let base = r.members.len();
        let mut seen = 0u32;
        while let Some(Key(key)) = map.next_key()? {
            let (child, bit) = member_role(role, &key);
            if seen & bit != 0 {
                return Err(defer());
            }
            seen |= bit;
            if r.out.len() > start {
                r.out.push(b',');
            }
            let from = r.out.len();
            write_literal(&mut r.out, &key);
            r.out.push(b':');
            map.next_value_seed(Seed {
                r: &mut *r,
                role: child,
            })?;
            let to = r.out.len();
            r.members.push((key, from, to));
        }
        if role == Role::Top {
            // The document itself: its members are put in order when hashed, not moved.
            r.out.push(b'}');
            r.top = Some(r.members.drain(base..).collect());
        } else {
            r.close_object(base, start);
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for Seed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.r.out.extend_from_slice(b"null");
        match self.role {
            Role::Any
            | Role::NodeList
            | Role::EdgeList
            | Role::Config
            | Role::Join
            | Role::Fallback
            | Role::Action
            | Role::Condition
            | Role::Metadata
            | Role::EntryPoints
            | Role::EntryPoint => Ok(()),
            Role::Id => {
                self.r.blueprint_id = Text::from("None");
                Ok(())
            }
            _ => Err(defer()),
        }
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.r
            .out
            .extend_from_slice(if v { b"true" } else { b"false" });
        self.scalar(!v, || if v { "True" } else { "False" }.into())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        push_int(&mut self.r.out, v);
        self.scalar(v == 0, || v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        push_int(&mut self.r.out, v);
        self.scalar(v == 0, || v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // serde_json also gives integers too large for 64 bits as floats, which Python reads as
        // exact ints: an integral float that large cannot be told apart, so leave it to Python.
        if !v.is_finite() || (v.fract() == 0.0 && v.abs() >= EXACT_INTS) {
            return Err(defer());
        }
        write_canonical_float(&mut self.r.out, v);
        self.scalar(v == 0.0, || crate::float_repr::float_repr(v))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.string(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.string(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.string(Cow::Owned(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let r = self.r;
        let item = match self.role {
            Role::Any | Role::Join => Role::Any,
            Role::Condition => {
                r.edge.conditional = true;
                Role::Any
            }
            Role::NodeList => Role::Node,
            Role::EdgeList => Role::Edge,
            Role::EntryPoints => Role::EntryPoint,
            Role::EntryPoint => {
                // A list in the entry points: `set()` refuses it.
                r.entry_points = EntryPoints::Unsupported;
                Role::Any
            }
            _ => return Err(defer()),
        };
        r.out.push(b'[');
        let mut first = true;
        loop {
            if !first {
                r.out.push(b',');
            }
            let start = r.out.len();
            if seq
                .next_element_seed(Seed {
                    r: &mut *r,
                    role: item,
                })?
                .is_none()
            {
                if !first {
                    r.out.truncate(start - 1);
                }
                break;
            }
            first = false;
        }
        r.out.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        match self.role {
            Role::Any | Role::Join | Role::Top | Role::Config | Role::Metadata => self.object(map),
            Role::Condition => {
                self.r.edge.conditional = true;
                self.object(map)
            }
            Role::EntryPoints | Role::EntryPoint => {
                // An object: its keys would be the entry points; inside the list, unhashable.
                let r = self.r;
                let at = r.out.len();
                Seed {
                    r: &mut *r,
                    role: Role::Any,
                }
                .object(map)?;
                if r.out.len() > at + 2 || self.role == Role::EntryPoint {
                    r.entry_points = EntryPoints::Unsupported;
                }
                Ok(())
            }
            Role::Node => {
                let r = self.r;
                r.node = NodeFields::default();
                Seed {
                    r: &mut *r,
                    role: Role::Node,
                }
                .object(map)?;
                let node = std::mem::take(&mut r.node);
                let (Some(id), Some(uses)) = (node.id, node.uses) else {
                    return Err(defer());
                };
                if r.names.insert(id.as_bytes()).is_err() {
                    return Err(defer());
                }
                r.uses.push(r.uses_texts.intern(uses.as_bytes()));
                r.loop_controller.push(uses == LOOP_CONTROLLER);
                r.join_any.push(node.join_any);
                r.fallback_ids.push(node.fallback);
                Ok(())
            }
            Role::Edge => {
                let r = self.r;
                r.edge = EdgeFields::default();
                Seed {
                    r: &mut *r,
                    role: Role::Edge,
                }
                .object(map)?;
                let edge = std::mem::take(&mut r.edge);
                let (Some(source), Some(target)) = (edge.source, edge.target) else {
                    return Err(defer());
                };
                r.ends.push((source, target));
                let (action, is_continue) = match edge.action {
                    None => (Action::None, false),
                    Some(a) => (
                        Action::Text(r.action_texts.intern(a.as_bytes())),
                        a == "continue",
                    ),
                };
                r.actions.push(action);
                r.edge_continue.push(is_continue);
                r.edge_conditional.push(edge.conditional);
                Ok(())
            }
            _ => Err(defer()),
        }
    }
}

struct Key<'a>(Cow<'a, str>);

/// Writes a string serde_json read as a JSON string. One it lends from the text had no escape
/// sequence, and JSON text holds no raw control character, `"` or `\\` in a string: it needs no
/// escaping either.
#[inline]
#[allow(clippy::ptr_arg)] // whether it is borrowed is the point
fn write_literal(out: &mut Vec<u8>, s: &Cow<'_, str>) {
    match s {
        Cow::Borrowed(s) => {
            out.reserve(s.len() + 2);
            out.push(b'"');
            out.extend_from_slice(s.as_bytes());
            out.push(b'"');
        }
        Cow::Owned(s) => write_json_str(out, s.as_bytes()),
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Reads JSON text in one pass (see above), with `top` the role of the document.
fn read_json<'de>(text: &'de [u8], top: Role) -> Option<Reader<'de>> {
    let mut reader = Reader::new(text.len());
    let mut de = serde_json::Deserializer::from_slice(text);
    de::DeserializeSeed::deserialize(
        Seed {
            r: &mut reader,
            role: top,
        },
        &mut de,
    )
    .ok()?;
    de.end().ok()?;
    Some(reader)
}

/// The canonical text of a JSON document (as the twin writes it for `json.loads(text)`), or
/// `None` when that is Python's to decide (malformed text, a number Python reads differently...).
pub fn canonical_json_text(text: &[u8]) -> Option<Vec<u8>> {
    read_json(text, Role::Any).map(|r| r.out)
}

/// The canonical text of a blueprint's JSON text, as [`compile_json`] hashes it.
pub fn canonical_blueprint_text(text: &[u8]) -> Option<Vec<u8>> {
    let reader = read_json(text, Role::Top)?;
    Some(canonical_pieces(&reader.out, &reader.top).concat())
}

/// From this many bytes of canonical text on, it is hashed on a thread of its own while the
/// graph compiles.
const HASH_ON_A_THREAD_FROM: usize = 1 << 20;

/// What [`compile_json`] produced.
pub enum FromJson {
    Compiled(Box<Compiled>),
    /// The text is not something this path handles exactly like the twin (see above): compile
    /// the result of Python's `json.loads` instead.
    NeedsPython,
}

/// Marks "leave it to Python" when resolving what was read.
struct Defer;

/// Compiles a blueprint given as JSON text (see [`FromJson`]), with its content hash.
pub fn compile_json(text: &[u8], strict: bool) -> CoreResult<FromJson> {
    let Some(reader) = read_json(text, Role::Top) else {
        return Ok(FromJson::NeedsPython);
    };
    let Reader {
        out,
        top,
        blueprint_id,
        entry_points,
        names,
        uses,
        uses_texts,
        join_any,
        loop_controller,
        fallback_ids,
        ends,
        actions,
        action_texts,
        edge_continue,
        edge_conditional,
        ..
    } = reader;
    let pieces = canonical_pieces(&out, &top);
    if out.len() < HASH_ON_A_THREAD_FROM {
        let hash = sha256_pieces(&pieces);
        return compile_read(
            hash,
            Parts0 {
                blueprint_id,
                entry_points,
                names,
                uses,
                uses_texts,
                join_any,
                loop_controller,
                fallback_ids,
                ends,
                actions,
                action_texts,
                edge_continue,
                edge_conditional,
            },
            strict,
        );
    }
    std::thread::scope(|scope| {
        let hashing = scope.spawn(|| sha256_pieces(&pieces));
        let parts = Parts0 {
            blueprint_id,
            entry_points,
            names,
            uses,
            uses_texts,
            join_any,
            loop_controller,
            fallback_ids,
            ends,
            actions,
            action_texts,
            edge_continue,
            edge_conditional,
        };
        let resolved = resolve(parts, strict);
        let hash = hashing.join().unwrap_or_else(|_| sha256_pieces(&pieces));
        finish(resolved, hash)
    })
}

/// What the reader picked up, before the ids are resolved.
struct Parts0<'de> {
    blueprint_id: Text,
    entry_points: EntryPoints<'de>,
    names: Names,
    uses: Vec<u32>,
    uses_texts: Interner,
    join_any: Vec<bool>,
    loop_controller: Vec<bool>,
    fallback_ids: Vec<Option<Cow<'de, str>>>,
    ends: Vec<(Cow<'de, str>, Cow<'de, str>)>,
    actions: Vec<Action>,
    action_texts: Interner,
    edge_continue: Vec<bool>,
    edge_conditional: Vec<bool>,
}

fn compile_read(hash: String, parts: Parts0<'_>, strict: bool) -> CoreResult<FromJson> {
    finish(resolve(parts, strict), hash)
}

fn finish(resolved: CoreResult<Option<Compiled>>, hash: String) -> CoreResult<FromJson> {
    Ok(match resolved? {
        Some(mut compiled) => {
            compiled.content_hash = hash;
            FromJson::Compiled(Box::new(compiled))
        }
        None => FromJson::NeedsPython,
    })
}

/// Resolves the ids and compiles (`None`: leave it to Python).
fn resolve(parts: Parts0<'_>, strict: bool) -> CoreResult<Option<Compiled>> {
    let Parts0 {
        blueprint_id,
        entry_points,
        names,
        uses,
        uses_texts,
        join_any,
        loop_controller,
        fallback_ids,
        ends,
        actions,
        action_texts,
        edge_continue,
        edge_conditional,
    } = parts;
    let n = names.len();
    let m = ends.len();
    if n >= MAX_ITEMS || m >= MAX_ITEMS {
        return Ok(None);
    }
    let mut edge_source = Vec::with_capacity(m);
    let mut edge_target = Vec::with_capacity(m);
    for (source, target) in &ends {
        match (
            names.index_of(source.as_bytes()),
            names.index_of(target.as_bytes()),
        ) {
            (Some(s), Some(t)) => {
                edge_source.push(s);
                edge_target.push(t);
            }
            _ => return Ok(None),
        }
    }
    let mut fallback = Vec::with_capacity(n);
    for (i, fb) in fallback_ids.iter().enumerate() {
        fallback.push(match fb {
            None => NONE,
            Some(fb) => match names.index_of(fb.as_bytes()) {
                Some(f) if f as usize != i => f,
                _ => return Ok(None),
            },
        });
    }
    let parts = Parts {
        blueprint_id,
        names,
        uses,
        uses_texts,
        actions,
        action_texts,
        spec: Spec {
            join_any,
            loop_controller,
            fallback,
            edge_source,
            edge_target,
            edge_continue,
            edge_conditional,
        },
    };
    let entry_points = |names: &Names| -> Result<Vec<u32>, Defer> {
        match &entry_points {
            EntryPoints::List(list) => Ok(list
                .iter()
                .filter_map(|s| names.index_of(s.as_bytes()))
                .collect()),
            EntryPoints::Unsupported => Err(Defer),
        }
    };
    match compile(parts, strict, entry_points) {
        Ok(compiled) => Ok(Some(compiled)),
        Err(CompileFailure::Core(err)) => Err(err),
        Err(CompileFailure::EntryPoints(Defer)) => Ok(None),
    }
}

// ---- the run state ---------------------------------------------------------------------------------

/// Per-node sets keyed by node index that remember the order their keys were added in, like the
/// twin's `dict[int, set[int]]` (a key popped and added again goes to the end). A present key
/// may hold an empty set.
#[derive(Debug, Clone, Default)]
struct OrderedSets {
    /// seq[t]: when key t was added (0: absent).
    seq: Vec<u64>,
    sets: Vec<Vec<u32>>,
    present: usize,
    next: u64,
}

impl OrderedSets {
    fn new(n: usize) -> Self {
        OrderedSets {
            seq: vec![0; n],
            sets: vec![Vec::new(); n],
            present: 0,
            next: 1,
        }
    }

    fn grow(&mut self, n: usize) {
        self.seq.resize(n, 0);
        self.sets.resize(n, Vec::new());
    }

    fn contains_key(&self, t: usize) -> bool {
        self.seq[t] != 0
    }

    /// The set of `t` if present and not empty.
    fn get(&self, t: usize) -> Option<&[u32]> {
        Some(self.sets[t].as_slice()).filter(|s| !s.is_empty())
    }

    fn entry(&mut self, t: usize) -> &mut Vec<u32> {
        if self.seq[t] == 0 {
            self.seq[t] = self.next;
            self.next += 1;
            self.present += 1;
        }
        &mut self.sets[t]
    }

    fn add(&mut self, t: usize, p: u32) {
        let set = self.entry(t);
        if let Err(at) = set.binary_search(&p) {
            set.insert(at, p);
        }
    }

    fn pop(&mut self, t: usize) {
        if self.seq[t] != 0 {
            self.seq[t] = 0;
            self.sets[t].clear();
            self.present -= 1;
        }
    }

    fn clear(&mut self) {
        for t in 0..self.seq.len() {
            self.pop(t);
        }
        self.next = 1;
    }

    /// The present keys in the order they were added.
    fn keys(&self) -> Vec<u32> {
        let mut keys: Vec<u32> = (0..self.seq.len() as u32)
            .filter(|&t| self.seq[t as usize] != 0)
            .collect();
        keys.sort_unstable_by_key(|&t| self.seq[t as usize]);
        keys
    }

    fn items(&self) -> Vec<(u32, &[u32])> {
        self.keys()
            .into_iter()
            .map(|t| (t, self.sets[t as usize].as_slice()))
            .collect()
    }
}

/// A node added while the run goes (a batch worker, a continuation).
#[derive(Debug, Clone, Default)]
struct DynamicNode {
    preds: Vec<u32>,
    targets: Vec<u32>,
    out_edges: Vec<u32>,
}

/// A snapshot's content, checked by the caller (indices in range, statuses valid), in the order
/// of the snapshot's dicts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub graph: String,
    pub status: Vec<u8>,
    pub wave: Vec<i64>,
    pub arrived: Vec<(u32, Vec<u32>)>,
    pub resolved: Vec<(u32, Vec<u32>)>,
    pub fallback_for: Vec<(u32, u32)>,
    /// (preds, targets) of each added node.
    pub dynamic: Vec<(Vec<u32>, Vec<u32>)>,
    pub extra_preds: Vec<(u32, Vec<u32>)>,
}

/// The scheduling state of one run over a [`Compiled`] graph (plus nodes added while it runs).
/// `C` is how it holds the graph (`Arc<Compiled>`, `&Compiled`...).
pub struct RunState<C> {
    compiled: C,
    max_waves: i64,
    status: Vec<u8>,
    wave: Vec<i64>,
    arrived: OrderedSets,
    resolved: OrderedSets,
    extra_preds: OrderedSets,
    /// fallback_for[f] = (seq, original), seq 0 when absent.
    fallback_for: Vec<(u64, u32)>,
    fallback_next: u64,
    dynamic: Vec<DynamicNode>,
    dyn_edge_source: Vec<u32>,
    dyn_edge_target: Vec<u32>,
    work: VecDeque<(u32, u32, bool)>,
    ready: Vec<u32>,
    skipped: Vec<u32>,
    scratch: Vec<u32>,
    pairs: Vec<(u32, u32)>,
}

/// What a failed event reports.
pub type RunResult<T> = CoreResult<T>;

impl<C: std::ops::Deref<Target = Compiled>> RunState<C> {
    /// A fresh run. A node made ready on a wave above `max_waves` raises `InfiniteLoopError`.
    pub fn new(compiled: C, max_waves: i64) -> Self {
        let n = compiled.graph.node_count;
        RunState {
            compiled,
            max_waves,
            status: vec![PENDING; n],
            wave: vec![0; n],
            arrived: OrderedSets::new(n),
            resolved: OrderedSets::new(n),
            extra_preds: OrderedSets::new(n),
            fallback_for: vec![(0, 0); n],
            fallback_next: 1,
            dynamic: Vec::new(),
            dyn_edge_source: Vec::new(),
            dyn_edge_target: Vec::new(),
            work: VecDeque::new(),
            ready: Vec::new(),
            skipped: Vec::new(),
            scratch: Vec::new(),
            pairs: Vec::new(),
        }
    }

    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    pub fn max_waves(&self) -> i64 {
        self.max_waves
    }

    /// Nodes in the run (the graph's and the added ones).
    pub fn node_count(&self) -> usize {
        self.status.len()
    }

    /// Edges in the run (the graph's and those of added nodes).
    pub fn edge_count(&self) -> usize {
        self.compiled.graph.edge_count + self.dyn_edge_source.len()
    }

    /// The nodes made ready by the last event.
    pub fn ready(&self) -> &[u32] {
        &self.ready
    }

    /// The nodes skipped by the last event.
    pub fn skipped(&self) -> &[u32] {
        &self.skipped
    }

    pub fn check_node(&self, i: usize) -> CoreResult<usize> {
        if i < self.status.len() {
            Ok(i)
        } else {
            Err(index_error("node", i))
        }
    }

    pub fn check_edge(&self, e: usize) -> CoreResult<usize> {
        if e < self.edge_count() {
            Ok(e)
        } else {
            Err(index_error("edge", e))
        }
    }

    // ---- per-node data, graph or added ----

    #[inline]
    fn base(&self) -> usize {
        self.compiled.graph.node_count
    }

    #[inline]
    fn preds(&self, t: usize) -> &[u32] {
        let base = self.base();
        if t < base {
            self.compiled.graph.preds.row(t)
        } else {
            &self.dynamic[t - base].preds
        }
    }

    #[inline]
    fn back_preds(&self, t: usize) -> &[u32] {
        self.compiled.graph.back_preds.row(t)
    }

    #[inline]
    fn join_any(&self, t: usize) -> bool {
        self.compiled
            .graph
            .join_any
            .get(t)
            .copied()
            .unwrap_or(false)
    }

    #[inline]
    fn loop_controller(&self, t: usize) -> bool {
        self.compiled
            .graph
            .loop_controller
            .get(t)
            .copied()
            .unwrap_or(false)
    }

    #[inline]
    fn fallback_of(&self, t: usize) -> u32 {
        self.compiled.graph.fallback.get(t).copied().unwrap_or(NONE)
    }

    #[inline]
    fn own_targets(&self, t: usize) -> &[u32] {
        let base = self.base();
        if t < base {
            self.compiled.graph.own_targets.row(t)
        } else {
            &self.dynamic[t - base].targets
        }
    }

    #[inline]
    fn edge_ends(&self, e: usize) -> (u32, u32) {
        let g = &self.compiled.graph;
        if e < g.edge_count {
            (g.edge_source[e], g.edge_target[e])
        } else {
            let d = e - g.edge_count;
            (self.dyn_edge_source[d], self.dyn_edge_target[d])
        }
    }

    /// Edge indices leaving node `i`.
    pub fn out_edges(&self, i: usize) -> CoreResult<&[u32]> {
        let i = self.check_node(i)?;
        let base = self.base();
        Ok(if i < base {
            self.compiled.graph.out_edges.row(i)
        } else {
            &self.dynamic[i - base].out_edges
        })
    }

    /// The target of edge `e`.
    pub fn edge_target(&self, e: usize) -> CoreResult<u32> {
        let e = self.check_edge(e)?;
        Ok(self.edge_ends(e).1)
    }

    pub fn node_status(&self, i: usize) -> CoreResult<u8> {
        Ok(self.status[self.check_node(i)?])
    }

    pub fn statuses(&self) -> &[u8] {
        &self.status
    }

    /// The node whose edges fallback node `i` is currently carrying, if any.
    pub fn fallback_origin(&self, i: usize) -> CoreResult<Option<u32>> {
        let (seq, original) = self.fallback_for[self.check_node(i)?];
        Ok((seq != 0).then_some(original))
    }

    fn set_status(&mut self, i: usize, status: u8) -> CoreResult<()> {
        let i = self.check_node(i)?;
        self.status[i] = status;
        Ok(())
    }

    pub fn mark_running(&mut self, i: usize) -> CoreResult<()> {
        self.set_status(i, RUNNING)
    }

    pub fn fail(&mut self, i: usize) -> CoreResult<()> {
        self.set_status(i, FAILED)
    }

    /// Node `i` is paused (awaiting a resume).
    pub fn suspend(&mut self, i: usize) -> CoreResult<()> {
        self.set_status(i, AWAITING)
    }

    /// Node `i` did not run after all (the run was cancelled).
    pub fn reset_pending(&mut self, i: usize) -> CoreResult<()> {
        self.set_status(i, PENDING)
    }

    fn begin(&mut self) {
        self.ready.clear();
        self.skipped.clear();
        self.work.clear();
    }

    // ---- events ----

    /// Readies the start nodes that are pending ([`Self::ready`]).
    pub fn start(&mut self) -> RunResult<()> {
        self.begin();
        let compiled = &*self.compiled;
        for &i in &compiled.graph.start {
            if self.status[i as usize] == PENDING {
                Self::make_ready_in(
                    &mut self.status,
                    &mut self.wave,
                    &mut self.arrived,
                    &mut self.resolved,
                    &mut self.ready,
                    self.max_waves,
                    i as usize,
                    1,
                )?;
            }
        }
        Ok(())
    }

    /// Node `i` completed and took the edges `taken` (`None`: all of its outgoing edges).
    /// Answers in [`Self::ready`] and [`Self::skipped`].
    pub fn complete(&mut self, i: usize, taken: Option<&[u32]>) -> RunResult<()> {
        let i = self.check_node(i)?;
        if let Some(taken) = taken {
            for &e in taken {
                self.check_edge(e as usize)?;
            }
        }
        self.begin();
        self.status[i] = COMPLETED;
        let w = self.wave[i].saturating_add(1);
        let fallback = self.fallback_of(i);
        let inherits = i < self.base() && !self.compiled.graph.inherited.row(i).is_empty();
        if !self.loop_controller(i) && fallback == NONE && !inherits {
            return self.complete_plain(i, taken, w);
        }

        // The twin's taken_pairs: (source, target) of every taken edge. Only graph nodes get
        // here (added nodes have no loop, fallback or inherited edges).
        let mut pairs = std::mem::take(&mut self.pairs);
        pairs.clear();
        match taken {
            None => {
                for &e in self.compiled.graph.out_edges.row(i) {
                    pairs.push(self.edge_ends(e as usize));
                }
            }
            Some(taken) => {
                for &e in taken {
                    pairs.push(self.edge_ends(e as usize));
                }
            }
        }
        pairs.sort_unstable();

        let compiled = &*self.compiled;
        let g = &compiled.graph;
        let mut continuing = false;
        let loop_start = g.loop_start.get(i).copied().unwrap_or(NONE);
        if g.loop_controller[i] && loop_start != NONE {
            continuing = pairs.iter().any(|&(_, t)| t == loop_start);
            if continuing {
                for &b in g.loop_body.row(i) {
                    let b = b as usize;
                    if matches!(self.status[b], COMPLETED | SKIPPED | PENDING) {
                        self.status[b] = PENDING;
                        self.arrived.pop(b);
                        self.resolved.pop(b);
                        // Predecessors added in an earlier iteration (batch workers) are gone.
                        self.extra_preds.pop(b);
                    }
                }
            }
        }
        let original = {
            let slot = &mut self.fallback_for[i];
            let original = (slot.0 != 0).then_some(slot.1);
            slot.0 = 0;
            original
        };
        let work = &mut self.work;
        let mut push = |s: u32, t: u32| {
            let taken = pairs.binary_search(&(s, t)).is_ok();
            if !continuing {
                work.push_back((t, s, taken));
            } else if taken {
                // The controller runs again: its exits are decided on a later iteration.
                work.push_back((t, s, true));
            }
        };
        for &t in g.own_targets.row(i) {
            push(i as u32, t);
        }
        if let Some(original) = original {
            for &(s, t) in g.inherited.row(i) {
                if s == original {
                    push(s, t);
                }
            }
        }
        if fallback != NONE {
            work.push_back((fallback, i as u32, false));
        }
        self.pairs = pairs;
        self.propagate(w)
    }

    /// The twin's fast path: plain arrivals resolved inline, the rest through `propagate`.
    fn complete_plain(&mut self, i: usize, taken: Option<&[u32]>, w: i64) -> RunResult<()> {
        let mut taken_targets = std::mem::take(&mut self.scratch);
        taken_targets.clear();
        if let Some(taken) = taken {
            for &e in taken {
                let (s, t) = self.edge_ends(e as usize);
                if s as usize == i {
                    taken_targets.push(t);
                }
            }
            taken_targets.sort_unstable();
        }
        let i32 = i as u32;
        let base = self.base();
        let compiled = &*self.compiled;
        let g = &compiled.graph;
        let targets: &[u32] = if i < base {
            g.own_targets.row(i)
        } else {
            &self.dynamic[i - base].targets
        };
        let mut result = Ok(());
        for &t in targets {
            let tu = t as usize;
            if taken.is_some() && taken_targets.binary_search(&t).is_err() {
                self.work.push_back((t, i32, false));
                continue;
            }
            if self.status[tu] != PENDING {
                self.work.push_back((t, i32, true));
                continue;
            }
            let plain = if tu < base {
                (g.join_any[tu] && !g.back_preds.row(tu).contains(&i32))
                    || (g.preds.row(tu) == [i32] && !self.extra_preds.contains_key(tu))
            } else {
                self.dynamic[tu - base].preds == [i32] && !self.extra_preds.contains_key(tu)
            };
            if !plain {
                self.work.push_back((t, i32, true));
                continue;
            }
            if let Err(err) = Self::make_ready_in(
                &mut self.status,
                &mut self.wave,
                &mut self.arrived,
                &mut self.resolved,
                &mut self.ready,
                self.max_waves,
                tu,
                w,
            ) {
                result = Err(err);
                break;
            }
        }
        self.scratch = taken_targets;
        result?;
        if self.work.is_empty() {
            Ok(())
        } else {
            self.propagate(w)
        }
    }

    /// Node `i` failed and its fallback node takes over (and then its edges).
    pub fn complete_with_fallback(&mut self, i: usize) -> RunResult<()> {
        let i = self.check_node(i)?;
        let fallback = self.fallback_of(i);
        if fallback == NONE {
            return Err(CoreError::InvalidValue(format!("node {i} has no fallback")));
        }
        self.begin();
        self.status[i] = COMPLETED;
        let slot = &mut self.fallback_for[fallback as usize];
        if slot.0 == 0 {
            slot.0 = self.fallback_next;
            self.fallback_next += 1;
        }
        slot.1 = i as u32;
        self.work.push_back((fallback, i as u32, true));
        self.propagate(self.wave[i].saturating_add(1))
    }

    /// Like [`Self::complete`], for a node that is awaiting.
    pub fn resume(&mut self, i: usize, taken: Option<&[u32]>) -> RunResult<()> {
        let i = self.check_node(i)?;
        if self.status[i] != AWAITING {
            let mut message = Text::from("Cannot resume: Node '");
            if i < self.base() {
                message.push_text(self.compiled.names.get(i));
            } else {
                message.push_str(&format!("#{i}"));
            }
            message.push_str("' is not in an awaiting state.");
            return Err(CoreError::Resume(message));
        }
        self.complete(i, taken)
    }

    /// Adds `workers` nodes (predecessor `pred`; successors `gather` and the continuation) and,
    /// with `continuation`, one node that waits for all of them (successor `gather`). They
    /// become predecessors of `gather`. Returns the new indices, workers first.
    pub fn add_dynamic_nodes(
        &mut self,
        pred: usize,
        gather: Option<usize>,
        workers: usize,
        continuation: bool,
    ) -> CoreResult<Vec<u32>> {
        let pred = self.check_node(pred)? as u32;
        if let Some(g) = gather {
            self.check_node(g)?;
        }
        let first = self.status.len();
        let added = workers.saturating_add(usize::from(continuation));
        if first.saturating_add(added) >= MAX_ITEMS
            || self
                .edge_count()
                .saturating_add(workers.saturating_mul(2).saturating_add(1))
                >= MAX_ITEMS
        {
            return Err(CoreError::InvalidValue(format!(
                "a run may have at most {MAX_ITEMS} nodes and edges"
            )));
        }
        let cont = continuation.then_some((first + workers) as u32);
        let new: Vec<u32> = (first as u32..(first + added) as u32).collect();
        self.grow(first + added);
        for _ in &new {
            self.dynamic.push(DynamicNode {
                preds: vec![pred],
                ..DynamicNode::default()
            });
        }
        let gather_target = gather.map(|g| g as u32);
        for w in first..first + workers {
            let targets: Vec<u32> = gather_target.into_iter().chain(cont).collect();
            self.wire(w, targets);
        }
        if let Some(cont) = cont {
            let base = self.base();
            self.dynamic[cont as usize - base].preds = if workers > 0 {
                (first as u32..(first + workers) as u32).collect()
            } else {
                vec![pred]
            };
            self.wire(cont as usize, gather_target.into_iter().collect());
        }
        if let Some(g) = gather {
            let set = self.extra_preds.entry(g);
            set.extend_from_slice(&new);
            set.sort_unstable();
            set.dedup();
        }
        Ok(new)
    }

    fn grow(&mut self, n: usize) {
        self.status.resize(n, PENDING);
        self.wave.resize(n, 0);
        self.arrived.grow(n);
        self.resolved.grow(n);
        self.extra_preds.grow(n);
        self.fallback_for.resize(n, (0, 0));
    }

    fn wire(&mut self, node: usize, targets: Vec<u32>) {
        let first_edge = self.edge_count();
        let mut edges = Vec::with_capacity(targets.len());
        for (k, &t) in targets.iter().enumerate() {
            edges.push((first_edge + k) as u32);
            self.dyn_edge_source.push(node as u32);
            self.dyn_edge_target.push(t);
        }
        let base = self.base();
        let entry = &mut self.dynamic[node - base];
        entry.out_edges = edges;
        entry.targets = targets;
    }

    /// `pred` arrives at `nodes` (freshly added nodes): answers in [`Self::ready`].
    pub fn arrive(&mut self, nodes: &[u32], pred: usize) -> RunResult<()> {
        let pred = self.check_node(pred)?;
        for &t in nodes {
            self.check_node(t as usize)?;
        }
        self.begin();
        for &t in nodes {
            self.work.push_back((t, pred as u32, true));
        }
        self.propagate(self.wave[pred].saturating_add(1))
    }

    // ---- the rule ----

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn make_ready_in(
        status: &mut [u8],
        wave: &mut [i64],
        arrived: &mut OrderedSets,
        resolved: &mut OrderedSets,
        ready: &mut Vec<u32>,
        max_waves: i64,
        t: usize,
        w: i64,
    ) -> RunResult<()> {
        if w > max_waves {
            return Err(CoreError::InfiniteLoop(INFINITE_LOOP.into()));
        }
        status[t] = READY;
        wave[t] = w;
        if arrived.present > 0 {
            arrived.pop(t);
            resolved.pop(t);
        }
        ready.push(t as u32);
        Ok(())
    }

    fn make_ready(&mut self, t: usize, w: i64) -> RunResult<()> {
        Self::make_ready_in(
            &mut self.status,
            &mut self.wave,
            &mut self.arrived,
            &mut self.resolved,
            &mut self.ready,
            self.max_waves,
            t,
            w,
        )
    }

    /// Whether `t` still waits for a predecessor to resolve.
    fn waiting_on(&self, t: usize) -> bool {
        let preds = self.preds(t);
        let extra = self.extra_preds.get(t).unwrap_or(&[]);
        let Some(resolved) = self.resolved.get(t) else {
            return !preds.is_empty() || !extra.is_empty();
        };
        if resolved.len() < preds.len() || resolved.len() < extra.len() {
            return true;
        }
        let has = |p: &u32| resolved.binary_search(p).is_ok();
        !(preds.iter().all(has) && extra.iter().all(has))
    }

    /// Processes the queued (target, pred, arrived?) resolutions in order; skips fan out through
    /// the queue.
    fn propagate(&mut self, w: i64) -> RunResult<()> {
        let base = self.base();
        while let Some((t, p, arrived)) = self.work.pop_front() {
            let tu = t as usize;
            let st = self.status[tu];
            let loop_controller = self.loop_controller(tu);
            if st != PENDING {
                if arrived && st == COMPLETED && loop_controller {
                    self.make_ready(tu, w)?;
                }
                continue;
            }
            if tu < base && self.back_preds(tu).contains(&p) {
                if arrived {
                    self.arrived.add(tu, p);
                    if loop_controller || self.join_any(tu) || !self.waiting_on(tu) {
                        self.make_ready(tu, w)?;
                    }
                }
                continue;
            }
            if arrived {
                if loop_controller || self.join_any(tu) {
                    self.make_ready(tu, w)?;
                    continue;
                }
                self.arrived.add(tu, p);
            }
            self.resolved.add(tu, p);
            if self.waiting_on(tu) {
                continue;
            }
            if self.arrived.get(tu).is_some() {
                self.make_ready(tu, w)?;
            } else {
                self.status[tu] = SKIPPED;
                self.skipped.push(t);
                let count = self.own_targets(tu).len();
                for k in 0..count {
                    let target = self.own_targets(tu)[k];
                    self.work.push_back((target, t, false));
                }
                let fb = self.fallback_of(tu);
                if fb != NONE {
                    self.work.push_back((fb, t, false));
                }
            }
        }
        Ok(())
    }

    // ---- snapshots ----

    /// The state, as the twin's `snapshot()` lays it out.
    pub fn snapshot(&self) -> Snapshot {
        let base = self.base();
        let mut fallback_keys: Vec<u32> = (0..self.fallback_for.len() as u32)
            .filter(|&f| self.fallback_for[f as usize].0 != 0)
            .collect();
        fallback_keys.sort_unstable_by_key(|&f| self.fallback_for[f as usize].0);
        let non_empty = |sets: &OrderedSets| -> Vec<(u32, Vec<u32>)> {
            sets.items()
                .into_iter()
                .filter(|(_, ps)| !ps.is_empty())
                .map(|(t, ps)| (t, ps.to_vec()))
                .collect()
        };
        Snapshot {
            graph: self.compiled.content_hash.clone(),
            status: self.status.clone(),
            wave: self.wave.clone(),
            arrived: non_empty(&self.arrived),
            resolved: non_empty(&self.resolved),
            fallback_for: fallback_keys
                .into_iter()
                .map(|f| (f, self.fallback_for[f as usize].1))
                .collect(),
            dynamic: (base..self.status.len())
                .map(|i| {
                    let node = &self.dynamic[i - base];
                    let mut preds = node.preds.clone();
                    preds.sort_unstable();
                    preds.dedup();
                    (preds, node.targets.clone())
                })
                .collect(),
            extra_preds: self
                .extra_preds
                .items()
                .into_iter()
                .map(|(t, ps)| (t, ps.to_vec()))
                .collect(),
        }
    }

    /// Continues from a snapshot of a run of the same graph. The caller has checked its indices
    /// against `self.node_count() + snapshot.dynamic.len()` nodes (they are checked again here)
    /// and its hash (see [`Self::check_snapshot_graph`]).
    pub fn restore(&mut self, snapshot: &Snapshot) -> CoreResult<()> {
        self.check_snapshot_graph(&snapshot.graph)?;
        let first = self.status.len();
        let count = first + snapshot.dynamic.len();
        let node_ok = |i: u32| (i as usize) < count;
        let nodes_ok = |v: &[u32]| v.iter().all(|&i| node_ok(i));
        let valid = count < MAX_ITEMS
            && snapshot
                .dynamic
                .iter()
                .all(|(p, t)| nodes_ok(p) && nodes_ok(t))
            && snapshot.status.len() <= count
            && snapshot.status.iter().all(|&s| s <= AWAITING)
            && snapshot.wave.len() <= count
            && snapshot.wave.iter().all(|&w| (0..MAX_WAVE).contains(&w))
            && [&snapshot.arrived, &snapshot.resolved, &snapshot.extra_preds]
                .iter()
                .all(|sets| sets.iter().all(|(t, ps)| node_ok(*t) && nodes_ok(ps)))
            && snapshot
                .fallback_for
                .iter()
                .all(|&(f, o)| node_ok(f) && node_ok(o));
        if !valid {
            return Err(CoreError::InvalidValue(
                "snapshot: an index or status is out of range".into(),
            ));
        }
        if !snapshot.dynamic.is_empty() {
            self.grow(count);
            for (k, (preds, targets)) in snapshot.dynamic.iter().enumerate() {
                let mut preds = preds.clone();
                preds.sort_unstable();
                preds.dedup();
                self.dynamic.push(DynamicNode {
                    preds,
                    ..DynamicNode::default()
                });
                self.wire(first + k, targets.clone());
            }
        }
        self.status[..snapshot.status.len()].copy_from_slice(&snapshot.status);
        self.wave[..snapshot.wave.len()].copy_from_slice(&snapshot.wave);
        let fill = |sets: &mut OrderedSets, items: &[(u32, Vec<u32>)]| {
            sets.clear();
            for (t, ps) in items {
                let set = sets.entry(*t as usize);
                set.clear();
                set.extend_from_slice(ps);
                set.sort_unstable();
                set.dedup();
            }
        };
        fill(&mut self.arrived, &snapshot.arrived);
        fill(&mut self.resolved, &snapshot.resolved);
        fill(&mut self.extra_preds, &snapshot.extra_preds);
        for slot in &mut self.fallback_for {
            *slot = (0, 0);
        }
        self.fallback_next = 1;
        for &(f, o) in &snapshot.fallback_for {
            let slot = &mut self.fallback_for[f as usize];
            if slot.0 == 0 {
                slot.0 = self.fallback_next;
                self.fallback_next += 1;
            }
            slot.1 = o;
        }
        for s in &mut self.status {
            if *s == READY || *s == RUNNING {
                *s = PENDING;
            }
        }
        Ok(())
    }

    /// `ResumeError` unless `hash` is the graph's content hash.
    pub fn check_snapshot_graph(&self, hash: &str) -> CoreResult<()> {
        if hash == self.compiled.content_hash {
            Ok(())
        } else {
            Err(CoreError::Resume(Text::from(
                "Cannot resume: the run was paused with a different version of this blueprint.",
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value as Json;
    use std::sync::Arc;

    fn compile_text(text: &str) -> CoreResult<Arc<Compiled>> {
        match compile_json(text.as_bytes(), false)? {
            FromJson::Compiled(c) => Ok(Arc::from(c)),
            FromJson::NeedsPython => panic!("left to Python: {text}"),
        }
    }

    fn golden() -> Vec<Json> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/scheduler_golden.json"
        );
        let text = std::fs::read_to_string(path).expect("golden file is readable");
        let cases: Json = serde_json::from_str(&text).expect("golden file is JSON");
        cases.as_array().expect("a list").clone()
    }

    /// Replays one golden case; returns the recorded steps and the final statuses, as the Python
    /// test builds them.
    fn replay(case: &Json) -> (Vec<Json>, serde_json::Map<String, Json>) {
        let compiled = compile_text(&case["blueprint"].to_string()).expect("compiles");
        let max_waves = case["max_waves"].as_i64().expect("max_waves");
        let mut state = RunState::new(compiled.clone(), max_waves);
        let name = |i: u32| -> String {
            if (i as usize) < compiled.names.len() {
                String::from_utf8(compiled.names.get(i as usize).to_vec()).unwrap()
            } else {
                format!("#{i}")
            }
        };
        let index = |node: &str| -> usize {
            match node.strip_prefix('#') {
                Some(n) => n.parse().unwrap(),
                None => compiled.names.index_of(node.as_bytes()).unwrap() as usize,
            }
        };
        let names = |v: &[u32]| Json::from(v.iter().map(|&i| name(i)).collect::<Vec<_>>());
        let mut out = Vec::new();
        for step in case["steps"].as_array().unwrap() {
            let op = step["op"].as_str().unwrap();
            let mut rec: serde_json::Map<String, Json> = step
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| {
                    !["ready", "skipped", "new", "error", "message"].contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let taken: Option<Vec<u32>> = step.get("taken").and_then(|t| {
                t.as_array()
                    .map(|a| a.iter().map(|e| e.as_u64().unwrap() as u32).collect())
            });
            let node = || index(step["node"].as_str().unwrap());
            let result: CoreResult<()> = (|| {
                match op {
                    "start" => {
                        state.start()?;
                        rec.insert("ready".into(), names(state.ready()));
                        rec.insert("skipped".into(), Json::Array(vec![]));
                    }
                    "complete" | "resume" => {
                        if op == "complete" {
                            state.complete(node(), taken.as_deref())?;
                        } else {
                            state.resume(node(), taken.as_deref())?;
                        }
                        rec.insert("ready".into(), names(state.ready()));
                        rec.insert("skipped".into(), names(state.skipped()));
                    }
                    "complete_with_fallback" => {
                        state.complete_with_fallback(node())?;
                        rec.insert("ready".into(), names(state.ready()));
                        rec.insert("skipped".into(), names(state.skipped()));
                    }
                    "fail" => state.fail(node())?,
                    "suspend" => state.suspend(node())?,
                    "running" => state.mark_running(node())?,
                    "add_dynamic" => {
                        let gather = step
                            .get("gather")
                            .and_then(|g| g.as_str())
                            .filter(|g| !g.is_empty())
                            .map(index);
                        let new = state.add_dynamic_nodes(
                            index(step["pred"].as_str().unwrap()),
                            gather,
                            step["workers"].as_u64().unwrap() as usize,
                            step["continuation"].as_bool().unwrap(),
                        )?;
                        rec.insert("new".into(), Json::from(new));
                    }
                    "arrive" => {
                        let nodes: Vec<u32> = step["nodes"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|n| n.as_u64().unwrap() as u32)
                            .collect();
                        state.arrive(&nodes, index(step["pred"].as_str().unwrap()))?;
                        rec.insert("ready".into(), names(state.ready()));
                    }
                    other => panic!("unknown op {other}"),
                }
                Ok(())
            })();
            if let Err(err) = result {
                let class = match err {
                    CoreError::InfiniteLoop(_) => "InfiniteLoopError",
                    CoreError::Resume(_) => "ResumeError",
                    ref other => panic!("unexpected error {other:?}"),
                };
                rec.insert("error".into(), Json::from(class));
                rec.insert("message".into(), Json::from(err.to_string()));
            }
            out.push(Json::Object(rec));
        }
        let final_status = state
            .statuses()
            .iter()
            .enumerate()
            .map(|(i, &s)| (name(i as u32), Json::from(STATUS_NAMES[s as usize])))
            .collect();
        (out, final_status)
    }

    #[test]
    fn golden_scheduler_cases() {
        let cases = golden();
        assert!(cases.len() >= 18, "golden file lost cases");
        for case in &cases {
            let (steps, final_status) = replay(case);
            let name = case["name"].as_str().unwrap();
            assert_eq!(&Json::Array(steps), &case["steps"], "steps of {name:?}");
            assert_eq!(
                &Json::Object(final_status),
                &case["final_status"],
                "final status of {name:?}"
            );
        }
    }

    #[test]
    fn golden_snapshots_restore_to_the_same_state() {
        for case in golden() {
            let compiled = compile_text(&case["blueprint"].to_string()).unwrap();
            let mut state = RunState::new(compiled.clone(), 10_000);
            state.start().unwrap();
            let mut ready = state.ready().to_vec();
            let mut rounds = 0;
            while let Some(i) = ready.pop() {
                rounds += 1;
                if rounds > 50 || state.complete(i as usize, None).is_err() {
                    break;
                }
                ready.extend_from_slice(state.ready());
                let snap = state.snapshot();
                let mut other = RunState::new(compiled.clone(), 10_000);
                other.restore(&snap).unwrap();
                let again = other.snapshot();
                // READY/RUNNING come back PENDING.
                let mut expected = snap.clone();
                for s in &mut expected.status {
                    if *s == READY || *s == RUNNING {
                        *s = PENDING;
                    }
                }
                assert_eq!(again, expected);
            }
        }
    }

    #[test]
    fn structural_problems_are_left_to_python() {
        for text in [
            r#"{"id":"g","nodes":[{"id":"A","uses":"x"},{"id":"A","uses":"x"}],"edges":[]}"#,
            r#"{"id":"g","nodes":[{"id":"A","uses":"x"}],"edges":[{"source":"A","target":"Z"}]}"#,
            r#"{"id":"g","nodes":[{"id":"A","uses":"x","config":{"fallback":"A"}}]}"#,
            r#"{"id":"g","nodes":[{"id":"A","uses":"x","config":{"fallback":"B"}}]}"#,
            r#"{"id":"g","nodes":[{"id":1,"uses":"x"}]}"#,
            r#"{"id":"g","nodes":[{"id":"A"}]}"#,
            r#"{"id":"g","nodes":{"A":{"id":"A","uses":"x"}}}"#,
            r#"{"id":"g","nodes":[],"x":123456789012345678901234567890}"#,
            r#"{"id":"g","nodes":[],"x":NaN}"#,
            r#"{"id":"g","nodes":[],"x":1e16}"#,
            r#"{"id":"g","nodes":[],"x":"\ud800"}"#,
            r#"[1]"#,
            r#"{"id":"g""#,
        ] {
            assert!(
                matches!(
                    compile_json(text.as_bytes(), false),
                    Ok(FromJson::NeedsPython)
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn compile_errors_have_the_twin_messages() {
        let err = compile_text(r#"{"id":"g","nodes":[{"id":"L","uses":"loop-controller"}]}"#)
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("nodes[0]: Loop 'L' has no continue edge to start node."),
            "{err}"
        );
        let text = r#"{"id":"w","nodes":[{"id":"A","uses":"x"},{"id":"B","uses":"x"}],
                       "edges":[{"source":"A","target":"B"},{"source":"B","target":"A"}]}"#;
        let err = match compile_json(text.as_bytes(), true) {
            Err(err) => err,
            Ok(_) => panic!("strict mode accepted a cycle"),
        };
        assert_eq!(
            err.to_string(),
            "Workflow 'w' failed strictness check: Cycles are not allowed."
        );
        assert!(matches!(err, CoreError::InBlueprint { .. }));
    }

    #[test]
    fn queries_and_analysis() {
        let c = compile_text(
            r#"{"id":"g","metadata":{},"nodes":[
                {"id":"S","uses":"x"},
                {"id":"F","uses":"x","config":{"fallback":"FB","joinStrategy":"any"}},
                {"id":"FB","uses":"x"},{"id":"E","uses":"x"},{"id":"C1","uses":"x"},
                {"id":"C2","uses":"x"},{"id":"island","uses":"x"}],
               "edges":[{"source":"S","target":"F"},{"source":"F","target":"E","action":"ok"},
                {"source":"F","target":"C1","condition":"x"},{"source":"C1","target":"C2"},
                {"source":"C2","target":"C1"}]}"#,
        )
        .unwrap();
        let g = &c.graph;
        assert_eq!(g.start(), &[0, 6]);
        assert_eq!(g.out_edges(1).unwrap(), &[1, 2]);
        assert_eq!(g.out_edges(2).unwrap(), &[1, 2]);
        assert_eq!(g.edge(2).unwrap(), (1, 4, true));
        assert_eq!(g.preds(4).unwrap(), &[1]);
        assert_eq!(g.back_preds(4).unwrap(), &[5]);
        assert_eq!(g.fallback(1).unwrap(), Some(2));
        assert!(g.preds(7).is_err() && g.edge(5).is_err());
        let groups = c.successors_by_action(1).unwrap().unwrap();
        assert_eq!(groups, vec![(&b"ok"[..], vec![1]), (&b""[..], vec![2])]);
        assert_eq!(g.analysis().start, vec![0, 2, 6]);
        assert_eq!(g.analysis().cycles, vec![vec![4, 5, 4]]);
        let extras = g.extras();
        assert_eq!(extras.cyclic_components, vec![vec![4, 5]]);
        assert!(extras.unreachable.is_empty());
        let pos = |x: u32| {
            extras
                .topological_order
                .iter()
                .position(|&y| y == x)
                .unwrap()
        };
        assert!(pos(0) < pos(1) && pos(1) < pos(3));
    }

    #[test]
    fn lua_encoding_of_the_fallback_case() {
        let case = &golden()[8];
        let c = compile_text(&case["blueprint"].to_string()).unwrap();
        let args = c.lua_encoding(|_, _| Ok::<(), ()>(())).unwrap();
        assert_eq!(args[2], b"0");
        assert_eq!(args[7], b"[0,0,-1,-1,[1],[],[[1,1,3,null,0]],[]]");
        let meta = String::from_utf8(args[1].clone()).unwrap();
        assert!(meta.starts_with(r#"{"id":"g","hash":""#), "{meta}");
        assert!(
            meta.ends_with(r#"","nodes":4,"edges":2,"start":[0]}"#),
            "{meta}"
        );
    }

    #[test]
    fn canonical_text_and_hash() {
        let text = r#"{"nodes":[{"uses":"x","id":"A","params":{"b":1,"a":2.0,"c":[1.5,1.5e-7,-0.0,"\u00e9\n\u0001",{"z":[],"y":{}}]}}],"id":"g","edges":[],"metadata":{}}"#;
        let canonical = canonical_json_text(text.as_bytes()).unwrap();
        assert_eq!(
            std::str::from_utf8(&canonical).unwrap(),
            "{\"edges\":[],\"id\":\"g\",\"metadata\":{},\"nodes\":[{\"id\":\"A\",\"params\":{\"a\":2,\"b\":1,\"c\":[1.5,1.5e-07,0,\"\u{e9}\\n\\u0001\",{\"y\":{},\"z\":[]}]},\"uses\":\"x\"}]}"
        );
        let c = compile_text(text).unwrap();
        assert_eq!(c.content_hash, sha256_hex(&canonical));
        // The twin: sha256(canonical_json(json.loads(text)).encode()).
        assert_eq!(
            c.content_hash,
            "7bcaa12fec3a0f2cf7419df68b29a1c2cf89dec5f62c40117bc7c65aaae84e1f"
        );
        // Key order and float-vs-int spelling do not change the version.
        let same = compile_text(r#"{"id":"g","metadata":{},"edges":[],"nodes":[{"id":"A","uses":"x","params":{"a":2,"c":[1.5,15E-8,0,"é\n\u0001",{"y":{},"z":[]}],"b":1}}]}"#).unwrap();
        assert_eq!(same.content_hash, c.content_hash);
        // Duplicate keys: the last value wins.
        let dup = canonical_json_text(br#"{"b":1,"a":[{"k":1,"k":2}],"b":3}"#).unwrap();
        assert_eq!(dup, br#"{"a":[{"k":2}],"b":3}"#);
        assert_eq!(
            canonical_json_text(b"[1, 2.50, true, null, \"\\u2028\"]").unwrap(),
            "[1,2.5,true,null,\"\u{2028}\"]".as_bytes()
        );
        assert_eq!(canonical_json_text(b"[]").unwrap(), b"[]");
        assert_eq!(canonical_json_text(b"{}").unwrap(), b"{}");
        for deferred in [
            &b"[1e16]"[..],
            b"[NaN]",
            b"[123456789012345678901234567890]",
            b"[1e400]",
            b"{",
        ] {
            assert_eq!(canonical_json_text(deferred), None);
        }
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn json_string_escapes_match_python() {
        let mut out = Vec::new();
        write_json_str(
            &mut out,
            "a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}é\u{2028}".as_bytes(),
        );
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f\u{7f}é\u{2028}\""
        );
    }

    #[test]
    fn bad_indices_are_errors_not_panics() {
        let c = compile_text(&golden()[0]["blueprint"].to_string()).unwrap();
        let mut s = RunState::new(c, 100);
        assert_eq!(
            s.complete(3, None).unwrap_err().to_string(),
            "node index 3 out of range"
        );
        assert_eq!(
            s.complete(0, Some(&[7])).unwrap_err().to_string(),
            "edge index 7 out of range"
        );
        assert!(s.arrive(&[9], 0).is_err());
        assert!(s.add_dynamic_nodes(0, Some(9), 1, false).is_err());
        assert!(s.complete_with_fallback(0).is_err());
        assert_eq!(s.statuses(), &[PENDING; 3]);
        let bad = Snapshot {
            graph: s.compiled().content_hash.clone(),
            status: vec![9],
            ..Snapshot::default()
        };
        assert!(s.restore(&bad).is_err());
        let wrong = Snapshot::default();
        assert!(matches!(s.restore(&wrong), Err(CoreError::Resume(_))));
    }

    #[test]
    fn hundred_thousand_node_chain() {
        let n = 100_000;
        let mut text = String::from(r#"{"id":"chain","nodes":["#);
        for i in 0..n {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&format!(r#"{{"id":"n{i}","uses":"x"}}"#));
        }
        text.push_str(r#"],"edges":["#);
        for i in 0..n - 1 {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&format!(r#"{{"source":"n{i}","target":"n{}"}}"#, i + 1));
        }
        text.push_str("]}");
        let c = compile_text(&text).unwrap();
        assert_eq!(c.graph.start(), &[0]);
        assert_eq!(c.graph.extras().topological_order.last(), Some(&(n - 1)));
        let mut state = RunState::new(c, i64::from(n) + 1);
        state.start().unwrap();
        let mut steps = 0;
        while let Some(&i) = state.ready().first() {
            state.complete(i as usize, None).unwrap();
            steps += 1;
        }
        assert_eq!(steps, n);
    }
}
