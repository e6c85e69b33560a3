// An independent LwM2M client (npm lwm2m-node-lib) driven by a test over stdin/stdout.
//   node lwm2m_node_lib_client.js HOST PORT ENDPOINT
// Prints "registered <location>", then obeys lines on stdin: "update", "deregister".
'use strict';
var client = require('lwm2m-node-lib').client;

var host = process.argv[2], port = process.argv[3], ep = process.argv[4];
var config = { client: { lifetime: '120', version: '1.0.0', logLevel: 'FATAL', observe: { period: 3000 },
                         ipProtocol: 'udp4', serverProtocol: 'udp4', port: 0 }, logLevel: 'FATAL' };
var device = null;

function out(line) { process.stdout.write(line + '\n'); }

client.init(config);
client.registry.create('/3/0', function (err) {
    if (err) { out('error ' + err.message); process.exit(1); }
    client.registry.setResource('/3/0', '0', 'lwm2m-node-lib', function () {
        client.registry.setResource('/3/0', '1', 'test-client', function () {
            client.register(host, port, null, ep, function (err, info) {
                if (err) { out('error ' + err.message); process.exit(1); }
                device = info;
                out('registered ' + info.location);
            });
        });
    });
});

var buffer = '';
process.stdin.on('data', function (chunk) {
    buffer += chunk.toString();
    var lines = buffer.split('\n');
    buffer = lines.pop();
    lines.forEach(function (line) {
        if (line === 'update') {
            client.update(device, function (err) { out(err ? 'error ' + err.message : 'updated'); });
        } else if (line === 'deregister') {
            client.unregister(device, function (err) {
                out(err ? 'error ' + err.message : 'deregistered');
                setTimeout(function () { process.exit(0); }, 100);
            });
        }
    });
});
