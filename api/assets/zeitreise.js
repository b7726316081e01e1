// The time-travel slider shows its position while it moves and loads that state when let go;
// without JavaScript the button beside it does the same.
const slider = document.getElementById('stand');
const shown = document.getElementById('stand-wert');
if (slider && shown) {
  slider.addEventListener('input', () => {
    shown.textContent = slider.value;
    slider.setAttribute('aria-valuetext', `Position ${slider.value}`);
  });
  slider.addEventListener('change', () => slider.form.requestSubmit());
}
