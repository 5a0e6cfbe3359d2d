#!/usr/bin/env bash
# Reruns every CPU benchmark one after another (never two at once: the
# machine has 2 cores and the ratios are side by side), writing the printed
# tables to benchmarks/results/<name>_cpu.log. Needs ../shared/data and
# `pip install -e ".[bench]"`. About 25 minutes on 2 cores.
# Usage: bash benchmarks/run_all.sh [name ...]   (default: all)
set -uo pipefail
cd "$(dirname "$0")"
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1
declare -A CMD=(
  [clip_overhead]="bench_clip_overhead.py"
  [lstm_rows28]="bench_lstm_forget_bias.py --pixels_per_step 28 --epochs 6"
  [lstm_196steps]="bench_lstm_forget_bias.py --pixels_per_step 4 --epochs 6"
  [fit_quality]="bench_fit.py --part quality"
  [quality_light]="bench_quality.py --tasks digits,wine,breast_cancer,grunfeld,acsf1,california --seeds 0,1,2"
  [quality_heavy]="bench_quality.py --tasks spoken_digits,mnist --seeds 0,1,2"
  [quality_light_recipe]="bench_quality.py --tasks digits,wine,breast_cancer,grunfeld,acsf1,california --seeds 0,1,2 --contenders recipe,recipe_sgd"
  [quality_heavy_recipe]="bench_quality.py --tasks spoken_digits,mnist --seeds 0,1,2 --contenders recipe"
  [quality_recurrent_recipe]="bench_quality.py --tasks digit_rows,digit_pixels,spoken_gru,adding --seeds 0,1,2 --contenders recipe"
  [quality_now]="bench_quality.py --from_logs results/quality_light_cpu.log,results/quality_heavy_cpu.log,results/quality_heavy_seeds12_spoken_cpu.log,results/quality_heavy_mnist_seeds12_cpu.log,results/quality_heavy_mnist_tuned_seeds12_cpu.log,results/quality_digit_rows_cpu.log,results/quality_digit_pixels_cpu.log,results/quality_spoken_gru_cpu.log,results/quality_adding_cpu.log,results/quality_light_recipe_cpu.log,results/quality_heavy_recipe_cpu.log,results/quality_recurrent_recipe_cpu.log"
  [quality_now_more_seeds]="bench_quality.py --from_logs results/quality_light_cpu.log,results/quality_heavy_cpu.log,results/quality_heavy_seeds12_spoken_cpu.log,results/quality_heavy_mnist_seeds12_cpu.log,results/quality_heavy_mnist_tuned_seeds12_cpu.log,results/quality_digit_rows_cpu.log,results/quality_digit_pixels_cpu.log,results/quality_spoken_gru_cpu.log,results/quality_adding_cpu.log,results/quality_light_recipe_cpu.log,results/quality_heavy_recipe_cpu.log,results/quality_recurrent_recipe_cpu.log,results/quality_breast_cancer_seeds3_9_cpu.log,results/quality_spoken_digits_seeds3_6_cpu.log,results/quality_close_seeds3_6_cpu.log,results/quality_grunfeld_recipe_cpu.log"
  [quality_sgd_light]="bench_quality.py --tasks digits,wine,breast_cancer,grunfeld,acsf1,california --seeds 0,1,2 --contenders recipe --recipe_kwargs {\"optimizer\":\"sgd\"}"
  [calibration]="bench_calibration.py"
  [fit_overhead]="bench_fit.py --part overhead"
  [fit_execution]="bench_fit.py --part execution"
  [default_optimizer]="bench_default_optimizer.py"
  [augment_throughput]="bench_augment_throughput.py"
  [augment_effect]="bench_augment_effect.py"
  [ensemble]="bench_ensemble.py"
  [ensemble_size]="bench_ensemble_size.py"
  [target_scaling]="bench_target_scaling.py"
  [not_learning]="bench_not_learning.py"
  [forget_bias_length]="bench_forget_bias_length.py"
  [dict_heads]="bench_dict_heads.py"
  [own_steps]="bench_own_steps.py"
  [stateful]="bench_stateful.py"
  [stats_axis]="bench_stats_axis.py"
  [probe_homogeneous]="probe_homogeneous.py"
  [probe_log1p]="probe_log1p.py"
  [text_inputs]="bench_text_inputs.py"
  [pydataset_reads]="bench_pydataset_reads.py"
  [pydataset_reads_jax]="bench_pydataset_reads.py"
  [variable_length]="bench_variable_length.py"
  [sparse_inputs]="bench_sparse_inputs.py"
  [sparse_inputs_jax]="bench_sparse_inputs.py"
  [ragged_inputs]="bench_ragged_inputs.py"
  [band]="bench_band.py"
  [ratio_over_run]="bench_ratio_over_run.py"
  [tip1_cases]="bench_tip1_cases.py"
  [tip1_cases_auto]="bench_tip1_cases.py --epochs auto"
  [dead_start]="bench_dead_start.py"
  [target_sweep]="bench_target_sweep.py --grid_top 3"
  [target_sweep_wide]="bench_target_sweep.py --targets 0.02,0.04,0.08 --grid_top 6"
  [target_sweep_choice]="bench_target_sweep.py --from_log results/target_sweep_cpu.log,results/target_sweep_wide_cpu.log"
  [target_sweep_spoken]="bench_target_sweep.py --tasks spoken_digits --grid_top 6"
  [target_sweep_spoken_batch32]="bench_target_sweep.py --tasks spoken_digits --targets 0.02 --grid_top 6 --recipe_kwargs {\"batch_size\":32}"
  [target_sweep_spoken_gru_batch32]="bench_target_sweep.py --tasks spoken_gru --targets 0.02 --grid_top 6 --recipe_kwargs {\"batch_size\":32}"
  [target_sweep_batch32_light]="bench_target_sweep.py --tasks digits,california,digit_rows,digit_pixels --targets 0.02 --grid_top 6 --recipe_kwargs {\"batch_size\":32}"
  [target_sweep_rest]="bench_target_sweep.py --tasks spoken_gru,adding,mnist --grid_top 6"
  [target_sweep_choice_feedforward]="bench_target_sweep.py --tasks digits,wine,breast_cancer,grunfeld,acsf1,california,spoken_digits,mnist --from_log results/target_sweep_cpu.log,results/target_sweep_wide_cpu.log,results/target_sweep_spoken_cpu.log,results/target_sweep_rest_cpu.log"
  [target_sweep_choice_recurrent]="bench_target_sweep.py --tasks digit_rows,digit_pixels,spoken_gru,adding --from_log results/target_sweep_cpu.log,results/target_sweep_wide_cpu.log,results/target_sweep_spoken_cpu.log,results/target_sweep_rest_cpu.log"
  [target_sweep_choice_all]="bench_target_sweep.py --tasks digits,wine,breast_cancer,grunfeld,acsf1,california,digit_rows,digit_pixels,spoken_digits,spoken_gru,adding,mnist --from_log results/target_sweep_cpu.log,results/target_sweep_wide_cpu.log,results/target_sweep_spoken_cpu.log,results/target_sweep_rest_cpu.log"
  [quality_digit_rows]="bench_quality.py --tasks digit_rows"
  [quality_digit_pixels]="bench_quality.py --tasks digit_pixels"
  [quality_adding]="bench_quality.py --tasks adding"
  [quality_breast_cancer_seeds3_9]="bench_quality.py --tasks breast_cancer --seeds 3,4,5,6,7,8,9 --contenders recipe,keras_default,tuned_adam"
  [quality_grunfeld_recipe]="bench_quality.py --tasks grunfeld --seeds 0,1,2,3,4,5,6 --contenders recipe"
  [quality_close_seeds3_6]="bench_quality.py --tasks grunfeld,acsf1,spoken_gru --seeds 3,4,5,6 --contenders recipe,keras_default,tuned_adam"
  [quality_spoken_digits_seeds3_6]="bench_quality.py --tasks spoken_digits --seeds 3,4,5,6 --contenders recipe,keras_default,tuned_adam"
  [quality_spoken_gru]="bench_quality.py --tasks spoken_gru"
  [diagnostics]="bench_diagnostics.py"
  [reliability]="bench_reliability.py"
  [distribute]="bench_distribute.py"
  [notebooks]="bench_notebooks.py --print_outputs"
  [programs]="bench_programs.py"
  [fit_overhead_jax]="bench_fit.py --part overhead --jit"
  [determinism]="bench_determinism.py"
  [augment_sweep_audio]="bench_augment_sweep.py --part audio --seeds 2"
  [augment_sweep_images]="bench_augment_sweep.py --part images --seeds 1"
  [plan]="bench_plan.py"
  [plan_jax]="bench_plan.py"
  [front_door_jax]="gpu_front_door.py --n 2048 --epochs 3 --members 4"
  [ensemble_jax]="bench_ensemble.py --models mlp,lstm --n 2000 --epochs 3"
  [plan_cost]="bench_plan_cost.py"
  [plan_cost_jax]="bench_plan_cost.py"
  [resample]="bench_resample.py"
  [log1p_effect]="bench_log1p_effect.py"
  [gather]="bench_gather.py --widths 256,1024,2048,4096"
  [vectorize_step]="bench_vectorize_step.py"
  [vectorize_step_jax]="bench_vectorize_step.py --steps 3"
  [vectorize_step_torch]="bench_vectorize_step.py --steps 5"
)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(clip_overhead lstm_rows28 lstm_196steps fit_quality fit_overhead fit_execution default_optimizer augment_throughput augment_effect ensemble diagnostics reliability distribute notebooks programs determinism fit_overhead_jax)
mkdir -p results
for name in "${names[@]}"; do
  # Names ending in _jax / _torch run under that backend.
  if [[ $name == *_jax ]]; then export KERAS_BACKEND=jax
  elif [[ $name == *_torch ]]; then export KERAS_BACKEND=torch
  else unset KERAS_BACKEND; fi
  echo "== $name: python benchmarks/${CMD[$name]}"
  python ${CMD[$name]} 2>&1 | grep -v -E '^(I0000|W0000|E0000|WARNING|To enable|\[IPKernelApp\])|Warning|callback\.on|AutoGraph|Cause:|Match [0-9]|^lambda' \
    | tee "results/${name}_cpu.log"
done
