# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exploring an induced Bayesian network (THEORY.md §2, paper §4)
#
# A tiny prefix-tree space (V = 3 tokens, depth L = 4, one prompt), a few chain comparisons and
# one response tree. `build_ibn` turns them into the IBN: inductive-bias ("ib") edges join each
# prefix to its child with variance s_j², human-preference ("hp") edges join the two items of
# each comparison with the label variance ξ². We draw it, follow the least-variance inference
# path between two responses, compare path and resistance distance, and watch the distance
# fall when the pair is compared directly. No results folder is needed.

# %% tags=["parameters"]
import os

RESULTS = os.environ.get("RM_THEORY_RESULTS", "outputs")  # unused here; every notebook has it
SMOKE = os.environ.get("RM_THEORY_SMOKE") == "1"

# %%
import itertools

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np

from rm_theory.figures import draw_ibn
from rm_theory.ibn import LabelVariance, build_ibn, inference_distance, item_labels
from rm_theory.world import (
    Comparisons,
    PrefixTreeSpace,
    Responses,
    TreeSampling,
    TreeShape,
    sample_chain,
    sample_tree_data,
)

# %matplotlib inline

# %%
space = PrefixTreeSpace(V=3, L=4, num_prompts=1, regime="polynomial", seed=0)
# Small ξ² so that one comparison is worth more than the tree's prior link between two leaves.
lv = LabelVariance("constant", xi2=0.25)
rng = np.random.default_rng(0)
chain = sample_chain(space, 3, rng)
tree = sample_tree_data(space, rng, TreeSampling(shape=TreeShape(B=2, D=2), pairs="sampled", pairs_per_tree=3), n=3)
comps = Comparisons(
    Responses.concat([chain.a, tree.a]),
    Responses.concat([chain.b, tree.b]),
    np.concatenate([chain.tree_P, tree.tree_P]),
)
G = build_ibn(space, comps, label_variance=lv)
kinds = nx.get_edge_attributes(G, "kind").values()
print(
    f"{G.number_of_nodes()} nodes, {sum(k == 'ib' for k in kinds)} ib edges, {sum(k == 'hp' for k in kinds)} hp edges"
)
print("s_j² by depth j = 1..L:", np.round(space.s2_L, 4), " ξ² =", lv.xi2)


# %%
# The drawing functions live in `rm_theory.figures.ibn_scaling` (`tree_layout`, `draw_ibn`).
draw_ibn(G, title="IBN of 3 chain + 3 tree comparisons (width ∝ 1/variance)")


# %% [markdown]
# ## Two responses far apart
# Among the compared responses, take the pair with the largest effective resistance: the
# Gaussian posterior variance of r(a) − r(b) given the labels.

# %%
items = sorted(set(item_labels(space, comps.a) + item_labels(space, comps.b)))
pairs = list(itertools.combinations(items, 2))
d_res = inference_distance(G, pairs, "resistance")
a, b = pairs[int(np.argmax(d_res))]
path = nx.shortest_path(G, a, b, weight="variance")
# Over parallel edges networkx takes the smallest variance, the same rule as d_path.
path_var = sum(min(d["variance"] for d in G[u][v].values()) for u, v in zip(path, path[1:], strict=False))
d_path, d_r = (float(inference_distance(G, [(a, b)], m)[0]) for m in ("path", "resistance"))
print(f"a = {a}\nb = {b}")
print("least-variance path:", " → ".join(map(str, path)))
print(f"sum of variances on the path = {path_var:.4f}, d_path = {d_path:.4f}, d_res = {d_r:.4f}")
assert np.isclose(path_var, d_path) and d_r <= d_path + 1e-12  # parallel routes only help
draw_ibn(G, path, title=f"least-variance path a → b: d_path = {d_path:.3f}, d_res = {d_r:.3f}")

# %% [markdown]
# ## One more comparison
# Comparing a and b directly adds an hp edge of variance ξ² in parallel with everything else:
# the resistance must fall below min(d_res, ξ²) and the path distance below min(d_path, ξ²).


# %%
def with_pair(comps: Comparisons, x: Responses, y: Responses) -> Comparisons:
    return Comparisons(
        Responses.concat([comps.a, x]), Responses.concat([comps.b, y]), np.concatenate([comps.tree_P, [-1]])
    )


def as_response(label: tuple) -> Responses:
    tokens = np.full((1, space.L), -1, dtype=np.int64)
    tokens[0, : len(label) - 1] = label[1:]
    return Responses(np.array([label[0]]), tokens)


G2 = build_ibn(space, with_pair(comps, as_response(a), as_response(b)), label_variance=lv)
d_path2, d_r2 = (float(inference_distance(G2, [(a, b)], m)[0]) for m in ("path", "resistance"))
print(f"before: d_path = {d_path:.4f}, d_res = {d_r:.4f}")
print(f"after:  d_path = {d_path2:.4f}, d_res = {d_r2:.4f}   (ξ² = {lv.xi2})")
assert d_r2 < d_r and d_r2 <= lv.xi2 and d_path2 <= min(d_path, lv.xi2)
draw_ibn(G2, nx.shortest_path(G2, a, b, weight="variance"), title="after comparing a with b")

# %% [markdown]
# ## Every pair: how much one extra comparison buys
# Mean resistance over all item pairs as comparisons of random item pairs are added one by one.

# %%
extra = 3 if SMOKE else 10
rng = np.random.default_rng(1)
c, means = comps, [float(np.mean(d_res))]
for _ in range(extra):
    i, j = rng.choice(len(items), size=2, replace=False)
    c = with_pair(c, as_response(items[i]), as_response(items[j]))
    Gc = build_ibn(space, c, label_variance=lv)
    means.append(float(np.mean(inference_distance(Gc, pairs, "resistance"))))
# Rayleigh monotonicity: an added resistor never increases an effective resistance
assert all(m1 <= m0 + 1e-12 for m0, m1 in zip(means, means[1:], strict=False))
fig, ax = plt.subplots(figsize=(4.5, 3))
ax.plot(range(len(means)), means, marker="o")
ax.set_xlabel("extra comparisons")
ax.set_ylabel("mean d_res over item pairs")
