#!/usr/bin/env bash
# Release build: static (CGO_ENABLED=0), stripped (-s -w), reproducible
# (-trimpath, empty build id, commit time as the date) binaries for the boxes
# we support, their SHA-256 sums, and a .deb for each. Output in dist/.
# VERSION overrides the version (default: the tag on HEAD, else a Go
# pseudo-version of the commit, +dirty with uncommitted changes); TARGETS
# limits the targets (CI builds only amd64 here: it cross-compiles the rest
# for its emulated tests).
set -euo pipefail
cd "$(dirname "$0")/../../.."

commit=$(git rev-parse HEAD)
date=$(git log -1 --format=%cI HEAD)
dirty=""
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then dirty="+dirty"; fi
if [ -z "${VERSION:-}" ]; then
	if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
		VERSION="$tag$dirty"
	else
		VERSION="v0.0.0-$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S HEAD)-${commit:0:12}$dirty"
	fi
fi
# Releases are built with go.mod's toolchain line even where the Go installation
# defaults to its own (GOTOOLCHAIN=local); an explicit GOTOOLCHAIN wins.
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
export SOURCE_DATE_EPOCH=$(git log -1 --format=%ct HEAD) # file times in the .deb
ldflags="-s -w -buildid= -X main.version=$VERSION -X main.commit=$commit -X main.date=$date"

rm -rf dist && mkdir -p dist
# target: GOARCH[/GOARM] and the name used in file names and for nfpm
for target in ${TARGETS:-amd64 arm64 arm/7 arm/6}; do
	goarch=${target%/*}
	goarm=""
	name=$goarch
	if [ "$goarch" = arm ]; then goarm=${target#*/}; name=armv$goarm; fi
	out=dist/iotgw_linux_$name
	CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm \
		go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$out" ./cmd/iotgw
	nfpmarch=$goarch
	if [ "$goarch" = arm ]; then nfpmarch=arm$goarm; fi
	# Debian's armhf is ARMv7; an ARMv6 build (Raspberry Pi Zero/1) ships as a binary only,
	# since a second armhf package would only differ by the name.
	if [ "$target" = arm/6 ]; then continue; fi
	# nfpm expands the environment in some fields only, not in contents' src.
	sed -e "s|\${IOTGW_VERSION}|${VERSION#v}|; s|\${IOTGW_ARCH}|$nfpmarch|; s|\${IOTGW_BINARY}|$out|" \
		cmd/iotgw/packaging/nfpm.yaml >dist/nfpm.yaml
	go tool -modfile=cmd/iotgw/packaging/tools/go.mod nfpm package -f dist/nfpm.yaml -p deb -t dist/ >/dev/null
	rm dist/nfpm.yaml
done
(cd dist && sha256sum iotgw_linux_* *.deb > SHA256SUMS)
echo "iotgw $VERSION:"
(cd dist && ls -l --block-size=K iotgw_linux_* *.deb | awk '{print "  " $5 "\t" $9}')
