#!/usr/bin/env bash
# Check that the C sources follow .clang-format: runs `clang-format --dry-run --Werror` on every
# .c and .h file under src/, include/, tests/, examples/, bench/ and python/ (the files git
# knows of, untracked ones included, ignored ones not; every such file outside a git checkout)
# and lists the files it would change. Exit 0 when all are clean, 1 when some are not, 2 when
# clang-format is missing. Fix with: clang-format -i FILE...
# usage: scripts/check-format.sh   (CLANG_FORMAT=clang-format-14 to choose the binary)
set -euo pipefail
cd "$(dirname "$0")/.."
cf=${CLANG_FORMAT:-clang-format}
if ! command -v "$cf" >/dev/null; then
  echo "check-format: $cf not found (Debian: apt-get install clang-format)" >&2
  exit 2
fi
dirs=(src include tests examples bench python)
files=()
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  while IFS= read -r -d '' f; do
    [ -f "$f" ] && files+=("$f")
  done < <(git ls-files -z --cached --others --exclude-standard -- "${dirs[@]/%//*.c}" \
    "${dirs[@]/%//*.h}")
else
  while IFS= read -r -d '' f; do
    files+=("$f")
  done < <(find "${dirs[@]}" -type f \( -name '*.c' -o -name '*.h' \) -print0 2>/dev/null)
fi
bad=()
for f in "${files[@]}"; do
  "$cf" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "check-format: ${#bad[@]} of ${#files[@]} files are not formatted as .clang-format asks:"
  printf '  %s\n' "${bad[@]}"
  echo "fix with: $cf -i ${bad[*]}"
  exit 1
fi
echo "check-format: all ${#files[@]} C files are formatted ($($cf --version | head -1))"
