#!/bin/sh
# Debian packages the test suite needs beyond Python: the libraries of Qt's
# offscreen platform (the viewer's tests render real widgets), a font, and
# curl (the wire-format docs show reading a stream with curl; a test runs it)
# and openssl (the TLS how-to makes a CA and a certificate with it; a test runs
# those commands); etcd (etcd-server, with etcdctl from etcd-client: the
# cluster's tests start a real etcd on loopback and read it with etcdctl);
# postgresql (the PostgreSQL store's tests start a real server with initdb
# and pg_ctl) and mosquitto (the MQTT source's tests and benchmark start a
# real broker); ffmpeg (the timelapse video policy).
# Installs only what is missing, so a machine that has them needs no network.
set -eu
PACKAGES="libegl1 libgl1 libfontconfig1 libxkbcommon0 libglib2.0-0 libdbus-1-3 fonts-dejavu-core curl openssl etcd-server etcd-client postgresql mosquitto ffmpeg"
if ! command -v dpkg >/dev/null 2>&1; then
    echo "system-deps: not a Debian system; install the equivalents of: $PACKAGES" >&2
    exit 0
fi
missing=""
for package in $PACKAGES; do
    dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
[ -z "$missing" ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "system-deps: installing$missing" >&2
$sudo apt-get update -q
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing
