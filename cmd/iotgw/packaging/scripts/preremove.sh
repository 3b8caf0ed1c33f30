#!/bin/sh
# Stop the service before its binary goes away; the journal in /var/lib/iotgw stays.
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
	systemctl disable --now iotgw.service || true
fi
