// Starts dynalite (the DynamoDB emulator) so that a client that goes away in
// the middle of sending a request cannot take it down.
//
// dynalite's request handler rethrows every request 'error' as an uncaught
// exception (index.js: req.on('error', function (err) { throw err })). When a
// client aborts its request (a worker killed mid-write, a cancelled context)
// Node emits 'aborted' / ECONNRESET on the request, and the emulator dies for
// every test after. DynamoDB just drops such a request, and so does this
// launcher: a 'request' listener that runs before dynalite's wraps the error
// listeners dynalite adds, swallowing that one error and passing every other
// on, so any other failure still crashes loudly. Nothing under node_modules is
// edited.
//
// Usage: node dynalite.js PORT  (NODE_PATH must reach node_modules)
"use strict";
const dynalite = require("dynalite");

function isAbort(err) {
  return !!err && (err.code === "ECONNRESET" || err.code === "ECONNABORTED") &&
    /aborted|socket hang up/i.test(String(err.message));
}

let dropped = 0;
const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
server.prependListener("request", (req) => {
  const on = req.on;
  req.on = req.addListener = function (event, listener) {
    if (event !== "error") return on.apply(this, arguments);
    return on.call(this, event, function (err) {
      if (isAbort(err)) {
        dropped++;
        if (dropped <= 5 || dropped % 100 === 0) {
          console.error("dynalite launcher: dropped a request its client aborted (%d so far)", dropped);
        }
        return;
      }
      return listener.apply(this, arguments);
    });
  };
});
// The port is the last argument (node FILE PORT, or node -e SCRIPT PORT).
server.listen(Number(process.argv[process.argv.length - 1]), "127.0.0.1", () => {
  console.log("dynalite listening on 127.0.0.1:%d", server.address().port);
});
