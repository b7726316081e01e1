// Keeps the clerk's waiting room and plan current without a reload: the server sends each
// section again over Server-Sent Events whenever it changed. Without JavaScript a reload does
// the same.
const section = document.querySelector('[data-live]');
if (section && 'EventSource' in window) {
  const source = new EventSource(section.dataset.live);
  for (const name of ['plan', 'warteraum']) {
    source.addEventListener(name, (event) => {
      const target = document.getElementById(name);
      if (target) {
        target.innerHTML = event.data;
        target.dataset.updated = String(Date.now());
      }
    });
  }
}
