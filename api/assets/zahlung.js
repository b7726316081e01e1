// The room's payment panel. The server renders it; when the room's socket reports that the
// payment changed (a request, an attempt, a decline, the capture), this script fetches the
// panel again and swaps it in. Without JavaScript the page shows the state it was loaded with.
const root = document.getElementById('raum');
const role = root ? root.dataset.role : 'citizen';
const box = document.getElementById('zahlung-raum');
// What the panel shows, as `status:attempts`: the page came with it.
let shown = document.getElementById('zahlung')?.dataset.payment;

// The newest summary the socket reported; the panel fetched shows at least that.
let wanted = null;

const fetchPanel = window.videoamtRoom.serialized(async () => {
  const section = document.getElementById('zahlung');
  if (!section) return;
  const status = wanted ? wanted.status : null;
  const response = await fetch(section.dataset.panel, { headers: { Accept: 'text/html' } });
  if (!response.ok) return;
  const parsed = new DOMParser().parseFromString(await response.text(), 'text/html');
  const fresh = parsed.getElementById('zahlung');
  if (fresh) section.replaceWith(document.importNode(fresh, true));
  window.videoamt.payment = status;
});

function refresh(summary) {
  wanted = summary;
  const key = summary ? `${summary.status}:${summary.attempts}` : '';
  if (key !== shown) {
    shown = key;
    fetchPanel();
  } else if (!fetchPanel.running()) {
    window.videoamt.payment = summary ? summary.status : null;
  }
}

window.videoamtRoom.listeners.push((m) => {
  if (m.type === 'waiting' && box) box.hidden = true;
  if (m.type !== 'room') return;
  if (box) box.hidden = role === 'citizen' && !m.admitted;
  if (m.admitted || role === 'clerk') refresh(m.payment);
});
