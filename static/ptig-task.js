/**
 * <ptig-task>: the browser end of a Taskcast task stream (docs/element.md).
 *
 * This module owns two things and needs no build step:
 *  - the event mini-language of Pytigon's component: `parseEvent`, `resolveTarget`, `htmlToNode`
 *    and `applyEvent`, pure DOM functions exported for tests and for pages that want them;
 *  - the custom element `PtigTaskElement`: one websocket per attached element, a ping every 10 s,
 *    the subscription (and the optional GET of `task_href` that starts the task), status classes,
 *    reconnect with resume after a dropped socket (and a fresh render when the server's copy of
 *    the stream was replaced: a new epoch), reflected attributes and `ptig-task:*` events.
 * The server's HTML is applied as is: it comes from task code on the server, which is trusted.
 */

// Tried in this order; the first marker found anywhere in the string wins (contract D26).
const OPERATORS = ['>>', '<<', '>', '(', ')'];
const INSERT = {
  '>>': (target, node) => target.append(node), // last child
  '<<': (target, node) => target.prepend(node), // first child
  '>': (target, node) => target.replaceChildren(node), // the only child
  '(': (target, node) => target.before(node), // previous sibling
  ')': (target, node) => target.after(node), // next sibling
};
const PING_MS = 10_000;
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 10_000;
// The server refused this client or its input: asking again would be refused again.
const REFUSED_CODES = new Set([1003, 1007, 1008, 1009]);

/** Splits an event string into {html, op, target}; null when `text` is not a string. */
export function parseEvent(text) {
  if (typeof text !== 'string') return null;
  for (const op of OPERATORS) {
    const marker = `===${op}`;
    if (text.includes(marker)) {
      const [html, target] = text.split(marker);
      return { html, op, target };
    }
  }
  // Taskcast (D30): an unmarked string is appended to the element, as if it ended in `===>>`.
  return { html: text, op: '>>', target: '' };
}

/** Walks a `/`-separated target path from `base`; null when a step finds nothing. */
export function resolveTarget(base, target) {
  let node = base;
  try {
    for (const raw of String(target ?? '').split('/')) {
      const step = raw.trim(); // Taskcast (D29): spaces next to `..`, `.` and `^` are harmless
      if (step === '' || step === '.') continue;
      if (step === '..') node = node.parentElement;
      else if (step.startsWith('^')) node = node.closest(step.slice(1).trim());
      else node = node.querySelector(step);
      if (!node) return null;
    }
  } catch (error) {
    if (error.name !== 'SyntaxError') throw error;
    return null; // not a valid selector: treated like a target that is not there
  }
  return node;
}

let inertDocument = null;

/**
 * Parses `html` inside a `<div class="ajax-temp-item">`: exactly one child node gives that node,
 * anything else gives the wrapper. The parsing happens in a document without a browsing context,
 * so nothing runs or loads there, and parser-made scripts stay inert after insertion.
 */
export function htmlToNode(html, doc = document) {
  inertDocument ??= document.implementation.createHTMLDocument('');
  const wrapper = inertDocument.createElement('div');
  wrapper.className = 'ajax-temp-item';
  wrapper.innerHTML = html;
  return doc.adoptNode(wrapper.childNodes.length === 1 ? wrapper.firstChild : wrapper);
}

/** Applies one event string relative to `base`; true when the DOM changed. */
export function applyEvent(base, text) {
  const event = parseEvent(text);
  if (!event) return false;
  const target = resolveTarget(base, event.target);
  if (!target) return false;
  if ((event.op === '(' || event.op === ')') && !target.parentNode) return false;
  INSERT[event.op](target, htmlToNode(event.html, base.ownerDocument));
  return true;
}

/** The websocket URL for `href` on the page at `loc` (contract C21). */
export function socketUrl(loc, href) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.hostname}${loc.port ? `:${loc.port}` : ''}${href}`;
}

export class PtigTaskElement extends HTMLElement {
  static observedAttributes = ['websocket_href', 'task_id', 'run_id'];

  #attached = false; // between connectedCallback and disconnectedCallback
  #socket = null;
  #pingTimer = 0;
  #retryTimer = 0;
  #retries = 0; // connections in a row that ended before the stream moved on
  #halted = false; // the server refused us: no reconnect until re-attached
  // Where this element is in its stream; kept while detached, so re-attaching resumes.
  #lastSeq = null; // seq of the last event taken (Taskcast servers number events)
  #received = 0; // events taken, to skip a full replay from a server without seq
  #skip = 0; // replayed events still to skip on the current socket
  #taskRequested = false; // task_href is fetched once: a second GET would start the task twice
  #started = false;
  #finished = false;
  // Taskcast's Redis engine: which copy of the stream's history the events came from. A resume
  // names it; a `start` with another one means that copy is gone and the whole stream follows.
  #epoch = null;
  #initial = null; // the author's content before any event, to render a replaced stream again

  connectedCallback() {
    this.#attached = true;
    this.#halted = false;
    this.#initial ??= Array.from(this.childNodes, (node) => node.cloneNode(true));
    this.#pingTimer = setInterval(() => this.#send({ ping: 1 }), PING_MS);
    this.#open();
  }

  disconnectedCallback() {
    this.#attached = false;
    clearInterval(this.#pingTimer);
    this.#close();
  }

  attributeChangedCallback(name, oldValue, newValue) {
    if (!this.#attached || oldValue === newValue) return;
    // Another stream or channel: forget the old one and subscribe afresh.
    this.#close();
    this.#lastSeq = this.#epoch = null;
    this.#received = this.#skip = this.#retries = 0;
    this.#taskRequested = this.#started = this.#finished = this.#halted = false;
    this.removeAttribute('finished');
    this.removeAttribute('state');
    this.#open();
  }

  #open() {
    const href = this.getAttribute('websocket_href');
    if (!href || this.#halted) return;
    const socket = new WebSocket(socketUrl(window.location, href));
    socket.onopen = () => this.#onOpen(socket);
    socket.onmessage = (message) => this.#onMessage(message.data);
    socket.onclose = (event) => this.#onClose(event);
    this.#socket = socket;
  }

  #close() {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = 0;
    const socket = this.#socket;
    this.#socket = null;
    // Unhooked first, so nothing from this socket (its close event included) reaches us again.
    if (socket) socket.onopen = socket.onmessage = socket.onclose = null;
    socket?.close(1000);
    this.removeAttribute('connected');
  }

  #send(frame) {
    if (this.#socket?.readyState === WebSocket.OPEN) this.#socket.send(JSON.stringify(frame));
  }

  #emit(name, detail) {
    this.dispatchEvent(new CustomEvent(`ptig-task:${name}`, { bubbles: true, composed: true, detail }));
  }

  async #onOpen(socket) {
    this.setAttribute('connected', '');
    this.#emit('connection', { connected: true, code: null, reason: '' });
    const taskHref = this.getAttribute('task_href');
    if (taskHref && !this.#taskRequested) {
      this.#taskRequested = true;
      try {
        const response = await fetch(taskHref, { credentials: 'same-origin' });
        if (!response.ok) this.#emit('error', { message: `GET ${taskHref}: HTTP ${response.status}` });
      } catch (error) {
        this.#emit('error', { message: `GET ${taskHref}: ${error.message}` });
      }
      if (socket !== this.#socket) return; // closed or replaced while the GET ran
    }
    const id = this.getAttribute('task_id');
    if (!id) return;
    // Without seq numbers to resume from, the server replays the stream from its first event
    // (contract B14): skip as many events as this element has already taken.
    this.#skip = this.#lastSeq === null ? this.#received : 0;
    const frame = this.#lastSeq === null ? { id } : { id, after: this.#lastSeq };
    if (this.#lastSeq !== null && this.#epoch !== null) frame.epoch = this.#epoch;
    // Taskcast's extension: follow this one run of the stream, not whichever run is newest.
    const run = this.getAttribute('run_id');
    if (run) frame.run = run;
    this.#send(frame);
  }

  #onMessage(raw) {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      console.debug('ptig-task: ignoring a frame that is not JSON', raw);
      return;
    }
    switch (frame?.status) {
      case 'pong': return;
      case 'start': return this.#onStart(frame);
      case 'event': return this.#onEvent(frame);
      case 'stop': return this.#onStop(frame);
      default: console.debug('ptig-task: ignoring a frame with an unknown status', frame);
    }
  }

  #onStart(frame) {
    this.#retries = 0;
    const epoch = typeof frame.epoch === 'string' ? frame.epoch : null;
    if (this.#started && this.#epoch !== null && epoch !== null && epoch !== this.#epoch) {
      // The server's copy was replaced and it replays the stream from its first event: what
      // this element rendered goes, and the replay renders it again.
      this.replaceChildren(...this.#initial.map((node) => node.cloneNode(true)));
      this.#lastSeq = null;
      this.#received = this.#skip = 0;
      this.#emit('reset', { epoch, previous: this.#epoch });
    }
    if (epoch !== null) this.#epoch = epoch;
    for (const el of this.querySelectorAll('[name=task_status]')) el.classList.add('task_started');
    this.#emit('start', { resumed: this.#started });
    this.#started = true;
  }

  #onEvent(frame) {
    const seq = Number.isInteger(frame.seq) ? frame.seq : null;
    if (seq !== null) {
      if (this.#lastSeq !== null && seq <= this.#lastSeq) return; // applied already
      this.#lastSeq = seq;
    } else if (this.#skip > 0) {
      this.#skip -= 1; // a replayed event this element has taken already
      return;
    }
    this.#received += 1;
    this.#retries = 0;
    if (typeof frame.data === 'string') applyEvent(this, frame.data);
    else console.debug('ptig-task: not applying event data that is not a string', frame.data);
    this.#emit('event', { data: frame.data, seq });
  }

  #onStop(frame) {
    this.#finished = true;
    for (const el of this.querySelectorAll('[name=task_status]')) {
      el.classList.remove('task_started');
      el.classList.add('task_finished');
    }
    for (const el of this.querySelectorAll('[name=task_end_info]')) {
      if (el.style.display === 'none') el.style.removeProperty('display');
    }
    const state = typeof frame.state === 'string' ? frame.state : null;
    const error = typeof frame.error === 'string' ? frame.error : null;
    this.setAttribute('finished', '');
    if (state) this.setAttribute('state', state);
    this.#emit('stop', { state, error });
  }

  #onClose({ code, reason }) {
    this.#socket = null;
    this.removeAttribute('connected');
    this.#emit('connection', { connected: false, code, reason });
    if (this.#finished) return; // the server closes after `stop`: the stream is complete
    if (REFUSED_CODES.has(code)) {
      this.#halted = true;
      this.#emit('error', { message: `the server refused the stream (${code}${reason ? `: ${reason}` : ''})` });
      return;
    }
    // Exponential backoff with jitter, so many pages do not come back in the same instant.
    const ceiling = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** this.#retries);
    this.#retries += 1;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = 0;
      this.#open();
    }, ceiling / 2 + Math.random() * (ceiling / 2));
  }
}

if (!customElements.get('ptig-task')) customElements.define('ptig-task', PtigTaskElement);
