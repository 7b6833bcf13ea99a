#!/bin/sh
# The example app. `treeseal run` execs it in its own place, so it runs as PID 1 and gets
# `docker stop`'s SIGTERM itself.
. /app/settings.sh
. /deps/lib/greeting.sh
echo "app: pid $$, ${APP_NAME} in ${AWS_REGION:?is missing from /app/settings.sh}, $(greeting)"
trap 'echo "app: stopping"; exit 0' TERM INT
while :; do
    sleep 1 &
    wait $!
done
