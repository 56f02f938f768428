#!/usr/bin/env bash
# Relative links of the project's markdown (README.md, docs/, bench/, jobs/) point to files
# that exist. usage: links.sh SOURCE_DIR
set -u
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3
exec $python "$(dirname "$0")/check_links.py" "$1"
