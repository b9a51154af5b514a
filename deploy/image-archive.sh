#!/usr/bin/env bash
# Turns a root filesystem tarball into an image archive `docker load` takes (one layer, the image
# config saying which architecture it is for). This is how an arm64 image is made on an x86_64
# engine without buildx and without running arm64 code: `docker import` cannot set the
# architecture on an engine without experimental features, `docker load` keeps what the config says.
#
#   bash deploy/image-archive.sh ARCH ROOTFS.tar NAME:TAG OUT.tar
set -euo pipefail
arch="${1:?arch}" rootfs="${2:?rootfs tarball}" ref="${3:?image name}" out="${4:?output archive}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
diff_id="sha256:$(sha256sum "$rootfs" | cut -d' ' -f1)"
cp "$rootfs" "$work/layer.tar"
variant=""
[ "$arch" = arm64 ] && variant='"variant":"v8",'
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
printf '{"architecture":"%s",%s"os":"linux","created":"%s",' "$arch" "$variant" "$created" > "$work/config.json"
printf '"config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["node"]},' >> "$work/config.json"
printf '"rootfs":{"type":"layers","diff_ids":["%s"]},' "$diff_id" >> "$work/config.json"
printf '"history":[{"created":"%s","created_by":"deploy/image-archive.sh %s"}]}' "$created" "$arch" >> "$work/config.json"
config_id="$(sha256sum "$work/config.json" | cut -d' ' -f1)"
mv "$work/config.json" "$work/$config_id.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["layer.tar"]}]' "$config_id" "$ref" > "$work/manifest.json"
tar -C "$work" -cf "$out" manifest.json "$config_id.json" layer.tar
