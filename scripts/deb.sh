#!/usr/bin/env bash
# scripts/deb.sh ARCH [OUTDIR]: builds the tapwatch Debian package for ARCH
# (armhf, arm64 or amd64) into OUTDIR (default dist/), with nfpm and
# board/deb/nfpm.yaml. Prints the package's path last.
#
# armhf is built for ARMv6 (GOARM=6), so that one package runs on every
# 32-bit Raspberry Pi OS, the Pi Zero and Pi 1 included.
#
# The environment may set GO (the go command), NFPM (the nfpm command),
# VERSION (the version the binary reports; default: git describe) and
# DEB_VERSION (the package's version; default: made from git describe).
set -euo pipefail

NFPM_MODULE=github.com/goreleaser/nfpm/v2/cmd/nfpm
NFPM_VERSION=v2.45.2

usage() {
	echo "usage: scripts/deb.sh armhf|arm64|amd64 [OUTDIR]" >&2
	exit 2
}
(($# >= 1 && $# <= 2)) || usage
arch=$1
outdir=${2:-dist}
case $arch in
armhf) goarch=arm goarm=6 ;;
arm64) goarch=arm64 goarm= ;;
amd64) goarch=amd64 goarm= ;;
*) usage ;;
esac

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
cd "$(dirname "$0")/.."
GO=${GO:-go}

nfpm=${NFPM:-}
if [[ -z $nfpm ]]; then
	nfpm=$(command -v nfpm || true)
fi
if [[ -z $nfpm ]]; then
	gobin=$($GO env GOBIN)
	[[ -n $gobin ]] || gobin=$($GO env GOPATH)/bin
	[[ -x $gobin/nfpm ]] && nfpm=$gobin/nfpm
fi
if [[ -z $nfpm || ! -x $(command -v "$nfpm" || true) ]]; then
	echo "deb.sh: nfpm is not installed; install it with: go install $NFPM_MODULE@$NFPM_VERSION" >&2
	exit 1
fi
if have=$($GO version -m "$nfpm" 2>/dev/null | awk '$1 == "mod" { print $3 }') && [[ -n $have && $have != "$NFPM_VERSION" ]]; then
	echo "deb.sh: warning: $nfpm is nfpm $have; the packages are made with $NFPM_VERSION (go install $NFPM_MODULE@$NFPM_VERSION)" >&2
fi

# The commit's time: in the version of an untagged build, and as every
# file's time in the package (SOURCE_DATE_EPOCH), so that a rebuild of the
# same commit gives the same package.
if epoch=$(git log -1 --format=%ct 2>/dev/null) && [[ -n $epoch ]]; then
	:
else
	epoch=$(date +%s)
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$epoch}

describe=$(git describe --tags --always --dirty 2>/dev/null || true)
VERSION=${VERSION:-${describe:-dev}}

# debian_version turns git describe's output into a Debian version that
# sorts the way the commits do:
#   v1.2.3                    1.2.3
#   v1.2.3-rc1                1.2.3~rc1               (before 1.2.3)
#   v1.2.3-4-g1a2b3c4         1.2.3+git20261121.4.1a2b3c4
#   1a2b3c4 (no tag)          0.0~git20261121.143005.1a2b3c4
# and appends +dirty for uncommitted changes.
debian_version() {
	local d=$1 dirty='' day v
	day=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d)
	if [[ $d == *-dirty ]]; then
		dirty=+dirty
		d=${d%-dirty}
	fi
	if ! git describe --tags --abbrev=0 >/dev/null 2>&1; then
		# No tag: a hash, or nothing outside a git checkout.
		if [[ $d =~ ^[0-9a-f]{4,40}$ ]]; then
			v="0.0~git$day.$(date -u -d "@$SOURCE_DATE_EPOCH" +%H%M%S).$d"
		else
			v="0.0~dev$day"
		fi
	elif [[ $d =~ ^v?([0-9][0-9A-Za-z.+~-]*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
		v="${BASH_REMATCH[1]//-/\~}+git$day.${BASH_REMATCH[2]}.${BASH_REMATCH[3]}"
	elif [[ $d =~ ^v?([0-9][0-9A-Za-z.+~-]*)$ ]]; then
		v=${BASH_REMATCH[1]//-/\~}
	else
		echo "deb.sh: cannot make a Debian version of tag $d; set DEB_VERSION" >&2
		return 1
	fi
	echo "$v$dirty"
}
DEB_VERSION=${DEB_VERSION:-$(debian_version "$describe")}
if [[ ! $DEB_VERSION =~ ^([0-9]+:)?[0-9][A-Za-z0-9.+~]*(-[A-Za-z0-9.+~]+)?$ ]]; then
	echo "deb.sh: $DEB_VERSION is not a Debian version" >&2
	exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "deb.sh: building tapwatch $VERSION for linux/$goarch${goarm:+ (GOARM=$goarm)}" >&2
# Optimized with the committed profile, as make build and make cross are
# (see make pgo-profile); tapbench pgo turns its text form into pprof.
env -u GOOS -u GOARCH -u GOARM -u GOARM64 -u GOAMD64 -u GO386 $GO run ./cmd/tapbench pgo -o "$work/pgo.pprof" cmd/tapwatch/pgo.txt
CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm \
	$GO build -trimpath -pgo="$work/pgo.pprof" -ldflags "-s -w -X main.version=$VERSION" -o "$work/tapwatch" ./cmd/tapwatch

pkg=$outdir/tapwatch_${DEB_VERSION#*:}_$arch.deb
DEB_ARCH=$arch DEB_VERSION=$DEB_VERSION TAPWATCH_BIN=$work/tapwatch \
	"$nfpm" package --packager deb --config board/deb/nfpm.yaml --target "$pkg" >&2
echo "$pkg"
