// The reference bridge telebridge is benchmarked against: the MQTT -> WebSocket fan-out most
// teams would write in Node with the `mqtt` and `ws` packages. Same rooms and envelope as
// telebridge for the benchmark's workload (topics bench/{group}/{device}/telemetry): a
// `connected` greeting, `subscribe` -> `subscribed`, telemetry encoded once per message and
// sent to each connection of device:<id>, group:<name> and global at most once.
// It verifies no token (that only makes it faster).
//
// usage: node bridge.js WS_PORT MQTT_PORT [--deflate THRESHOLD]
//
// --deflate turns on ws's permessage-deflate as a team would (`perMessageDeflate` with ws's
// defaults: context takeover both ways, zlib level and memory at zlib's defaults, one zlib
// stream per connection and direction), except that messages of THRESHOLD bytes and more are
// compressed (ws's default threshold, 1024, would leave every telemetry frame uncompressed).
'use strict';
const mqtt = require('mqtt');
const { WebSocketServer } = require('ws');

const [wsPort, mqttPort] = process.argv.slice(2, 4).map(Number);
const deflateAt = process.argv[4] === '--deflate' ? Number(process.argv[5]) : -1;
if (process.argv.length > 4 && !(deflateAt >= 0)) {
  console.error('usage: node bridge.js WS_PORT MQTT_PORT [--deflate THRESHOLD]');
  process.exit(2);
}
const rooms = new Map(); // room name -> Set of sockets
let seq = 0;
let nextId = 1;

function envelope(type, payload, extra) {
  return JSON.stringify({ type, ...extra, payload, timestamp: new Date().toISOString() });
}

function join(ws, room) {
  if (!rooms.has(room)) rooms.set(room, new Set());
  rooms.get(room).add(ws);
  ws.rooms.add(room);
}

function onClientMessage(ws, data) {
  let msg;
  try {
    msg = JSON.parse(data);
  } catch {
    ws.send(envelope('error', { code: 'bad_request', message: 'not JSON' }));
    return;
  }
  if (msg.type === 'subscribe' && Array.isArray(msg.payload?.rooms)) {
    msg.payload.rooms.forEach((r) => join(ws, r));
    ws.send(envelope('subscribed', { rooms: msg.payload.rooms }));
  } else if (msg.type === 'ping') {
    ws.send(envelope('pong', {}, { request_id: msg.request_id }));
  } else {
    ws.send(envelope('error', { code: 'unknown_type', message: 'unknown type' }));
  }
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: wsPort,
  path: '/ws',
  perMessageDeflate: deflateAt >= 0 ? { threshold: deflateAt } : false,
});
wss.on('connection', (ws) => {
  ws.rooms = new Set();
  const id = `c${nextId++}`;
  ws.send(envelope('connected', { connection_id: id, server_time: new Date().toISOString() }));
  ws.on('message', (data) => onClientMessage(ws, data));
  ws.on('close', () => ws.rooms.forEach((r) => rooms.get(r).delete(ws)));
});

function normalise(device, body) {
  const fields = {};
  const src = body.fields && typeof body.fields === 'object' ? body.fields : body;
  for (const [k, v] of Object.entries(src)) {
    if (k !== 'timestamp' && k !== 'tags' && typeof v !== 'object') fields[k] = v;
  }
  const timestamp = new Date().toISOString();
  return { device_id: device, timestamp, fields, tags: body.tags || {} };
}

const client = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, { clientId: `node-bridge-${process.pid}` });
client.on('connect', () => client.subscribe('bench/+/+/telemetry', { qos: 1 }));
client.on('message', (topic, payload) => {
  const [, group, device] = topic.split('/');
  let body;
  try {
    body = JSON.parse(payload);
  } catch {
    return;
  }
  const room = `device:${device}`;
  const frame = envelope('telemetry', normalise(device, body), { room, seq: ++seq });
  const seen = new Set();
  for (const r of [room, `group:${group}`, 'global']) {
    for (const ws of rooms.get(r) || []) {
      if (!seen.has(ws)) {
        seen.add(ws);
        ws.send(frame);
      }
    }
  }
});

process.on('SIGTERM', () => process.exit(0));
