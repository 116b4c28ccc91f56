// The schedules page: Delete asks in a dialog instead of going to its confirmation page.
// Without this script the "Delete…" link opens that page, which asks the same question.

const GONE = 'It was made while the server runs: once deleted, it is gone.';

function setUp() {
  const dialog = document.getElementById('delete-dialog');
  if (!dialog || typeof dialog.showModal !== 'function') return;
  const form = dialog.querySelector('form');
  dialog.querySelector('button.cancel').addEventListener('click', () => dialog.close());
  for (const link of document.querySelectorAll('a.delete[data-action]')) {
    link.addEventListener('click', (event) => {
      event.preventDefault();
      form.action = link.dataset.action;
      dialog.querySelector('.name').textContent = link.dataset.name;
      const returns = link.dataset.returns;
      dialog.querySelector('.returns').textContent = returns ? `It is ${returns}.` : GONE;
      dialog.showModal();
      dialog.querySelector('button.cancel').focus();
    });
  }
}

setUp();
