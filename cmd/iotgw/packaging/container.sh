#!/usr/bin/env bash
# Container image from a release binary, with no base image to pull: the
# static binary from release.sh, CA certificates and time zones from this
# machine, a passwd entry for the non-root user and the sample configs,
# assembled under dist/container and built FROM scratch by buildah (Debian's
# package; no daemon, no registry). The result matches the Dockerfile's
# distroless image: same user, paths, volume, healthcheck and entrypoint.
# ARCH picks the binary (default amd64); IMAGE names the image (default localhost/iotgw).
set -euo pipefail
cd "$(dirname "$0")/../../.."

arch=${ARCH:-amd64}
image=${IMAGE:-localhost/iotgw}
bin=dist/iotgw_linux_$arch
[ -x "$bin" ] || { echo "container: $bin missing: run 'go tool task release' first" >&2; exit 1; }
version=$("$bin" version | awk 'NR==1 {print $2}')
tag=${version//+/-} # a tag cannot hold "+"

root=dist/container
rm -rf "$root" && mkdir -p "$root"/{usr/bin,etc/iotgw,etc/ssl/certs,var/lib/iotgw,usr/share}
mkdir -p -m 1777 "$root/tmp" # as distroless has it: the demo and TMPDIR users need it
cp "$bin" "$root/usr/bin/iotgw"
cp cmd/iotgw/packaging/container/tb_gateway.json examples/modbus.json "$root/etc/iotgw/"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
# Time zones for schedules; the right/ and posix/ copies are duplicates.
cp -r /usr/share/zoneinfo "$root/usr/share/" && rm -rf "$root/usr/share/zoneinfo/"{right,posix}
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/var/lib/iotgw:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"

buildah ${BUILDAH_FLAGS:-} bud --format docker --layers=false \
	--label org.opencontainers.image.version="$version" \
	-f cmd/iotgw/packaging/Containerfile -t "$image:$tag" -t "$image:latest" "$root"
echo "image $image:$tag"
