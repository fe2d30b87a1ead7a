#!/usr/bin/env bash
# Lay the box's hardening out under a root folder (default /; DESTDIR=/tmp/img for an image):
# systemd units, sysusers/tmpfiles entries, the firewall, the update and drop-share tools, the
# pinned update key, and the folders with their modes. Idempotent: running it twice gives the
# same tree. Site files the technician edits (/etc/hall/site.nft, /etc/hall/hall.env) are
# written once from their examples and never overwritten. Owners other than root are set on the
# box by systemd-sysusers and systemd-tmpfiles (the hall user does not exist in an image yet).
#
#   DESTDIR=/tmp/img UPDATE_PUBKEY=update.pub ./install.sh
set -euo pipefail
cd "$(dirname "$0")"
DESTDIR="${DESTDIR:-}"
UPDATE_PUBKEY="${UPDATE_PUBKEY:-}"

put() {  # put MODE SRC DEST: copy when the content differs, always set the mode
  local mode="$1" src="$2" dest="$DESTDIR$3"
  [ -d "$(dirname "$dest")" ] || install -d -m 0755 "$(dirname "$dest")"
  if ! cmp -s "$src" "$dest" 2>/dev/null; then
    install -m "$mode" "$src" "$dest"
  fi
  chmod "$mode" "$dest"
}
seed() {  # seed MODE SRC DEST: only when DEST does not exist (a site file)
  local mode="$1" src="$2" dest="$DESTDIR$3"
  [ -d "$(dirname "$dest")" ] || install -d -m 0755 "$(dirname "$dest")"
  [ -e "$dest" ] || install -m "$mode" "$src" "$dest"
}
folder() {  # folder MODE DIR
  install -d -m "$1" "$DESTDIR$2"
  chmod "$1" "$DESTDIR$2"
}

folder 0755 /etc/systemd/system
for unit in hall.service hall-archive.service hall-firewall.service; do
  put 0644 "systemd/$unit" "/etc/systemd/system/$unit"
done
put 0644 sysusers.d/hall.conf /usr/lib/sysusers.d/hall.conf
put 0644 tmpfiles.d/hall.conf /usr/lib/tmpfiles.d/hall.conf
folder 0750 /etc/hall
folder 0700 /etc/hall/keys
put 0640 nftables/hall.nft /etc/hall/nftables.nft
put 0640 nftables/site.example.nft /etc/hall/site.example.nft
seed 0640 nftables/site.example.nft /etc/hall/site.nft
seed 0640 hall.env.example /etc/hall/hall.env
put 0755 hall-update /usr/local/sbin/hall-update
put 0755 hall-drop-shares /usr/local/sbin/hall-drop-shares
if [ -n "$UPDATE_PUBKEY" ]; then
  put 0644 "$UPDATE_PUBKEY" /etc/hall/update.pub
fi
folder 0700 /var/lib/hall
folder 0750 /srv/hall-drop
folder 0755 /opt/hall
folder 0755 /opt/hall/releases
echo "install.sh: laid out under ${DESTDIR:-/}"
