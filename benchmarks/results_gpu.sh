#!/bin/bash
# The committed results of docs/results/ (issue 9): `netsynth benchmark` at its defaults on each FlowSet given,
# all at once on one machine, its cores shared out (taskset), sharing its GPU. Efficiency is left out
# (--no-efficiency): timings of processes sharing a machine would mean nothing. What a time limit leaves
# unfinished continues elsewhere: unpack both archives and run `netsynth benchmark ... --resume` on the folder.
# usage: bash benchmarks/results_gpu.sh OUT_DIR SECONDS FLOWS.parquet... [-- extra benchmark options]
# writes OUT_DIR/NAME.tgz (results, report, log, split, synthetic pools) per FlowSet, and for a run that did not
# finish NAME-llama.tgz and NAME-models.tgz (its trained models, without checkpoints)
set -u
out=$1 limit=$2; shift 2
files=() extra=()
while [ $# -gt 0 ]; do [ "$1" = "--" ] && { shift; extra=("$@"); break; }; files+=("$1"); shift; done
mkdir -p "$out/work"
i=0 pids=()
for f in "${files[@]}"; do
  name=$(basename "$f" .parquet)
  per=$(($(nproc) / ${#files[@]}))
  pin=(); [ "$per" -ge 1 ] && pin=(taskset -c $((i * per))-$((i * per + per - 1)))
  mkdir -p "$out/work/$name"
  PYTHONUNBUFFERED=1 timeout "$limit" "${pin[@]}" python3 -m netsynth.cli benchmark "$f" -o "$out/work/$name" \
    --no-efficiency "${extra[@]}" > "$out/work/$name.log" 2>&1 &
  pids+=($!) i=$((i + 1))
done
for i in "${!files[@]}"; do
  wait "${pids[$i]}"; status=$?
  name=$(basename "${files[$i]}" .parquet)
  mv "$out/work/$name.log" "$out/work/$name/benchmark.log"
  tar czf "$out/$name.tgz" -C "$out/work" --exclude=models "$name"
  if [ $status -ne 0 ]; then  # unfinished: the trained models too (no checkpoints), llama apart (the archive limit)
    m="$name/cache/models"
    tar czf "$out/$name-llama.tgz" -C "$out/work" --exclude=checkpoint --exclude=checkpoint.old "$m/llama" 2>/dev/null
    tar czf "$out/$name-models.tgz" -C "$out/work" --exclude=checkpoint --exclude=checkpoint.old --exclude=llama "$m"
  fi
done
rm -rf "$out/work"
