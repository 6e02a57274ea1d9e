"""Induced Bayesian networks (THEORY.md §2): the network type and its networkx I/O (`graph`), inference
distance (`distance`: exact reductions, the path and resistance solvers, the networkx reference, the
sketch of a mean), building the IBN of a data set (`network`), F(M) and its regime (`structural`), the
design of the next comparisons (`design`), the IBN of real data (`real`), the scaling study's
computations (`scaling`), labels of several kinds, each edge its variance and an AI label a bias
(`mixed_labels`), and the IBN of a gold vector of several dimensions (`multidim`)."""

from rm_theory.ibn import mixed_labels, multidim
from rm_theory.ibn.cg import ForestSolver, block_pcg
from rm_theory.ibn.design import DesignConfig, design_comparisons, mean_resistance, target_sums
from rm_theory.ibn.distance import inference_distance, network_distance
from rm_theory.ibn.graph import (
    HP,
    IB,
    VARIANCE_RANGE,
    Network,
    add_hp_edges,
    from_networkx,
    ib_subnetwork,
    to_networkx,
    validate_network,
    validate_pairs,
)
from rm_theory.ibn.mixed_labels import MixedIBN, mixed_ibn, pair_error
from rm_theory.ibn.multidim import JointPosterior, VectorIBN, vector_ibn
from rm_theory.ibn.network import IBN, LabelVariance, build_ibn, hp_variance, ibn_network, item_labels, node_label
from rm_theory.ibn.real import IBNConfig, heldout_distance, ib_network, measure_structural, real_ibn
from rm_theory.ibn.reduction import conductance_matrix, merge_zero_edges, reduce_network, two_edge_components
from rm_theory.ibn.reference import reference_distance
from rm_theory.ibn.resistance import RESISTANCE_SOLVERS, has_cholmod
from rm_theory.ibn.scaling import AXES, expand_points, fit_log_ratio, paired_ratio_table, ratio_table
from rm_theory.ibn.sketch import mean_resistance_sketch
from rm_theory.ibn.structural import REGIMES, fit_regime, regime_curve, structural_function_by_clustering

__all__ = [
    "AXES",
    "HP",
    "IB",
    "IBN",
    "REGIMES",
    "RESISTANCE_SOLVERS",
    "VARIANCE_RANGE",
    "DesignConfig",
    "ForestSolver",
    "IBNConfig",
    "JointPosterior",
    "LabelVariance",
    "MixedIBN",
    "Network",
    "VectorIBN",
    "add_hp_edges",
    "block_pcg",
    "build_ibn",
    "conductance_matrix",
    "design_comparisons",
    "expand_points",
    "fit_log_ratio",
    "fit_regime",
    "from_networkx",
    "has_cholmod",
    "heldout_distance",
    "hp_variance",
    "ib_network",
    "ib_subnetwork",
    "ibn_network",
    "inference_distance",
    "item_labels",
    "mean_resistance",
    "mean_resistance_sketch",
    "measure_structural",
    "merge_zero_edges",
    "mixed_ibn",
    "mixed_labels",
    "multidim",
    "network_distance",
    "node_label",
    "pair_error",
    "paired_ratio_table",
    "ratio_table",
    "real_ibn",
    "reduce_network",
    "reference_distance",
    "regime_curve",
    "structural_function_by_clustering",
    "target_sums",
    "to_networkx",
    "two_edge_components",
    "validate_network",
    "validate_pairs",
    "vector_ibn",
]
