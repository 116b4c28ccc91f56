// Live updates for the task list over /api/feed; without this script the list still works.
// (A task's page has its own script, static/task-page.js.)
const FIELDS = ['status', 'enqueued', 'started', 'stopped', 'time_taken'];

function when(iso) {
  if (!iso) return '';
  const value = new Date(iso);
  const sameDay = value.toISOString().slice(0, 10) === new Date().toISOString().slice(0, 10);
  return sameDay ? value.toISOString().slice(11, 19) : value.toISOString().slice(0, 19).replace('T', ' ');
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return '';
  if (seconds < 60) return `${seconds.toFixed(2)} s`;
  const minutes = Math.floor(Math.round(seconds) / 60);
  return minutes < 60 ? `${minutes} min ${Math.round(seconds) % 60} s` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function text(field, task) {
  if (field === 'status') return task.status;
  if (field === 'time_taken') return duration(task.time_taken);
  return when(task[field]);
}

function fill(container, task) {
  for (const field of FIELDS) {
    const cell = container.querySelector(`[data-field="${field}"]`);
    if (!cell) continue;
    cell.textContent = text(field, task);
    if (field === 'status') cell.className = `status status-${task.status}`;
  }
}

function cell(content, code = false) {
  const td = document.createElement('td');
  if (code) {
    const inner = document.createElement('code');
    inner.textContent = content ?? '';
    td.append(inner);
  } else {
    td.textContent = content ?? '';
  }
  return td;
}

function newRow(task) {
  const row = document.createElement('tr');
  row.dataset.taskId = task.id;
  row.className = 'fresh';
  const link = document.createElement('a');
  link.href = task.url;
  link.append(Object.assign(document.createElement('code'), { textContent: task.id.slice(0, 8) }));
  const idCell = document.createElement('td');
  idCell.append(link);
  row.append(idCell, cell(task.name), cell(task.func, true), cell(task.group), cell(task.stream_id, !!task.stream_id));
  for (const field of FIELDS) {
    const td = cell('');
    td.dataset.field = field;
    row.append(td);
  }
  fill(row, task);
  return row;
}

function onTasks(tasks) {
  const table = document.getElementById('task-table');
  if (!table) return;
  for (const task of tasks) {
    const row = table.querySelector(`tr[data-task-id="${task.id}"]`);
    if (row) fill(row, task);
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
  socket.addEventListener('open', () => { delay = 500; document.body.dataset.live = 'on'; });
  socket.addEventListener('message', (message) => {
    const frame = JSON.parse(message.data);
    if (frame.reload) location.reload();
    else if (Array.isArray(frame.tasks)) onTasks(frame.tasks);
  });
  socket.addEventListener('close', () => {
    document.body.dataset.live = 'off';
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 10_000);
  });
}
connect();
