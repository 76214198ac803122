#!/usr/bin/env bash
# One lent GPU session (issues 12 and 13), run from the repository root by the
# device tool with three ignored folders carried: `.whl` (wheels the GPU image
# lacks: ase, jax-md and jax-md's own needs), `.gitcarry` (`rm -rf .gitcarry &&
# cp -r .git .gitcarry` after the last commit) and `.l2hcache` (the Adam
# reference energies of ~/.cache/ase_learn2hop):
#   1. structure-steps per second of the default search on 1000 and 10 000
#      LJ38 starts (benchmarks/search_throughput.py);
#   2. meta-training (CONFIG, default lj13_hopping_time_gpu) until
#      DEADLINE_S seconds after the start, then its best theta exported from
#      the last checkpoint (runs/CONFIG).
# Everything it prints and writes goes to $OUT (log.txt, run.tgz).
# SMALL=1 shrinks every size for a dry run on a CPU.
set -u
started=$(date +%s)
OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1 LEARN2HOP_CACHE=$PWD/.l2hcache
# The network's float32 matrix products as on a CPU, not in TF32.
export JAX_DEFAULT_MATMUL_PRECISION=highest
DEADLINE_S=${DEADLINE_S:-520}
CONFIG=${CONFIG:-lj13_hopping_time_gpu}
RUN=runs/$CONFIG
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
  if ! python3 -m pip install -q --no-deps --no-build-isolation -e .; then
    # The installed layout without an install: training/ and pretrained/
    # inside the package, as pyproject's package-dir maps them.
    ln -sfn ../training ase_learn2hop/training
    ln -sfn ../pretrained ase_learn2hop/pretrained
    export PYTHONPATH=$PWD:/tmp/site
  fi
fi
# The device tool copies the .git of the session's start, not of the tree it
# sends: a copy of the current one travels as .gitcarry, so that the weights'
# manifest names the commit that trained them.
if [ -d .gitcarry ]; then export GIT_DIR=$PWD/.gitcarry GIT_WORK_TREE=$PWD; fi
git config --global --add safe.directory "$PWD"
# The copied tree may lose executable bits: they are not changes to the code.
git config core.fileMode false
git log --oneline -1
git status --short --untracked-files=no
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
python3 -c "import jax, ase, jax_md; print('jax', jax.__version__, jax.devices())" || exit 1

if [ "${SMALL:-0}" = 1 ]; then
  throughput=(--starts 8 --steps 20 --repeats 1)
  training=(--population 2 --runs-per-instance 2 --validation-starts 1)
else
  throughput=(--starts 1000 10000 --steps 200 --repeats 3)
  training=()
fi
echo "== search throughput, $(( $(date +%s) - started )) s in"
timeout 170 python3 benchmarks/search_throughput.py --systems lj38 "${throughput[@]}"

left=$(( DEADLINE_S - ($(date +%s) - started) ))
echo "== training, $(( $(date +%s) - started )) s in, $left s left"
timeout --signal=INT "$left" python3 -m ase_learn2hop.training "$CONFIG" \
  --out "$RUN" --quiet "${training[@]}"
echo "== training stopped (exit $?), $(( $(date +%s) - started )) s in"
tail -n 40 "$RUN/metrics.jsonl"
# A run stopped by the deadline has checkpoints but no weights yet.
if ! ls "$RUN"/*.safetensors >/dev/null 2>&1; then
  python3 -m ase_learn2hop.cli export "$RUN"
fi
tar czf "$OUT/run.tgz" "$RUN"
echo "== done, $(( $(date +%s) - started )) s in"
