// Loaded into NNI's manager (node) through NODE_OPTIONS=--require by service/nni_launcher.py.
// NNI 3.0's REST server calls `app.listen(port)`, which listens on every interface, and has no
// option to change that. A server started with a port and no host listens on NSR_NNI_BIND
// instead (127.0.0.1 unless the launcher says otherwise, e.g. for a remote training service
// whose workers connect back to the manager).
'use strict';
const net = require('net');
const host = process.env.NSR_NNI_BIND || '127.0.0.1';
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && (args.length === 1 || typeof args[1] === 'function')) {
    args.splice(1, 0, host);
  }
  return listen.apply(this, args);
};
