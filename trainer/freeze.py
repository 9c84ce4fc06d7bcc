"""Which stages of a model stay fixed during fine-tuning, and keeping them fixed.

Frozen stages run in eval mode (BN statistics do not move) with ``requires_grad=False``, and
their parameters never reach the optimizer, so they stay bit-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from edgecls.errors import EdgeclsError

from .models.stages import default_frozen, split_stages, stage_names


@dataclass(frozen=True)
class FreezePlan:
    frozen: tuple[str, ...]  # stage names, in forward order
    stages: tuple[tuple[str, nn.Module], ...]

    @property
    def frozen_modules(self) -> list[nn.Module]:
        return [m for name, m in self.stages if name in self.frozen]

    @property
    def prefix_len(self) -> int:
        """How many leading stages are frozen: their output can be computed once and cached."""
        n = 0
        for name, _ in self.stages:
            if name not in self.frozen:
                break
            n += 1
        return n

    def trunk(self) -> nn.Sequential:
        return nn.Sequential(*(m for _, m in self.stages[:self.prefix_len]))

    def tail(self) -> nn.Sequential:
        return nn.Sequential(*(m for _, m in self.stages[self.prefix_len:]))


def parse_freeze(spec: str, model: nn.Module, has_init: bool) -> tuple[str, ...]:
    """``auto`` (all but the last stage and head when fine-tuning, else nothing), ``none``, or a list."""
    if spec == "none" or (spec == "auto" and not has_init):
        return ()
    if spec == "auto":
        return default_frozen(model)
    names = stage_names(model)
    wanted = tuple(s.strip() for s in spec.split(",") if s.strip())
    unknown = [s for s in wanted if s not in names]
    if unknown or not wanted:
        raise EdgeclsError(f"--freeze {spec!r}: unknown stage {unknown[:1] or [spec]}; "
                           f"use auto, none or a comma list of {', '.join(names)}")
    if set(wanted) == set(names):
        raise EdgeclsError("--freeze names every stage: nothing would be trained")
    return tuple(n for n in names if n in wanted)


def apply_freeze(model: nn.Module, frozen: tuple[str, ...]) -> FreezePlan | None:
    if not frozen:
        return None
    plan = FreezePlan(frozen, tuple(split_stages(model)))
    for m in plan.frozen_modules:
        m.requires_grad_(False)
        m.eval()
    return plan


def set_train_mode(model: nn.Module, plan: FreezePlan | None) -> None:
    """``model.train()`` except for frozen stages, whose BN keeps its running statistics."""
    model.train()
    if plan is not None:
        for m in plan.frozen_modules:
            m.eval()
