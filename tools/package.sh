#!/usr/bin/env bash
# tools/package.sh — builds the Debian package: build-pkg/telebridge_VERSION_ARCH.deb.
#
#   ./tools/package.sh        configure build-pkg/ with the Debian paths (prefix /usr, config in
#                             /etc/telebridge), build, strip, run cpack; prints the .deb's path
#
# Install it with: apt install ./build-pkg/telebridge_*.deb (see docs/operations.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TB_SCRIPT=package.sh
# shellcheck source=tools/lib.sh
source tools/lib.sh

DIR=${TB_PACKAGE_DIR:-build-pkg}

cmake -S . -B "$DIR" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DTB_TESTS=OFF \
    -DTB_WERROR=ON >/dev/null
cmake --build "$DIR" -j2 >&2
rm -f "$DIR"/telebridge_*.deb
(cd "$DIR" && cpack -G DEB >/dev/null)
ls "$PWD/$DIR"/telebridge_*.deb
