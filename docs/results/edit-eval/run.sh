#!/usr/bin/env bash
# The CounterFact-style evaluations of docs/edit.md, on gemma-3-270m, each resumable if killed.
# Usage: docs/results/edit-eval/run.sh [WHAT...]   (default: all, in this order)
# The known facts come from `factscope know` runs (what the model answers right):
#   factscope know --dataset athlete_sport --out runs/know-athletes
#   factscope know --dataset city_country  --out runs/know-city_country
set -euo pipefail
FS=${FS:-.venv/bin/factscope}
RUNS=${RUNS:-runs}
OUT=${OUT:-docs/results/edit-eval}
LAYER=${LAYER:-6}
# EXTRA: more edit-eval options for every run, e.g. EXTRA="--fluency-tokens 0" (no GE: faster)
read -r -a EXTRA <<< "${EXTRA:-}"
ATH=(--dataset athlete_sport --known "$RUNS/know-athletes")
CITY=(--dataset city_country --known "$RUNS/know-city_country")
run() { local name=$1; shift; echo "== $name"; "$FS" edit-eval "$@" ${EXTRA[@]+"${EXTRA[@]}"} --layer "$LAYER" --out "$OUT/$name"; }
WHAT=("$@"); [[ ${#WHAT[@]} -gt 0 ]] || WHAT=(rome-athlete memit-athlete alphaedit-athlete \
  rome-city memit-city alphaedit-city alphaedit-athlete-seq rome-athlete-seq rome-athlete-identity)
for w in "${WHAT[@]}"; do
  case $w in
    rome-athlete)          run "$w" "${ATH[@]}" --n 100 --method rome ;;
    memit-athlete)         run "$w" "${ATH[@]}" --n 100 --method memit ;;
    alphaedit-athlete)     run "$w" "${ATH[@]}" --n 100 --method alphaedit ;;
    rome-city)             run "$w" "${CITY[@]}" --n 50 --method rome ;;
    memit-city)            run "$w" "${CITY[@]}" --n 100 --method memit ;;
    alphaedit-city)        run "$w" "${CITY[@]}" --n 100 --method alphaedit ;;
    alphaedit-athlete-seq) run "$w" "${ATH[@]}" --n 100 --method alphaedit --sequential 100 ;;
    rome-athlete-seq)      run "$w" "${ATH[@]}" --n 100 --method rome --sequential 100 ;;
    rome-athlete-identity) run "$w" "${ATH[@]}" --n 100 --method rome --identity-stats ;;
    *) echo "unknown: $w" >&2; exit 2 ;;
  esac
done
