// Package localapi is the local device API: devices that speak the
// platform's device API (MQTT v1/devices/me/*, HTTP /api/v1/{token}/*) talk
// to the gateway instead of the platform, are authenticated against the
// main file's localApi section, and have their data delivered through the
// gateway's journal as gateway devices. It is a push source: the runtime
// drives it like any push connector, so the devices get the same device
// actors, report strategies and downlink routing.
//
// A device's message is acknowledged (MQTT PUBACK, HTTP 200) only after the
// runtime says its data is committed to the journal.
package localapi
