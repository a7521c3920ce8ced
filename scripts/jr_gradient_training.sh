#!/usr/bin/env bash
# Train OTJR with both ways of differentiating the Jacobian penalty (jr_gradient=double_backward | finite_difference)
# at the `quick` profile's settings (CW CNN, MNIST sample, 2 epochs, eps 0.3, 3 x 0.25 training adversary) and
# evaluate each on 300 test images. The README's OTJR section reports seeds 0 and 1.
#
#   bash scripts/jr_gradient_training.sh [SEED] [OUT_DIR]      # defaults: 0, runs/jr_gradient
set -euo pipefail
seed=${1:-0}
out=${2:-runs/jr_gradient}
py=${PYTHON:-python}
for g in double_backward finite_difference; do
  run="$out/${g}_seed$seed"
  "$py" -m ot_robust train --run-dir "$run" --set dataset=mnist-sample --set model=cw_cnn --set method=otjr \
    --set method_params.eps=0.3 --set method_params.step_size=0.25 --set method_params.steps=3 \
    --set method_params.n_slices=32 --set method_params.lambda_j=0.002 --set method_params.lambda_sw=64 \
    --set method_params.jr_gradient=$g --set epochs=2 --set optimizer=adam --set lr=0.001 --set batch_size=128 \
    --set seed="$seed" --set progress=false --set eval_n=128 --set eval_eps=0.3 --set eval_steps=10 \
    --set eval_step_size=0.075
  "$py" -m ot_robust evaluate --run "$run" --n 300 --batch-size 300 --no-progress \
    --attacks "fgsm eps=0.3; pgd-linf eps=0.3 steps=20 step=0.0375; pgd-linf eps=0.3 steps=40 step=0.01; cw-linf eps=0.3 steps=20 step=0.0375"
done
