"""LoRA adapters on a score model's backbone (Hu et al. 2021, arXiv 2106.09685).

`add_lora` puts an `nnx.LoRA` (rank r, A [I, r] he-uniform, B [r, O] zero) beside each targeted
Linear, scaled by alpha / r (section 4.1); the targets are Hugging Face module names matched as PEFT
does, by the end of the dotted path ("q_proj" matches every layer's `self_attn.q_proj`). The default
targets are PEFT's: query and value projections. The adapters' parameters are `nnx.LoRAParam`s, so
an optimiser built with `wrt=LORA_AND_HEAD` trains only them and the score head (the head is new or
task-specific, so it is always trained, as PEFT's `modules_to_save=["score"]`). Saving merges the
adapters into the base weights (W + alpha/r A B); the head is saved with the rest.

Legend: I in features, O out features.
"""

from __future__ import annotations

from collections.abc import Sequence

from flax import nnx

from rm_theory.lm.layers import Linear
from rm_theory.lm.score import ScoreModel, ScoreNet

DEFAULT_TARGETS = {
    "bert": ("query", "value"),
    "roberta": ("query", "value"),
    "llama": ("q_proj", "v_proj"),
    "mistral": ("q_proj", "v_proj"),
    "qwen2": ("q_proj", "v_proj"),
}
LORA_AND_HEAD = nnx.Any(nnx.LoRAParam, nnx.PathContains("head"))  # `wrt=` filter for LoRA training


def _net(model: ScoreModel | ScoreNet) -> ScoreNet:
    return model.net if isinstance(model, ScoreModel) else model


def add_lora(
    model: ScoreModel | ScoreNet,
    rank: int = 8,
    alpha: float = 16.0,
    targets: Sequence[str] | None = None,
    *,
    seed: int = 0,
) -> list[str]:
    """Adapters on the backbone's Linear layers named by `targets` (in place); returns their names."""
    net = _net(model)
    if rank < 1:
        raise ValueError(f"rank = {rank}: must be >= 1")
    targets = tuple(DEFAULT_TARGETS[net.cfg.model_type] if targets is None else targets)
    linears = {n: m for n, m in net.backbone.hf_modules().items() if isinstance(m, Linear)}
    hit = {t: [n for n in linears if n == t or n.endswith("." + t)] for t in targets}
    if missing := [t for t, names in hit.items() if not names]:
        leaves = sorted({n.split(".")[-1] for n in linears})
        raise ValueError(f"LoRA targets {missing} match no Linear layer of a {net.cfg.model_type} model ({leaves})")
    rngs = nnx.Rngs(params=seed)
    names = sorted({n for ns in hit.values() for n in ns})
    for n in names:
        lin = linears[n]
        if lin.lora is not None:
            raise ValueError(f"{n} already has a LoRA adapter")
        d_in, d_out = lin.kernel.shape
        lin.lora = nnx.LoRA(d_in, rank, d_out, dtype=lin.dtype, param_dtype=lin.kernel[...].dtype, rngs=rngs)
        lin.lora_scale = alpha / rank
    return names


def merge_lora(model: ScoreModel | ScoreNet) -> int:
    """Fold every adapter into its base kernel and remove it (in place); returns how many."""
    n = 0
    for _, lin in nnx.iter_graph(_net(model)):
        if isinstance(lin, Linear) and lin.lora is not None:
            lin.kernel.set_value(lin.merged_kernel())
            lin.lora, lin.lora_scale = None, 0.0
            n += 1
    return n
