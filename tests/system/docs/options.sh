#!/usr/bin/env bash
# docs/options.md against the program: regenerate it from the built nhgd into the build tree
# and fail, with the difference and the command that updates it, when the committed file
# differs. usage: options.sh NHGD_PROGRAM SOURCE_DIR
set -u
nhgd=$1 src=$2
fresh=$PWD/docs_options/options.md
rm -rf "$PWD/docs_options"
bash "$src/scripts/gen-options-doc.sh" "$nhgd" "$fresh" >/dev/null || {
  echo "FAIL scripts/gen-options-doc.sh could not generate the options reference"
  exit 1
}
if diff -u "$src/docs/options.md" "$fresh"; then
  echo "ok   docs/options.md matches the help of $nhgd"
  exit 0
fi
echo "FAIL docs/options.md differs from the help of the built program (diff above: - committed, + program)."
echo "     Regenerate it and commit the result:"
echo "       cd $src && scripts/gen-options-doc.sh $nhgd"
exit 1
