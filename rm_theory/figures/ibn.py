"""Drawing a small IBN (THEORY.md §2 "Induced Bayesian network"): nodes laid out as the prefix tree,
inductive-bias edges grey, human-preference edges red, a least-variance path green."""

from __future__ import annotations

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np


def tree_layout(G: nx.MultiGraph) -> dict:
    """Nodes are (prompt, *tokens): y = −depth, leaves spread in lexicographic order, a parent
    centred over its children."""
    pos, nodes = {}, sorted(G.nodes)
    children = {u: [v for v in nodes if len(v) == len(u) + 1 and v[:-1] == u] for u in nodes}
    leaves = [u for u in nodes if not children[u]]
    x = {u: float(i) for i, u in enumerate(leaves)}
    for u in sorted(nodes, key=len, reverse=True):
        if children[u]:
            x[u] = float(np.mean([x[c] for c in children[u]]))
        pos[u] = (x[u], -(len(u) - 1))
    return pos


def draw_ibn(G: nx.MultiGraph, path: list | None = None, ax=None, title: str = ""):
    """Edges coloured by kind (ib grey, hp red), width ∝ 1/variance; `path` in green."""
    ax = ax or plt.subplots(figsize=(10, 4.5))[1]
    pos = tree_layout(G)
    var = np.array([d["variance"] for *_, d in G.edges(data=True)])
    scale = 4.0 / (1.0 / var).max()
    on_path = set(zip(path, path[1:], strict=False)) if path else set()
    for u, v, d in G.edges(data=True):
        hp = d["kind"] == "hp"
        hit = (u, v) in on_path or (v, u) in on_path
        ax.annotate(
            "",
            xy=pos[v],
            xytext=pos[u],
            arrowprops=dict(
                arrowstyle="-",
                lw=0.5 + scale / d["variance"],
                alpha=0.9 if hit else 0.55,
                color="tab:green" if hit else ("tab:red" if hp else "tab:gray"),
                # a constant sag of about 0.6 depth units whatever the span of the arc
                connectionstyle=f"arc3,rad={min(0.5, 1.2 / max(abs(pos[u][0] - pos[v][0]), 1e-9)):.3f}"
                if hp
                else "arc3",
            ),
        )
    items = {u for u, v, d in G.edges(data=True) if d["kind"] == "hp"} | {
        v for u, v, d in G.edges(data=True) if d["kind"] == "hp"
    }
    nx.draw_networkx_nodes(
        G,
        pos,
        ax=ax,
        node_size=[40 if u in items else 12 for u in G.nodes],
        node_color=["tab:red" if u in items else "tab:gray" for u in G.nodes],
    )
    ax.plot([], [], color="tab:gray", label="ib edge (prefix → child)")
    ax.plot([], [], color="tab:red", label="hp edge (comparison)")
    if path:
        ax.plot([], [], color="tab:green", label="least-variance path")
    # annotate() does not autoscale: leave room below the leaves for the hp arcs
    xs, ys = zip(*pos.values(), strict=True)
    ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
    ax.set_ylim(min(ys) - 1.0, 0.4)
    ax.set_ylabel("−depth")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    return ax
