#!/usr/bin/env bash
# Download and unpack the ImageNet-Sketch competition data into data/ (needs internet):
#   data/train/<class>/*.JPEG, data/train.csv, data/test/*.JPEG, data/test.csv
set -euo pipefail
DEST=${1:-data}
URL=https://aistages-api-public-prod.s3.amazonaws.com/app/Competitions/000307/data/data.tar.gz
mkdir -p "$DEST"
wget -c -O "$DEST/data.tar.gz" "$URL"
tar -xzf "$DEST/data.tar.gz" -C "$DEST"
# The archive may wrap everything in one folder; flatten it so that --data_dir "$DEST" works.
if [ ! -f "$DEST/train.csv" ]; then
  inner=$(dirname "$(find "$DEST" -name train.csv | head -n 1)")
  mv "$inner"/* "$DEST"/ && rmdir "$inner" 2>/dev/null || true
fi
test -f "$DEST/train.csv" && test -f "$DEST/test.csv" || { echo "error: train.csv/test.csv not found under $DEST after unpacking $URL" >&2; exit 1; }
echo "Data ready in $DEST: $(($(wc -l < "$DEST/train.csv") - 1)) training rows, $(($(wc -l < "$DEST/test.csv") - 1)) test rows."
