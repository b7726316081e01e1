// The room: one WebSocket to the server for signaling and room events, one
// RTCPeerConnection to the server's media relay once the citizen is admitted. The server
// decides everything; this script only shows what it says and carries the media.
const root = document.getElementById('raum');
const role = root.dataset.role;
const statusText = document.getElementById('status-text');
const call = document.getElementById('anruf');
const remote = document.getElementById('fremd');
const self = document.getElementById('selbst');
const quality = document.getElementById('qualitaet');
const peerNote = document.getElementById('gegenseite');

let ws = null;
let pc = null;
let local = null;
let final = false;
let retry = 500;
let statsTimer = null;
// The server's word on how to reach the relay (TURN servers and their credentials).
let ice = { servers: [], policy: 'all' };
// What the page knows, for people and for the browser test.
window.videoamt = { state: 'connecting', inbound: 0, lost: 0 };
// What the panels' scripts (formular.js, zahlung.js, modules of their own) may use of this
// one: sending, and hearing every message (`listeners`).
// Wraps `task` (a panel fetched again and swapped in) so that its runs never overlap and the
// last call always gets a run that starts after it. Without this an older fetch that answers
// late would put back the panel it read before the newer one (a form attached right after
// another showed only the first).
function serialized(task) {
  let running = null;
  let again = false;
  const run = () => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await task();
        } while (again);
      } finally {
        running = null;
      }
    })();
    return running;
  };
  run.running = () => running !== null;
  return run;
}

window.videoamtRoom = {
  send: (message) => send(message),
  open: () => Boolean(ws && ws.readyState === WebSocket.OPEN),
  listeners: [],
  serialized,
};

function say(text) {
  statusText.textContent = text;
}

function send(message) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

function stopMedia() {
  clearInterval(statsTimer);
  statsTimer = null;
  if (pc) pc.close();
  pc = null;
  remote.srcObject = null;
  call.hidden = true;
}

async function startMedia() {
  if (pc) return;
  if (!local) {
    try {
      local = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    } catch (e) {
      say('Kamera und Mikrofon sind nicht freigegeben. Bitte erlauben Sie den Zugriff und laden Sie die Seite neu.');
      return;
    }
  }
  self.srcObject = local;
  call.hidden = false;
  pc = new RTCPeerConnection({ iceServers: ice.servers, iceTransportPolicy: ice.policy });
  for (const track of local.getTracks()) pc.addTrack(track, local);
  const incoming = new MediaStream();
  remote.srcObject = incoming;
  pc.ontrack = (e) => incoming.addTrack(e.track);
  pc.onconnectionstatechange = () => {
    if (pc && pc.connectionState === 'failed') {
      say('Die Videoverbindung ist unterbrochen. Sie wird neu aufgebaut …');
      stopMedia();
      setTimeout(startMedia, 1000);
    }
  };
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  // Non-trickle: the server takes the offer with all candidates at once.
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const done = () => {
      if (pc && pc.iceGatheringState === 'complete') resolve();
    };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, 3000);
  });
  send({ type: 'offer', sdp: pc.localDescription.sdp });
  statsTimer = setInterval(reportStats, 2000);
}

async function reportStats() {
  if (!pc) return;
  const stats = await pc.getStats();
  let packets = 0;
  let lost = 0;
  let rtt = null;
  stats.forEach((s) => {
    if (s.type === 'inbound-rtp') {
      packets += s.packetsReceived || 0;
      lost += s.packetsLost || 0;
    }
    if (s.type === 'candidate-pair' && s.nominated && s.currentRoundTripTime !== undefined) {
      rtt = s.currentRoundTripTime * 1000;
    }
    if (s.type === 'transport' && s.selectedCandidatePairId) {
      const mine = stats.get(stats.get(s.selectedCandidatePairId)?.localCandidateId);
      // "host" or "relay/tcp": whether the media goes through a TURN server, and how.
      if (mine) window.videoamt.route = mine.relayProtocol ? `${mine.candidateType}/${mine.relayProtocol}` : mine.candidateType;
    }
  });
  window.videoamt.inbound = packets;
  window.videoamt.lost = lost;
  send({ type: 'quality', packets, lost, rtt_ms: rtt });
}

// The room's documents: shown once admitted, listed again when their number changes.
const documentsBox = document.getElementById('dokumente-raum');
let documentsShown = -1;

function refreshDocuments(count) {
  const section = document.getElementById('dokumente');
  if (!section || count === documentsShown) return;
  documentsShown = count;
  fetchDocuments();
}

const fetchDocuments = serialized(async () => {
  const section = document.getElementById('dokumente');
  if (!section) return;
  const response = await fetch(section.dataset.list, { headers: { Accept: 'application/json' } });
  if (!response.ok) return;
  const shelf = await response.json();
  let list = section.querySelector('ul');
  const empty = section.querySelector('p');
  if (!list) {
    list = document.createElement('ul');
    section.insertBefore(list, section.querySelector('form'));
  }
  if (empty && shelf.documents.length) empty.remove();
  list.replaceChildren(...shelf.documents.map((d) => {
    const item = document.createElement('li');
    const open = document.createElement('a');
    open.href = d.href;
    open.target = '_blank';
    open.rel = 'noopener';
    open.textContent = d.file_name;
    const download = document.createElement('a');
    download.href = `${d.href}?herunterladen=1`;
    download.setAttribute('download', '');
    download.textContent = 'Herunterladen';
    download.setAttribute('aria-label', `${d.file_name} herunterladen`);
    item.append(open, ' (öffnet in neuem Tab) ', download);
    return item;
  }));
  window.videoamt.documents = shelf.documents.length;
});

function rate(packets, lost) {
  const share = packets + lost > 0 ? lost / (packets + lost) : 0;
  if (share < 0.02) return 'gut';
  if (share < 0.1) return 'mittel';
  return 'schlecht';
}

function onMessage(event) {
  let m;
  try {
    m = JSON.parse(event.data);
  } catch (e) {
    return;
  }
  window.videoamt.last = m.type;
  switch (m.type) {
    case 'waiting':
      window.videoamt.state = 'waiting';
      if (documentsBox) documentsBox.hidden = true;
      stopMedia();
      say(m.place
        ? `Sie sind im Warteraum. Sie werden gleich verbunden. Sie sind an Platz ${m.place}.`
        : 'Sie sind im Warteraum. Sie werden gleich verbunden.');
      break;
    case 'room':
      if (m.ice) ice = m.ice;
      window.videoamt.state = m.admitted ? 'admitted' : 'waiting';
      if (documentsBox) documentsBox.hidden = !m.admitted;
      if (m.admitted) refreshDocuments(m.documents);
      if (role === 'citizen') {
        if (m.admitted) {
          say('Sie sind mit der Sachbearbeitung verbunden.');
          startMedia();
        }
      } else {
        const c = m.citizen;
        say(m.admitted
          ? (c.connection_lost ? 'Die Verbindung der Bürgerin oder des Bürgers ist unterbrochen.' : 'Die Bürgerin oder der Bürger ist im Raum.')
          : (c.present ? 'Die Bürgerin oder der Bürger wartet im Warteraum.' : 'Noch niemand im Warteraum.'));
        startMedia();
      }
      break;
    case 'answer':
      if (pc) pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
      break;
    case 'peer-quality':
      quality.textContent = `Verbindungsqualität der Gegenseite: ${rate(m.packets, m.lost)}`;
      break;
    case 'peer-media':
      peerNote.hidden = m.camera && m.microphone;
      peerNote.textContent = !m.camera && !m.microphone
        ? 'Die Gegenseite hat Kamera und Mikrofon ausgeschaltet.'
        : (!m.camera ? 'Die Gegenseite hat die Kamera ausgeschaltet.' : 'Die Gegenseite hat das Mikrofon ausgeschaltet.');
      break;
    case 'peer-stream':
      if (m.state === 'stopped' || m.state === 'disconnected') {
        peerNote.hidden = false;
        peerNote.textContent = 'Von der Gegenseite kommt gerade kein Bild und kein Ton an.';
      } else if (m.state === 'resumed' || m.state === 'connected') {
        peerNote.hidden = true;
      }
      break;
    case 'removed':
    case 'refused':
    case 'replaced':
    case 'error':
      if (m.type !== 'error') {
        final = true;
        stopMedia();
      }
      window.videoamt.state = m.type;
      say(m.detail ? `${m.title}: ${m.detail}` : m.title);
      break;
    case 'ended':
      final = true;
      window.videoamt.state = 'ended';
      stopMedia();
      say(m.outcome === 'aborted'
        ? 'Der Termin wurde technisch abgebrochen. Bitte vereinbaren Sie einen neuen Termin.'
        : 'Der Termin ist beendet. Vielen Dank.');
      break;
    default:
      break;
  }
  for (const listen of window.videoamtRoom.listeners) listen(m);
}

function connect() {
  const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
  ws = new WebSocket(scheme + location.host + root.dataset.socket);
  ws.onopen = () => {
    retry = 500;
  };
  ws.onmessage = onMessage;
  ws.onclose = () => {
    if (final) return;
    stopMedia();
    window.videoamt.state = 'reconnecting';
    say('Die Verbindung ist unterbrochen. Sie wird wiederhergestellt …');
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 8000);
  };
}

function toggle(button, kind, on, off) {
  button.addEventListener('click', () => {
    if (!local) return;
    const tracks = kind === 'video' ? local.getVideoTracks() : local.getAudioTracks();
    const enabled = !(tracks[0] && tracks[0].enabled);
    for (const t of tracks) t.enabled = enabled;
    button.textContent = enabled ? off : on;
    button.setAttribute('aria-pressed', String(!enabled));
    const camera = local.getVideoTracks().every((t) => t.enabled);
    const microphone = local.getAudioTracks().every((t) => t.enabled);
    send({ type: 'media', camera, microphone });
  });
}

toggle(document.getElementById('kamera'), 'video', 'Kamera an', 'Kamera aus');
toggle(document.getElementById('mikrofon'), 'audio', 'Mikrofon an', 'Mikrofon aus');
connect();
