#!/usr/bin/env bash
# Regenerate the committed boards, in parts that each fit a few hours on 2 CPU cores (memorise takes several):
#   scripts/boards.sh PART...   (parts: digits geometry mnist10k mnist cifar10n fashion pathways resampling stability
#   memorise)
# Every part prints its wall time and peak RSS (/usr/bin/time -v), caches in results/ (a rerun resumes
# where it stopped and recomputes nothing finished), and writes its boards under leaderboards/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p results
DATA=${DATA:-../shared/data}
BENCH=(python -m bench)
JOBS=(--jobs "${BENCH_JOBS:-2}")  # training units in 2 worker processes: about 1.3x faster on 2 cores
# BENCH_JOBS=1 BENCH_THREADS=1 runs a part on one core, so that two parts can share the machine
JOBS+=(${BENCH_THREADS:+--threads "$BENCH_THREADS"})

timed() {  # timed NAME COMMAND...: run, print the wall time and peak RSS, and keep them for the docs
    local name=$1; shift
    local log marker; log=$(mktemp); marker=$(mktemp)
    /usr/bin/time -v "$@" 2> >(tee "$log" >&2)
    local wall rss
    wall=$(grep 'Elapsed (wall clock)' "$log" | awk '{print $NF}')
    rss=$(grep 'Maximum resident set size' "$log" | awk '{print $NF}')
    printf '%-12s wall %s, peak RSS %s kB\n' "$name" "$wall" "$rss" | tee -a results/boards-times.txt
    # leaderboards/boards-times.tsv (rendered into docs/scale.md) keeps the last run that computed
    # something, which is the run that rewrote a board manifest naming its command; a rerun that
    # finds every result cached rewrites none, and leaves the committed figures as they were
    if [ -n "$(find results -path '*/_boards/*.json' -newer "$marker" \
                   -exec grep -qF "\"command\": \"$*\"" {} \; -print -quit)" ]; then
        keep_time "$name" "$wall" "$rss"
    fi
    rm -f "$log" "$marker"
}

keep_time() {  # keep_time NAME WALL RSS_KB: replace NAME's line in leaderboards/boards-times.tsv
    local file=leaderboards/boards-times.tsv tmp
    tmp=$(mktemp)
    [ -f "$file" ] || printf 'part\twall\tpeak_rss_kb\tdate\tcommit\n' > "$file"
    { head -n 1 "$file"
      { tail -n +2 "$file" | awk -F '\t' -v part="$1" '$1 != part'
        printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(date -u +%F)" "$(git rev-parse --short=12 HEAD)"
      } | sort; } > "$tmp"
    mv "$tmp" "$file"
}

part() {
    case $1 in
    digits)     timed digits "${BENCH[@]}" all "${JOBS[@]}" --quiet ;;
    geometry)   for d in moons spirals spirals3 blobs2d; do
                    timed "$d" "${BENCH[@]}" run "${JOBS[@]}" --dataset "$d" --tracks geometry --quiet
                done ;;
    mnist10k)   timed mnist10k "${BENCH[@]}" run "${JOBS[@]}" --dataset mnist --data-root "$DATA" --subset 10000 \
                    --tracks detection,reference,meta --quiet ;;
    mnist)      timed mnist "${BENCH[@]}" run "${JOBS[@]}" --dataset mnist --data-root "$DATA" --tracks detection --seeds 3 \
                    --option detection.types=label-uniform --quiet ;;
    # roughly 8-12 h on 2 cores (estimated from the 5k board's training costs): run it in sittings, it resumes
    memorise)   timed memorise "${BENCH[@]}" run "${JOBS[@]}" --dataset mnist --data-root "$DATA" --profile memorise \
                    --tracks detection --seeds 3 --option detection.types=label-uniform \
                    --option detection.rates=0.1,0.4 --quiet ;;
    cifar10n)   timed cifar10n "${BENCH[@]}" run "${JOBS[@]}" --dataset "npz:$DATA/cifar10n-4k/cifar10n_aggre_first4000.npz" \
                    --recipe cifar10n-4k --tracks detection --option detection.types=real --quiet ;;
    fashion)    timed fashion "${BENCH[@]}" run "${JOBS[@]}" --dataset fashion-mnist --data-root "$DATA" --subset 10000 \
                    --tracks detection --quiet ;;
    pathways)   timed pathways "${BENCH[@]}" run "${JOBS[@]}" --dataset mnist --data-root "$DATA" --recipe curvbim --subset 20000 \
                    --methods stragglers --tracks pathways --seeds 2 --option pathways.protocol_seeds=5 \
                    --option pathways.ratios=0,0.25,1 --option pathways.rounding=class --quiet ;;
    # five identifiers besides the random control: the fewest a board needs to count in the overview
    resampling) for d in mnist fashion-mnist; do
                    timed "resampling-$d" "${BENCH[@]}" run "${JOBS[@]}" --dataset "$d" --data-root "$DATA" --subset 5000 \
                        --methods aum,forgetting,el2n,loss,confidence,random --tracks resampling --seeds 1 \
                        --option resampling.protocol_seeds=5 --option resampling.fillers=duplicate,smote,holdout \
                        --option resampling.prune=0.33,0.5,0.66,0.75 --threads 1 --quiet
                done ;;
    # stability's replicates are disjoint seed pairs: 6 seeds give the 3 a board needs to count in the overview
    stability)  timed stability-digits "${BENCH[@]}" run "${JOBS[@]}" --dataset digits --tracks meta --seeds 6 --quiet
                timed stability-mnist10k "${BENCH[@]}" run "${JOBS[@]}" --dataset mnist --data-root "$DATA" \
                    --subset 10000 --tracks meta --seeds 6 --quiet ;;
    *) echo "unknown part $1; parts: digits geometry mnist10k mnist memorise cifar10n fashion pathways resampling stability" >&2
       exit 2 ;;
    esac
}

for name in "${@:-digits geometry}"; do
    for p in $name; do part "$p"; done
done
"${BENCH[@]}" report --readme --html
