// node-opcua test server for the OPC-UA connector interop tests.
//
// Started by harness.go (Start); usable by hand too:
//
//	node server.js --port 48400 [--pki DIR] [--host 127.0.0.1]
//
// Settings (flags win over the environment):
//
//	--port / IOTGW_OPCUA_PORT         TCP port (required; the Go harness picks a free one)
//	--host / IOTGW_OPCUA_HOST         address to listen on and to advertise (default 127.0.0.1)
//	--pki  / IOTGW_OPCUA_PKI          PKI root folder (default: a new temp dir). The server's own
//	                                  certificate is generated there on first start and kept, so a
//	                                  restart with the same folder presents the same certificate.
//	IOTGW_OPCUA_USER / IOTGW_OPCUA_PASSWORD   the one accepted username login (default user / pass)
//	--legacy / IOTGW_OPCUA_LEGACY=1   also offer Basic128Rsa15 and Basic256 (the upstream connector's
//	                                  default policy is Basic128Rsa15). Their RSA PKCS#1 v1.5
//	                                  decryption needs `node --security-revert=CVE-2023-46809`
//	                                  on Node >= 20; the harness passes it.
//
// When listening it prints exactly one line
//
//	READY {"url":"opc.tcp://127.0.0.1:48400","namespaceUri":"urn:industryos:interop","namespaceIndex":2,...}
//
// to stdout. It stops on SIGTERM/SIGINT and when its stdin closes (the parent died).
//
// Address space (namespace urn:industryos:interop, string node ids):
//
//	Objects/Devices                       ns=N;s=Devices              (folder)
//	  Boiler1                             ns=N;s=Boiler1              (object)
//	    Temperature  Double, read-only,   ns=N;s=Boiler1.Temperature  20.0 + (tick % 100) / 10, a tick every 100 ms
//	    Pressure     Double, read-only,   ns=N;s=Boiler1.Pressure     1.5
//	    Status       String, read-only,   ns=N;s=Boiler1.Status       "RUNNING"
//	    Setpoint     Double, read/write,  ns=N;s=Boiler1.Setpoint     50.0
//	    ResetCount   Int32,  read-only,   ns=N;s=Boiler1.ResetCount   0, +1 per Reset()
//	    Multiply(a Double, b Double) -> result Double                 ns=N;s=Boiler1.Multiply
//	    Reset()  sets Setpoint back to 50.0, ResetCount += 1          ns=N;s=Boiler1.Reset
//
// Security: None/None, Basic256Sha256 Sign and SignAndEncrypt (with --legacy also Basic128Rsa15 and
// Basic256); anonymous and username tokens.
// Every client certificate is accepted (automaticallyAcceptUnknownCertificate).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
    DataType,
    MessageSecurityMode,
    OPCUACertificateManager,
    OPCUAServer,
    SecurityPolicy,
    StatusCodes,
    Variant,
    nodesets
} from "node-opcua";

const NAMESPACE_URI = "urn:industryos:interop";
const SETPOINT_DEFAULT = 50.0;

function arg(name) {
    const i = process.argv.indexOf(`--${name}`);
    if (i >= 0 && i + 1 < process.argv.length) {
        return process.argv[i + 1];
    }
    const eq = process.argv.find((a) => a.startsWith(`--${name}=`));
    return eq ? eq.slice(name.length + 3) : undefined;
}

function fail(msg) {
    process.stderr.write(`server.js: ${msg}\n`);
    process.exit(2);
}

const port = Number(arg("port") ?? process.env.IOTGW_OPCUA_PORT);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    fail("a TCP port is required: --port N or IOTGW_OPCUA_PORT=N");
}
const host = arg("host") ?? process.env.IOTGW_OPCUA_HOST ?? "127.0.0.1";
const pki = arg("pki") ?? process.env.IOTGW_OPCUA_PKI ?? fs.mkdtempSync(path.join(os.tmpdir(), "iotgw-opcua-pki-"));
const username = process.env.IOTGW_OPCUA_USER ?? "user";
const password = process.env.IOTGW_OPCUA_PASSWORD ?? "pass";
const legacy = process.argv.includes("--legacy") || process.env.IOTGW_OPCUA_LEGACY === "1";
const securityPolicies = [SecurityPolicy.None, SecurityPolicy.Basic256Sha256];
if (legacy) {
    securityPolicies.push(SecurityPolicy.Basic128Rsa15, SecurityPolicy.Basic256);
}

async function main() {
    fs.mkdirSync(pki, { recursive: true });
    const serverCertificateManager = new OPCUACertificateManager({
        rootFolder: path.join(pki, "server"),
        automaticallyAcceptUnknownCertificate: true,
        keySize: 2048
    });
    const userCertificateManager = new OPCUACertificateManager({
        rootFolder: path.join(pki, "user"),
        automaticallyAcceptUnknownCertificate: true,
        keySize: 2048
    });

    const server = new OPCUAServer({
        port,
        host,
        hostname: host,
        resourcePath: "",
        nodeset_filename: [nodesets.standard],
        serverCertificateManager,
        userCertificateManager,
        securityPolicies,
        securityModes: [MessageSecurityMode.None, MessageSecurityMode.Sign, MessageSecurityMode.SignAndEncrypt],
        allowAnonymous: true,
        disableDiscovery: false,
        registerServerMethod: 1, // HIDDEN: no LDS, no mDNS
        isAuditing: false,
        serverInfo: {
            applicationUri: "urn:industryos:interop:server",
            productUri: "urn:industryos:interop",
            applicationName: { text: "IndustryOS interop server", locale: "en" }
        },
        buildInfo: { productName: "iotgw-opcua-interop", manufacturerName: "IndustryOS" },
        userManager: {
            isValidUser: (user, pass) => user === username && pass === password
        }
    });

    await server.initialize();
    const addressSpace = server.engine.addressSpace;
    const ns = addressSpace.registerNamespace(NAMESPACE_URI);
    const nsIndex = ns.index;
    const nid = (s) => `ns=${nsIndex};s=${s}`;

    const devices = ns.addFolder(addressSpace.rootFolder.objects, { browseName: "Devices", nodeId: nid("Devices") });
    const boiler = ns.addObject({ organizedBy: devices, browseName: "Boiler1", nodeId: nid("Boiler1") });

    let tick = 0;
    const temperature = ns.addVariable({
        componentOf: boiler,
        browseName: "Temperature",
        accessLevel: "CurrentRead",
        userAccessLevel: "CurrentRead",
        nodeId: nid("Boiler1.Temperature"),
        dataType: "Double",
        minimumSamplingInterval: 100,
        value: new Variant({ dataType: DataType.Double, value: 20.0 })
    });
    const timer = setInterval(() => {
        tick += 1;
        temperature.setValueFromSource(new Variant({ dataType: DataType.Double, value: 20.0 + (tick % 100) / 10 }));
    }, 100);

    ns.addVariable({
        componentOf: boiler,
        browseName: "Pressure",
        accessLevel: "CurrentRead",
        userAccessLevel: "CurrentRead",
        nodeId: nid("Boiler1.Pressure"),
        dataType: "Double",
        value: new Variant({ dataType: DataType.Double, value: 1.5 })
    });
    ns.addVariable({
        componentOf: boiler,
        browseName: "Status",
        accessLevel: "CurrentRead",
        userAccessLevel: "CurrentRead",
        nodeId: nid("Boiler1.Status"),
        dataType: "String",
        value: new Variant({ dataType: DataType.String, value: "RUNNING" })
    });
    const setpoint = ns.addVariable({
        componentOf: boiler,
        browseName: "Setpoint",
        nodeId: nid("Boiler1.Setpoint"),
        dataType: "Double",
        accessLevel: "CurrentRead | CurrentWrite",
        userAccessLevel: "CurrentRead | CurrentWrite",
        value: new Variant({ dataType: DataType.Double, value: SETPOINT_DEFAULT })
    });
    let resets = 0;
    const resetCount = ns.addVariable({
        componentOf: boiler,
        browseName: "ResetCount",
        accessLevel: "CurrentRead",
        userAccessLevel: "CurrentRead",
        nodeId: nid("Boiler1.ResetCount"),
        dataType: "Int32",
        value: new Variant({ dataType: DataType.Int32, value: 0 })
    });

    const multiply = ns.addMethod(boiler, {
        browseName: "Multiply",
        nodeId: nid("Boiler1.Multiply"),
        inputArguments: [
            { name: "a", description: { text: "first factor" }, dataType: DataType.Double },
            { name: "b", description: { text: "second factor" }, dataType: DataType.Double }
        ],
        outputArguments: [{ name: "result", description: { text: "a * b" }, dataType: DataType.Double }]
    });
    // bindMethod tells the promise form from the callback form by arity: two parameters.
    multiply.bindMethod(async (inputArguments, _context) => ({
        statusCode: StatusCodes.Good,
        outputArguments: [{ dataType: DataType.Double, value: inputArguments[0].value * inputArguments[1].value }]
    }));

    const reset = ns.addMethod(boiler, {
        browseName: "Reset",
        nodeId: nid("Boiler1.Reset"),
        inputArguments: [],
        outputArguments: []
    });
    reset.bindMethod(async (_inputArguments, _context) => {
        resets += 1;
        setpoint.setValueFromSource(new Variant({ dataType: DataType.Double, value: SETPOINT_DEFAULT }));
        resetCount.setValueFromSource(new Variant({ dataType: DataType.Int32, value: resets }));
        return { statusCode: StatusCodes.Good, outputArguments: [] };
    });

    await server.start();

    let stopping = false;
    const stop = async (why) => {
        if (stopping) {
            return;
        }
        stopping = true;
        clearInterval(timer);
        process.stderr.write(`server.js: stopping (${why})\n`);
        // A graceful shutdown waits for connected clients to close their
        // channels (seconds on a busy machine); tests want a prompt stop.
        setTimeout(() => process.exit(0), 1000).unref();
        try {
            await server.shutdown(0);
        } finally {
            process.exit(0);
        }
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    process.stdin.on("end", () => stop("stdin closed"));
    process.stdin.on("error", () => stop("stdin error"));
    process.stdin.resume();

    const url = `opc.tcp://${host}:${port}`;
    const ready = {
        url,
        endpointUrl: server.getEndpointUrl(),
        namespaceUri: NAMESPACE_URI,
        namespaceIndex: nsIndex,
        applicationUri: "urn:industryos:interop:server",
        serverCertificate: server.certificateFile,
        pki,
        securityPolicies,
        pid: process.pid,
        nodeVersion: process.version
    };
    process.stdout.write(`READY ${JSON.stringify(ready)}\n`);
}

main().catch((err) => {
    process.stderr.write(`server.js: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
});
