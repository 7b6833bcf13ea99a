#!/bin/sh
# An app that leaves an orphan behind, as many do (a daemonising helper, a pipeline left
# running): the orphan is re-parented to PID 1, and only an init that reaps reaps it.
echo "app: pid $$, parent $PPID"
sh -c 'sleep 2 & echo "app: left orphan $!"'
trap 'echo "app: stopping"; exit 0' TERM INT
while :; do
    sleep 1 &
    wait $!
done
