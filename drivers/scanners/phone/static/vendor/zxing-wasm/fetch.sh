#!/bin/sh
# Re-fetch the vendored zxing-wasm reader build from the npm registry and check it.
# Usage: ./fetch.sh           fetch into this folder (only if every checksum matches)
#        ./fetch.sh --check   only check the files already here
set -eu
VERSION=3.1.4
here=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = "--check" ]; then
    cd "$here" && grep -v '\.tgz$' SHA256SUMS | sha256sum -c -
    exit
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack --silent "zxing-wasm@$VERSION" >/dev/null
grep '\.tgz$' "$here/SHA256SUMS" | sha256sum -c -
tar xzf "zxing-wasm-$VERSION.tgz"
cp package/dist/iife/reader/index.js index.js
cp package/dist/reader/zxing_reader.wasm zxing_reader.wasm
cp package/LICENSE LICENSE
grep -v '\.tgz$' "$here/SHA256SUMS" | sha256sum -c -
cp index.js zxing_reader.wasm LICENSE "$here/"
echo "zxing-wasm $VERSION fetched and verified"
