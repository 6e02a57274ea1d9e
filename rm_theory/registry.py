"""The one list of studies (README "Adding a study"): each entry point's name, schema, run function, figures, kind.

Every other list is derived from `STUDIES`: the schemas Hydra registers (`config.SCHEMAS`), the kinds of results
table that aggregation recognises (`runs.aggregate.KINDS`, named after the studies), the figures of a folder of runs
(`figures.aggregate.figure_specs`, each study's own `figures` list) and the steps of `python -m
experiments.reproduce` (`config.reproduce.ReproduceSchema.steps`, in this order).

The entries name code as "module:attribute" strings, resolved when used (`resolve`): this module imports no wing, so
the wings above the library (config, runs, figures) and the studies on top may all read it while imports still run
one way.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any


@dataclasses.dataclass(frozen=True)
class Step:
    """One figure or table of the reproduction: a run of its study's entry point with a preset.

    `quick`/`paper`: overrides of each scale; `claims`: the rows it gives the report's opening table
    (the fields of `config.reproduce.ClaimSchema`); `needs_data`: reads ../shared/data (skipped, and
    said so, where it is absent)."""

    name: str
    preset: str | None
    title: str
    claim: str  # what the paper reports, shown beside our number
    quick: tuple[str, ...] = ()
    paper: tuple[str, ...] = ()
    needs_data: bool = False
    claims: tuple[dict[str, Any], ...] = ()


@dataclasses.dataclass(frozen=True)
class Study:
    """An entry point: `experiments/<name>.py`, its primary config `conf/<name>.yaml` and its study
    `studies/<name>.py` share the name, which is also the kind of its results table.

    schema, run, figures: "module:attribute" of its config dataclass, its `run(cfg, runlog)` and its
    figure list (`figures(RunTables) -> {name: draw}`, drawn into its run folder and by aggregation);
    columns: those its results.csv always has, by which aggregation recognises the table (None: it
    writes none); presets: its `conf/experiment/*.yaml`; steps: its part of the reproduction."""

    name: str
    schema: str
    run: str
    figures: str | None
    columns: tuple[str, ...] | None
    presets: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()


def resolve(target: str) -> Any:
    """The object a "module:attribute" string names."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _study(name: str, schema: str, columns: tuple[str, ...] | None, **kw) -> Study:
    """The usual homes: `studies/<name>.py:run`, `figures/<name>.py:figures`."""
    figures = f"rm_theory.figures.{name}:figures" if columns is not None else None
    return Study(name, f"rm_theory.config.{schema}", f"rm_theory.studies.{name}:run", figures, columns, **kw)


def _rep_claim(key: str, paper: str, line: float, dataset: str = "pku") -> dict[str, Any]:
    """A claim over replicates (independent prompt splits and training seeds) of a real data set."""
    return _claim(key, paper, line, ("replicates", f"test_pairs_{dataset}"), _REPLICATES)


def _held_out_claim(key: str, paper: str, line: float, dataset: str = "pku") -> dict[str, Any]:
    """A claim over one run's held-out prompts of a real data set (a bootstrap over prompts)."""
    return _claim(key, paper, line, (f"test_prompts_{dataset}", f"test_pairs_{dataset}"), _HELD_OUT) | _BOOTSTRAP


def _args(overrides: str) -> tuple[str, ...]:
    """Overrides as typed on the command line, separated by spaces."""
    return tuple(overrides.split())


def _claim(key: str, paper: str, line: float, size: tuple[str, ...], units: str | None = None) -> dict[str, Any]:
    return {"key": key, "paper": paper, "line": line, "size": list(size)} | ({"units": units} if units else {})


_SEEDS_OF = "seeds (worlds; a seed's {} averaged)"
_REPLICATES = "replicates (independent prompt splits and training seeds; a replicate's held-out pairs averaged)"
_HELD_OUT, _BOOTSTRAP = "held-out prompts (one seed; a prompt's pairs resampled together)", {"method": "bootstrap"}
_PAIRED_WORLDS = "seeds (worlds; paired: the same world, query pairs and nested training pairs)"

STUDIES: dict[str, Study] = {
    s.name: s
    for s in (
        _study(
            "ibn_scaling",
            "scaling:IBNScalingSchema",
            ("topology", "n", "mean_d_res"),
            presets=("ibn_scaling",),
            steps=(
                Step(
                    "ibn_scaling",
                    "ibn_scaling",
                    "Chain vs tree inference distance against n, and the map of where each wins (paper Thm 4.5 / "
                    "Table 2)",
                    "tree data reduces reward uncertainty by up to Θ(log n / log log n) vs chain data (polynomial F, "
                    "large label variance)",
                    quick=_args(
                        "seeds=3 curve.n_values=[64,128,256,512,1024,2048,4096] map.n_values=[1024] "
                        "map.geometry=[tree,metric] map.regime=[polynomial] map.temperature=[1.0] "
                        "queries.num_pairs=128"
                    ),
                    claims=(
                        _claim(
                            "ratio_at_max_n",
                            "tree data lowers the inference distance: chain/tree resistance ratio > 1, growing like "
                            "log n / log log n (Thm 4.5)",
                            1.0,
                            ("seeds", "ratio_at_max_n_pairs"),
                        ),
                    ),
                ),
            ),
        ),
        _study(
            "train_rm",
            "train_rm:TrainRMSchema",
            ("topology", "n", "gold_accuracy", "ensemble_variance", "ibn_resistance"),
            presets=("train_rm", "train_rm_regimes", "train_rm_metric", "train_rm_safety", "theory_vs_practice"),
            steps=(
                Step(
                    "train_rm",
                    "train_rm",
                    "Reward models trained on chain vs tree data: held-out gold accuracy and ensemble variance "
                    "against n",
                    "tree-based reward models generalise better (indirectly: tree RMs give better PPO policies, §5)",
                    # 8 seeds: at 3 the Student t interval straddles 0 where the normal one did not
                    # (−0.035 [−0.091, 0.022])
                    quick=("model.family=mlp", "train.steps=600", "n_values=[512,2048]", "seeds=8"),
                    claims=(
                        _claim(
                            "gold_accuracy_tree_minus_chain",
                            "tree-trained reward models generalise better (§5): held-out gold accuracy tree − chain "
                            "> 0",
                            0.0,
                            ("seeds", "heldout_pairs"),
                        ),
                    ),
                ),
                Step(
                    "theory_vs_practice",
                    "theory_vs_practice",
                    "Theory against practice: IBN resistance beside the ensemble's variance on the same pairs",
                    "not measured in the paper (its IB edges were not observable)",
                    # 3 seeds (the preset's): with 2 the t interval over seeds is 0.11 [−0.20, 0.41]. A seed's
                    # data sets are averaged into one unit, so a third seed buys more than a third n: n = 256
                    # left out, the step's cost unchanged
                    quick=("n_values=[1024,4096]", "seeds=3"),
                    claims=(
                        _claim(
                            "theory_practice_pair_spearman",
                            "the IBN's inference distance tracks the reward model's uncertainty (§4 premise): "
                            "per-pair Spearman > 0",
                            0.0,
                            ("theory_practice_seeds", "theory_practice_datasets"),
                            _SEEDS_OF.format("data sets"),
                        ),
                    ),
                ),
                Step(
                    "reward_cost_models",
                    "train_rm_safety",
                    "Reward and Safe RLHF cost models: cost sign accuracy, per category and severity",
                    "Safe RLHF trains a separate cost model with a ranking and a sign term (Dai et al. §3.2)",
                    quick=("n_values=[1024]", "seeds=1", "train.steps=600"),
                ),
            ),
        ),
        _study(
            "best_of_n",
            "downstream:BestOfNSchema",
            ("rm", "N", "gold_reward"),
            presets=("best_of_n",),
            steps=(
                Step(
                    "best_of_n",
                    "best_of_n",
                    "Best-of-N, N = 2^2 … 2^9, with chain and tree reward models and the gold reward (ceiling)",
                    "the tree RM keeps improving with N while the chain RM saturates (§5)",
                    # 10 seeds (the preset's): at 3 the t interval straddles 0 (−0.17 [−0.49, 0.16])
                    quick=("seeds=10",),
                    claims=(
                        _claim(
                            "gold_reward_N512_tree_minus_chain",
                            "Best-of-N: the tree RM keeps improving with N while the chain RM saturates (§5): gold "
                            "reward tree − chain at N = 512 > 0",
                            0.0,
                            ("seeds", "prompts"),
                            _SEEDS_OF.format("prompts"),
                        ),
                    ),
                ),
            ),
        ),
        _study(
            "win_rates",
            "downstream:WinRatesSchema",
            ("task", "a", "b", "win_rate"),
            presets=("win_rate_table", "incomplete_ablation", "data_scaling", "overoptimisation"),
            steps=(
                Step(
                    "win_rates",
                    "win_rate_table",
                    "Win rates of PPO policies judged by the gold reward; DPO; annotation cost",
                    "tree vs chain 0.74 / 0.63 / 0.58 (mean 0.65); tree vs SFT 0.70; chain vs SFT 0.62; text 21% "
                    "shorter with trees",
                    quick=("seeds=3",),
                    claims=(
                        _claim(
                            "win_rate_tree_vs_chain",
                            "PPO with the tree RM beats PPO with the chain RM: win rate 0.65 > 0.5 (Table 3 mean)",
                            0.5,
                            ("seeds", "tasks"),
                            _SEEDS_OF.format("tasks"),
                        ),
                        _claim(
                            "win_rate_bayes_tree_vs_chain",
                            "the same with the exact Bayesian learner as the RM (KL-optimal policies): win rate tree "
                            "vs chain > 0.5",
                            0.5,
                            ("seeds", "tasks"),
                            _SEEDS_OF.format("tasks"),
                        ),
                    ),
                ),
                Step(
                    "incomplete_ablation",
                    "incomplete_ablation",
                    "Ablation: fraction of incomplete responses in tree data",
                    "incomplete (root-to-internal) responses were found worse than complete ones (§5)",
                    quick=("seeds=1", "incomplete_fracs=[0.0,0.5]"),
                ),
                Step(
                    "data_scaling",
                    "data_scaling",
                    "Data-size scaling of the win rates",
                    "the tree advantage persists across data sizes (§5 scaling figure)",
                    quick=("seeds=1", "n_values=[256,1024]"),
                ),
            ),
        ),
        _study(
            "safe_rlhf",
            "downstream:SafeRLHFSchema",
            ("run", "gold", "gold_cost", "cost", "lambda"),
            presets=("safe_rlhf",),
            steps=(
                Step(
                    "safe_rlhf",
                    "safe_rlhf",
                    "Safe RLHF: reward under a cost constraint with a Lagrange multiplier, against fixed penalties",
                    "the Lagrangian meets the constraint with less reward lost than a fixed penalty (Dai et al. §4)",
                    quick=("seeds=3",),
                    claims=(
                        _claim(
                            "frontier_gap",
                            "the Lagrangian trades reward for cost at least as well as fixed penalties (Dai et al. "
                            "§4): gold reward above the fixed-λ frontier at its cost",
                            0.0,
                            ("frontier_gap_seeds", "seeds"),
                        ),
                    ),
                ),
            ),
        ),
        _study(
            "ideal_learner",
            "ideal_learner:IdealLearnerSchema",
            ("topology", "n", "bayes_gold_accuracy", "posterior_variance"),
            presets=("ideal_learner",),
            steps=(
                Step(
                    "ideal_learner",
                    "ideal_learner",
                    "The exact Bayesian learner (the IBN made exact): chain vs tree without training noise, and each "
                    "neural family's gap to it",
                    "tree data generalises better (Thm 4.5); the paper could not separate the data's topology from "
                    "its learners",
                    quick=_args(
                        "seeds=3 n_values=[256,1024,4096] budgets=[comparisons] families=[mlp,prefix,anchored] "
                        "ensemble_sizes=[4,16,64] gp_n=256"
                    ),
                    claims=(
                        _claim(
                            "bayes_gold_accuracy_tree_minus_chain",
                            "tree data generalises better (Thm 4.5), judged by the exact Bayesian learner: held-out "
                            "gold accuracy tree − chain > 0",
                            0.0,
                            ("bayes_seeds", "bayes_n_pairs"),
                        ),
                    ),
                ),
            ),
        ),
        _study(
            "design",
            "design:DesignSchema",
            ("recipe", "budget", "mean_resistance", "bayes_gold_accuracy"),
            steps=(
                Step(
                    "design",
                    None,
                    "Which comparisons to collect: IBN-designed pairs against chain, tree, ensemble disagreement and "
                    "random pairs at equal budgets",
                    "not in the paper (it compares two fixed recipes, chain and tree)",
                    quick=("seeds=3", "budgets=[64,128]"),
                ),
            ),
        ),
        _study(
            "ai_labels",
            "ai_labels:AILabelsSchema",
            ("part", "source", "budget"),  # before real_data, whose ("part",) it would match too
            presets=("ai_labels", "ai_labels_self", "ai_labels_real"),
            steps=(
                Step(
                    "ai_labels",
                    "ai_labels",
                    "Preference data built without annotators (AI judges, the Safer-Instruct pipeline) against human "
                    "data at equal cost: gold accuracy and harmlessness against budget, the mixed-label IBN against "
                    "the runs, the pipeline's ablations",
                    "Safer-Instruct data gives a 94.7% harmless model against 86.3% with human data (Shi et al. 2024); "
                    "GPT-4 agrees with humans 85%, humans with each other 81% (Zheng et al. 2023)",
                    # 4 seeds (with 3 the t intervals of two claims straddle 0 by a hair), no learned judge (its
                    # MLP compile alone is ~15 s), the theory grid's ends (bias × 0 and × 16)
                    quick=_args(
                        "seeds=4 budgets=[16,64,256] sources=[human,ai,mixed,safer_instruct] "
                        "theory.ai_shares=[0,0.5,1] theory.bias_scales=[0,16] theory.num_queries=256 theory.draws=16 "
                        "num_queries=512 judge.calibration_pairs=2048"
                    ),
                    claims=(
                        _claim(
                            "harmless_bon_safer_instruct_minus_human",
                            "AI-built data gives a more harmless policy than human data: 94.7% vs 86.3% "
                            "(Safer-Instruct, Shi et al. 2024): Best-of-N's gold harmlessness rate, Safer-Instruct − "
                            "human data at equal cost > 0",
                            0.0,
                            ("seeds", "max_budget"),
                        ),
                        _claim(
                            "harmless_safe_rlhf_safer_instruct_minus_human",
                            "the same claim with Safe RLHF's exact optimum (E[ĉ] ≤ −1) as the policy: harmlessness "
                            "rate, Safer-Instruct − human > 0",
                            0.0,
                            ("seeds", "max_budget"),
                        ),
                        _claim(
                            "judge_minus_human_agreement",
                            "GPT-4 agrees with humans more than humans agree with each other: 85% vs 81% (Zheng et "
                            "al. 2023 §4.2): the calibrated, biased judge's agreement with an annotator minus two "
                            "annotators' > 0",
                            0.0,
                            ("seeds", "heldout_pairs"),
                        ),
                    ),
                ),
                Step(
                    "ai_labels_real",
                    "ai_labels_real",
                    "Real data: heads trained on Safer-Instruct's automatic pairs and on PKU-SafeRLHF's human pairs, "
                    "each evaluated on both held-out splits; canned refusals counted and left out",
                    "(Safer-Instruct's pairs stand in for human safety data; not measured in the paper on "
                    "PKU-SafeRLHF)",
                    needs_data=True,
                    quick=_args(
                        "real.datasets.safer_instruct.max_pairs=200 real.datasets.pku.max_pairs=300 real.n_boot=200 "
                        "real.train.steps=300"
                    ),
                ),
            ),
        ),
        _study(
            "real_data",
            "real_data:RealDataSchema",
            ("part",),
            presets=("real_accuracy", "real_ibn", "real_topology"),
            steps=(
                Step(
                    "real_accuracy",
                    "real_accuracy",
                    "Real preference data: held-out accuracy of reward/cost heads on frozen MiniLM features, with "
                    "baselines",
                    "(paper: HH-RLHF, GSM-8K, DialogSum with PPO and a GPT-4 judge; not reproducible offline)",
                    needs_data=True,
                    quick=_args(
                        "datasets.hh.max_pairs=200 datasets.pku.max_pairs=300 datasets.gsm8k.max_pairs=300 "
                        "accuracy.transfer_from=[pku] accuracy.transfer_to=[pandalm] datasets.pandalm.max_pairs=150 "
                        "n_boot=200"
                    ),
                ),
                Step(
                    "real_ibn",
                    "real_ibn",
                    "The IBN of real data sets and their measured structural function F(M)",
                    "the paper assumed F's regime per task (polynomial for diverse tasks); here it is measured",
                    needs_data=True,
                    quick=("datasets.hh.max_pairs=200", "datasets.pku.max_pairs=300", "datasets.gsm8k.max_pairs=300"),
                ),
                Step(
                    "real_topology",
                    "real_topology",
                    "Chain-like vs tree-like choice of comparisons on GSM8K solutions and the PKU subset",
                    "tree-structured comparisons generalise better (§5)",
                    needs_data=True,
                    quick=_args(
                        "datasets.pku.max_pairs=300 datasets.gsm8k.max_pairs=300 topology.budgets=[100,200] "
                        "topology.seeds=1"
                    ),
                ),
            ),
        ),
        _study(
            "finetune_rm",
            "finetune_rm:FinetuneRMSchema",
            ("train_set", "test_set", "method", "finetuned_minus"),
            presets=("finetune_quick", "finetune_paper", "finetune_rm", "finetune_vector"),
            steps=(
                Step(
                    "finetune_rm",
                    "finetune_paper",
                    "A pretrained transformer fine-tuned as reward model, beside frozen-feature heads and bag of words",
                    "(not measured in the paper, whose reward models were judged through PPO; OpenAssistant's "
                    "deberta-v3-large reward model is reported at 0.63 on PKU 'safer' and 0.59 on HH harmless)",
                    needs_data=True,
                    # finetune_quick's overrides: the top 2 layers and the head on the PKU pairs of the
                    # real_accuracy step's selection (their frozen features are in its feature cache)
                    quick=_args(
                        "in_domain=[pku] datasets.pku.max_pairs=300 test_frac=0.2 val_frac=0.0 model.max_len=128 "
                        "train.mode=top_k train.top_layers=2 train.buckets=2 train.eval_every=0 "
                        "train.max_train_pairs=0 baselines.train.steps=300"
                    ),
                    claims=(
                        _held_out_claim(
                            "test_accuracy_pku",
                            "a reward model fine-tuned from a pretrained transformer ranks held-out PKU-SafeRLHF "
                            "pairs above chance: accuracy > 0.5",
                            0.5,
                        ),
                        _held_out_claim(
                            "test_accuracy_safer_instruct",
                            "the same on held-out Safer-Instruct pairs: accuracy > 0.5",
                            0.5,
                            "safer_instruct",
                        ),
                        _held_out_claim(
                            "finetuned_minus_frozen_pku",
                            "fine-tuning the encoder beats heads on its frozen features (same held-out PKU pairs): "
                            "difference > 0",
                            0.0,
                        ),
                        _held_out_claim(
                            "finetuned_minus_frozen_safer_instruct",
                            "the same on Safer-Instruct: difference > 0",
                            0.0,
                            "safer_instruct",
                        ),
                    ),
                ),
            ),
        ),
        _study(
            "real_theory",
            "real_theory:RealTheorySchema",
            ("set", "replicate", "predictor", "auroc", "spearman"),
            presets=("real_theory",),
            steps=(
                Step(
                    "real_theory",
                    "real_theory",
                    "The IBN of a fine-tuned reward model against its ensemble's variance and its real errors",
                    "(not measured in the paper, which names finding a real model's IBN as future work)",
                    needs_data=True,
                    quick=_args(
                        "in_domain=[pku] datasets.pku.max_pairs=600 test_frac=0.3 model.max_len=64 "
                        "train.max_train_pairs=150 train.top_layers=1"
                    ),
                    claims=(
                        _rep_claim(
                            "auroc_pwrong_ibn_hidden_pku",
                            "the trained model's IBN predicts its errors on held-out PKU pairs: AUROC > 0.5",
                            0.5,
                        ),
                        _rep_claim(
                            "spearman_ibn_hidden_pku",
                            "its inference distance tracks the ensemble's variance per pair: Spearman > 0",
                            0.0,
                        ),
                        _rep_claim(
                            "auroc_pwrong_ibn_hidden_minus_ibn_frozen_pku",
                            "it predicts errors better than the frozen encoder's IBN: paired AUROC difference > 0",
                            0.0,
                        ),
                    ),
                ),
            ),
        ),
        _study(
            "real_design",
            "real_theory:RealDesignSchema",
            ("set", "replicate", "recipe", "labelled", "accuracy"),
            presets=("real_design",),
            steps=(
                Step(
                    "real_design",
                    "real_design",
                    "Which real pairs to label: the IBN's design, random, disagreement, Fisher, prompt structure",
                    "active preference learning reports 33–68% fewer labels (BAL-PM); the paper: tree beats chain (§5)",
                    needs_data=True,
                    quick=_args(
                        "in_domain=[pku] datasets.pku.max_pairs=600 test_frac=0.3 model.max_len=64 "
                        "train.max_train_pairs=300 train.top_layers=1 active.init_pairs=32 active.batch=32 "
                        "active.budget=160"
                    ),
                    claims=(
                        _rep_claim(
                            "accuracy_ibn_minus_random_pku",
                            "the IBN's A-optimal labels beat random ones at equal budget: accuracy difference > 0",
                            0.0,
                        ),
                        _rep_claim(
                            "labels_saved_ibn_minus_random_pku",
                            "the IBN design reaches random's final accuracy with fewer labels than random itself: > 0",
                            0.0,
                        ),
                        _rep_claim(
                            "accuracy_same_prompt_minus_one_per_prompt_pku",
                            "tree-like labels (whole prompts) beat chain-like (one pair per prompt) at equal budget",
                            0.0,
                        ),
                    ),
                ),
            ),
        ),
        _study(
            "multi_dim",
            "multi_dim:MultiDimSchema",
            ("protocol", "budget", "n_pairs", "acc_helpfulness"),
            presets=("multi_dim", "multi_dim_armorm", "multi_dim_metric"),
            steps=(
                Step(
                    "multi_dim",
                    "multi_dim",
                    "Multi-dimensional preferences: dual against single labels at equal annotation cost, the IBN per "
                    "dimension, Safe RLHF per harm category",
                    "PKU-SafeRLHF (arXiv 2406.15513) annotates helpfulness and harmlessness apart (dual preferences) "
                    "as well as traded off in one label (single preferences); it states no equal-cost comparison of "
                    "the two",
                    quick=_args(
                        "seeds=3 budgets=[256,1024] protocols=[dual,single] train.steps=200 num_queries=512 "
                        "ibn_pairs=128 downstream.factors=[0.25,0.5,1.0] downstream.weights=[0.0,0.5,1.0] "
                        "downstream.best_of_n=[4,16,64]"
                    ),
                    claims=(
                        _claim(
                            "acc_helpfulness_dual_minus_single",
                            "PKU-SafeRLHF decouples helpfulness from harmlessness so each is learnt on its own (§1, "
                            "§3; our reading): at equal annotation cost dual labels rank helpfulness better than "
                            "single labels, held-out gold accuracy dual − single > 0",
                            0.0,
                            ("seeds", "heldout_pairs"),
                            _PAIRED_WORLDS,
                        ),
                        _claim(
                            "acc_harmlessness_dual_minus_single",
                            "the same for harmlessness: held-out gold accuracy dual − single > 0",
                            0.0,
                            ("seeds", "heldout_pairs"),
                            _PAIRED_WORLDS,
                        ),
                    ),
                ),
            ),
        ),
        _study("analyse_data", "analyse_data:AnalyseDataSchema", ("quantity", "value")),
        # The reproduction itself: its steps' folders under runs/ are aggregated by their own kinds.
        _study("reproduce", "reproduce:ReproduceSchema", None),
    )
}


def steps() -> dict[str, tuple[Study, Step]]:
    """Every reproduction step by name, with its study, in the report's order."""
    out = {}
    for study in STUDIES.values():
        for step in study.steps:
            if step.name in out:
                raise ValueError(f"two reproduction steps are named {step.name!r}")
            out[step.name] = (study, step)
    return out
