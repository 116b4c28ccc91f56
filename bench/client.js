'use strict';
// The load client of the benchmark: one Node process for every connection, no dependencies.
//
// Websockets are spoken over plain `net` sockets with a parser that does as little as it can per
// frame: an event frame is recognised by one byte and its `seq` is read from the digits at its
// end, so no string is decoded and no JSON parsed unless a run needs the event's data (latency).
//
// Usage: node client.js '<json options>'. The client talks to its parent in JSON lines: it prints
// {"ready": true} once every socket is subscribed, waits for "go" on stdin, runs, and prints one
// result object. Every wait is bounded by options.timeout (seconds).

const net = require('net');
const http = require('http');
const crypto = require('crypto');

const opts = JSON.parse(process.argv[2] || '{}');
const HOST = '127.0.0.1';
const PATH = opts.path || '/schtasks/show_task_events/channel/';
const TIMEOUT_MS = (opts.timeout || 60) * 1000;
// how long the streams mode waits, after every `stop`, for the server to close its sockets
const CLOSE_WAIT_MS = 30 * 1000;
const KEY = crypto.randomBytes(16).toString('base64');
const ACCEPT = crypto.createHash('sha1')
  .update(KEY + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');

// '{"status":"' is 11 bytes; the byte after it tells event, start, stop and pong apart.
const KIND_AT = 11;
const E = 0x65; // 'e'vent
// '{"status":"event","data":"' is 26 bytes: where a streams event's "d<due µs>" begins
const DATA_AT = 26;

function nowUs() {
  const t = process.hrtime(); // CLOCK_MONOTONIC, the clock of Python's time.monotonic_ns()
  return t[0] * 1e6 + t[1] / 1e3;
}

function emit(object) {
  process.stdout.write(JSON.stringify(object) + '\n');
}

function emitFully(object) {
  return new Promise((resolve) => process.stdout.write(JSON.stringify(object) + '\n', resolve));
}

function fail(message) {
  emit({ error: message });
  process.exit(2);
}

// A masked client frame (RFC 6455 5.3); only small control and subscribe frames are sent.
function clientFrame(opcode, payload) {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  if (body.length > 125) throw new Error('client frames are small');
  const frame = Buffer.allocUnsafe(6 + body.length);
  frame[0] = 0x80 | opcode;
  frame[1] = 0x80 | body.length;
  crypto.randomFillSync(frame, 2, 4);
  for (let i = 0; i < body.length; i++) frame[6 + i] = body[i] ^ frame[2 + (i & 3)];
  return frame;
}

const CLOSE_OK = clientFrame(8, Buffer.from([0x03, 0xe8]));

class Conn {
  constructor(index) {
    this.index = index;
    this.socket = null;
    this.rest = null; // bytes of an incomplete frame
    this.upgraded = false;
    this.received = 0;
    this.lastSeq = 0;
    this.gaps = 0;
    this.started = false;
    this.stopped = false;
    this.state = null;
    this.closeCode = null;
    this.latencies = null; // an array when the run needs them
    this.onPong = null;
    this.onEvent = null;
    this.onStop = null;
    this.onClose = null;
  }

  open() {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: HOST, port: opts.port });
      this.socket = socket;
      socket.setNoDelay(true);
      let header = Buffer.alloc(0);
      const onData = (chunk) => {
        if (this.upgraded) return this.feed(chunk);
        header = Buffer.concat([header, chunk]);
        const end = header.indexOf('\r\n\r\n');
        if (end < 0) return undefined;
        const text = header.toString('latin1', 0, end);
        if (!text.startsWith('HTTP/1.1 101') || !text.includes(ACCEPT)) {
          reject(new Error('upgrade refused: ' + text.split('\r\n')[0]));
          socket.destroy();
          return undefined;
        }
        this.upgraded = true;
        resolve(this);
        if (header.length > end + 4) this.feed(header.subarray(end + 4));
        return undefined;
      };
      socket.on('data', onData);
      socket.on('error', (err) => {
        if (!this.upgraded) reject(err);
      });
      socket.on('close', () => {
        if (this.onClose) this.onClose(this);
      });
      socket.write(
        `GET ${PATH} HTTP/1.1\r\nHost: ${HOST}:${opts.port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
  }

  send(text) {
    this.socket.write(clientFrame(1, text));
  }

  // Parse every complete frame of `chunk` (after what was left of the previous one).
  feed(chunk) {
    let buf = chunk;
    if (this.rest !== null) {
      buf = Buffer.concat([this.rest, chunk]);
      this.rest = null;
    }
    const n = buf.length;
    let i = 0;
    while (i + 2 <= n) {
      const b0 = buf[i];
      let len = buf[i + 1] & 0x7f;
      let start = i + 2;
      if (len === 126) {
        if (start + 2 > n) break;
        len = (buf[start] << 8) | buf[start + 1];
        start += 2;
      } else if (len === 127) {
        if (start + 8 > n) break;
        len = buf.readUInt32BE(start) * 4294967296 + buf.readUInt32BE(start + 4);
        start += 8;
      }
      const end = start + len;
      if (end > n) break;
      const opcode = b0 & 0x0f;
      if (opcode === 1 && len > KIND_AT && buf[start + KIND_AT] === E) {
        // {"status":"event","data":...,"seq":N}: N is the run of digits before the final '}'.
        let seq = 0;
        let scale = 1;
        for (let j = end - 2; j > start; j--) {
          const c = buf[j];
          if (c < 0x30 || c > 0x39) break;
          seq += (c - 0x30) * scale;
          scale *= 10;
        }
        if (seq !== this.lastSeq + 1) this.gaps++;
        this.lastSeq = seq;
        this.received++;
        if (this.latencies !== null) this.stamp(buf, start, end);
        if (this.onEvent !== null) this.onEvent(this);
      } else if (opcode === 1) {
        this.control(JSON.parse(buf.toString('utf8', start, end)));
      } else if (opcode === 8) {
        this.closeCode = len >= 2 ? buf.readUInt16BE(start) : 1005;
        this.socket.end(CLOSE_OK);
      } else if (opcode === 9) {
        this.socket.write(clientFrame(10, buf.subarray(start, end)));
      }
      i = end;
    }
    if (i < n) this.rest = buf.subarray(i);
  }

  // Latency runs: the event's data is "t<microseconds of CLOCK_MONOTONIC at send_event>".
  stamp(buf, start, end) {
    const data = JSON.parse(buf.toString('utf8', start, end)).data;
    if (typeof data === 'string' && data.charCodeAt(0) === 0x74) {
      this.latencies.push(nowUs() - Number(data.slice(1)));
    }
  }

  control(frame) {
    if (frame.status === 'pong') {
      if (this.onPong !== null) this.onPong(this);
    } else if (frame.status === 'start') {
      this.started = true;
    } else if (frame.status === 'stop') {
      this.stopped = true;
      this.state = frame.state;
      if (this.onStop !== null) this.onStop(this);
    }
  }

  // Subscribe, then ping: the server reads frames in order, so the pong means it has subscribed.
  subscribe(stream) {
    return new Promise((resolve) => {
      this.onPong = () => {
        this.onPong = null;
        resolve(this);
      };
      this.send(JSON.stringify({ id: stream }));
      this.send('{"ping":1}');
    });
  }

  destroy() {
    if (this.socket !== null) this.socket.destroy();
  }
}

function deadline(promise, ms, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s: ${what}`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

// Open `count` subscribed sockets, `batch` handshakes at a time (the listen backlog is finite).
async function openMany(count, streamOf, batch = 50) {
  const conns = [];
  for (let first = 0; first < count; first += batch) {
    const group = [];
    for (let k = first; k < Math.min(count, first + batch); k++) {
      const conn = new Conn(k);
      conns.push(conn);
      group.push(conn.open().then((c) => c.subscribe(streamOf(k))));
    }
    await Promise.all(group);
  }
  return conns;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function post(path, body) {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = http.request(
      {
        host: HOST,
        // On the Redis engine a task may be started on one node and watched on another.
        port: opts.startPort || opts.port,
        method: 'POST',
        path,
        agent,
        headers: { 'content-type': 'application/json', 'content-length': data.length },
      },
      (res) => {
        const parts = [];
        res.on('data', (part) => parts.push(part));
        res.on('end', () => {
          const text = Buffer.concat(parts).toString();
          if (res.statusCode !== 201) reject(new Error(`start: HTTP ${res.statusCode} ${text}`));
          else resolve(JSON.parse(text));
        });
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

function startBody(publishId) {
  return { name: opts.task, arguments: opts.arguments || {}, task_publish_id: publishId };
}

const lines = [];
let lineWaiter = null;
let stdinText = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (text) => {
  stdinText += text;
  let cut;
  while ((cut = stdinText.indexOf('\n')) >= 0) {
    lines.push(stdinText.slice(0, cut).trim());
    stdinText = stdinText.slice(cut + 1);
  }
  if (lineWaiter !== null && lines.length) {
    const wake = lineWaiter;
    lineWaiter = null;
    wake(lines.shift());
  }
});

function nextLine() {
  if (lines.length) return Promise.resolve(lines.shift());
  return new Promise((resolve) => {
    lineWaiter = resolve;
  });
}

function percentile(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function summary(values) {
  const sorted = Float64Array.from(values).sort();
  return {
    count: sorted.length,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted.length ? sorted[sorted.length - 1] : null,
  };
}

// Fan-out and latency: `subs` sockets watch one stream; one task is started; wait for every stop.
async function watchOneTask(withLatency) {
  const stream = `${opts.group}__${opts.publishId}`;
  const conns = await deadline(openMany(opts.subs, () => stream), TIMEOUT_MS, 'subscribing');
  let open = conns.length;
  let allStopped;
  const stopped = new Promise((resolve) => {
    allStopped = resolve;
  });
  for (const conn of conns) {
    if (withLatency) conn.latencies = [];
    conn.onStop = () => {
      open--;
      if (open === 0) allStopped();
    };
    conn.onClose = (c) => {
      if (!c.stopped) {
        open--;
        if (open === 0) allStopped();
      }
    };
  }
  emit({ ready: true });
  await nextLine();
  const cpu0 = process.cpuUsage();
  const t0 = nowUs();
  let timedOut = false;
  const started = await post('/api/tasks', startBody(opts.publishId));
  try {
    await deadline(stopped, TIMEOUT_MS, 'events');
  } catch (err) {
    timedOut = true;
  }
  const elapsedUs = nowUs() - t0;
  const cpu = process.cpuUsage(cpu0);
  let received = 0;
  let gaps = 0;
  let unstopped = 0;
  let lastSeqMin = Infinity;
  const states = {};
  const latencies = [];
  for (const conn of conns) {
    received += conn.received;
    gaps += conn.gaps;
    if (!conn.stopped) unstopped++;
    states[conn.state] = (states[conn.state] || 0) + 1;
    lastSeqMin = Math.min(lastSeqMin, conn.lastSeq);
    if (withLatency) for (const v of conn.latencies) latencies.push(v);
  }
  await new Promise((resolve) => setTimeout(resolve, 50)); // let the close handshakes finish
  for (const conn of conns) conn.destroy();
  const result = {
    subs: conns.length,
    expected: opts.expect * conns.length,
    received,
    lost: opts.expect * conns.length - received,
    gaps,
    unstopped,
    states,
    timedOut,
    elapsedUs,
    clientCpuUs: cpu.user + cpu.system,
    taskId: started.id,
  };
  if (withLatency) result.latencyUs = summary(latencies);
  emit(result);
}

// Start-to-first-event: each run subscribes a fresh stream, starts its task, times the first event.
async function startToFirstEvent() {
  emit({ ready: true });
  await nextLine();
  const times = [];
  const cpu0 = process.cpuUsage();
  const until = Date.now() + TIMEOUT_MS;
  for (let run = 0; run < opts.runs && Date.now() < until; run++) {
    const publishId = `${opts.publishId}-${run}`;
    const conn = new Conn(run);
    await deadline(
      conn.open().then((c) => c.subscribe(`${opts.group}__${publishId}`)),
      TIMEOUT_MS,
      'subscribing',
    );
    let gotEvent;
    let gotStop;
    const firstEvent = new Promise((resolve) => {
      gotEvent = resolve;
    });
    const stop = new Promise((resolve) => {
      gotStop = resolve;
    });
    conn.onEvent = (c) => {
      c.onEvent = null;
      gotEvent(nowUs());
    };
    conn.onStop = () => gotStop();
    const t0 = nowUs();
    await post('/api/tasks', startBody(publishId));
    const t1 = await deadline(firstEvent, TIMEOUT_MS, 'the first event');
    times.push(t1 - t0);
    await deadline(stop, TIMEOUT_MS, 'the end of the task'); // the slot is free again
    conn.destroy();
  }
  const cpu = process.cpuUsage(cpu0);
  emit({ runs: times.length, startUs: summary(times), clientCpuUs: cpu.user + cpu.system });
}

// Idle subscribers: `subs` sockets wait on a stream that never starts, until told to close.
async function idle() {
  const stream = `${opts.group}__${opts.publishId}`;
  const conns = await deadline(openMany(opts.subs, () => stream), TIMEOUT_MS, 'subscribing');
  emit({ ready: true, subs: conns.length });
  await deadline(nextLine(), TIMEOUT_MS, 'the order to close');
  for (const conn of conns) conn.destroy();
  emit({ closed: conns.length });
}

// Many streams: one socket for each of the streams `<prefix>-<first>` .. `<prefix>-<first+count-1>`,
// each carrying one event a second whose data is "d<µs of CLOCK_MONOTONIC when it was due>". The
// lateness of each event (receipt - due) is reported by its due time, so the parent can merge
// the reports of several client processes into windows of time.
async function streams() {
  const prefix = `${opts.group}__${opts.publishId}`;
  const conns = await deadline(
    openMany(opts.count, (k) => `${prefix}-${opts.first + k}`),
    TIMEOUT_MS,
    'subscribing',
  );
  const byDue = new Map();
  let open = conns.length;
  let allStopped;
  const stopped = new Promise((resolve) => {
    allStopped = resolve;
  });
  const done = () => {
    open--;
    if (open === 0) allStopped();
  };
  // After `stop` the server closes each socket, as it would a browser's: wait for that, as a
  // page would, rather than drop thousands of connections at once.
  let unclosed = conns.length;
  let allClosed;
  const closed = new Promise((resolve) => {
    allClosed = resolve;
  });
  // Every event's due time and lateness, in arrays made once: a Map or an object per event
  // would give this process's garbage collector work that grows with the run, and its pauses
  // would be counted as the server's lateness.
  const capacity = conns.length * (opts.expect + 1);
  const dues = new Float64Array(capacity);
  const lates = new Float64Array(capacity);
  let stamped = 0;
  // how long after its last event was due each stream's `stop` arrived (µs)
  const stopLates = new Float64Array(conns.length);
  let stops = 0;
  // Called as the connection's method (`this` is the connection).
  const stamp = function stamp(buf, start, end) {
    // {"status":"event","data":"d<digits>",...: read the digits in place, no string made
    let i = start + DATA_AT;
    if (buf[i - 1] !== 0x22 || buf[i] !== 0x64 || stamped === capacity) return;
    let due = 0;
    for (i++; i < end; i++) {
      const c = buf[i];
      if (c < 0x30 || c > 0x39) break;
      due = due * 10 + (c - 0x30);
    }
    dues[stamped] = due;
    lates[stamped] = nowUs() - due;
    stamped++;
    this.lastDue = due;
  };
  for (const conn of conns) {
    conn.latencies = []; // unused: `stamp` is replaced below
    conn.stamp = stamp;
    conn.lastDue = 0;
    conn.onStop = (c) => {
      if (c.lastDue > 0) stopLates[stops++] = nowUs() - c.lastDue;
      done();
    };
    conn.onClose = (c) => {
      if (!c.stopped) done();
      unclosed--;
      if (unclosed === 0) allClosed();
    };
  }
  emit({ ready: true, subs: conns.length });
  await nextLine();
  const cpu0 = process.cpuUsage();
  let timedOut = false;
  try {
    await deadline(stopped, TIMEOUT_MS, 'every stream to stop');
  } catch (err) {
    timedOut = true;
  }
  const cpu = process.cpuUsage(cpu0);
  let received = 0;
  let gaps = 0;
  let unstopped = 0;
  for (const conn of conns) {
    received += conn.received;
    gaps += conn.gaps;
    if (!conn.stopped) unstopped++;
  }
  const closingFrom = nowUs();
  if (!timedOut) {
    try {
      await deadline(closed, CLOSE_WAIT_MS, 'the server to close every socket');
    } catch (err) {
      // reported as `unclosed`
    }
  }
  const leftOpen = unclosed;
  for (let k = 0; k < stamped; k++) {
    const due = String(dues[k]);
    let list = byDue.get(due);
    if (list === undefined) byDue.set(due, (list = []));
    list.push(Math.round(lates[k]));
  }
  const closingUs = nowUs() - closingFrom;
  for (const conn of conns) conn.destroy();
  // A large line: written out before the process exits (exit() can cut a pipe's pending write).
  await emitFully({
    subs: conns.length,
    expected: opts.expect * conns.length,
    received,
    lost: opts.expect * conns.length - received,
    gaps,
    unstopped,
    unclosed: leftOpen,
    stopLatesUs: Array.from(stopLates.subarray(0, stops), Math.round),
    closingMs: Math.round(closingUs / 1000),
    timedOut,
    clientCpuUs: cpu.user + cpu.system,
    byDue: Object.fromEntries(byDue),
  });
}

const modes = {
  fanout: () => watchOneTask(false),
  latency: () => watchOneTask(true),
  start: startToFirstEvent,
  idle,
  streams,
};

if (!modes[opts.mode]) fail(`unknown mode ${opts.mode}`);
modes[opts.mode]()
  .then(() => process.exit(0))
  .catch((err) => fail(String(err && err.stack ? err.stack : err)));
