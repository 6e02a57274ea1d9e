"""Thin Hydra entry points, one per study (`python -m experiments.<name>`).

A step that `reproduce` starts arms its parent-death signal here, the first code it runs, so a kill
of `reproduce` while the step is still importing JAX takes the step too.
"""

from rm_theory.runs import die_with_parent

die_with_parent()
