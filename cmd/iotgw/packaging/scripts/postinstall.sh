#!/bin/sh
# Runs after the package is unpacked: the service's own user, and ownership of
# its config (it holds the access token; remote configuration rewrites it).
set -e
if ! getent group iotgw >/dev/null; then
	groupadd --system iotgw
fi
if ! getent passwd iotgw >/dev/null; then
	useradd --system --gid iotgw --home-dir /var/lib/iotgw --no-create-home \
		--shell /usr/sbin/nologin --comment "IndustryOS IoT gateway" iotgw
fi
# Serial Modbus RTU and slcan adapters belong to dialout.
if getent group dialout >/dev/null; then
	usermod -a -G dialout iotgw || true
fi
chown -R iotgw:iotgw /etc/iotgw
chmod 0750 /etc/iotgw
find /etc/iotgw -type f -exec chmod 0640 {} +
install -d -o iotgw -g iotgw -m 0750 /var/lib/iotgw
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	echo "iotgw: set the platform host and access token in /etc/iotgw/tb_gateway.json, then: systemctl enable --now iotgw"
fi
