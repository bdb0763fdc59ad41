//! Structural analysis of a workflow graph: start nodes, terminal nodes and cycles.
//!
//! This is a port of Flowcraft's `analyzeBlueprint` and must give exactly its results, including
//! the order of every list. Pure Rust: no Python here (the bindings live in `crate::py`).
//!
//! The graph is given as the declared node ids, in order (duplicates allowed), and the edges as
//! `(source, target)` pairs, in order (ids not declared are allowed). Ids are any `Eq + Hash` key,
//! so callers can pass `&str`, `String`, byte slices...
//!
//! * `start`: every entry of `node_ids`, in order, that is the target of no edge.
//! * `terminal`: every entry of `node_ids`, in order, that is the source of no edge.
//! * `cycles`: the cycles found by Flowcraft's depth-first search, in the order it finds them:
//!
//!   ```text
//!   adj[id] = [] for every declared id; for each edge in order: if source is declared, push target
//!   for each declared id in order, if not visited: visit(id, [])
//!   visit(node, path):
//!     visited += node; onStack += node; path.push(node)
//!     for n in adj[node] (none if node is undeclared):
//!       if n in onStack: cycles.push(path[path.indexOf(n)..] + [n])
//!       else if n not visited: visit(n, path)
//!     onStack -= node; path.pop()
//!   ```
//!
//!   Here the search is iterative (a chain of 100,000 nodes must not overflow the stack) and keeps
//!   the position of every on-stack node, so `path.indexOf(n)` is O(1). An undeclared target has
//!   no outgoing edges, so visiting it can neither report a cycle nor change what a later step
//!   sees: such edges are dropped from the search up front.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};

/// The result of [`analyze`], with nodes given as positions in the `node_ids` slice.
///
/// A start or terminal position is the entry itself (duplicates of an id are listed separately);
/// a node in a cycle is the position of the first entry with that id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Analysis {
    pub start: Vec<usize>,
    pub terminal: Vec<usize>,
    pub cycles: Vec<Vec<usize>>,
    pub node_count: usize,
    pub edge_count: usize,
}

impl Analysis {
    /// True when the graph has no cycle.
    pub fn is_dag(&self) -> bool {
        self.cycles.is_empty()
    }

    /// Replaces every position by a clone of the id at that position of `node_ids`, which must be
    /// the slice given to [`analyze`].
    pub fn resolve<K: Clone>(&self, node_ids: &[K]) -> GraphAnalysis<K> {
        let ids = |positions: &[usize]| positions.iter().map(|&i| node_ids[i].clone()).collect();
        GraphAnalysis {
            start_node_ids: ids(&self.start),
            terminal_node_ids: ids(&self.terminal),
            cycles: self.cycles.iter().map(|c| ids(c)).collect(),
            node_count: self.node_count,
            edge_count: self.edge_count,
            is_dag: self.is_dag(),
        }
    }
}

/// The result of [`analyze_graph`]: Flowcraft's `BlueprintAnalysis`, with the ids themselves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GraphAnalysis<K> {
    pub start_node_ids: Vec<K>,
    pub terminal_node_ids: Vec<K>,
    pub cycles: Vec<Vec<K>>,
    pub node_count: usize,
    pub edge_count: usize,
    pub is_dag: bool,
}

/// Analyzes the graph and returns the ids themselves (see the module docs).
pub fn analyze_graph<K: Eq + Hash + Clone>(node_ids: &[K], edges: &[(K, K)]) -> GraphAnalysis<K> {
    analyze(node_ids, edges).resolve(node_ids)
}

/// Marks a node that is not on the search path.
const OFF_PATH: usize = usize::MAX;

/// Analyzes the graph and returns positions in `node_ids` (see the module docs and [`Analysis`]).
///
/// Runs in O(nodes + edges + total length of the cycles reported), with no recursion.
pub fn analyze<K: Eq + Hash>(node_ids: &[K], edges: &[(K, K)]) -> Analysis {
    analyze_with_hasher(node_ids, edges, RandomState::new())
}

/// [`analyze`], hashing the ids with `hasher`.
pub fn analyze_with_hasher<K: Eq + Hash, S: BuildHasher>(
    node_ids: &[K],
    edges: &[(K, K)],
    hasher: S,
) -> Analysis {
    // Dense index of each distinct declared id, in order of first declaration.
    let mut dense: HashMap<&K, usize, S> =
        HashMap::with_capacity_and_hasher(node_ids.len(), hasher);
    // first[d]: position in node_ids of the first entry of distinct id d.
    let mut first: Vec<usize> = Vec::with_capacity(node_ids.len());
    // of_entry[i]: distinct id of entry i.
    let mut of_entry: Vec<usize> = Vec::with_capacity(node_ids.len());
    for (i, id) in node_ids.iter().enumerate() {
        let d = *dense.entry(id).or_insert_with(|| {
            first.push(i);
            first.len() - 1
        });
        of_entry.push(d);
    }
    let n = first.len();

    let mut has_incoming = vec![false; n];
    let mut has_outgoing = vec![false; n];
    // Edges between declared ids, as (source, target) dense indices, in edge order.
    let mut links: Vec<(usize, usize)> = Vec::with_capacity(edges.len());
    for (source, target) in edges {
        let t = dense.get(target).copied();
        if let Some(t) = t {
            has_incoming[t] = true;
        }
        if let Some(&s) = dense.get(source) {
            has_outgoing[s] = true;
            if let Some(t) = t {
                links.push((s, t));
            }
        }
    }
    drop(dense);

    let start = (0..node_ids.len())
        .filter(|&i| !has_incoming[of_entry[i]])
        .collect();
    let terminal = (0..node_ids.len())
        .filter(|&i| !has_outgoing[of_entry[i]])
        .collect();

    let cycles = find_cycles(n, &links)
        .into_iter()
        .map(|cycle| cycle.into_iter().map(|d| first[d]).collect())
        .collect();

    Analysis {
        start,
        terminal,
        cycles,
        node_count: node_ids.len(),
        edge_count: edges.len(),
    }
}

/// Flowcraft's cycle search over nodes `0..n` and `links` (in edge order), iteratively.
fn find_cycles(n: usize, links: &[(usize, usize)]) -> Vec<Vec<usize>> {
    // Adjacency in compressed form: the targets of node v are targets[offsets[v]..offsets[v + 1]],
    // in edge order (a stable counting sort of the links by source).
    let mut offsets = vec![0usize; n + 1];
    for &(s, _) in links {
        offsets[s + 1] += 1;
    }
    for v in 0..n {
        offsets[v + 1] += offsets[v];
    }
    let mut fill = offsets.clone();
    let mut targets = vec![0usize; links.len()];
    for &(s, t) in links {
        targets[fill[s]] = t;
        fill[s] += 1;
    }
    drop(fill);

    let mut visited = vec![false; n];
    // position[v]: index of v in `path` while v is on the stack, OFF_PATH otherwise.
    let mut position = vec![OFF_PATH; n];
    let mut path: Vec<usize> = Vec::new();
    // next[k]: the next entry of `targets` to look at for path[k].
    let mut next: Vec<usize> = Vec::new();
    let mut cycles = Vec::new();

    for root in 0..n {
        if visited[root] {
            continue;
        }
        visited[root] = true;
        position[root] = 0;
        path.push(root);
        next.push(offsets[root]);

        while let Some(&node) = path.last() {
            let top = path.len() - 1;
            let end = offsets[node + 1];
            let mut descended = false;
            while next[top] < end {
                let target = targets[next[top]];
                next[top] += 1;
                let at = position[target];
                if at != OFF_PATH {
                    let mut cycle = Vec::with_capacity(path.len() - at + 1);
                    cycle.extend_from_slice(&path[at..]);
                    cycle.push(target);
                    cycles.push(cycle);
                } else if !visited[target] {
                    visited[target] = true;
                    position[target] = path.len();
                    path.push(target);
                    next.push(offsets[target]);
                    descended = true;
                    break;
                }
            }
            if !descended {
                position[node] = OFF_PATH;
                path.pop();
                next.pop();
            }
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    type Expected<'a> = GraphAnalysis<&'a str>;

    fn run<'a>(nodes: &[&'a str], edges: &[(&'a str, &'a str)]) -> Expected<'a> {
        analyze_graph(nodes, edges)
    }

    fn cycles(c: &[&[&'static str]]) -> Vec<Vec<&'static str>> {
        c.iter().map(|c| c.to_vec()).collect()
    }

    #[test]
    fn empty_graph() {
        let got = run(&[], &[]);
        assert_eq!(
            got,
            GraphAnalysis {
                start_node_ids: vec![],
                terminal_node_ids: vec![],
                cycles: vec![],
                node_count: 0,
                edge_count: 0,
                is_dag: true,
            }
        );
    }

    #[test]
    fn two_node_cycle() {
        let got = run(&["A", "B"], &[("A", "B"), ("B", "A")]);
        assert_eq!(got.cycles, cycles(&[&["A", "B", "A"]]));
        assert!(got.start_node_ids.is_empty());
        assert!(got.terminal_node_ids.is_empty());
        assert!(!got.is_dag);
    }

    #[test]
    fn three_node_cycle_and_self_loop() {
        let got = run(&["A", "B", "C"], &[("A", "B"), ("B", "C"), ("C", "A")]);
        assert_eq!(got.cycles, cycles(&[&["A", "B", "C", "A"]]));
        let got = run(&["A"], &[("A", "A")]);
        assert_eq!(got.cycles, cycles(&[&["A", "A"]]));
    }

    #[test]
    fn duplicate_edges_give_duplicate_cycles() {
        let got = run(&["A", "B"], &[("A", "B"), ("B", "A"), ("B", "A")]);
        assert_eq!(got.cycles, cycles(&[&["A", "B", "A"], &["A", "B", "A"]]));
        assert_eq!(got.edge_count, 3);
    }

    #[test]
    fn cycle_slice_starts_at_the_target() {
        // A -> B -> C -> D -> B: the cycle starts at B, not at the root A.
        let got = run(
            &["A", "B", "C", "D"],
            &[("A", "B"), ("B", "C"), ("C", "D"), ("D", "B")],
        );
        assert_eq!(got.cycles, cycles(&[&["B", "C", "D", "B"]]));
        assert_eq!(got.start_node_ids, vec!["A"]);
    }

    #[test]
    fn undeclared_ids_and_duplicates() {
        // X is undeclared: A -> X makes A non-terminal, X -> B makes B non-start.
        let got = run(&["A", "B", "A"], &[("A", "X"), ("X", "B")]);
        assert_eq!(got.start_node_ids, vec!["A", "A"]);
        assert_eq!(got.terminal_node_ids, vec!["B"]);
        assert_eq!(got.node_count, 3);
        assert!(got.is_dag);
        // Self-loop on an undeclared id is not a cycle: it has no adjacency entry.
        let got = run(&["A"], &[("X", "X")]);
        assert!(got.is_dag);
        assert_eq!(got.start_node_ids, vec!["A"]);
    }

    #[test]
    fn positions_point_at_first_declaration() {
        let nodes = ["A", "B", "A"];
        let got = analyze(&nodes, &[("A", "B"), ("B", "A")]);
        assert_eq!(got.cycles, vec![vec![0, 1, 0]]);
        assert_eq!(got.start, Vec::<usize>::new());
    }

    #[test]
    fn works_with_owned_and_byte_keys() {
        let nodes: Vec<String> = vec!["é".into(), String::new(), " ".into()];
        let edges = vec![(String::from("é"), String::new())];
        let got = analyze_graph(&nodes, &edges);
        assert_eq!(got.start_node_ids, vec!["é".to_string(), " ".to_string()]);
        let nodes: Vec<&[u8]> = vec![b"a", b"b"];
        let got = analyze_graph(&nodes, &[(&b"b"[..], &b"a"[..])]);
        assert_eq!(got.start_node_ids, vec![&b"b"[..]]);
    }

    #[test]
    fn results_do_not_depend_on_the_hasher() {
        // Every id in one bucket: only equality tells them apart.
        #[derive(Default)]
        struct Constant;
        impl std::hash::Hasher for Constant {
            fn finish(&self) -> u64 {
                7
            }
            fn write(&mut self, _: &[u8]) {}
        }
        let hasher = std::hash::BuildHasherDefault::<Constant>::default();
        let nodes = ["A", "B", "C", "B"];
        let edges = [("A", "B"), ("B", "C"), ("C", "A"), ("X", "C")];
        assert_eq!(
            analyze_with_hasher(&nodes, &edges, hasher),
            analyze(&nodes, &edges)
        );
        assert_eq!(
            analyze(&nodes, &edges),
            Analysis {
                start: vec![],
                terminal: vec![],
                cycles: vec![vec![0, 1, 2, 0]],
                node_count: 4,
                edge_count: 4,
            }
        );
    }

    fn chain(n: usize) -> (Vec<String>, Vec<(String, String)>) {
        let nodes: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
        let edges = nodes
            .windows(2)
            .map(|w| (w[0].clone(), w[1].clone()))
            .collect();
        (nodes, edges)
    }

    #[test]
    fn long_chain_does_not_overflow_the_stack() {
        let (nodes, edges) = chain(100_000);
        let got = analyze(&nodes, &edges);
        assert_eq!(got.start, vec![0]);
        assert_eq!(got.terminal, vec![99_999]);
        assert!(got.cycles.is_empty());
        assert_eq!((got.node_count, got.edge_count), (100_000, 99_999));
    }

    #[test]
    fn long_cycle_does_not_overflow_the_stack() {
        let (nodes, mut edges) = chain(100_000);
        edges.push((nodes[99_999].clone(), nodes[0].clone()));
        let got = analyze(&nodes, &edges);
        assert!(got.start.is_empty());
        assert!(got.terminal.is_empty());
        let expected: Vec<usize> = (0..100_000).chain([0]).collect();
        assert_eq!(got.cycles, vec![expected]);
    }

    #[test]
    fn reversed_long_chain_is_searched_from_every_root() {
        // Declared in reverse order, so every node starts a search of its own that stops at the
        // already visited successor.
        let (mut nodes, edges) = chain(100_000);
        nodes.reverse();
        let got = analyze(&nodes, &edges);
        assert_eq!(got.start, vec![99_999]);
        assert_eq!(got.terminal, vec![0]);
        assert!(got.cycles.is_empty());
    }

    // ---- golden cases, shared with the Python tests -------------------------------------------

    fn strings(value: &serde_json::Value) -> Vec<String> {
        value
            .as_array()
            .expect("a JSON array")
            .iter()
            .map(|s| s.as_str().expect("a JSON string").to_owned())
            .collect()
    }

    #[test]
    fn golden_cases() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/analysis_golden.json"
        );
        let text = std::fs::read_to_string(path).expect("golden file is readable");
        let cases: serde_json::Value = serde_json::from_str(&text).expect("golden file is JSON");
        let cases = cases.as_array().expect("golden file is a list");
        assert!(cases.len() >= 17, "golden file lost cases");
        for case in cases {
            let name = case["name"].as_str().expect("case name");
            let nodes = strings(&case["node_ids"]);
            let edges: Vec<(String, String)> = case["edges"]
                .as_array()
                .expect("edges")
                .iter()
                .map(|e| {
                    let pair = strings(e);
                    assert_eq!(pair.len(), 2, "{name}: an edge is a pair");
                    (pair[0].clone(), pair[1].clone())
                })
                .collect();
            let want = &case["expected"];
            let expected = GraphAnalysis {
                start_node_ids: strings(&want["start_node_ids"]),
                terminal_node_ids: strings(&want["terminal_node_ids"]),
                cycles: want["cycles"]
                    .as_array()
                    .expect("cycles")
                    .iter()
                    .map(strings)
                    .collect(),
                node_count: want["node_count"].as_u64().expect("node_count") as usize,
                edge_count: want["edge_count"].as_u64().expect("edge_count") as usize,
                is_dag: want["is_dag"].as_bool().expect("is_dag"),
            };
            assert_eq!(
                analyze_graph(&nodes, &edges),
                expected,
                "golden case {name:?}"
            );
        }
    }
}
