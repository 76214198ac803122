#!/usr/bin/env bash
# The README's results: the shipped weights beside the baselines, on the same
# starts (seed 0, 150 starts) as benchmarks/results/paper_table2_5000steps and
# paper_table2_si64_1000steps (baselines, produced by benchmarks/paper_table2.py).
# Runs one part per argument (all parts without one); each writes its own folder.
set -euo pipefail
R=benchmarks/results
run() { echo "== $*"; time learn2hop benchmark --quiet "$@"; }
part() {
  case "$1" in
    # Step-matched (the paper's protocol): the same steps as the baselines.
    lj) run --systems lj13 lj75 --starts 150 --steps 5000 --methods learned --out $R/learned_lj_5000steps ;;
    au55) run --systems au55 --starts 150 --steps 5000 --methods learned --out $R/learned_au55_5000steps ;;
    si64) run --systems si64 --starts 150 --steps 1000 --methods learned --out $R/learned_si64_1000steps ;;
    # Evaluation-matched: fewer learned steps, so that the learned optimizer's
    # energy evaluations per start (its cycles end in polishes) stay below the
    # baselines' (7003 at 5000 steps, 3003 for si64 at 1000 steps).
    lj_matched) run --systems lj13 lj75 --starts 150 --steps 2000 --methods learned --out $R/learned_lj_2000steps ;;
    au55_matched) run --systems au55 --starts 150 --steps 1000 --methods learned --out $R/learned_au55_1000steps ;;
    si64_matched) run --systems si64 --starts 150 --steps 300 --methods learned --out $R/learned_si64_300steps ;;
    # LJ sizes the weights never saw: baselines at 5000 steps, learned at 2000.
    unseen_baselines) run --systems lj26 lj47 lj60 lj88 --starts 150 --steps 5000 --methods adam fire --out $R/lj_unseen_baselines_5000steps ;;
    unseen) run --systems lj26 lj47 lj60 lj88 --starts 150 --steps 2000 --methods learned --out $R/lj_unseen_learned_2000steps ;;
    # PdPt38 (elements the bimetallic weights never saw) beside step-matched
    # basin hopping, Adam and FIRE, across compositions.
    pdpt) run --systems PdPt38 --compositions 4 8 12 16 19 22 26 30 34 --starts 32 --steps 2000 --methods learned basin_hopping adam fire --out $R/pdpt38_2000steps ;;
    # The same, evaluation-matched: 300 learned steps (2301 evaluations per start)
    # beside the baselines' 2000 steps (4003).
    pdpt_matched) run --systems PdPt38 --compositions 4 8 12 16 19 22 26 30 34 --starts 32 --steps 300 --methods learned --out $R/pdpt38_learned_300steps ;;
    *) echo "unknown part $1" >&2; return 1 ;;
  esac
}
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(lj lj_matched unseen_baselines unseen au55 au55_matched si64 si64_matched pdpt pdpt_matched)
for p in "${parts[@]}"; do part "$p"; done
