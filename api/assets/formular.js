// The room's forms, filled in together. A field goes to the server over the room's socket
// when it is left or after a pause in typing, with the field's version this page showed; the
// server checks it, records it and tells both pages the field's new value and version. The
// server is the authority: this script shows what it says. Without JavaScript the form is a
// plain POST (the "Speichern" button).
const roomRole = document.getElementById('raum').dataset.role;
const otherSide = roomRole === 'citizen' ? 'der Sachbearbeitung' : 'der Bürgerin oder dem Bürger';
// Fields typed in but not sent yet: their timers.
const pending = new Map();
// The session's number of forms the panel shows: the page came with it, so the socket's first
// message fetches the panel only if a form was attached since. A fetch on every page load
// would swap the panel under the clerk's hands and reset the template just chosen.
let formsCount = Number(document.getElementById('formulare')?.dataset.count ?? 0);
window.videoamt.forms = formsCount;
window.videoamt.formsFetches = 0;

function formOf(input) {
  return input.closest && input.closest('form[data-form]');
}

function isField(input) {
  return formOf(input) && input.dataset && input.dataset.version !== undefined;
}

function valueOf(input) {
  if (input.type === 'checkbox') return input.checked ? 'ja' : 'nein';
  return input.value;
}

function fieldBox(formId, field) {
  const form = document.querySelector(`form[data-form="${formId}"]`);
  return form && form.querySelector(`.feld[data-field="${CSS.escape(field)}"]`);
}

function inputOf(box) {
  return box && box.querySelector('input:not([type=hidden]), select');
}

function note(box, text, invalid) {
  const span = box.querySelector('.field-error');
  span.textContent = text;
  const input = inputOf(box);
  if (invalid) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

function sendField(input) {
  clearTimeout(pending.get(input));
  pending.delete(input);
  window.videoamtRoom.send({
    type: 'field',
    form: formOf(input).dataset.form,
    field: input.name,
    value: valueOf(input).trim(),
    based_on: Number(input.dataset.version),
  });
}

document.addEventListener('input', (e) => {
  const input = e.target;
  if (!isField(input) || input.type === 'checkbox' || input.tagName === 'SELECT') return;
  clearTimeout(pending.get(input));
  pending.set(input, setTimeout(() => sendField(input), 1500));
});

document.addEventListener('change', (e) => {
  if (isField(e.target)) sendField(e.target);
});

document.addEventListener('focusin', (e) => {
  if (isField(e.target)) window.videoamtRoom.send({ type: 'focus', form: formOf(e.target).dataset.form, field: e.target.name });
});

document.addEventListener('focusout', (e) => {
  if (!isField(e.target)) return;
  if (pending.has(e.target)) sendField(e.target);
  window.videoamtRoom.send({ type: 'focus', form: formOf(e.target).dataset.form, field: null });
});

// With the socket, "Speichern" sends what is still pending instead of reloading the call away.
document.addEventListener('submit', (e) => {
  const form = e.target;
  if (!form.dataset || !form.dataset.form || !window.videoamtRoom.open()) return;
  e.preventDefault();
  for (const input of form.querySelectorAll('input[data-version], select[data-version]')) {
    if (pending.has(input)) sendField(input);
  }
  form.querySelector('.formular-meldung').textContent = 'Gespeichert.';
});

// A form was attached or locked: the panel comes again from the server, as the page shows it.
// One fetch at a time, the last one started after the last call (`serialized`, in raum.js).
// A fetch that fails is tried again a few times: the change it was for is told only once.
const refreshForms = window.videoamtRoom.serialized(async () => {
  window.videoamt.formsFetches += 1;
  for (let attempt = 0; ; attempt += 1) {
    const response = await fetch(location.href, { headers: { Accept: 'text/html' } }).catch(() => null);
    if (response && response.ok) {
      swapPanel(new DOMParser().parseFromString(await response.text(), 'text/html'));
      return;
    }
    if (attempt === 4) return;
    await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
  }
});

function swapPanel(fresh) {
  const incoming = fresh.getElementById('formulare');
  const here = document.getElementById('formulare');
  if (incoming && here) {
    keepWhatIsUnsent(here, incoming);
    here.replaceWith(incoming);
  }
  window.videoamt.forms = Number((incoming || here).dataset.count);
  // Field messages that came while the panel was fetched are newer than the page it replaced
  // the old one with: apply them again.
  for (const m of latest.values()) showField(m, false);
}

// What this page holds that the server has not seen: the template chosen and not attached
// yet, fields typed in and not sent, a TAN asked for and typed in but not signed with yet
// (its image or SMS note lives only on this page), and a signature drawn on the touchpad and
// not sent. The new panel keeps them, and a pending field is sent from its new input.
function keepWhatIsUnsent(here, incoming) {
  for (const send of here.querySelectorAll('.unterschrift-senden')) {
    const canvas = send.closest('.unterschrift').querySelector('.unterschrift-feld');
    const twin = [...incoming.querySelectorAll('.unterschrift-senden')].find((b) => b.dataset.action === send.dataset.action);
    const fresh = twin && twin.closest('.unterschrift').querySelector('.unterschrift-feld');
    if (!canvas || !fresh || !(canvas.strokes || []).length) continue;
    fresh.strokes = canvas.strokes;
    fresh.started = canvas.started;
    fresh.getContext('2d').drawImage(canvas, 0, 0);
  }
  for (const tan of here.querySelectorAll('.tan-eingabe input[name=tan]')) {
    const twin = incoming.querySelector(`#${CSS.escape(tan.id)}`);
    const section = twin && twin.closest('.unterschrift');
    if (!section || twin.disabled) continue;
    twin.value = tan.value;
    const old = tan.closest('.unterschrift');
    for (const part of ['.tan-bild', '.unterschrift-meldung']) {
      const from = old.querySelector(part);
      const to = section.querySelector(part);
      if (from && to && !to.hasChildNodes()) to.replaceChildren(...from.childNodes);
    }
  }
  const chosen = here.querySelector('#vorlage');
  const choice = incoming.querySelector('#vorlage');
  if (chosen && choice && [...choice.options].some((o) => o.value === chosen.value)) {
    choice.value = chosen.value;
  }
  for (const [input, timer] of [...pending]) {
    if (!here.contains(input)) continue;
    const form = incoming.querySelector(`form[data-form="${formOf(input).dataset.form}"]`);
    const twin = form && inputOf(form.querySelector(`.feld[data-field="${CSS.escape(input.name)}"]`));
    clearTimeout(timer);
    pending.delete(input);
    if (!twin || twin.disabled) continue;
    twin.value = input.value;
    pending.set(twin, setTimeout(() => sendField(twin), 1500));
  }
}

// The newest field message per field, so that a panel read a moment too early catches up.
const latest = new Map();

function showField(m, fresh) {
  const box = fieldBox(m.form, m.field);
  const input = inputOf(box);
  if (!input) return;
  // Typed here and not sent yet: this page's next write is based on what it saw, so it is
  // recorded as replacing the other side's value, and they are told.
  if (pending.has(input) || Number(input.dataset.version) >= m.version) return;
  input.dataset.version = String(m.version);
  box.querySelector('input[type=hidden][name^="version."]').value = String(m.version);
  if (input.type === 'checkbox') input.checked = m.value === 'ja';
  else if (input.value !== m.value) input.value = m.value;
  if (m.replaced_yours && fresh) {
    note(box, `Ihr Eintrag wurde von ${otherSide} ersetzt.`, false);
  } else if (m.by === roomRole) {
    note(box, '', false);
  }
}

window.videoamtRoom.listeners.push((m) => {
  switch (m.type) {
    case 'room':
      // A waiting citizen's page shows no forms yet; admission brings them.
      if (roomRole === 'citizen' && !m.admitted) break;
      if (m.forms !== formsCount) {
        formsCount = m.forms;
        refreshForms();
      }
      break;
    case 'field':
      latest.set(`${m.form}/${m.field}`, m);
      showField(m, true);
      window.videoamt.fieldVersions = (window.videoamt.fieldVersions || 0) + 1;
      break;
    case 'field-error': {
      const box = fieldBox(m.form, m.field);
      if (box) note(box, m.detail ? `${m.title}: ${m.detail}` : m.title, true);
      break;
    }
    case 'forms':
      refreshForms();
      break;
    case 'peer-focus':
      for (const span of document.querySelectorAll('.gegenseite-feld')) span.textContent = '';
      if (m.field) {
        const box = fieldBox(m.form, m.field);
        if (box) box.querySelector('.gegenseite-feld').textContent = ` Gerade bearbeitet von ${otherSide}.`;
      }
      break;
    default:
      break;
  }
});

// --- signing: the TAN is asked for and shown here only; the touchpad's strokes are drawn here ---

async function postForm(url, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { Accept: 'application/json', 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(body),
  });
  const answer = await response.json().catch(() => ({}));
  return { ok: response.ok, answer };
}

function signingNote(section, text) {
  const note = section.querySelector('.unterschrift-meldung');
  if (note) note.textContent = text;
}

document.addEventListener('submit', async (e) => {
  const form = e.target;
  const section = form.closest && form.closest('.unterschrift');
  if (!section) return;
  e.preventDefault();
  if (form.classList.contains('tan-anfordern')) {
    const { ok, answer } = await postForm(form.action, {});
    if (!ok) return signingNote(section, answer.detail || answer.title || 'Die TAN konnte nicht erstellt werden.');
    const box = section.querySelector('.tan-bild');
    box.replaceChildren();
    if (answer.image) {
      const img = document.createElement('img');
      img.src = answer.image;
      img.alt = 'Ihre TAN als Bild; bitte in das Feld darunter abtippen';
      img.width = 300;
      img.height = 80;
      box.append('Ihre TAN (nur auf Ihrem Bildschirm sichtbar): ', img);
    } else {
      box.textContent = `Die TAN ist per SMS an ${answer.sent_to} unterwegs.`;
    }
    signingNote(section, 'Die TAN gilt 5 Minuten.');
    window.videoamt.tan = answer.method;
  } else if (form.classList.contains('tan-eingabe')) {
    const { ok, answer } = await postForm(form.action, { tan: form.elements.tan.value });
    if (!ok) return signingNote(section, answer.detail || answer.title || 'Die Unterschrift ist fehlgeschlagen.');
    signingNote(section, 'Unterschrieben.');
    refreshForms();
  }
});

// The touchpad: strokes of points with their time, in the canvas's CSS pixels.
let drawing = null;

function canvasPoint(canvas, e, started) {
  const r = canvas.getBoundingClientRect();
  return {
    x: ((e.clientX - r.left) * canvas.width) / r.width,
    y: ((e.clientY - r.top) * canvas.height) / r.height,
    t_ms: Math.round(performance.now() - started),
  };
}

document.addEventListener('pointerdown', (e) => {
  const canvas = e.target;
  if (!canvas.classList || !canvas.classList.contains('unterschrift-feld')) return;
  canvas.strokes = canvas.strokes || [];
  canvas.started = canvas.started || performance.now();
  drawing = { canvas, stroke: [canvasPoint(canvas, e, canvas.started)] };
  canvas.strokes.push(drawing.stroke);
  canvas.setPointerCapture(e.pointerId);
});

document.addEventListener('pointermove', (e) => {
  if (!drawing || e.target !== drawing.canvas) return;
  const { canvas, stroke } = drawing;
  const p = canvasPoint(canvas, e, canvas.started);
  const last = stroke[stroke.length - 1];
  stroke.push(p);
  const ctx = canvas.getContext('2d');
  ctx.lineWidth = 2;
  ctx.lineCap = 'round';
  ctx.beginPath();
  ctx.moveTo(last.x, last.y);
  ctx.lineTo(p.x, p.y);
  ctx.stroke();
});

document.addEventListener('pointerup', () => {
  drawing = null;
});

document.addEventListener('click', async (e) => {
  const button = e.target;
  const section = button.closest && button.closest('.unterschrift');
  if (!section) return;
  const canvas = section.querySelector('.unterschrift-feld');
  if (button.classList.contains('unterschrift-loeschen') && canvas) {
    canvas.getContext('2d').clearRect(0, 0, canvas.width, canvas.height);
    canvas.strokes = [];
    canvas.started = null;
  } else if (button.classList.contains('unterschrift-senden') && canvas) {
    const striche = JSON.stringify({ width: canvas.width, height: canvas.height, strokes: canvas.strokes || [] });
    const { ok, answer } = await postForm(button.dataset.action, { striche });
    if (!ok) return signingNote(section, answer.detail || answer.title || 'Die Unterschrift ist fehlgeschlagen.');
    signingNote(section, 'Unterschrieben.');
    refreshForms();
  }
});
