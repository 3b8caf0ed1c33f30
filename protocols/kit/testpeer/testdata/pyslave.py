"""Modbus slave (server) for the wire tests, on Debian's python3-pymodbus (3.0).

usage: pyslave.py serial|tcp|udp rtu|socket <device path | port> <unit,unit,...>

Unit u serves, zero-based: holding register i = u*1000+i, input register
i = u*1000+500+i (i < 100), coil i = (i even), discrete input i = (i odd).
A TCP/UDP port of 0 binds a free port. Prints "ready <port>" once serving.
Commands on stdin, one per line, each answered on stdout:
  mute <u>    the unit stops answering (as if unplugged): "muted <u>"
  unmute <u>  it answers again: "unmuted <u>"
  hr <u> <a>  prints "hr <u> <a> <value>" (to check a master's write)
"""
import asyncio
import logging
import os
import sys
import threading

from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                ModbusSlaveContext)
from pymodbus.exceptions import NoSuchSlaveException
from pymodbus.server.async_io import (ModbusSerialServer, ModbusTcpServer,
                                      ModbusUdpServer)
from pymodbus.transaction import ModbusRtuFramer, ModbusSocketFramer

if os.environ.get("PYSLAVE_DEBUG"):
    logging.basicConfig(level=logging.DEBUG)
    logging.getLogger("pymodbus").setLevel(logging.DEBUG)
else:
    logging.disable(logging.CRITICAL)


def unit_store(u):
    return ModbusSlaveContext(
        hr=ModbusSequentialDataBlock(0, [u * 1000 + i for i in range(100)]),
        ir=ModbusSequentialDataBlock(0, [u * 1000 + 500 + i for i in range(100)]),
        co=ModbusSequentialDataBlock(0, [i % 2 == 0 for i in range(100)]),
        di=ModbusSequentialDataBlock(0, [i % 2 == 1 for i in range(100)]),
        zero_mode=True,
    )


class MutableContext(ModbusServerContext):
    """A server context whose units can stop answering. pymodbus's framer
    keeps the unit list it saw when the line opened, so a muted unit stays
    listed and fails the lookup instead (ignore_missing_slaves: no reply)."""

    def __init__(self, slaves):
        super().__init__(slaves=slaves, single=False)
        self.muted = set()

    def __getitem__(self, unit):
        if unit in self.muted:
            raise NoSuchSlaveException(f"unit {unit} is muted")
        return super().__getitem__(unit)


def say(*words):
    print(*words, flush=True)


def commands(loop, context, stores):
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        try:
            if parts[0] == "mute":
                u = int(parts[1])
                loop.call_soon_threadsafe(context.muted.add, u)
                say("muted", u)
            elif parts[0] == "unmute":
                u = int(parts[1])
                loop.call_soon_threadsafe(context.muted.discard, u)
                say("unmuted", u)
            elif parts[0] == "hr":
                u, a = int(parts[1]), int(parts[2])
                say("hr", u, a, stores[u].getValues(3, a, 1)[0])
            else:
                say("error unknown command", parts[0])
        except Exception as exc:  # noqa: BLE001 - report, keep serving
            say("error", exc)
    # stdin closed: the test is gone.
    loop.call_soon_threadsafe(loop.stop)


async def main():
    kind, framing, where, units = sys.argv[1:5]
    stores = {int(u): unit_store(int(u)) for u in units.split(",")}
    context = MutableContext(dict(stores))
    framer = ModbusRtuFramer if framing == "rtu" else ModbusSocketFramer
    loop = asyncio.get_running_loop()
    if kind == "serial":
        server = ModbusSerialServer(context, framer, port=where, baudrate=9600,
                                    ignore_missing_slaves=True)
        await server.start()
        port = where
    elif kind == "tcp":
        server = ModbusTcpServer(context, framer, None, ("127.0.0.1", int(where)),
                                 ignore_missing_slaves=True)
        asyncio.ensure_future(server.serve_forever())
        await server.serving
        port = server.server.sockets[0].getsockname()[1]
    else:
        server = ModbusUdpServer(context, framer, None, ("127.0.0.1", int(where)),
                                 ignore_missing_slaves=True)
        asyncio.ensure_future(server.serve_forever())
        await server.serving
        port = server.protocol.get_extra_info("sockname")[1]
    threading.Thread(target=commands, args=(loop, context, stores), daemon=True).start()
    say("ready", port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except RuntimeError:
        pass  # loop stopped because stdin closed
