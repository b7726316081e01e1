// The room's forms, filled in together. A field goes to the server over the room's socket
// when it is left or after a pause in typing, with the field's version this page showed; the
// server checks it, records it and tells both pages the field's new value and version. The
// server is the authority: this script shows what it says. Without JavaScript the form is a
// plain POST (the "Speichern" button).
const roomRole = document.getElementById('raum').dataset.role;
const otherSide = roomRole === 'citizen' ? 'der Sachbearbeitung' : 'der Bürgerin oder dem Bürger';
// Fields typed in but not sent yet: their timers.
const pending = new Map();
let formsCount = null;

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
async function refreshForms() {
  const response = await fetch(location.href, { headers: { Accept: 'text/html' } });
  if (!response.ok) return;
  const fresh = new DOMParser().parseFromString(await response.text(), 'text/html');
  const incoming = fresh.getElementById('formulare');
  const here = document.getElementById('formulare');
  if (incoming && here) here.replaceWith(incoming);
  window.videoamt.forms = Number((incoming || here).dataset.count);
}

window.onRoomMessage = (m) => {
  switch (m.type) {
    case 'room':
      if (m.forms !== formsCount) {
        formsCount = m.forms;
        refreshForms();
      }
      break;
    case 'field': {
      const box = fieldBox(m.form, m.field);
      const input = inputOf(box);
      if (!input) return;
      // Typed here and not sent yet: this page's next write is based on what it saw, so it is
      // recorded as replacing the other side's value, and they are told.
      if (pending.has(input)) return;
      input.dataset.version = String(m.version);
      box.querySelector('input[type=hidden][name^="version."]').value = String(m.version);
      if (input.type === 'checkbox') input.checked = m.value === 'ja';
      else if (input.value !== m.value) input.value = m.value;
      if (m.replaced_yours) {
        note(box, `Ihr Eintrag wurde von ${otherSide} ersetzt.`, false);
      } else if (m.by === roomRole) {
        note(box, '', false);
      }
      window.videoamt.fieldVersions = (window.videoamt.fieldVersions || 0) + 1;
      break;
    }
    case 'field-error': {
      const box = fieldBox(m.form, m.field);
      if (box) note(box, m.detail ? `${m.title}: ${m.detail}` : m.title, true);
      break;
    }
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
};
