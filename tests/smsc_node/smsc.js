// An SMSC for tests/test_sms_smsc_node.py, on the npm `smpp` package's server: binds are checked
// against SYSTEM_ID and PASSWORD (a wrong password answers ESME_RINVPASWD); submit_sm are
// accepted and reported as JSON lines on stdout. With CERT and KEY files it listens with TLS.
// With SMSC_MUTE_ENQUIRE_LINK=1 in the environment it never answers enquire_link (a dead link).
// usage: node smsc.js SYSTEM_ID PASSWORD [CERT KEY]
'use strict';
const fs = require('fs');
const smpp = require('smpp');
const [systemId, password, cert, key] = process.argv.slice(2);
const options = cert ? {key: fs.readFileSync(key), cert: fs.readFileSync(cert)} : {};
let nextId = 1;

function report(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

const server = smpp.createServer(options, function (session) {
  session.on('bind_transceiver', function (pdu) {
    if (pdu.system_id !== systemId || pdu.password !== password) {
      report({event: 'bind_refused', system_id: pdu.system_id});
      session.send(pdu.response({command_status: smpp.ESME_RINVPASWD}));
      return;
    }
    report({event: 'bound', system_id: pdu.system_id, system_type: pdu.system_type});
    session.send(pdu.response({system_id: 'NODESMSC'}));
  });
  session.on('submit_sm', function (pdu) {
    const messageId = 'N' + (nextId++);
    const body = Buffer.isBuffer(pdu.short_message) ? pdu.short_message
      : Buffer.from(pdu.short_message.message || '', 'latin1');
    report({event: 'submit', destination_addr: pdu.destination_addr, message_id: messageId,
            data_coding: pdu.data_coding});
    session.send(pdu.response({message_id: messageId}));
  });
  session.on('enquire_link', function (pdu) {
    report({event: 'enquire_link'});
    if (process.env.SMSC_MUTE_ENQUIRE_LINK !== '1') session.send(pdu.response());
  });
  session.on('unbind', function (pdu) { session.send(pdu.response()); session.close(); });
  session.on('error', function () {});
});
server.listen(0, '127.0.0.1', function () { report({event: 'listening', port: server.address().port}); });
