// Layered layout of a blueprint's graph (left to right), computed in the browser.
//
// 1. Back edges (those that close a loop) are found by a depth-first search from the sources and
//    ignored for layering; they are drawn as dashed arcs below the nodes.
// 2. Layers: longest path from the sources over the remaining (acyclic) edges; a source whose
//    successors all sit further right moves next to them.
// 3. Edges spanning several layers get virtual points in every layer they cross.
// 4. Order within a layer: barycenter sweeps (down and up), keeping the order with fewest crossings.
// 5. Vertical positions: each node as close as possible to the mean of its neighbours in the
//    previous layer (isotonic regression keeps the order and the spacing), sweeping both ways.
//
// Pure functions only: no DOM here.

export const NODE_WIDTH = 172;
export const NODE_HEIGHT = 54;

/** Nodes and edges of a blueprint JSON (arrays, or objects whose values are taken). */
export function graphOf(blueprint) {
  const values = (v) => (Array.isArray(v) ? v : v && typeof v === 'object' ? Object.values(v) : []);
  const nodes = [];
  const seen = new Set();
  for (const node of values(blueprint && blueprint.nodes)) {
    if (!node || typeof node.id !== 'string' || seen.has(node.id)) continue;
    seen.add(node.id);
    nodes.push({ id: node.id, uses: typeof node.uses === 'string' ? node.uses : '' });
  }
  const edges = [];
  for (const edge of values(blueprint && blueprint.edges)) {
    if (!edge || !seen.has(edge.source) || !seen.has(edge.target)) continue;
    edges.push({
      source: edge.source,
      target: edge.target,
      action: typeof edge.action === 'string' ? edge.action : null,
      condition: typeof edge.condition === 'string' ? edge.condition : null,
    });
  }
  return { nodes, edges };
}

/** Indices of the edges that close a cycle (DFS from the sources, then from any node left). */
export function findBackEdges(ids, edges) {
  const out = new Map(ids.map((id) => [id, []]));
  const hasIncoming = new Set();
  edges.forEach((edge, i) => {
    out.get(edge.source).push(i);
    if (edge.source !== edge.target) hasIncoming.add(edge.target);
  });
  const state = new Map(); // undefined: unseen, 1: on the stack, 2: done
  const back = new Set();
  const visitOrder = [];
  const starts = [...ids.filter((id) => !hasIncoming.has(id)), ...ids];
  for (const start of starts) {
    if (state.has(start)) continue;
    const stack = [[start, 0]];
    state.set(start, 1);
    visitOrder.push(start);
    while (stack.length) {
      const frame = stack[stack.length - 1];
      const outgoing = out.get(frame[0]);
      if (frame[1] >= outgoing.length) {
        state.set(frame[0], 2);
        stack.pop();
        continue;
      }
      const i = outgoing[frame[1]++];
      const next = edges[i].target;
      const s = state.get(next);
      if (s === 1) back.add(i);
      else if (s === undefined) {
        state.set(next, 1);
        visitOrder.push(next);
        stack.push([next, 0]);
      }
    }
  }
  return { back, visitOrder };
}

/** Minimise sum (y_i - want_i)^2 subject to y_{i+1} - y_i >= gap_i (pool adjacent violators). */
function placeInOrder(want, gaps) {
  const n = want.length;
  const offset = new Array(n).fill(0);
  for (let i = 1; i < n; i++) offset[i] = offset[i - 1] + gaps[i - 1];
  const blocks = []; // {sum, count}
  for (let i = 0; i < n; i++) {
    blocks.push({ sum: want[i] - offset[i], count: 1 });
    while (blocks.length > 1) {
      const b = blocks[blocks.length - 1];
      const a = blocks[blocks.length - 2];
      if (a.sum / a.count <= b.sum / b.count) break;
      a.sum += b.sum;
      a.count += b.count;
      blocks.pop();
    }
  }
  const y = [];
  for (const block of blocks) for (let k = 0; k < block.count; k++) y.push(block.sum / block.count);
  return y.map((z, i) => z + offset[i]);
}

/** Number of crossing link pairs between adjacent layers. */
function crossings(layerOf, pos, links) {
  const byLayer = new Map();
  for (const [u, v] of links) {
    const l = layerOf.get(u);
    if (!byLayer.has(l)) byLayer.set(l, []);
    byLayer.get(l).push([pos.get(u), pos.get(v)]);
  }
  let total = 0;
  for (const pairs of byLayer.values())
    for (let i = 0; i < pairs.length; i++)
      for (let j = i + 1; j < pairs.length; j++) {
        const [a, b] = pairs[i];
        const [c, d] = pairs[j];
        if ((a - c) * (b - d) < 0) total++;
      }
  return total;
}

/**
 * Layout of `{nodes: [{id, uses}], edges: [{source, target, action, condition}]}`.
 * Returns {nodes: [{id, uses, x, y, width, height, layer}], edges: [{..., back, path, label}], width, height}
 * where x, y are a node's top-left corner and `path` is an SVG path string.
 */
export function layoutDag(graph, options = {}) {
  const W = options.nodeWidth ?? NODE_WIDTH;
  const H = options.nodeHeight ?? NODE_HEIGHT;
  const colGap = options.columnGap ?? 84;
  const rowGap = options.rowGap ?? 26;
  const margin = options.margin ?? 24;
  const dummyHeight = 10;

  const ids = graph.nodes.map((n) => n.id);
  const edges = graph.edges;
  const { back, visitOrder } = findBackEdges(ids, edges);

  // Longest-path layering over the forward edges (Kahn's order).
  const forward = edges.map((e, i) => i).filter((i) => !back.has(i) && edges[i].source !== edges[i].target);
  const preds = new Map(ids.map((id) => [id, []]));
  const succs = new Map(ids.map((id) => [id, []]));
  for (const i of forward) {
    succs.get(edges[i].source).push(edges[i].target);
    preds.get(edges[i].target).push(edges[i].source);
  }
  const indeg = new Map(ids.map((id) => [id, preds.get(id).length]));
  const queue = visitOrder.filter((id) => indeg.get(id) === 0);
  const topo = [];
  while (queue.length) {
    const u = queue.shift();
    topo.push(u);
    for (const v of succs.get(u)) {
      indeg.set(v, indeg.get(v) - 1);
      if (indeg.get(v) === 0) queue.push(v);
    }
  }
  const layer = new Map(ids.map((id) => [id, 0]));
  for (const u of topo) for (const v of succs.get(u)) layer.set(v, Math.max(layer.get(v), layer.get(u) + 1));
  for (const id of ids) {
    if (preds.get(id).length === 0 && succs.get(id).length > 0) {
      layer.set(id, Math.min(...succs.get(id).map((v) => layer.get(v))) - 1);
    }
  }
  const layerCount = ids.length ? Math.max(...ids.map((id) => layer.get(id))) + 1 : 0;

  // Virtual points for long edges; links between adjacent layers.
  const chains = new Map(); // edge index -> [source, dummy..., target]
  const links = [];
  const height = new Map(ids.map((id) => [id, H]));
  let dummies = 0;
  for (const i of forward) {
    const { source, target } = edges[i];
    const chain = [source];
    for (let l = layer.get(source) + 1; l < layer.get(target); l++) {
      const d = `\u0000dummy${dummies++}`;
      layer.set(d, l);
      height.set(d, dummyHeight);
      preds.set(d, []);
      succs.set(d, []);
      chain.push(d);
    }
    chain.push(target);
    for (let k = 0; k + 1 < chain.length; k++) links.push([chain[k], chain[k + 1]]);
    chains.set(i, chain);
  }
  const up = new Map([...layer.keys()].map((id) => [id, []]));
  const down = new Map([...layer.keys()].map((id) => [id, []]));
  for (const [u, v] of links) {
    down.get(u).push(v);
    up.get(v).push(u);
  }

  // Initial order: depth-first visit order, dummies after their chain's source.
  const layers = Array.from({ length: layerCount }, () => []);
  const rank = new Map(visitOrder.map((id, i) => [id, i]));
  for (const id of visitOrder) layers[layer.get(id)].push(id);
  for (const chain of chains.values())
    for (const d of chain.slice(1, -1)) {
      rank.set(d, rank.get(chain[0]) + 0.5);
      layers[layer.get(d)].push(d);
    }
  for (const row of layers) row.sort((a, b) => rank.get(a) - rank.get(b));

  const pos = new Map();
  const index = () => layers.forEach((row) => row.forEach((id, i) => pos.set(id, i)));
  index();
  let best = layers.map((row) => row.slice());
  let bestCrossings = crossings(layer, pos, links);
  for (let iter = 0; iter < 8 && bestCrossings > 0; iter++) {
    const downward = iter % 2 === 0;
    const order = downward ? [...layers.keys()].slice(1) : [...layers.keys()].reverse().slice(1);
    for (const l of order) {
      const neighbours = downward ? up : down;
      const bary = new Map();
      for (const id of layers[l]) {
        const ns = neighbours.get(id);
        bary.set(id, ns.length ? ns.reduce((s, n) => s + pos.get(n), 0) / ns.length : pos.get(id));
      }
      layers[l].sort((a, b) => bary.get(a) - bary.get(b) || pos.get(a) - pos.get(b));
      layers[l].forEach((id, i) => pos.set(id, i));
    }
    const c = crossings(layer, pos, links);
    if (c < bestCrossings) {
      bestCrossings = c;
      best = layers.map((row) => row.slice());
    }
  }
  for (let l = 0; l < layerCount; l++) layers[l] = best[l];
  index();

  // Vertical centres.
  const y = new Map();
  const gapsOf = (row) => row.slice(1).map((id, i) => (height.get(row[i]) + height.get(id)) / 2 + rowGap);
  for (const row of layers) {
    const ys = placeInOrder(
      row.map(() => 0),
      gapsOf(row),
    );
    row.forEach((id, i) => y.set(id, ys[i]));
  }
  const pass = (downward) => {
    const order = downward ? [...layers.keys()] : [...layers.keys()].reverse();
    for (const l of order) {
      const row = layers[l];
      const neighbours = downward ? up : down;
      const want = row.map((id) => {
        const ns = neighbours.get(id);
        return ns.length ? ns.reduce((s, n) => s + y.get(n), 0) / ns.length : y.get(id);
      });
      const ys = placeInOrder(want, gapsOf(row));
      row.forEach((id, i) => y.set(id, ys[i]));
    }
  };
  for (let k = 0; k < 3; k++) {
    pass(true);
    pass(false);
  }
  pass(true);
  let top = Infinity;
  let bottom = -Infinity;
  for (const [id, cy] of y) {
    top = Math.min(top, cy - height.get(id) / 2);
    bottom = Math.max(bottom, cy + height.get(id) / 2);
  }
  if (!Number.isFinite(top)) top = bottom = 0;
  const selfLoops = edges.some((e) => e.source === e.target);
  const shift = margin - top + (selfLoops ? 22 : 0);
  const colX = (l) => margin + l * (W + colGap);
  const cy = (id) => y.get(id) + shift;

  const laidNodes = graph.nodes.map((n) => ({
    id: n.id,
    uses: n.uses,
    layer: layer.get(n.id),
    x: colX(layer.get(n.id)),
    y: cy(n.id) - H / 2,
    width: W,
    height: H,
  }));
  let graphBottom = bottom + shift;

  let backIndex = 0;
  const laidEdges = edges.map((edge, i) => {
    const base = { ...edge, back: back.has(i) };
    const fmt = (n) => Math.round(n * 10) / 10;
    if (edge.source === edge.target) {
      const x = colX(layer.get(edge.source)) + W;
      const yy = cy(edge.source) - H / 2;
      return {
        ...base,
        back: true,
        path: `M ${fmt(x - 24)} ${fmt(yy)} C ${fmt(x - 24)} ${fmt(yy - 34)}, ${fmt(x + 30)} ${fmt(yy - 20)}, ${fmt(x)} ${fmt(yy + 12)}`,
        label: { x: fmt(x + 4), y: fmt(yy - 22) },
      };
    }
    if (back.has(i)) {
      const sx = colX(layer.get(edge.source)) + W / 2;
      const sy = cy(edge.source) + H / 2;
      const tx = colX(layer.get(edge.target)) + W / 2 + 14;
      const ty = cy(edge.target) + H / 2;
      // Below every node of the columns it passes (dummies included).
      const [from, to] = [layer.get(edge.target), layer.get(edge.source)].sort((p, q) => p - q);
      let floor = Math.max(sy, ty);
      for (const [id, l] of layer)
        if (l >= from && l <= to) floor = Math.max(floor, cy(id) + height.get(id) / 2);
      const low = floor + 22 + 10 * (backIndex++ % 3);
      const dir = sx >= tx ? 1 : -1;
      const r = Math.min(10, Math.abs(sx - tx) / 2, (low - Math.max(sy, ty)) / 2);
      graphBottom = Math.max(graphBottom, low + 8);
      return {
        ...base,
        // Down, along below the nodes, up into the target (rounded corners).
        path:
          `M ${fmt(sx)} ${fmt(sy)} L ${fmt(sx)} ${fmt(low - r)} Q ${fmt(sx)} ${fmt(low)}, ${fmt(sx - dir * r)} ${fmt(low)}` +
          ` L ${fmt(tx + dir * r)} ${fmt(low)} Q ${fmt(tx)} ${fmt(low)}, ${fmt(tx)} ${fmt(low - r)} L ${fmt(tx)} ${fmt(ty)}`,
        label: { x: fmt((sx + tx) / 2), y: fmt(low - 2) },
      };
    }
    const chain = chains.get(i);
    const points = []; // [exitX, exitY] / [entryX, entryY] alternating per column
    let d = '';
    for (let k = 0; k < chain.length; k++) {
      const id = chain[k];
      const x = colX(layer.get(id));
      const yy = cy(id);
      if (k === 0) {
        d = `M ${fmt(x + W)} ${fmt(yy)}`;
        points.push([x + W, yy]);
        continue;
      }
      const [px, py] = points[points.length - 1];
      const mid = (x - px) / 2;
      d += ` C ${fmt(px + mid)} ${fmt(py)}, ${fmt(x - mid)} ${fmt(yy)}, ${fmt(x)} ${fmt(yy)}`;
      if (k < chain.length - 1) {
        d += ` L ${fmt(x + W)} ${fmt(yy)}`;
        points.push([x + W, yy]);
      } else points.push([x, yy]);
    }
    const [ax, ay] = points[0];
    const bx = colX(layer.get(chain[1]));
    const by = cy(chain[1]);
    return { ...base, path: d, label: { x: fmt((ax + bx) / 2), y: fmt((ay + by) / 2) } };
  });

  return {
    nodes: laidNodes,
    edges: laidEdges,
    width: Math.max(layerCount ? colX(layerCount - 1) + W + margin + (selfLoops ? 36 : 0) : 2 * margin, 120),
    height: Math.max(graphBottom + margin, 2 * margin),
  };
}
