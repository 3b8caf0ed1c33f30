"""Modbus master for the server tests, on Debian's python3-pymodbus (3.0).

usage: pymaster.py <port | /device/path[@baud]> <op> [<op> ...]
A port is Modbus TCP on 127.0.0.1; a path is RTU on that serial line
(19200 baud unless given). Requests go to unit 1 until a "unit" op.
ops:  hr:<addr>:<count>  ir:<addr>:<count>  co:<addr>:<count>  di:<addr>:<count>
      whr:<addr>:<v>,<v>...   (write registers, FC 16)
      wr:<addr>:<v>           (write one register, FC 6)
      wco:<addr>:<0|1>        (write coil, FC 5)
      wcos:<addr>:<0|1>,...   (write coils, FC 15)
      unit:<u>:               (later requests go to unit u; 0 broadcasts)
Prints one line per op: the values read ("hr 2 [12334]") or "ok", or
"error <message>"; exits 1 when the server cannot be reached.
"""
import logging
import sys

from pymodbus.client import ModbusSerialClient, ModbusTcpClient

logging.disable(logging.CRITICAL)


def main():
    where = sys.argv[1]
    if where.startswith("/"):
        path, _, baud = where.partition("@")
        client = ModbusSerialClient(path, baudrate=int(baud or 19200), timeout=1, retries=1, broadcast_enable=True)
    else:
        client = ModbusTcpClient("127.0.0.1", port=int(where), timeout=3)
    if not client.connect():
        print("error connect", flush=True)
        sys.exit(1)
    unit = 1
    for op in sys.argv[2:]:
        kind, addr, arg = op.split(":")
        if kind == "unit":
            unit = int(addr)
            continue
        addr = int(addr)
        if kind == "hr":
            r = client.read_holding_registers(addr, int(arg), slave=unit)
            out = None if r.isError() else r.registers
        elif kind == "ir":
            r = client.read_input_registers(addr, int(arg), slave=unit)
            out = None if r.isError() else r.registers
        elif kind == "co":
            r = client.read_coils(addr, int(arg), slave=unit)
            out = None if r.isError() else [int(b) for b in r.bits[:int(arg)]]
        elif kind == "di":
            r = client.read_discrete_inputs(addr, int(arg), slave=unit)
            out = None if r.isError() else [int(b) for b in r.bits[:int(arg)]]
        elif kind == "whr":
            r = client.write_registers(addr, [int(v) for v in arg.split(",")], slave=unit)
            out = None if r.isError() else "ok"
        elif kind == "wr":
            r = client.write_register(addr, int(arg), slave=unit)
            out = "ok" if unit == 0 or not r.isError() else None
        elif kind == "wcos":
            r = client.write_coils(addr, [v == "1" for v in arg.split(",")], slave=unit)
            out = None if r.isError() else "ok"
        elif kind == "wco":
            r = client.write_coil(addr, arg == "1", slave=unit)
            out = None if r.isError() else "ok"
        else:
            print("error unknown op", op, flush=True)
            continue
        if out is None:
            print("error", op, r, flush=True)
        elif out == "ok":
            print("ok", flush=True)
        else:
            print(kind, addr, "[" + ",".join(str(v) for v in out) + "]", flush=True)
    client.close()


main()
