// How states and times look in the browser: the same table as app/web/look.py (read from the
// JSON that base.html embeds), and <time> elements shown in the viewer's own zone.

const table = JSON.parse(document.getElementById('taskcast-statuses')?.textContent || '{}');

/** The look of a status value: {label, icon, tone}; unknown values show as themselves. */
export function statusLook(status) {
  return table[status] ?? { label: String(status), icon: '', tone: 'neutral' };
}

/** A status pill element, the same markup as the `pill` macro in templates/macros.html. */
export function pill(status) {
  const look = statusLook(status);
  const outer = document.createElement('span');
  outer.className = `pill pill-${look.tone}`;
  outer.dataset.status = status;
  const icon = document.createElement('span');
  icon.className = 'pill-icon';
  icon.setAttribute('aria-hidden', 'true');
  icon.textContent = look.icon;
  outer.append(icon, ` ${look.label}`);
  return outer;
}

const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dated = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const STEPS = [[60, 'second'], [60, 'minute'], [24, 'hour'], [7, 'day'], [4.35, 'week'], [12, 'month'], [Infinity, 'year']];

/** "2 min ago" for a Date. */
export function ago(date, now = Date.now()) {
  let amount = (date.getTime() - now) / 1000;
  for (const [size, unit] of STEPS) {
    if (Math.abs(amount) < size) return relative.format(Math.round(amount), unit);
    amount /= size;
  }
  return dated.format(date);
}

/** Text for a Date in the viewer's zone, in the given style ("clock" or "relative"). */
export function formatTime(date, style = 'clock') {
  if (style === 'relative') return ago(date);
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay ? clock.format(date) : dated.format(date);
}

/** Show one <time datetime> in the viewer's zone; the absolute local time goes on hover. */
export function localiseTime(element) {
  const date = new Date(element.getAttribute('datetime'));
  if (Number.isNaN(date.getTime())) return;
  element.textContent = formatTime(date, element.dataset.style);
  element.title = dated.format(date);
}

/** Every <time datetime> under root. */
export function localiseTimes(root = document) {
  for (const element of root.querySelectorAll('time[datetime]')) localiseTime(element);
}

/** A <time> element for an ISO string, or an empty text node when there is none. */
export function timeElement(iso, style = 'clock') {
  if (!iso) return document.createTextNode('');
  const element = document.createElement('time');
  element.setAttribute('datetime', iso);
  element.dataset.style = style;
  localiseTime(element);
  return element;
}

localiseTimes();
// relative times go stale: refresh them every half minute
setInterval(() => {
  for (const element of document.querySelectorAll('time[data-style="relative"]')) localiseTime(element);
}, 30_000);
