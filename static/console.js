// Live updates for the task list over /api/feed; without this script the list still works.
// (A task's page has its own script, static/task-page.js.)
import { pill, timeElement } from './look.js';

function duration(seconds) {
  if (seconds === null || seconds === undefined) return '';
  if (seconds < 60) return `${seconds.toFixed(2)} s`;
  const minutes = Math.floor(Math.round(seconds) / 60);
  return minutes < 60 ? `${minutes} min ${Math.round(seconds) % 60} s` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

// -- the task list ---------------------------------------------------------------------------

function cell(className, content) {
  const td = document.createElement('td');
  td.className = className;
  if (content) td.append(content);
  return td;
}

function code(value, className = '') {
  const element = document.createElement('code');
  element.textContent = value ?? '';
  if (className) element.className = className;
  return element;
}

/** The status cell's pill, and the row's progress bar while it runs (kept from the last poll). */
function fillStatus(td, task) {
  const bar = task.status === 'running' ? td.querySelector('.row-progress') : null;
  td.replaceChildren(pill(task.status));
  if (bar) td.append(' ', bar);
}

function fillRow(row, task) {
  row.dataset.status = task.status;
  fillStatus(row.querySelector('[data-field="status"]'), task);
  for (const field of ['enqueued', 'started', 'stopped']) {
    row.querySelector(`[data-field="${field}"]`)?.replaceChildren(timeElement(task[field], 'relative'));
  }
  const took = row.querySelector('[data-field="time_taken"]');
  if (took) took.textContent = duration(task.time_taken);
  if (task.status !== 'queued') row.querySelector('.col-pick input')?.remove();
}

function newRow(task) {
  const row = document.createElement('tr');
  row.dataset.taskId = task.id;
  row.className = 'fresh';
  const pick = cell('col-pick');
  if (task.status === 'queued') {
    const box = Object.assign(document.createElement('input'), { type: 'checkbox', name: 'id', value: task.id });
    box.setAttribute('aria-label', `Pick ${task.name} (${task.id.slice(0, 8)}) to cancel`);
    pick.append(box);
  }
  const link = Object.assign(document.createElement('a'), { href: task.url, className: 'task-link' });
  link.append(code(task.id.slice(0, 8), 'short-id'), ' ', Object.assign(document.createElement('span'), { className: 'task-name', textContent: task.name }));
  const name = cell('col-task', link);
  const func = Object.assign(document.createElement('span'), { className: 'task-func' });
  func.append(code(task.func));
  name.append(' ', func);
  const status = cell('col-status');
  status.dataset.field = 'status';
  const stream = cell('col-stream col-optional');
  if (task.stream_id) {
    const cut = code(task.stream_id, 'cut');
    cut.title = task.stream_id;
    stream.append(cut);
  }
  row.append(pick, name, status, cell('col-group col-optional', document.createTextNode(task.group ?? '')), stream);
  for (const [field, className] of [['enqueued', 'col-queued'], ['started', 'col-started col-optional'], ['stopped', 'col-finished col-optional'], ['time_taken', 'col-took']]) {
    const td = cell(className);
    td.dataset.field = field;
    row.append(td);
  }
  fillRow(row, task);
  return row;
}

/** The bulk cancel button works while some row can be ticked. */
function updateBulkButton() {
  const button = document.getElementById('bulk-cancel');
  if (button) button.disabled = !document.querySelector('#task-table .col-pick input');
}

function onCounts(counts) {
  if (!counts) return;
  for (const name of ['running', 'queued']) {
    const element = document.getElementById(name);
    if (element && typeof counts[name] === 'number') element.textContent = String(counts[name]);
  }
  const waiting = document.getElementById('waiting');
  if (!waiting) return;
  if ('waiting' in counts) waiting.textContent = counts.waiting ?? '';
  if ('waiting' in counts || counts.queued === 0) waiting.hidden = !counts.waiting || counts.queued === 0;
}

function showProgress(row, progress) {
  const td = row.querySelector('[data-field="status"]');
  if (!td) return;
  let box = td.querySelector('.row-progress');
  if (!box) {
    box = Object.assign(document.createElement('span'), { className: 'row-progress' });
    const bar = document.createElement('progress');
    bar.setAttribute('aria-label', `Progress of ${row.querySelector('.task-name')?.textContent ?? 'the task'}`);
    box.append(bar, ' ', Object.assign(document.createElement('span'), { className: 'row-progress-text' }));
    td.append(' ', box);
  }
  const bar = box.querySelector('progress');
  if (progress.value === null) {
    bar.removeAttribute('value');
  } else {
    bar.max = progress.max;
    bar.value = progress.value;
  }
  box.querySelector('.row-progress-text').textContent = progress.text;
}

const POLL_MS = 2000;
let polling = null;

/** Counters, why tasks wait, and the progress of the visible running rows, from /api/activity. */
async function pollActivity() {
  const table = document.getElementById('task-table');
  if (!table) return;
  const running = [...table.querySelectorAll('tr[data-status="running"]')];
  const query = new URLSearchParams(running.slice(0, 100).map((row) => ['id', row.dataset.taskId]));
  try {
    const response = await fetch(`${document.body.dataset.base ?? ''}/api/activity?${query}`, { headers: { Accept: 'application/json' } });
    if (!response.ok) return;
    const activity = await response.json();
    onCounts(activity);
    for (const row of running) {
      const progress = activity.progress?.[row.dataset.taskId];
      if (progress && row.dataset.status === 'running') showProgress(row, progress);
    }
  } catch {
    // the server is away: the feed's reconnect brings the page back
  }
}

/** Poll while something runs or waits and the page is seen; stop when all is quiet. */
function schedulePoll() {
  if (polling !== null || !document.getElementById('task-table')) return;
  polling = setTimeout(async () => {
    polling = null;
    if (document.visibilityState === 'visible') await pollActivity();
    const busy = document.querySelector('#task-table tr[data-status="running"]')
      || document.getElementById('queued')?.textContent !== '0';
    if (busy) schedulePoll();
  }, POLL_MS);
}
document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') schedulePoll(); });

function onTasks(tasks) {
  const table = document.getElementById('task-table');
  if (!table) return;
  for (const task of tasks) {
    const row = table.querySelector(`tr[data-task-id="${task.id}"]`);
    if (row) fillRow(row, task);
    else if (table.dataset.live === 'yes') {
      table.querySelector('tr.empty')?.remove();
      table.tBodies[0].prepend(newRow(task));
    } else document.getElementById('new-tasks')?.removeAttribute('hidden');
  }
}

let delay = 500;
function connect() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const socket = new WebSocket(`${scheme}//${location.host}${document.body.dataset.base ?? ""}/api/feed`);
  socket.addEventListener('open', () => {
    delay = 500;
    document.body.dataset.live = 'on';
    // what changed between the page's render and now: counters and progress at once
    pollActivity().then(schedulePoll);
  });
  socket.addEventListener('message', (message) => {
    const frame = JSON.parse(message.data);
    if (frame.reload) location.reload();
    else if (Array.isArray(frame.tasks)) {
      onTasks(frame.tasks);
      updateBulkButton();
      onCounts(frame.counts);
      schedulePoll();
    }
  });
  socket.addEventListener('close', () => {
    document.body.dataset.live = 'off';
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 10_000);
  });
}
connect();
