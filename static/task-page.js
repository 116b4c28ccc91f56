// A task's page (templates/task.html): keeps the record current over /api/feed, and makes the
// output a log view (follows the end, search, filter). Without this script the page still shows
// the record and the output as the server rendered them.
import { pill, localiseTimes } from './look.js';

const detail = document.getElementById('task-detail');
const taskId = detail?.dataset.taskId;
const base = document.body.dataset.base ?? '';
const output = document.getElementById('task-output');
const log = document.getElementById('log');

// -- the record: re-read from the server whenever it may have changed ------------------------

let reading = null; // the refresh in flight
let again = false; // another refresh was asked for while one ran

/** Re-render the parts of the page marked data-refresh from the server's page, so the record,
 * the failure and the buttons are always the server's, never a guess of the script's. */
async function refresh() {
  if (reading) { again = true; return reading; }
  reading = (async () => {
    try {
      const response = await fetch(location.pathname, { credentials: 'same-origin', headers: { Accept: 'text/html' } });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), 'text/html');
      const freshDetail = fresh.getElementById('task-detail');
      if (!freshDetail) return;
      for (const part of detail.querySelectorAll('[data-refresh][id]')) {
        const replacement = fresh.getElementById(part.id);
        if (!replacement || replacement.outerHTML === part.outerHTML) continue;
        const focused = part.contains(document.activeElement);
        part.replaceWith(document.adoptNode(replacement));
        localiseTimes(replacement);
        if (focused) replacement.querySelector('button, a')?.focus();
      }
      detail.dataset.status = freshDetail.dataset.status;
      detail.dataset.final = freshDetail.dataset.final;
      if (detail.dataset.final === 'yes') showState(detail.dataset.status);
    } catch (error) {
      console.debug('task page: could not re-read the record', error);
    } finally {
      reading = null;
      if (again) { again = false; refresh(); }
    }
  })();
  return reading;
}

/** The output box's state: the same pill as the record's. */
function showState(status) {
  const box = document.getElementById('output-state');
  if (!box || box.firstElementChild?.dataset.status === status) return;
  box.replaceChildren(pill(status));
}

let delay = 500;
function connectFeed() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const socket = new WebSocket(`${scheme}//${location.host}${base}/api/feed`);
  socket.addEventListener('open', () => {
    delay = 500;
    document.body.dataset.live = 'on';
    // The record may have changed between this page's render and now (a cancel that landed
    // just after the redirect): read it again, so no change is missed.
    refresh();
  });
  socket.addEventListener('message', (message) => {
    const frame = JSON.parse(message.data);
    if (frame.reload) { refresh(); return; }
    for (const task of frame.tasks ?? []) {
      if (task.id === taskId && task.status !== detail.dataset.status) refresh();
    }
  });
  socket.addEventListener('close', () => {
    document.body.dataset.live = 'off';
    setTimeout(connectFeed, delay);
    delay = Math.min(delay * 2, 10_000);
  });
}

// -- the log: follows the end until the reader scrolls up -------------------------------------

let following = true;
let autoTop = 0; // where the script last put the log's end
const followButton = document.getElementById('log-follow');

function atEnd() {
  return log.scrollHeight - log.scrollTop - log.clientHeight < 4;
}

function setFollowing(value) {
  following = value;
  log.dataset.following = value ? 'yes' : 'no';
  if (followButton) followButton.hidden = value;
  if (value) scrollToEnd();
}

function scrollToEnd() {
  log.scrollTop = log.scrollHeight;
  autoTop = log.scrollTop;
}

function toEnd() {
  if (!following) return;
  // Scrolled up since the script last put the end in view, its scroll event still to come:
  // the reader's move wins over the new output.
  if (log.scrollTop < autoTop - 1) setFollowing(false);
  else scrollToEnd();
}

/** A scroll (the reader's or the script's): at the end follows again; above where the script
 * last put the end stops following. Output that grew under a scroll to the end changes nothing. */
function onScroll() {
  if (atEnd()) { if (!following) setFollowing(true); }
  else if (log.scrollTop < autoTop - 1) setFollowing(false);
}

// -- search: highlight every match; optionally show only the lines that have one -------------

const search = document.getElementById('log-search');
const filter = document.getElementById('log-filter');
const matches = document.getElementById('log-matches');
const LINE = 'li, p, tr, dt, dd, h1, h2, h3, h4, h5, h6, pre';

function lines() {
  const root = output && !output.hidden ? output : document.getElementById('log-static');
  const found = [...root.querySelectorAll(LINE)].filter((el) => !el.querySelector(LINE) && !el.closest('.ptig-progress'));
  // text straight inside a container with no line elements counts as one line per element
  for (const el of root.querySelectorAll('div, span')) {
    if (!el.querySelector('*') && el.textContent.trim() && !el.closest(LINE) && !el.closest('.ptig-progress')) found.push(el);
  }
  return found;
}

function applySearch() {
  const needle = search.value.trim().toLowerCase();
  const ranges = [];
  let count = 0;
  for (const line of lines()) {
    const hit = needle !== '' && line.textContent.toLowerCase().includes(needle);
    line.classList.toggle('log-hidden', filter.checked && needle !== '' && !hit);
    if (!hit) continue;
    const walker = document.createTreeWalker(line, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = node.data.toLowerCase();
      for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + needle.length)) {
        const range = new Range();
        range.setStart(node, at);
        range.setEnd(node, at + needle.length);
        ranges.push(range);
        count += 1;
      }
    }
  }
  if (globalThis.CSS?.highlights) {
    if (ranges.length) CSS.highlights.set('log-match', new Highlight(...ranges));
    else CSS.highlights.delete('log-match');
  }
  log.dataset.matches = String(count);
  matches.textContent = needle === '' ? '' : `${count} match${count === 1 ? '' : 'es'}`;
}

let searchQueued = false;
function searchSoon() {
  if (searchQueued || !search || search.value.trim() === '') return;
  searchQueued = true;
  requestAnimationFrame(() => { searchQueued = false; applySearch(); });
}

// -- progress: named for assistive technology, announced politely ----------------------------

function nameProgress() {
  for (const bar of output.querySelectorAll('progress:not([aria-label])')) bar.setAttribute('aria-label', 'Progress');
  for (const box of output.querySelectorAll('.ptig-progress:not([role])')) {
    box.setAttribute('role', 'status');
    box.setAttribute('aria-live', 'polite');
  }
}

// -- start -------------------------------------------------------------------------------------

if (detail) {
  if (log) {
    document.getElementById('log-tools').hidden = false;
    log.addEventListener('scroll', onScroll);
    followButton?.addEventListener('click', () => setFollowing(true));
    search.addEventListener('input', applySearch);
    filter.addEventListener('change', applySearch);
  }
  if (output) {
    // The live element takes over from the server-rendered text: it replays this run.
    document.getElementById('log-static').hidden = true;
    document.getElementById('log-empty')?.remove();
    document.getElementById('log-progress')?.setAttribute('hidden', '');
    output.hidden = false;
    new MutationObserver(() => { nameProgress(); toEnd(); searchSoon(); })
      .observe(output, { childList: true, subtree: true, characterData: true });
    output.addEventListener('ptig-task:stop', (event) => {
      if (event.detail.state) showState(event.detail.state);
      refresh();
    });
  }
  connectFeed();
  toEnd();
}
