#!/bin/sh
# The secrets every Airflow service of docker-compose.yaml must share:
#
#   jwt_secret      AIRFLOW__API_AUTH__JWT_SECRET  signs the tokens tasks present to the
#                   api-server (and UI logins); a worker with another one is refused.
#   fernet_key      AIRFLOW__CORE__FERNET_KEY      encrypts connections and variables in
#                   the database; with another one they cannot be read, with none they
#                   are stored in clear.
#   api_secret_key  AIRFLOW__API__SECRET_KEY       signs the api-server's requests for the
#                   log a worker serves; a worker with another one answers 403.
#
# Each comes from .env (AIRFLOW_JWT_SECRET, AIRFLOW_FERNET_KEY, AIRFLOW_API_SECRET_KEY,
# which docker-compose.yaml passes under Airflow's names) when set there, otherwise from a
# file of the shared secrets volume, generated on first start.
#
#   secrets.sh init        once, as root, before any Airflow service starts: writes each
#                          secret .env does not set into the volume unless it is there,
#                          readable by the Airflow user alone (AIRFLOW_UID).
#   secrets.sh run CMD...  the entrypoint of every Airflow service: sets the three variables,
#                          then runs CMD (the image's /entrypoint and the service's command).
#
# Both refuse, naming the setting, a placeholder ("change-me..."), a Fernet key that is not
# urlsafe base64 of 32 bytes (or a comma-separated list of them while rotating), and
# `run` refuses to start without all three. An empty setting counts as unset.
# ALAMODE_SECRETS_DIR is the volume's mount point.
set -eu
umask 077

dir=${ALAMODE_SECRETS_DIR:-/opt/airflow/secrets}
names="jwt_secret fernet_key api_secret_key"
python=python3

# Standard library only, so root (the init step) needs no Airflow packages. A new Fernet
# key is made as cryptography's Fernet.generate_key() makes it, and the check is the one
# Fernet() makes of each key Airflow splits off at commas.
new_fernet_key='import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'
new_token='import secrets; print(secrets.token_urlsafe(64))'
valid_fernet_key='import base64, binascii, os, sys
def valid(key):
    try:
        return len(base64.urlsafe_b64decode(key.encode())) == 32
    except (binascii.Error, ValueError):
        return False
sys.exit(0 if all(valid(key) for key in os.environ["KEY"].split(",")) else 1)'

die() {
    printf 'secrets.sh: %s\n' "$*" >&2
    exit 1
}

# The Airflow variable and the .env setting of a secret's file name.
variable() {
    case $1 in
    jwt_secret) echo AIRFLOW__API_AUTH__JWT_SECRET ;;
    fernet_key) echo AIRFLOW__CORE__FERNET_KEY ;;
    api_secret_key) echo AIRFLOW__API__SECRET_KEY ;;
    esac
}
setting() {
    case $1 in
    jwt_secret) echo AIRFLOW_JWT_SECRET ;;
    fernet_key) echo AIRFLOW_FERNET_KEY ;;
    api_secret_key) echo AIRFLOW_API_SECRET_KEY ;;
    esac
}

generate() {
    if [ "$1" = fernet_key ]; then "$python" -c "$new_fernet_key"; else "$python" -c "$new_token"; fi
}

# The value the environment sets for a secret, empty when unset.
from_env() {
    eval "printf '%s' \"\${$(variable "$1"):-}\""
}

# check NAME VALUE WHERE: refuse a placeholder or an invalid Fernet key found in WHERE.
check() {
    case $2 in
    change-me*) die "$3 is a placeholder ('$2'): leave $(setting "$1") unset in .env to have" \
        "one generated on first start, or set your own" ;;
    esac
    if [ "$1" = fernet_key ] && ! KEY=$2 "$python" -c "$valid_fernet_key"; then
        die "$3 is not a valid Fernet key (urlsafe base64 of 32 bytes; 'new,old' while" \
            "rotating); make one with: $python -c \"$new_fernet_key\""
    fi
}

# The Airflow user owns what init writes, so services running as that user can read it.
own() {
    if [ "$(id -u)" = 0 ]; then chown "${AIRFLOW_UID:-50000}:0" "$1"; fi
}

# Write a secret's file unless it exists. The value goes to a temporary file first and is
# linked into place: link() fails if the name exists, so of starts racing, the first wins
# and every reader sees a whole value, never a half-written or replaced one.
create_once() {
    file=$dir/$1
    [ -e "$file" ] && return 0
    tmp=$(mktemp "$dir/.$1.XXXXXX")
    if ! generate "$1" >"$tmp"; then
        rm -f "$tmp"
        die "could not generate $file"
    fi
    chmod 0400 "$tmp"
    own "$tmp"
    ln "$tmp" "$file" 2>/dev/null || [ -e "$file" ] || die "could not create $file"
    rm -f "$tmp"
    echo "secrets.sh: generated $(setting "$1") into $file"
}

# What .env sets is checked first, as the likelier mistake and the one to report.
check_environment() {
    for name in $names; do
        value=$(from_env $name)
        if [ -n "$value" ]; then check $name "$value" "$(setting $name) ($(variable $name))"; fi
    done
}

init() {
    check_environment
    mkdir -p "$dir"
    own "$dir"
    chmod 0700 "$dir"
    for name in $names; do
        if [ -n "$(from_env $name)" ]; then continue; fi
        create_once $name
        own "$dir/$name"
        chmod 0400 "$dir/$name"
        check $name "$(cat "$dir/$name")" "$dir/$name"
    done
}

# Refuse to start without a secret's file, telling a missing one from a forbidden one.
readable() {
    file=$dir/$1
    [ -r "$file" ] && return 0
    if [ -e "$file" ] || { [ -d "$dir" ] && [ ! -x "$dir" ]; }; then
        die "$file is not readable by user $(id -u): the services must run as AIRFLOW_UID," \
            "the owner of the secrets volume"
    fi
    die "no $(variable "$1"): .env sets no $(setting "$1") and $file is missing;" \
        "the airflow-secrets service writes it first"
}

run() {
    [ $# -gt 0 ] || die "usage: secrets.sh run COMMAND [ARGUMENT...]"
    check_environment
    for name in $names; do
        value=$(from_env $name)
        if [ -z "$value" ]; then
            readable $name
            value=$(cat "$dir/$name")
            [ -n "$value" ] || die "$dir/$name is empty"
            check $name "$value" "$dir/$name"
        fi
        export "$(variable $name)=$value"
    done
    exec "$@"
}

command -v "$python" >/dev/null || die "$python, which makes and checks the secrets, is missing"
case ${1:-} in
init) init ;;
run)
    shift
    run "$@"
    ;;
*) die "usage: secrets.sh init | secrets.sh run COMMAND [ARGUMENT...]" ;;
esac
