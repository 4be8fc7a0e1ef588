#!/usr/bin/env bash
# Train one DVGO model per scene directory, as one SLURM array job (one array task per scene).
# The same file is the array task: sbatch runs it with SLURM_ARRAY_TASK_ID set.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: launch/sweep_scenes.sh [-h] [-n] OUT_DIR SCENE_DIR... [hw4_jax.main arguments...]

Submits a SLURM array with one task per scene: task I runs
  python -m hw4_jax.main --config=configs/dvgo.py --config.data.scene_dir=SCENE_I \
      --workdir=OUT_DIR/<scene name> [arguments...]
A SCENE_DIR is a Blender scene (it holds transforms_train.json) or a folder of such scenes (e.g.
nerf_synthetic/). Arguments starting with `--` go to every task: a --config of your own (another
preset) replaces the default, --config.* overrides apply to all scenes. A scene whose workdir already holds
metrics.json is not retrained (DVGO's own rule), so re-submitting a sweep finishes what is missing.
Submit from the repository root with the project's virtualenv active (tasks inherit PATH).

Options:
  -n  print the scene list and the sbatch command, submit nothing

Environment:
  SWEEP_SBATCH_ARGS  extra sbatch options, e.g. "--partition=gpu --time=2:00:00" (sbatch's own
                     SBATCH_* variables work too)
  MAX_PARALLEL       run at most this many scenes at once (sbatch --array=...%N)
  GPUS_PER_SCENE     GPUs per task (default 1; 0 = none, a CPU run)
  PYTHON             interpreter for the tasks (default: python)

Example:
  launch/sweep_scenes.sh runs/synthetic /shared/data/nerf_synthetic --config=configs/dvgo.py \
      --config.fine.num_iters=10000
EOF
}

die() {
  echo "sweep_scenes.sh: $*" >&2
  echo "run 'launch/sweep_scenes.sh -h' for usage" >&2
  exit 2
}

# ---- array task: run the scene of this task's index ----------------------------------------------
if [[ "${1:-}" == "--sweep-task" ]]; then
  shift
  list="$1"
  shift
  [[ -n "${SLURM_ARRAY_TASK_ID:-}" ]] || die "--sweep-task runs inside a SLURM array job only"
  line="$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$list")"
  [[ -n "$line" ]] || die "$list: no scene for array task $SLURM_ARRAY_TASK_ID"
  scene="${line%%$'\t'*}"
  workdir="${line#*$'\t'}"
  echo "sweep_scenes.sh: task $SLURM_ARRAY_TASK_ID: $scene -> $workdir"
  export PYTHONUNBUFFERED=1 PYTHONPATH="${SLURM_SUBMIT_DIR:-$PWD}${PYTHONPATH:+:$PYTHONPATH}"
  exec "${PYTHON:-python}" -m hw4_jax.main "$@" "--config.data.scene_dir=$scene" "--workdir=$workdir"
fi

# ---- submission -----------------------------------------------------------------------------------
dry_run=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    -n) dry_run=1; shift ;;
    *) break ;;
  esac
done
[[ $# -ge 2 ]] || { usage >&2; exit 2; }
OUT_DIR="$1"
shift
scene_args=()
pass=()
for arg in "$@"; do
  case "$arg" in
    --workdir* | --config.data.scene_dir*)
      die "$arg: the sweep sets each task's workdir (OUT_DIR/<scene>) and scene directory" ;;
    --coordinator_address* | --num_processes* | --process_id*)
      die "$arg: each scene is a single-process job" ;;
    --*) pass+=("$arg") ;;
    *)
      ((${#pass[@]} == 0)) || die "scene directory '$arg' after the hw4_jax.main arguments"
      scene_args+=("$arg") ;;
  esac
done
((${#scene_args[@]})) || die "no SCENE_DIR given"
if [[ " ${pass[*]-} " != *" --config="* && " ${pass[*]-} " != *" --config "* ]]; then
  pass=(--config=configs/dvgo.py "${pass[@]+"${pass[@]}"}")
fi

scenes=()
for dir in "${scene_args[@]}"; do
  [[ -d "$dir" ]] || die "$dir: no such directory"
  dir="$(cd "$dir" && pwd)"
  if [[ -f "$dir/transforms_train.json" ]]; then
    scenes+=("$dir")
    continue
  fi
  found=0
  for sub in "$dir"/*/; do
    if [[ -f "$sub/transforms_train.json" ]]; then
      scenes+=("${sub%/}")
      found=1
    fi
  done
  ((found)) || die "$dir: neither a scene (no transforms_train.json) nor a folder of scenes"
done

if [[ -d "$OUT_DIR" ]]; then
  OUT_DIR="$(cd "$OUT_DIR" && pwd)"
elif [[ "$OUT_DIR" != /* ]]; then
  OUT_DIR="$PWD/$OUT_DIR"
fi
names=()
for scene in "${scenes[@]}"; do
  name="$(basename "$scene")"
  [[ " ${names[*]-} " != *" $name "* ]] || die "two scenes are named '$name': give them separate sweeps"
  names+=("$name")
done

list="$OUT_DIR/scenes.tsv"

MAX_PARALLEL="${MAX_PARALLEL:-}"
if [[ -n "$MAX_PARALLEL" && ! "$MAX_PARALLEL" =~ ^[1-9][0-9]*$ ]]; then
  die "MAX_PARALLEL must be a positive integer, got '$MAX_PARALLEL'"
fi
GPUS_PER_SCENE="${GPUS_PER_SCENE:-1}"
[[ "$GPUS_PER_SCENE" =~ ^[0-9]+$ ]] || die "GPUS_PER_SCENE must be an integer >= 0, got '$GPUS_PER_SCENE'"
array="0-$((${#scenes[@]} - 1))${MAX_PARALLEL:+%$MAX_PARALLEL}"
read -ra extra <<<"${SWEEP_SBATCH_ARGS:-}"
if ((GPUS_PER_SCENE > 0)); then extra=("--gpus=$GPUS_PER_SCENE" "${extra[@]+"${extra[@]}"}"); fi
cmd=(sbatch --job-name=hw4_dvgo_sweep --array="$array" --nodes=1 --ntasks=1
  --output="$OUT_DIR/slurm-%A_%a.out" "${extra[@]+"${extra[@]}"}"
  "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
  --sweep-task "$list" "${pass[@]+"${pass[@]}"}")

echo "sweep_scenes.sh: ${#scenes[@]} scene(s), list in $list:"
for i in "${!scenes[@]}"; do echo "  [$i] ${scenes[$i]} -> $OUT_DIR/${names[$i]}"; done
if ((dry_run)); then
  printf '%q ' "${cmd[@]}"
  echo
  exit 0
fi
command -v sbatch >/dev/null || die "sbatch not found (run this on a SLURM login node, or use -n)"
mkdir -p "$OUT_DIR"
tmp="$list.tmp$$"
for i in "${!scenes[@]}"; do
  printf '%s\t%s\n' "${scenes[$i]}" "$OUT_DIR/${names[$i]}"
done >"$tmp"
mv "$tmp" "$list"
"${cmd[@]}"
