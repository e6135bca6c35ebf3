#!/bin/sh
# Start sshd for one test-fleet host.
#   SSH_PORT        port to listen on (default 22)
#   LISTEN_ADDRESS  address to listen on (default 127.0.0.1: with host networking,
#                   the fleet must be reachable from loopback only)
#   AUTHORIZED_KEY  public key allowed to log in as "tester" (optional: keys can
#                   also be added later with `docker exec`)
# Every container makes its own host key at start, so no two hosts share one.
set -eu
port="${SSH_PORT:-22}"
addr="${LISTEN_ADDRESS:-127.0.0.1}"
key=/etc/ssh/ssh_host_ed25519_key
[ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -f "$key"
home=/home/tester
mkdir -p "$home/.ssh"
touch "$home/.ssh/authorized_keys"
if [ -n "${AUTHORIZED_KEY:-}" ]; then
    printf '%s\n' "$AUTHORIZED_KEY" >> "$home/.ssh/authorized_keys"
fi
chown -R tester:tester "$home/.ssh"
chmod 700 "$home/.ssh"
chmod 600 "$home/.ssh/authorized_keys"
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e \
    -o "Port=$port" \
    -o "ListenAddress=$addr" \
    -o "HostKey=$key" \
    -o "PasswordAuthentication=no" \
    -o "KbdInteractiveAuthentication=no" \
    -o "PermitRootLogin=no" \
    -o "UseDNS=no"
