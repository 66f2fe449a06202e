#!/usr/bin/env bash
# `make test`: the whole suite as two pytest processes side by side, one a core, since one process keeps one core
# busy and leaves the other mostly idle. The folders are split in two halves of about equal time (measured serially
# with --durations: peftcore + jobs + studio_cli + teams ~ 700 s, integration + webapp + browser ~ 680 s). Each
# shard gets a test database, a Redis database, a Celery worker and a STUDIO_HOME (tests/settings.py) of its own.
# Arguments, or TEST_PROCESSES=1, run one plain pytest instead: `make test PYTEST_ARGS="tests/webapp -k upload"`.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTEST=(.venv/bin/python -m pytest)
if [ $# -gt 0 ] || [ "${TEST_PROCESSES:-2}" = 1 ]; then
  exec "${PYTEST[@]}" "$@"
fi

ONE=(tests/peftcore tests/jobs tests/studio_cli tests/teams)
database=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
broker=${CELERY_BROKER_URL:-redis://127.0.0.1:6379/15}
# shard one's own names: the database name with "_p" added (before any ?options), the Redis database one below
# (or 14 where the URL names none)
one_database="${database%%\?*}_p${database#"${database%%\?*}"}"
if [[ $broker =~ ^rediss?://[^/?]+/([0-9]+)$ ]]; then
  number=${BASH_REMATCH[1]}
  one_broker="${broker%/*}/$(( number > 0 ? number - 1 : 1 ))"
elif [[ $broker =~ ^rediss?://[^/?]+/?$ ]]; then
  one_broker="${broker%/}/14"
else
  echo "== CELERY_BROKER_URL=$broker is not redis://host:port/N: one pytest process, not two" >&2
  exec "${PYTEST[@]}"
fi

log=$(mktemp -t tests-shard-one.XXXXXX)
# one thread of torch each: two processes on two cores, not four threads fighting for them
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
unset STUDIO_HOME  # each shard makes its own (tests/settings.py); a shared one would mix their models and logs
# bash starts a background job with SIGINT ignored; the subshell takes it back, so that Ctrl-C (passed on by the
# trap) lets pytest run its teardown, which stops the shard's Celery worker
(
  trap - INT
  exec env DATABASE_URL="$one_database" CELERY_BROKER_URL="$one_broker" "${PYTEST[@]}" -o cache_dir=.pytest_cache/one \
    "${ONE[@]}"
) >"$log" 2>&1 &
one=$!
trap 'kill -INT $one 2>/dev/null' INT TERM

echo "== shard two: everything but ${ONE[*]} (shard one, ${ONE[*]}, runs beside it; its output follows)"
DATABASE_URL=$database CELERY_BROKER_URL=$broker "${PYTEST[@]}" "${ONE[@]/#/--ignore=}"
two_rc=$?
wait $one
one_rc=$?
echo "== shard one: ${ONE[*]}"
cat "$log"
rm -f "$log"
echo "== shard one: exit $one_rc; shard two: exit $two_rc"
[ $one_rc -eq 0 ] && [ $two_rc -eq 0 ]
