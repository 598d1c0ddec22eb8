// The suite pages (templates/suite.html): ask before a destructive action, such as deleting
// a case or a suite (a submit button with data-confirm). Without JavaScript the form posts as is.
document.addEventListener("submit", (event) => {
  const message = event.submitter && event.submitter.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
