#!/usr/bin/env bash
# Re-create /work/photos-src/elpv/{functional,defective}/*.png from PyPI.
# Source: PyPI package elpv-dataset==1.0.0.post1 (wheel bundles all 2,624 images).
# Needs: pip, unzip, python3 (stdlib only). Network: PyPI only.
set -euo pipefail

PKG=elpv-dataset
VER=1.0.0.post1
WHEEL=elpv_dataset-${VER}-py3-none-any.whl
SHA256=85e31c1126ee9b48e62d3a0232c58f58b2d189b0814a45c13642fa0415af4a4c  # of the wheel as downloaded from PyPI
DEST=${1:-/work/photos-src}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

pip download --no-deps "${PKG}==${VER}" -d "$TMP"
if [ -n "$SHA256" ]; then echo "$SHA256  $TMP/$WHEEL" | sha256sum -c -; fi
unzip -q "$TMP/$WHEEL" 'elpv_dataset/data/*' 'elpv_dataset-*.dist-info/*' -d "$TMP/x"

OUT="$DEST/elpv"
rm -rf "$OUT"
mkdir -p "$OUT/functional" "$OUT/defective"

# labels.csv columns: path  defect_probability  module_type
# Only the unambiguous labels are used: p == 0.0 -> functional, p == 1.0 -> defective.
# (p == 1/3 and 2/3 -- 401 images -- are left out.)
python3 - "$TMP/x/elpv_dataset/data" "$OUT" <<'PY'
import os, shutil, sys
src, out = sys.argv[1], sys.argv[2]
n = {"functional": 0, "defective": 0}
for line in open(os.path.join(src, "labels.csv")):
    parts = line.split()
    if len(parts) != 3:
        continue
    path, p, _type = parts
    p = float(p)
    cls = "functional" if p == 0.0 else "defective" if p == 1.0 else None
    if cls:
        shutil.copy2(os.path.join(src, path), os.path.join(out, cls, os.path.basename(path)))
        n[cls] += 1
print(n)
PY

# keep the package's own labels, licence and README next to the images
cp "$TMP/x/elpv_dataset/data/labels.csv" "$OUT/labels.csv"
cp "$TMP"/x/elpv_dataset-*.dist-info/licenses/LICENSE.md "$OUT/LICENSE.md"
cp "$TMP"/x/elpv_dataset-*.dist-info/METADATA "$OUT/PACKAGE-METADATA.txt"
echo "done: $OUT"
