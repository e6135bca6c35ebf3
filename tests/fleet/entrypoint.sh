#!/bin/sh
# Start sshd for one test-fleet host.
#   SSH_PORT        port to listen on (default 22)
#   LISTEN_ADDRESS  address to listen on (default 127.0.0.1: with host networking,
#                   the fleet must be reachable from loopback only)
#   AUTHORIZED_KEY  public key allowed to log in as each login user: tester,
#                   nopass, nosudo, ttyuser (optional: keys can also be added
#                   later with `docker exec`)
#   HOST_CA_KEY     a CA's private key (optional): the host key is signed with it
#                   and sshd presents the certificate (HostCertificate)
#   HOST_CERT_PRINCIPALS  the certificate's principals, comma-separated (none if unset)
#   HOST_CERT_VALIDITY    its validity, as ssh-keygen -V takes it (forever if unset)
#   TRUSTED_USER_CA_KEY   a CA's public key line (optional): sshd accepts the user
#                   certificates it signs (TrustedUserCAKeys)
#   PASSWORD_AUTH   "yes" to accept passwords (PasswordAuthentication; default no)
# Every container makes its own host key at start, so no two hosts share one.
set -eu
port="${SSH_PORT:-22}"
addr="${LISTEN_ADDRESS:-127.0.0.1}"
key=/etc/ssh/ssh_host_ed25519_key
[ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -f "$key"
certificate=""
if [ -n "${HOST_CA_KEY:-}" ]; then
    ca=/run/fleet-host-ca
    (umask 077 && printf '%s\n' "$HOST_CA_KEY" > "$ca")
    set -- -q -s "$ca" -h -I "fanout-fleet-host"
    [ -z "${HOST_CERT_PRINCIPALS:-}" ] || set -- "$@" -n "$HOST_CERT_PRINCIPALS"
    [ -z "${HOST_CERT_VALIDITY:-}" ] || set -- "$@" -V "$HOST_CERT_VALIDITY"
    ssh-keygen "$@" "$key.pub"
    rm -f "$ca"
    certificate="-oHostCertificate=$key-cert.pub"
fi
trusted=""
if [ -n "${TRUSTED_USER_CA_KEY:-}" ]; then
    printf '%s\n' "$TRUSTED_USER_CA_KEY" > /etc/ssh/fleet_user_ca.pub
    trusted="-oTrustedUserCAKeys=/etc/ssh/fleet_user_ca.pub"
fi
# The login users of hosts.LOGIN_USERS: change both together.
for user in tester nopass nosudo ttyuser; do
    home="/home/$user"
    mkdir -p "$home/.ssh"
    touch "$home/.ssh/authorized_keys"
    if [ -n "${AUTHORIZED_KEY:-}" ]; then
        printf '%s\n' "$AUTHORIZED_KEY" >> "$home/.ssh/authorized_keys"
    fi
    chown -R "$user:$user" "$home/.ssh"
    chmod 700 "$home/.ssh"
    chmod 600 "$home/.ssh/authorized_keys"
done
mkdir -p /run/sshd
# OpenSSH 9.8 and later refuse a source address for a while after failed or
# abandoned logins (PerSourcePenalties). Every test connects from 127.0.0.1 and
# many fail on purpose (wrong keys, refused host keys), so the penalty would
# soon lock the whole suite out: switch it off where sshd knows the option.
penalties=""
if /usr/sbin/sshd -t -f /dev/null -o "HostKey=$key" -o PerSourcePenalties=no 2>/dev/null; then
    penalties="-oPerSourcePenalties=no"
fi
# shellcheck disable=SC2086  # $penalties, $certificate and $trusted are each one word or none
exec /usr/sbin/sshd -D -e $penalties $certificate $trusted \
    -o "Port=$port" \
    -o "ListenAddress=$addr" \
    -o "HostKey=$key" \
    -o "PasswordAuthentication=${PASSWORD_AUTH:-no}" \
    -o "KbdInteractiveAuthentication=no" \
    -o "PermitRootLogin=no" \
    -o "UseDNS=no"
