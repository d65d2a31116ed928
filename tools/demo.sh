#!/usr/bin/env bash
# The main job on the bundled tiny GPT-2 (fixtures/tiny-gpt2, made by transformers):
# inspect it, convert it to a sharded Hugging Face directory and back, cast it to bf16,
# and check the lossless round trip byte for byte.
set -euo pipefail
ckpt=${1:-.build/release/ckpt}
model=fixtures/tiny-gpt2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== ckpt inspect $model"
"$ckpt" inspect "$model"
echo
echo "== ckpt convert $model -> sharded directory (max 40KB per shard)"
"$ckpt" convert "$model" "$out/sharded" --max-shard-size 40KB --quiet
ls "$out/sharded"
echo
echo "== ckpt convert sharded -> single safetensors file, compared with the original"
"$ckpt" convert "$out/sharded" "$out/model.safetensors" --quiet
cmp "$out/model.safetensors" "$model/model.safetensors" && echo "byte-identical to $model/model.safetensors"
echo
echo "== ckpt convert --dtype bf16"
"$ckpt" convert "$model" "$out/bf16/" --dtype bf16 --quiet
"$ckpt" inspect "$out/bf16" | head -3
