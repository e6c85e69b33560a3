// An independent LwM2M client (npm coap-node) driven by a test over stdin/stdout.
//   node coap_node_client.js HOST PORT ENDPOINT
// Prints "registered <location>", then obeys lines on stdin: "update", "deregister".
'use strict';
var SmartObject = require('smartobject');
var CoapNode = require('coap-node');

var host = process.argv[2], port = parseInt(process.argv[3], 10), ep = process.argv[4];
var so = new SmartObject();
so.init('temperature', 0, { sensorValue: 21.5, units: 'Cel' });
var node = new CoapNode(ep, so, { lifetime: 120 });

function out(line) { process.stdout.write(line + '\n'); }

node.register(host, port, function (err, rsp) {
    if (err) { out('error ' + err.message); process.exit(1); }
    out('registered ' + rsp.status + ' ' + node.locationPath);
});

var buffer = '';
process.stdin.on('data', function (chunk) {
    buffer += chunk.toString();
    var lines = buffer.split('\n');
    buffer = lines.pop();
    lines.forEach(function (line) {
        if (line === 'update') {
            node.update({ lifetime: 150 }, function (err, rsp) {
                out(err ? 'error ' + err.message : 'updated ' + rsp.status);
            });
        } else if (line === 'deregister') {
            node.deregister(function (err, rsp) {
                out(err ? 'error ' + err.message : 'deregistered ' + rsp.status);
                setTimeout(function () { process.exit(0); }, 100);
            });
        }
    });
});
