"""BFS on a random graph given as an edge list (CLRS-style): label every node with its distance from a source.

The generator controls the source's eccentricity exactly instead of leaving it to chance: nodes are
placed in BFS layers 0..D, every node of layer l+1 gets an edge to a node of layer l, and further edges
only join nodes of the same or adjacent layers, so distance = layer and the eccentricity is exactly D.
A decoy component built the same way (layered, as deep as it can be up to D) supplies unreachable
nodes that look locally like reachable ones: telling a far reachable node from a decoy node needs the
whole path to the source, which is what makes depth matter.

Every instance lists the same number of distinct edges. Extra edges may join nodes at most one layer
apart in the source's component, or any two decoy nodes (all unreachable whatever joins them), and
`difficulty_range` stops at the largest D where every layout has room for all of them (`min_room`).
Version 2 of the graph task repeated spanning-tree edges where room ran out: at D = 24, 576 of 600 test
instances repeated an edge, a pattern no training instance had.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np
from mythbench.tasks.base import Batch, Family, Param, Solution
from mythbench.tasks.registry import register_task_family

SOURCE, SEP, EDGE, UNREACHABLE = "src", "|", "-", "inf"


@register_task_family
class Graph(Family):
    """`src s`, then the edges as `u - v`, `|`, then every node n0..n{N-1}, each scored with its distance.

    The `-` between the endpoints tells each endpoint where its partner is (two to the right of a node
    followed by `-`, two to the left of one preceded by it); bare pairs left adjacency to position parity.

    Distances at or above `cap` share one token "<cap>+": a distance token the model never met as a
    training target could not be predicted at test time, so `cap` should not exceed the largest
    training difficulty. Every instance has the same node count, edge count and token length.
    """

    name = "graph"
    params_schema = {
        "nodes": Param(48, "nodes per instance", minimum=8, maximum=1000),
        "extra_edges": Param(16, "edges beyond the two spanning trees, each keeping every distance (min_room)",
                             minimum=1),
        "cap": Param(6, "distances >= cap share the token '<cap>+'", minimum=1),
    }

    def build_vocab(self) -> list[str]:
        n, cap = self.params["nodes"], self.params["cap"]
        distances = [str(d) for d in range(cap)] + [f"{cap}+", UNREACHABLE]
        return [SOURCE, SEP, EDGE, *[f"n{i}" for i in range(n)], *distances]

    def check_combination(self) -> list[str]:
        nodes, extra = self.params["nodes"], self.params["extra_edges"]
        if self.min_room(1) < extra:
            return [f"params.extra_edges: {extra} extra edges do not fit a graph of {nodes} nodes at difficulty 1 "
                    f"(room for {self.min_room(1)})"]
        return []

    def decoy_sizes(self, difficulty: int) -> tuple[int, int]:
        """Smallest and largest decoy component: at least 2 nodes, at most a quarter of the graph, and
        never so many that the source's D + 1 layers lose a node."""
        return 2, min(self.params["nodes"] // 4, self.params["nodes"] - difficulty - 1)

    def min_room(self, difficulty: int) -> int:
        """The fewest distance-preserving non-tree pairs any layout at `difficulty` has: room for extra edges.

        The source's component has one spine node per layer and s spare nodes in layers 1..D, which give at
        least 2s - 1 pairs at most one layer apart that are not tree edges (s >= 1; the minimum puts one or
        two spares in layer D); a decoy of k nodes has C(k, 2) - (k - 1) non-tree pairs, all allowed.
        """
        lo, hi = self.decoy_sizes(difficulty)
        rooms = [max(0, 2 * (self.params["nodes"] - k - difficulty - 1) - 1) + (k - 1) * (k - 2) // 2
                 for k in range(lo, hi + 1)]
        return min(rooms, default=-1)

    def difficulty_range(self) -> tuple[int, int]:
        extra = self.params["extra_edges"]
        hi = 1
        while hi + 1 <= self.params["nodes"] - 3 and self.min_room(hi + 1) >= extra:
            hi += 1
        return 1, hi

    def edges(self) -> int:
        return self.params["nodes"] - 2 + self.params["extra_edges"]

    def body_len(self, difficulty: int) -> int:
        return 2 + 3 * self.edges() + 1 + self.params["nodes"]

    def sample_body(self, rng: np.random.Generator, difficulty: int, n: int) -> Batch:
        nodes, cap, depth = self.params["nodes"], self.params["cap"], difficulty
        slot = np.arange(nodes, dtype=np.int64)
        # Slots 0..R-1 form the source's component (slot 0 = source), slots R.. the decoy (first = its root).
        fewest, most = self.decoy_sizes(depth)
        decoys = rng.integers(fewest, most + 1, size=(n, 1), dtype=np.int64)
        reach = nodes - decoys
        decoy_depth = np.minimum(depth, decoys - 1)
        spread = rng.random((n, nodes))
        in_main = slot < reach
        t = slot - reach
        layer = np.where(
            in_main,
            np.where(slot <= depth, slot, 1 + (spread * depth).astype(np.int64)),
            np.where(t <= decoy_depth, t, 1 + (spread * decoy_depth).astype(np.int64)),
        )
        comp = (~in_main).astype(np.int64)

        parent = self._parents(rng, comp * (nodes + 1) + layer)
        is_child = layer >= 1  # exactly nodes - 2 per row: all but the two roots
        tree_a = np.nonzero(is_child)[1].reshape(n, nodes - 2)
        tree_b = parent[is_child].reshape(n, nodes - 2)

        extra_a, extra_b = self._extra_edges(rng, comp, layer, tree_a, tree_b)
        a = np.concatenate([tree_a, extra_a], axis=1)
        b = np.concatenate([tree_b, extra_b], axis=1)
        n_edges = a.shape[1]
        flip = rng.random((n, n_edges)) < 0.5
        a, b = np.where(flip, b, a), np.where(flip, a, b)
        order = rng.permuted(np.broadcast_to(np.arange(n_edges), (n, n_edges)), axis=1)
        a, b = np.take_along_axis(a, order, axis=1), np.take_along_axis(b, order, axis=1)
        label = rng.permuted(np.broadcast_to(slot, (n, nodes)), axis=1)  # slot -> node name

        first_node, first_dist = self.id("n0"), self.id("0")
        tokens = np.empty((n, self.body_len(depth)), dtype=np.int64)
        tokens[:, 0] = self.id(SOURCE)
        tokens[:, 1] = label[:, 0] + first_node
        tokens[:, 2 : 2 + 3 * n_edges : 3] = np.take_along_axis(label, a, axis=1) + first_node
        tokens[:, 3 : 2 + 3 * n_edges : 3] = self.id(EDGE)
        tokens[:, 4 : 2 + 3 * n_edges : 3] = np.take_along_axis(label, b, axis=1) + first_node
        listing = 3 + 3 * n_edges
        tokens[:, listing - 1] = self.id(SEP)
        tokens[:, listing:] = slot + first_node

        distance = np.where(layer >= cap, self.id(f"{cap}+"), layer + first_dist)
        distance = np.where(in_main, distance, self.id(UNREACHABLE))
        by_name = np.empty((n, nodes), dtype=np.int64)
        np.put_along_axis(by_name, label, distance, axis=1)
        targets = np.zeros_like(tokens)
        targets[:, listing:] = by_name
        mask = np.zeros(tokens.shape, dtype=bool)
        mask[:, listing:] = True
        return Batch.scored(tokens, targets, mask)

    def _extra_edges(
        self, rng: np.random.Generator, comp: np.ndarray, layer: np.ndarray, tree_a: np.ndarray, tree_b: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `extra_edges` highest random scores among allowed pairs: a < b, same component, not a tree
        edge, and in the source's component layers at most 1 apart (so BFS distances stay equal to layers).

        Disallowed pairs score below every allowed one; `min_room` guarantees every row enough allowed
        pairs, so each chosen pair is allowed and the edges are distinct.
        """
        n, nodes = layer.shape
        extra = self.params["extra_edges"]
        slot = np.arange(nodes)
        rows = np.arange(n)[:, None]
        near = np.abs(layer[:, :, None] - layer[:, None, :]) <= 1
        allowed = (comp[:, :, None] == comp[:, None, :]) & (near | (comp[:, :, None] == 1))
        allowed &= slot[:, None] < slot[None, :]
        allowed[rows, tree_a, tree_b] = False
        allowed[rows, tree_b, tree_a] = False
        score = rng.random((n, nodes * nodes)) + allowed.reshape(n, -1)
        # Scores are distinct almost surely, so the chosen set (sorted) does not depend on how
        # argpartition breaks ties.
        top = np.sort(np.argpartition(-score, extra - 1, axis=1)[:, :extra], axis=1).astype(np.int64)
        assert (np.take_along_axis(score, top, axis=1) >= 1.0).all(), "min_room promised room for every extra edge"
        return top // nodes, top % nodes

    @staticmethod
    def _parents(rng: np.random.Generator, key: np.ndarray) -> np.ndarray:
        """For every slot, a uniform random slot whose key is one less (same component, previous layer).

        Roots get an arbitrary value. One global sorted array (row offsets keep rows apart) lets a single
        searchsorted find, for every slot, the range of candidate parents.
        """
        n, nodes = key.shape
        stride = 2 * (nodes + 2)
        order = np.argsort(key, axis=1, kind="stable")
        offset = np.arange(n, dtype=np.int64)[:, None] * stride
        flat = (np.take_along_axis(key, order, axis=1) + offset).ravel()
        wanted = key - 1 + offset
        lo = np.searchsorted(flat, wanted, side="left")
        hi = np.searchsorted(flat, wanted, side="right")
        pick = np.minimum(lo + (rng.random(key.shape) * (hi - lo)).astype(np.int64), flat.size - 1)
        return order.ravel()[pick]

    def solve_body(self, tokens: Sequence[str]) -> Solution:
        """Queue-based BFS from the source over the listed edges; hints = the BFS frontier at each depth."""
        if len(tokens) < 3 or tokens[0] != SOURCE or SEP not in tokens:
            raise ValueError("graph: expected 'src s', edges 'u - v', '|', node list")
        source, bar = tokens[1], list(tokens).index(SEP)
        edge_tokens, listing = tokens[2:bar], tokens[bar + 1 :]
        if len(edge_tokens) % 3 or any(t != EDGE for t in edge_tokens[1::3]):
            raise ValueError("graph: edges must be written 'u - v'")
        neighbours: dict[str, list[str]] = {v: [] for v in listing}
        for u, v in zip(edge_tokens[0::3], edge_tokens[2::3], strict=True):
            neighbours[u].append(v)
            neighbours[v].append(u)
        dist = {source: 0}
        queue = deque([source])
        while queue:
            u = queue.popleft()
            for v in neighbours[u]:
                if v not in dist:
                    dist[v] = dist[u] + 1
                    queue.append(v)
        depth = max(dist.values())
        hints = [" ".join(v for v in listing if dist.get(v) == d) for d in range(depth + 1)]
        cap = self.params["cap"]
        answers: list[str | None] = [
            UNREACHABLE if v not in dist else (str(dist[v]) if dist[v] < cap else f"{cap}+") for v in listing
        ]
        return Solution(targets=[None] * (bar + 1) + answers, difficulty=depth, hints=hints)
