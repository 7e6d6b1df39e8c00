// The files page's upload with progress: when JavaScript runs, the upload form is sent with
// XMLHttpRequest so the bytes sent can be shown; the page's answer (the list after a
// redirect, or the page with the error) replaces the usage bar and the list. Without
// JavaScript the form posts as usual.
'use strict';

document.addEventListener('submit', (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || form.id !== 'upload-form') return;
  if (typeof XMLHttpRequest === 'undefined' || typeof FormData === 'undefined') return;
  event.preventDefault();

  const row = document.getElementById('upload-progress-row');
  const progress = document.getElementById('upload-progress');
  const percent = document.getElementById('upload-percent');
  const status = document.getElementById('upload-status');
  const button = form.querySelector('button[type="submit"]');
  const show = (value) => {
    progress.value = value;
    percent.textContent = `${value}%`;
  };
  row.hidden = false;
  show(0);
  status.textContent = 'Uploading…';
  status.className = 'muted';
  if (button) button.disabled = true;

  const request = new XMLHttpRequest();
  request.open('POST', form.action);
  request.upload.onprogress = (progressEvent) => {
    if (progressEvent.lengthComputable && progressEvent.total > 0) {
      show(Math.floor((progressEvent.loaded / progressEvent.total) * 100));
    }
  };
  request.upload.onload = () => show(100);
  request.onload = () => {
    if (button) button.disabled = false;
    const answer = new DOMParser().parseFromString(request.responseText, 'text/html');
    for (const id of ['usage', 'file-list']) {
      const fresh = answer.getElementById(id);
      const current = document.getElementById(id);
      if (fresh && current) current.replaceWith(document.adoptNode(fresh));
    }
    const error = answer.querySelector('main .error');
    const notice = answer.querySelector('main .notice');
    if (error) {
      status.textContent = error.textContent;
      status.className = 'error';
    } else {
      status.textContent = notice ? notice.textContent : 'Uploaded.';
      status.className = 'notice';
      show(100);
      form.reset();
    }
  };
  request.onerror = () => {
    if (button) button.disabled = false;
    status.textContent = 'The upload failed: the connection was lost. Please try again.';
    status.className = 'error';
  };
  request.send(new FormData(form));
});
