// The pre-call check: browser support, camera and microphone with a preview and a level
// meter, then the upload measured by the server. Only the result and the figure are kept
// (server side); nothing about the device leaves the browser.
const root = document.getElementById('technik');
const minKbit = Number(root.dataset.minKbit);

function show(id, ok, text) {
  const item = document.getElementById(id);
  item.querySelector('.result').textContent = text;
  item.querySelector('.advice').hidden = ok;
  item.dataset.ok = ok ? '1' : '0';
}

const browserOk = 'RTCPeerConnection' in window && !!(navigator.mediaDevices &&
  navigator.mediaDevices.getUserMedia);
show('check-browser', browserOk, browserOk ? 'geeignet' : 'nicht geeignet');

let stream = null;
let meterTimer = null;

async function devices() {
  if (!browserOk) return false;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  } catch (e) {
    show('check-geraete', false, 'kein Zugriff');
    return false;
  }
  document.getElementById('vorschau').srcObject = stream;
  const hasVideo = stream.getVideoTracks().length > 0;
  const hasAudio = stream.getAudioTracks().length > 0;
  if (hasAudio) {
    try {
      const audio = new AudioContext();
      const analyser = audio.createAnalyser();
      analyser.fftSize = 256;
      audio.createMediaStreamSource(stream).connect(analyser);
      const samples = new Uint8Array(analyser.frequencyBinCount);
      const meter = document.getElementById('pegel');
      clearInterval(meterTimer);
      meterTimer = setInterval(() => {
        analyser.getByteTimeDomainData(samples);
        let peak = 0;
        for (const s of samples) peak = Math.max(peak, Math.abs(s - 128));
        meter.value = Math.min(100, Math.round(peak / 1.28));
        meter.textContent = String(meter.value);
      }, 100);
    } catch (e) {
      // No level meter; the microphone itself works.
    }
  }
  const ok = hasVideo && hasAudio;
  show('check-geraete', ok, ok ? 'funktionieren' : 'nicht vollständig');
  return ok;
}

async function upload(devicesOk) {
  // 4 MiB of random bytes (random, so that no proxy can compress them).
  const filler = new Uint8Array(4 * 1024 * 1024);
  for (let i = 0; i < filler.length; i += 65536) {
    crypto.getRandomValues(filler.subarray(i, i + 65536));
  }
  const url = `${root.dataset.measure}?browser=${browserOk ? 1 : 0}&geraete=${devicesOk ? 1 : 0}`;
  const response = await fetch(url, {
    method: 'POST',
    body: filler,
    headers: { 'Content-Type': 'application/octet-stream' },
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

function mbit(kbit) {
  return (kbit / 1000).toLocaleString('de-DE', { maximumFractionDigits: 1 });
}

document.getElementById('pruefen').addEventListener('click', async () => {
  const result = document.getElementById('ergebnis');
  result.textContent = 'Die Prüfung läuft …';
  const devicesOk = await devices();
  show('check-upload', true, 'wird gemessen …');
  try {
    const measured = await upload(devicesOk);
    const fast = measured.upload_kbit_s >= minKbit;
    show('check-upload', fast, `${mbit(measured.upload_kbit_s)} Mbit/s (nötig: ${mbit(minKbit)})`);
    root.dataset.ergebnis = measured.passed ? 'bestanden' : 'nicht-bestanden';
    result.textContent = measured.passed
      ? 'Alles bereit: Ihre Technik ist für die Videoberatung geeignet.'
      : 'Die Prüfung ist nicht bestanden. Bitte beachten Sie die Hinweise oben.';
  } catch (e) {
    show('check-upload', false, 'Messung fehlgeschlagen');
    root.dataset.ergebnis = 'fehler';
    result.textContent = 'Die Messung ist fehlgeschlagen. Bitte versuchen Sie es erneut.';
  }
});
