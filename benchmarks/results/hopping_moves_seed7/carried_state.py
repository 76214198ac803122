"""benchmarks/hop_length.py with the learned optimizer's state carried from
one hop into the next instead of emptied (`learned_optimizer.restart`), and
optionally without the random frame at the start of each hop.

KEEP=none (the shipped search), moments (step reset, moments kept), v_iso
(step and first moments reset, second moments kept and averaged over each
atom's three components, which a random frame leaves valid), all (nothing
reset); REORIENT=0 turns the random frame off. From the repository root:

    KEEP=moments REORIENT=0 python benchmarks/results/hopping_moves_seed7/carried_state.py --system lj26 --runs 96 --force-calls 30000 --seed 7
"""

import os
import runpy
import sys

import jax.numpy as jnp

sys.path.insert(0, "benchmarks")
from ase_learn2hop import learned_optimizer

keep = os.environ.get("KEEP", "none")
if keep == "moments":
    learned_optimizer.restart = lambda s: s._replace(step=jnp.zeros_like(s.step))
elif keep == "v_iso":
    # Second moments kept, averaged over each atom's three components (so a
    # random frame leaves them valid); first moments and step reset.
    def _v_iso(s):
        v = jnp.broadcast_to(
            jnp.mean(s.second_moments, axis=-1, keepdims=True), s.second_moments.shape
        )
        return s._replace(
            step=jnp.zeros_like(s.step),
            first_moments=jnp.zeros_like(s.first_moments),
            second_moments=v,
        )

    learned_optimizer.restart = _v_iso
elif keep == "all":
    learned_optimizer.restart = lambda s: s
if os.environ.get("REORIENT", "1") == "0":
    from ase_learn2hop import protocols

    shipped_hopping_config = protocols.hopping_config
    protocols.hopping_config = lambda *args, **kwargs: shipped_hopping_config(
        *args, **kwargs
    )._replace(reorient=False)
print(f"# KEEP={keep} REORIENT={os.environ.get('REORIENT', '1')}", flush=True)
sys.argv = ["hop_length.py"] + sys.argv[1:]
runpy.run_path("benchmarks/hop_length.py", run_name="__main__")
