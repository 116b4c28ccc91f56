// The raw-frames page: subscribe to one stream and print each frame the channel sends.
const out = document.getElementById('frames');
const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
const socket = new WebSocket(`${scheme}//${location.host}${out.dataset.channel}`);
const show = (line) => out.append(`${new Date().toISOString().slice(11, 23)}  ${line}\n`);
socket.addEventListener('open', () => {
  const subscribe = JSON.stringify({ id: out.dataset.stream });
  show(`→ ${subscribe}`);
  socket.send(subscribe);
});
socket.addEventListener('message', (message) => show(`← ${message.data}`));
socket.addEventListener('close', (event) => show(`closed ${event.code} ${event.reason}`));
