#!/usr/bin/env bash
# The main job on the bundled tiny GPT-2 (fixtures/tiny-gpt2, saved by transformers):
# the pipeline in pipeline.yaml (convert to .ckz, quantize to int8, verify against the
# original with gates) run twice — the second run finds nothing changed and does no work —
# then a tour of the other commands.
set -euo pipefail
ckpt=${1:-.build/release/ckpt}
model=fixtures/tiny-gpt2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== ckpt run pipeline.yaml"
"$ckpt" run pipeline.yaml
echo
echo "== ckpt run pipeline.yaml (again: unchanged inputs, nothing to redo)"
"$ckpt" run pipeline.yaml
echo
echo "== ckpt inspect build/tiny-gpt2-int8.ckz"
"$ckpt" inspect build/tiny-gpt2-int8.ckz | head -8
echo
echo "== ckpt convert $model -> sharded directory and back, byte-identical"
"$ckpt" convert "$model" "$out/sharded" --max-shard-size 40KB --quiet
"$ckpt" convert "$out/sharded" "$out/single/" --quiet
cmp "$out/single/model.safetensors" "$model/model.safetensors" && echo "byte-identical to $model/model.safetensors"
echo
echo "== ckpt forward build/tiny-gpt2-int8.ckz --tokens 1,2,3,4"
"$ckpt" forward build/tiny-gpt2-int8.ckz --tokens 1,2,3,4
