"""A connector process in Python: registers, sends telemetry, answers one RPC.

Run by TestPythonClient with stubs generated from ../pb/messages.proto.
Usage: client.py ADDRESS KEY
"""
import queue
import sys

import grpc
import messages_pb2 as pb
import messages_pb2_grpc as rpc

addr, key = sys.argv[1], sys.argv[2]
out = queue.Queue()
out.put(pb.FromConnectorMessage(registerConnectorMsg=pb.RegisterConnectorMsg(connectorKey=key)))


def requests():
    while True:
        m = out.get()
        if m is None:
            return
        yield m


with grpc.insecure_channel(addr) as ch:
    answers = rpc.TBGatewayProtoServiceStub(ch).stream(requests())
    reg = next(answers)
    print("registered", pb.ResponseStatus.Name(reg.response.status), reg.connectorConfigurationMsg.connectorName, flush=True)
    if reg.response.status != pb.SUCCESS:
        sys.exit(1)
    kv = pb.KeyValueProto(key="temp", type=pb.DOUBLE_V, double_v=21.5)
    out.put(pb.FromConnectorMessage(gatewayTelemetryMsg=pb.GatewayTelemetryMsg(msg=[
        pb.TelemetryMsg(deviceName="py-dev", msg=pb.PostTelemetryMsg(tsKvList=[pb.TsKvListProto(ts=0, kv=[kv])]))])))
    for m in answers:
        if m.HasField("response"):
            print("answer", pb.ResponseStatus.Name(m.response.status), flush=True)
        if m.HasField("gatewayDeviceRpcRequestMsg"):
            r = m.gatewayDeviceRpcRequestMsg
            out.put(pb.FromConnectorMessage(gatewayRpcResponseMsg=pb.GatewayRpcResponseMsg(
                deviceName=r.deviceName, id=r.rpcRequestMsg.requestId, data='{"echo":"%s"}' % r.rpcRequestMsg.methodName)))
            out.put(pb.FromConnectorMessage(unregisterConnectorMsg=pb.UnregisterConnectorMsg(connectorKey=key)))
            out.put(None)
    print("done", flush=True)
