#!/usr/bin/env bash
# The paper's two arms, scaled down: one biography per person vs five shuffled ones, then
# QA fine-tuning on half the people and the knowledge check on both halves.
# Usage: docs/results/scratch-arms/run.sh ARM WORK   (ARM: single | multi | multi-relu)
set -euo pipefail
ARM=$1; WORK=${2:-/tmp/scratch-arms}
PEOPLE=${PEOPLE:-300}; STEPS=${STEPS:-600}; QA_STEPS=${QA_STEPS:-250}
REGIME=${ARM%%-*}; MLP=swiglu; [[ $ARM == *relu ]] && MLP=relu
FS=${FS:-.venv/bin/factscope}
$FS corpus --out "$WORK/$REGIME-corpus" --people "$PEOPLE" --regime "$REGIME" --force
$FS train "$WORK/$REGIME-corpus/pretrain.txt" --out "$WORK/$ARM" --force \
  --eval-data "$WORK/$REGIME-corpus/eval.txt" --tokenizer-data "$WORK/$REGIME-corpus/qa.jsonl" \
  --preset small --mlp "$MLP" --vocab-size 4096 --steps "$STEPS" --batch-size 32 --seq-len 128 \
  --lr 2e-3 --warmup 50 --eval-every 50 --checkpoint-every 100
$FS train "$WORK/$REGIME-corpus/qa_train.txt" --out "$WORK/$ARM-qa" --force \
  --init "$WORK/$ARM/model" --steps "$QA_STEPS" --batch-size 32 --seq-len 128 \
  --lr 1e-3 --warmup 10 --eval-every 50 --checkpoint-every 50
$FS knowledge --corpus "$WORK/$REGIME-corpus" --model "$WORK/$ARM-qa/model" \
  --out "$WORK/$ARM-knowledge" --force
